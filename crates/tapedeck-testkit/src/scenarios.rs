//! The fixture runs every part of tapedeck is tested against, each built as a tape by a
//! [`TapeBuilder`] and fully deterministic. [`ALL`] lists them with their file names in
//! `fixtures/tapes/`, where a test keeps a copy current.
//!
//! Two agent versions appear: `support-bot` (a help desk that may read the knowledge base and
//! the web, but not post) and `research-bot` (which may also open pages with the expensive
//! `browser.open`). Both use `gpt-4.1-mini`, priced at $0.40 / $1.60 per million input /
//! output tokens, so every step has a known cost.

use serde_json::{Value, json};
use tapedeck_trace::{BudgetKind, Decision, StopReason, Usage};

use crate::{Call, TapeBuilder, message};

/// A scenario: its file name in `fixtures/tapes/` and the function that builds its tape.
pub type Scenario = (&'static str, fn() -> String);

/// Every scenario.
pub const ALL: [Scenario; 4] = [
    ("clean.jsonl", clean_run),
    ("browser-retry-incident.jsonl", browser_retry_incident),
    ("tool-denied.jsonl", tool_denied_run),
    ("long-run.jsonl", long_run),
];

/// The run id of [`clean_run`] (short id `5a1c3e01`).
pub const CLEAN_RUN_ID: &str = "01a1a0b0-be20-73b0-8668-04f65a1c3e01";
/// The run id of [`browser_retry_incident`] (short id `b7e5d602`).
pub const INCIDENT_RUN_ID: &str = "01a1cdbf-9418-7d41-8918-3471b7e5d602";
/// The run id of [`tool_denied_run`] (short id `c4f2a903`).
pub const TOOL_DENIED_RUN_ID: &str = "01a1ac94-df00-762d-86c2-3300c4f2a903";
/// The run id of [`long_run`] (short id `e9d8b104`).
pub const LONG_RUN_ID: &str = "01a1ee50-4380-7fc6-86f0-21c6e9d8b104";

/// The model every scenario calls.
pub const MODEL: &str = "gpt-4.1-mini";
/// `gpt-4.1-mini`'s price in US dollars per million input tokens.
pub const INPUT_PER_MTOK: f64 = 0.40;
/// `gpt-4.1-mini`'s price in US dollars per million output tokens.
pub const OUTPUT_PER_MTOK: f64 = 1.60;
/// What one `browser.open` call costs (its `cost_usd`).
pub const BROWSER_OPEN_COST_USD: f64 = 0.72;

/// The fingerprint of the `support-bot` agent version.
pub const SUPPORT_BOT_FINGERPRINT: &str =
    "2878ccc8739d12b4e22f3bc8bf250d584e48df56eb6a7a4893a17287a92108d8";
/// The fingerprint of the `research-bot` version of the incident (the safe default budgets).
pub const RESEARCH_BOT_FINGERPRINT: &str =
    "f974df71485216d3b3ecbf7f966de89fbd0cef615065bbaeaf18b33bdde33de8";
/// The fingerprint of the `research-bot` version of [`long_run`]: larger budgets make it
/// another agent version.
pub const LONG_RESEARCH_BOT_FINGERPRINT: &str =
    "a87ce5da1182e7028561ed9ca96db853eda77994e0f605121ae5b4c110e323f4";

/// `support-bot` answers "How do I reset my password?" from one knowledge-base article.
///
/// Two steps: `kb.read` (allowed, returns the article), then the final answer. Stop reason
/// `ok`; 9 events.
pub fn clean_run() -> String {
    let question = "How do I reset my password?";
    let mut tape = start(
        &support_bot(),
        CLEAN_RUN_ID,
        "2026-11-03T09:15:00Z",
        "password-reset",
        question,
    );
    let mut history = vec![message::system(SUPPORT_PROMPT), message::user(question)];

    let call = Call::new("call_1", "kb.read", json!({ "article": "password-reset" }));
    let article = json!({
        "article": "password-reset",
        "title": "Reset your password",
        "body": "Open Settings > Security, choose \"Reset password\" and follow the link we email \
                 you. The link is valid for 30 minutes. If no email arrives, check your spam \
                 folder or contact support.",
        "updated": "2026-10-02",
    });
    let reply = message::assistant_calls(&[&call]);
    tape.llm_step(&history, &reply, usage(412, 24), 820);
    let outcome = Ok(article);
    allowed_call(&mut tape, &call, outcome.clone(), 48, None);
    history.push(reply);
    history.push(message::tool(&call, &outcome));

    let answer = "Go to Settings > Security and choose \"Reset password\": we email you a link \
                  that is valid for 30 minutes. No email? Check your spam folder or contact \
                  support. (Source: \"Reset your password\".)";
    tape.llm_step(&history, &message::assistant(answer), usage(531, 58), 1240);
    tape.finish(StopReason::Ok, Some(answer))
}

/// The browser-retry incident of DESIGN.md: `research-bot`, asked "Is the Acme payments API
/// healthy right now?", calls `browser.open` on the status page over and over; every call
/// fails with `HTTP 503 Service Unavailable` and costs $0.72.
///
/// Budgets are the safe defaults (`max_steps` 30, `max_seconds` 90, `max_tool_calls` 15).
/// Calls 1 to 15 each record `tool_call`, `policy_decision` (allowed by `tools.allow`) and
/// `tool_result` (the error, `cost_usd` 0.72): $10.80 of tool cost. The model's 16th response
/// asks for a 16th call; the budget is checked before a call is recorded, so there is no 16th
/// `tool_call`, only `budget_exceeded` (`max_tool_calls`, limit 15, used 15, `browser.open`),
/// and the run stops with `max_tool_calls` and a partial answer. Totals: 16 steps,
/// `browser.open` 15 calls; 80 events. Input tokens grow with the history resent each step.
pub fn browser_retry_incident() -> String {
    let question = "Is the Acme payments API healthy right now?";
    let mut tape = start(
        &research_bot(safe_budgets(), RESEARCH_BOT_FINGERPRINT),
        INCIDENT_RUN_ID,
        "2026-11-12T03:14:07Z",
        "vendor-health",
        question,
    );
    let mut history = vec![message::system(RESEARCH_PROMPT), message::user(question)];
    let args = json!({ "url": "https://status.acme.example/api" });
    let failure: Result<Value, String> = Err("HTTP 503 Service Unavailable".to_owned());

    for i in 1..=16u64 {
        let call = Call::new(format!("call_{i}"), "browser.open", args.clone());
        let reply = message::assistant_calls(&[&call]);
        // Each failed attempt adds the assistant's call and the tool's error to the history.
        let input_tokens = 436 + 53 * (i - 1);
        tape.llm_step(
            &history,
            &reply,
            usage(input_tokens, 22),
            900 + (i * 173) % 400,
        );
        if i == 16 {
            tape.budget_exceeded(BudgetKind::MaxToolCalls, 15.0, 15.0, Some("browser.open"));
            break;
        }
        let latency = 1800 + (i * 311) % 1200;
        allowed_call(
            &mut tape,
            &call,
            failure.clone(),
            latency,
            Some(BROWSER_OPEN_COST_USD),
        );
        history.push(reply);
        history.push(message::tool(&call, &failure));
    }
    tape.finish(
        StopReason::MaxToolCalls,
        Some("Could not determine: status page kept returning 503"),
    )
}

/// `support-bot` is asked to mark an invoice paid and calls `http.post`, which it offers the
/// model but does not allow: `tool_call`, then `policy_decision` denied by `tools.allow`, and
/// the run stops with `tool_denied:http.post` and no answer. 6 events.
pub fn tool_denied_run() -> String {
    let question = "I paid invoice INV-2291 yesterday. Please mark it as paid.";
    let mut tape = start(
        &support_bot(),
        TOOL_DENIED_RUN_ID,
        "2026-11-05T16:40:00Z",
        "post-webhook",
        question,
    );
    let history = vec![message::system(SUPPORT_PROMPT), message::user(question)];
    let call = Call::new(
        "call_1",
        "http.post",
        json!({
            "url": "https://billing.acme.example/hooks/invoice-paid",
            "body": { "invoice": "INV-2291", "status": "paid" },
        }),
    );
    tape.llm_step(
        &history,
        &message::assistant_calls(&[&call]),
        usage(418, 41),
        960,
    )
    .tool_call(&call)
    .policy_decision(
        &call,
        Decision::Denied,
        "tools.allow",
        Some("http.post is not in tools.allow"),
    );
    tape.finish(StopReason::ToolDenied("http.post".to_owned()), None)
}

/// A long, healthy run: `research-bot` with large budgets makes 120 tool calls, alternating
/// `search.read` (page 1, 2, …) and `kb.read` (the note that page found), one per step, then
/// answers in a 121st step. Stop reason `ok`; 604 events.
///
/// Like many long-running agents it keeps only the system prompt, the question and its last
/// 20 messages in context, so input tokens level off and the tape stays small (a full
/// history would make it quadratic in message references).
pub fn long_run() -> String {
    let question = "List every documented cause of checkout latency in our knowledge base, with \
                    a source for each.";
    let budgets = json!({
        "max_steps": 150,
        "max_seconds": 600,
        "max_tool_calls": 150,
        "max_usd": null,
        "max_tokens": null,
    });
    let mut tape = start(
        &research_bot(budgets, LONG_RESEARCH_BOT_FINGERPRINT),
        LONG_RUN_ID,
        "2026-11-18T11:00:00Z",
        "long-research",
        question,
    );
    let head = [message::system(RESEARCH_PROMPT), message::user(question)];
    let mut recent: Vec<Value> = Vec::new();

    for i in 1..=120u64 {
        let page = i.div_ceil(2);
        let note = format!("latency-note-{page:03}");
        let cause = LATENCY_CAUSES[(page as usize - 1) % LATENCY_CAUSES.len()];
        let (call, output) = if i % 2 == 1 {
            let call = Call::new(
                format!("call_{i}"),
                "search.read",
                json!({ "query": "checkout latency cause", "page": page }),
            );
            let output = json!({
                "page": page,
                "results": [{ "article": note, "title": format!("Checkout latency: {cause}") }],
            });
            (call, output)
        } else {
            let call = Call::new(format!("call_{i}"), "kb.read", json!({ "article": note }));
            let output = json!({
                "article": note,
                "title": format!("Checkout latency: {cause}"),
                "body": format!("Incident review {page}: checkout p95 rose because of {cause}."),
            });
            (call, output)
        };
        let history: Vec<Value> = head.iter().chain(&recent).cloned().collect();
        let reply = message::assistant_calls(&[&call]);
        let input_tokens = 451 + 31 * recent.len() as u64;
        tape.llm_step(
            &history,
            &reply,
            usage(input_tokens, 24),
            600 + (i * 97) % 500,
        );
        let output = Ok(output);
        allowed_call(&mut tape, &call, output.clone(), 80 + (i * 53) % 200, None);
        recent.push(reply);
        recent.push(message::tool(&call, &output));
        if recent.len() > 20 {
            recent.drain(..recent.len() - 20);
        }
    }

    let history: Vec<Value> = head.iter().chain(&recent).cloned().collect();
    let answer = "I found 60 documented causes of checkout latency (notes latency-note-001 to \
                  latency-note-060). The most frequent: a cold cache after deploys, slow \
                  fraud-scoring calls and database lock contention on the orders table.";
    let input_tokens = 451 + 31 * recent.len() as u64;
    tape.llm_step(
        &history,
        &message::assistant(answer),
        usage(input_tokens, 176),
        2150,
    );
    tape.finish(StopReason::Ok, Some(answer))
}

const SUPPORT_PROMPT: &str = "You are support-bot, the help desk of Acme. Answer from the \
                              knowledge base and name the article you used. Never change \
                              account or billing data yourself.";

const RESEARCH_PROMPT: &str = "You are research-bot. Answer questions about services and \
                               incidents with the tools you have; check live sources before \
                               you answer, and say so when you cannot tell.";

/// The safe default budgets (DESIGN.md, "The safe default config"); `null`: no limit.
fn safe_budgets() -> Value {
    json!({
        "max_steps": 30,
        "max_seconds": 90,
        "max_tool_calls": 15,
        "max_usd": null,
        "max_tokens": null,
    })
}

const LATENCY_CAUSES: [&str; 10] = [
    "a cold cache after deploys",
    "slow fraud-scoring calls",
    "database lock contention on the orders table",
    "a retry storm against the tax service",
    "oversized cart payloads",
    "DNS resolution timeouts",
    "a saturated connection pool",
    "synchronous email receipts",
    "a slow currency-conversion API",
    "garbage-collection pauses in the cart service",
];

/// An agent version: what `run_started` and the requests of its runs carry.
struct Agent {
    name: &'static str,
    fingerprint: &'static str,
    prompt: &'static str,
    allow: &'static [&'static str],
    /// Tool definitions: name, kind, cost, description, input schema.
    defs: Vec<Value>,
    budgets: Value,
}

fn support_bot() -> Agent {
    Agent {
        name: "support-bot",
        fingerprint: SUPPORT_BOT_FINGERPRINT,
        prompt: SUPPORT_PROMPT,
        allow: &["search.read", "kb.read", "http.get"],
        defs: vec![
            kb_read_def(),
            search_read_def(),
            tool_def(
                "http.get",
                "read",
                0.0,
                "Fetch a URL and return its body.",
                json!({ "url": { "type": "string" } }),
            ),
            // Defined for a webhook feature that is not enabled: not in `tools.allow`.
            tool_def(
                "http.post",
                "write",
                0.0,
                "POST a JSON body to a URL.",
                json!({ "url": { "type": "string" }, "body": { "type": "object" } }),
            ),
        ],
        budgets: safe_budgets(),
    }
}

fn research_bot(budgets: Value, fingerprint: &'static str) -> Agent {
    Agent {
        name: "research-bot",
        fingerprint,
        prompt: RESEARCH_PROMPT,
        allow: &["search.read", "kb.read", "http.get", "browser.open"],
        defs: vec![
            tool_def(
                "browser.open",
                "expensive",
                BROWSER_OPEN_COST_USD,
                "Open a web page in a headless browser and return its text.",
                json!({ "url": { "type": "string" } }),
            ),
            search_read_def(),
            kb_read_def(),
        ],
        budgets,
    }
}

fn kb_read_def() -> Value {
    tool_def(
        "kb.read",
        "read",
        0.0,
        "Read a knowledge-base article by its slug.",
        json!({ "article": { "type": "string" } }),
    )
}

fn search_read_def() -> Value {
    tool_def(
        "search.read",
        "read",
        0.0,
        "Search the knowledge base; returns matching articles.",
        json!({ "query": { "type": "string" }, "page": { "type": "integer" } }),
    )
}

/// A tool definition as the agent config writes it; every property but `page` is required.
fn tool_def(name: &str, kind: &str, cost_usd: f64, description: &str, properties: Value) -> Value {
    let required: Vec<&String> = properties
        .as_object()
        .into_iter()
        .flat_map(|p| p.keys())
        .filter(|k| *k != "page")
        .collect();
    json!({
        "name": name,
        "kind": kind,
        "cost_usd": cost_usd,
        "description": description,
        "input_schema": { "type": "object", "properties": properties, "required": required },
    })
}

/// A builder for a run of `agent`, with `run_started` recorded.
fn start(agent: &Agent, id: &str, started_at: &str, task: &str, input: &str) -> TapeBuilder {
    // The model sees each tool's name, description and schema; kind and cost are the gateway's.
    let offered: Vec<Value> = agent
        .defs
        .iter()
        .map(|d| {
            json!({
                "name": d["name"],
                "description": d["description"],
                "input_schema": d["input_schema"],
            })
        })
        .collect();
    let params = json!({ "temperature": 0, "max_output_tokens": 1024 });
    let policy = json!({
        "tools": { "allow": agent.allow },
        "writes": { "require_approval": true },
        "kill_switch": { "enabled": false, "mode_when_enabled": "disable_writes" },
        "on_tool_error": "feed_back",
    });
    let config = json!({
        "name": agent.name,
        "model": { "provider": "openai", "name": MODEL, "params": params },
        "system_prompt": agent.prompt,
        "tools": { "allow": agent.allow, "defs": agent.defs },
        "budgets": agent.budgets,
        "policy": policy,
        "pricing": {
            MODEL: { "input_per_mtok": INPUT_PER_MTOK, "output_per_mtok": OUTPUT_PER_MTOK },
        },
    });
    let mut tape = TapeBuilder::new(id, started_at)
        .task(task)
        .input(input)
        .agent(agent.name, agent.fingerprint)
        .label("model", MODEL)
        .model("openai", MODEL)
        .params(params)
        .tools(Value::Array(offered))
        .pricing(INPUT_PER_MTOK, OUTPUT_PER_MTOK);
    tape.run_started(Some(&config), agent.budgets.clone(), policy);
    tape
}

/// `tool_call`, `policy_decision` allowed by `tools.allow`, and `tool_result`.
fn allowed_call(
    tape: &mut TapeBuilder,
    call: &Call,
    outcome: Result<Value, String>,
    latency_ms: u64,
    cost_usd: Option<f64>,
) {
    tape.tool_call(call)
        .policy_decision(call, Decision::Allowed, "tools.allow", None)
        .tool_result(call, &outcome, latency_ms, cost_usd);
}

fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
    Usage {
        input_tokens,
        output_tokens,
    }
}
