//! `tapedeck show RUN`: a run's summary (with the tool that spent the budget), then its
//! timeline, or with `--audit` its policy decisions as an audit log.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use tapedeck_store::Store;
use tapedeck_trace::{
    AgentInfo, BudgetExceeded, ContentHash, Decision, Event, EventData, Origin, Run, RunStatus,
    Source, StopReason, Timestamp, Validation,
};

use tapedeck_diff::{ToolSpend, tool_spend};

use crate::Exit;
use crate::json_output;
use crate::render::{self, DIM, HEADING};
use crate::settings::Settings;

/// Show one run: summary, then timeline
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck show 3f9c2e1a\n  tapedeck show 3f9c2e1a --audit\n  tapedeck show 0197 --json | jq .summary"
)]
pub struct Args {
    /// The run: its short id (from `tapedeck ls`), or a unique prefix of its full id
    run: String,
    /// List the gateway's policy decisions as an audit log instead of the timeline
    #[arg(long)]
    audit: bool,
    /// Print JSON (summary, run, tool spend, events and the blobs they refer to)
    #[arg(long)]
    json: bool,
}

/// `show --json`: `summary` (what the text summary says), `run` (the stored record),
/// `tool_spend`, `events` and the `blobs` they refer to, keyed by hash.
#[derive(Serialize)]
struct JsonShow<'a> {
    short_id: String,
    summary: JsonSummary<'a>,
    run: &'a Run,
    tool_spend: Vec<ToolSpend>,
    events: &'a [Event],
    blobs: BTreeMap<ContentHash, Value>,
}

/// `show --json`'s `summary`: the figures of the text summary block, every key always present
/// (`null` where unknown, never a made-up 0).
#[derive(Serialize)]
struct JsonSummary<'a> {
    status: RunStatus,
    stop_reason: Option<&'a StopReason>,
    source: Source,
    suite: Option<&'a str>,
    task: Option<&'a str>,
    /// The run this one replays or forks (short id), and how.
    parent: Option<String>,
    mode: Option<&'a str>,
    agent: Option<&'a AgentInfo>,
    input: Option<&'a str>,
    started_at: Timestamp,
    latency_ms: Option<u64>,
    steps: u64,
    tool_calls: u64,
    tool_calls_by_tool: &'a BTreeMap<String, u64>,
    tokens_in: Option<u64>,
    tokens_out: Option<u64>,
    /// Model and tool cost.
    cost_usd: Option<f64>,
    /// The tool that used the most (by cost, then calls).
    top_tool: Option<ToolSpend>,
    budgets_exceeded: Vec<&'a BudgetExceeded>,
    error: Option<&'a str>,
    answer: Option<&'a str>,
}

impl<'a> JsonSummary<'a> {
    fn of(run: &'a Run, events: &'a [Event], spend: &[ToolSpend]) -> Self {
        let t = &run.totals;
        Self {
            status: run.status,
            stop_reason: run.stop_reason.as_ref(),
            source: run.source,
            suite: run.suite.as_deref(),
            task: run.task.as_deref(),
            parent: run.parent.map(|p| p.short()),
            mode: run.mode.as_deref(),
            agent: run.agent.as_ref(),
            input: run.input.as_deref(),
            started_at: run.started_at,
            latency_ms: t.latency_ms,
            steps: t.steps,
            tool_calls: t.tool_calls_total(),
            tool_calls_by_tool: &t.tool_calls,
            tokens_in: t.tokens_in,
            tokens_out: t.tokens_out,
            cost_usd: t.cost_usd,
            top_tool: spend.first().cloned(),
            budgets_exceeded: events
                .iter()
                .filter_map(|e| match &e.data {
                    EventData::BudgetExceeded(b) => Some(b),
                    _ => None,
                })
                .collect(),
            error: run.error.as_deref(),
            answer: run.answer.as_deref(),
        }
    }
}

/// Runs `tapedeck show`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let store = settings.open_required_store()?;
    let id = store.resolve_run(&args.run)?;
    let run = store.run(&id)?;
    let events = store.events(&id)?;
    if args.json {
        let blobs: BTreeMap<_, _> = store
            .blobs(events.iter().flat_map(|e| e.data.blob_refs()), &id)?
            .into_iter()
            .collect();
        let spend = tool_spend(&events);
        json_output::RUN.print(&JsonShow {
            short_id: id.short(),
            summary: JsonSummary::of(&run, &events, &spend),
            run: &run,
            tool_spend: spend,
            events: &events,
            blobs,
        })?;
        return Ok(Exit::Ok);
    }
    summary(&run, &events);
    anstream::println!();
    if args.audit {
        audit(&run, &events);
    } else {
        timeline(&store, &run, &events)?;
    }
    Ok(Exit::Ok)
}

/// Prints the summary block.
pub fn summary(run: &Run, events: &[Event]) {
    let h = HEADING;
    let dim = DIM;
    let status_style = render::status_style(run.status);
    let line = |label: &str, value: String| anstream::println!("  {dim}{label:<10}{dim:#} {value}");
    anstream::println!("{h}run {}{h:#} {dim}({}){dim:#}", run.id.short(), run.id);
    let reason = run
        .stop_reason
        .as_ref()
        .map_or_else(String::new, |r| format!(" — {r}"));
    line(
        "status",
        format!("{status_style}{}{reason}{status_style:#}", run.status),
    );
    let mut origin = vec![run.source.to_string()];
    if let Some(suite) = &run.suite {
        origin.push(format!("suite {suite}"));
    }
    if let Some(task) = &run.task {
        origin.push(format!("task {task}"));
    }
    if let (Some(parent), Some(mode)) = (&run.parent, &run.mode) {
        origin.push(format!("{mode} of {}", parent.short()));
    }
    line("source", origin.join(" · "));
    if let Some(agent) = &run.agent {
        let fp: String = agent.fingerprint.chars().take(8).collect();
        line("agent", format!("{} (fingerprint {fp})", agent.name));
    }
    if let Some(input) = &run.input {
        line("input", render::truncate(input, 100));
    }
    let latency = run
        .totals
        .latency_ms
        .map_or_else(String::new, |ms| format!(" · took {}", render::millis(ms)));
    line(
        "started",
        format!("{} UTC{latency}", render::time(run.started_at)),
    );
    let t = &run.totals;
    let per_tool = t
        .tool_calls
        .iter()
        .map(|(tool, n)| format!("{tool} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    line(
        "steps",
        format!(
            "{} · tool calls {}{}",
            render::thousands(t.steps),
            render::thousands(t.tool_calls_total()),
            if per_tool.is_empty() {
                String::new()
            } else {
                format!(" ({per_tool})")
            }
        ),
    );
    line(
        "tokens",
        format!(
            "{} in / {} out",
            render::count(t.tokens_in),
            render::count(t.tokens_out)
        ),
    );
    let spend = tool_spend(events);
    let tool_cost: f64 = spend.iter().map(|s| s.cost_usd).sum();
    let cost = match t.cost_usd {
        Some(total) if tool_cost > 0.0 => format!(
            "{} (tools {}, model {})",
            render::usd(Some(total)),
            render::usd(Some(tool_cost)),
            render::usd(Some(total - tool_cost))
        ),
        other => render::usd(other),
    };
    line("cost", cost);
    if let Some(top) = spend.first() {
        line(
            "top tool",
            top_tool_line(top, t.tool_calls_total(), t.cost_usd),
        );
    }
    for event in events {
        if let EventData::BudgetExceeded(b) = &event.data {
            let by = b
                .tool
                .as_ref()
                .map_or_else(String::new, |tool| format!(", hit by a {tool} call"));
            let w = render::WARN;
            line(
                "budget",
                format!(
                    "{w}{} exceeded{w:#}: {} used of {}{by}",
                    b.budget.as_str(),
                    trim_number(b.used),
                    trim_number(b.limit)
                ),
            );
        }
    }
    if let Some(error) = &run.error {
        line("error", render::truncate(error, 200));
    }
    if let Some(answer) = &run.answer {
        line("answer", render::truncate(answer, 200));
    }
}

/// "browser.open — 15 of 15 tool calls (100%), $10.80 of $10.83 (99.7%), 15 errors".
fn top_tool_line(top: &ToolSpend, total_calls: u64, total_cost: Option<f64>) -> String {
    let pct = |part: f64, whole: f64| {
        if whole > 0.0 {
            format!("{:.0}%", 100.0 * part / whole)
        } else {
            "-".to_owned()
        }
    };
    let mut text = format!(
        "{} — {} of {} tool calls ({})",
        top.tool,
        top.calls,
        total_calls,
        pct(top.calls as f64, total_calls as f64)
    );
    if let Some(total) = total_cost.filter(|_| top.cost_usd > 0.0) {
        text += &format!(
            ", {} of {} spent ({})",
            render::usd(Some(top.cost_usd)),
            render::usd(Some(total)),
            pct(top.cost_usd, total)
        );
    }
    if top.errors > 0 {
        text += &format!(", {} failed", top.errors);
    }
    text
}

fn trim_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.2}")
    }
}

/// Prints the timeline: one line per event, grouped by step.
fn timeline(store: &Store, run: &Run, events: &[Event]) -> anyhow::Result<()> {
    let h = HEADING;
    let dim = DIM;
    anstream::println!("{h}timeline{h:#}");
    let histories = tapedeck_trace::expand_messages(events);
    let mut current_step = 0;
    for event in events {
        let step = match &event.data {
            EventData::LlmRequest(e) => Some(e.step),
            _ => None,
        };
        if let Some(step) = step.filter(|s| *s != current_step) {
            current_step = step;
            anstream::println!("  {h}step {step}{h:#}");
        }
        let offset = run.started_at.millis_until(event.at);
        let sent = histories.get(&event.seq).map_or(0, Vec::len);
        let (kind, text) = describe(store, run, event, sent)?;
        anstream::println!(
            "  {dim}{:>5} {:>9}{dim:#}  {kind:<15} {text}",
            event.seq,
            format!("+{}", render::millis(offset)),
        );
    }
    Ok(())
}

/// A short description of an event for the timeline.
/// `sent` is how many messages an `llm_request` sent, its history included.
fn describe(
    store: &Store,
    run: &Run,
    event: &Event,
    sent: usize,
) -> anyhow::Result<(String, String)> {
    let blob = |hash: &ContentHash| store.blob(hash, &run.id);
    let text = match &event.data {
        EventData::RunStarted(e) => {
            let mut parts = Vec::new();
            if let Some(input) = &e.input {
                parts.push(format!("input {:?}", render::truncate(input, 60)));
            }
            if let Value::Object(budgets) = &e.budgets {
                let set: Vec<String> = budgets
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if !set.is_empty() {
                    parts.push(format!("budgets {}", set.join(" ")));
                }
            }
            parts.join(" · ")
        }
        EventData::LlmRequest(e) => format!(
            "{}{} · {sent} messages ({} new)",
            e.provider
                .as_ref()
                .map_or_else(String::new, |p| format!("{p} ")),
            e.model,
            e.messages.len()
        ),
        EventData::LlmRetry(e) => format!(
            "attempt {} failed{}{} · retry in {}",
            e.attempt,
            e.status.map_or_else(String::new, |s| format!(" with {s}")),
            e.error
                .as_ref()
                .map_or_else(String::new, |m| format!(": {}", render::truncate(m, 60))),
            render::millis(e.wait_ms)
        ),
        EventData::LlmResponse(e) => {
            let mut parts = Vec::new();
            let content = message_text(&blob(&e.message)?);
            if e.tool_calls.is_empty() {
                parts.push(format!("“{}”", render::truncate(&content, 70)));
            } else {
                // The text a model wrote before asking for tools ("Let me look that up.") is
                // part of its answer: shown, shorter, before the calls.
                let names: Vec<&str> = e.tool_calls.iter().map(|c| c.name.as_str()).collect();
                let calls = format!("→ {}", names.join(", "));
                if content.trim().is_empty() {
                    parts.push(calls);
                } else {
                    parts.push(format!("“{}” {calls}", render::truncate(&content, 50)));
                }
            }
            if let Some(u) = e.usage {
                parts.push(format!(
                    "{} in / {} out",
                    render::thousands(u.input_tokens),
                    render::thousands(u.output_tokens)
                ));
            }
            if let Some(cost) = e.cost_usd {
                parts.push(render::usd(Some(cost)));
            }
            parts.push(render::millis(e.latency_ms));
            if let Some(f) = &e.finish_reason {
                parts.push(format!("finish {f}"));
            }
            if e.streamed {
                parts.push("streamed".to_owned());
            }
            if e.truncated {
                parts.push("TRUNCATED".to_owned());
            }
            parts.join(" · ")
        }
        EventData::ToolCall(e) => {
            let args = blob(&e.args)?;
            let key = e
                .idempotency_key
                .as_ref()
                .map_or_else(String::new, |k| format!(" · key {k}"));
            format!(
                "{} {}{key}",
                e.tool,
                render::truncate(&serde_json::to_string(&args)?, 80)
            )
        }
        EventData::PolicyDecision(e) => {
            let detail = e
                .detail
                .as_ref()
                .map_or_else(String::new, |d| format!(": {}", render::truncate(d, 70)));
            format!(
                "{}{} ({}){detail}",
                decision_name(e.decision),
                e.tool
                    .as_ref()
                    .map_or_else(String::new, |t| format!(" {t}")),
                e.rule
            )
        }
        EventData::ToolResult(e) => {
            let mut parts = Vec::new();
            match (&e.error, &e.output) {
                (Some(err), _) => parts.push(format!("✗ {}", render::truncate(err, 70))),
                (None, Some(out)) => {
                    let output = blob(out)?;
                    parts.push(format!(
                        "✓ {}",
                        render::truncate(&serde_json::to_string(&output)?, 70)
                    ));
                }
                (None, None) => parts.push("✓ (no output)".to_owned()),
            }
            if let Validation::Invalid(msg) = &e.validation {
                parts.push(format!("invalid output: {}", render::truncate(msg, 50)));
            }
            parts.push(render::millis(e.latency_ms));
            if let Some(cost) = e.cost_usd.filter(|c| *c > 0.0) {
                parts.push(render::usd(Some(cost)));
            }
            match e.origin {
                Origin::Live => {}
                Origin::Recorded => parts.push("recorded".to_owned()),
                Origin::Reused => parts.push("reused".to_owned()),
                Origin::Dedupe => parts.push("deduped".to_owned()),
            }
            parts.join(" · ")
        }
        EventData::HttpExchange(e) => format!(
            "{} {} → {}",
            e.method,
            e.path,
            e.status
                .map_or_else(|| "no response".to_owned(), |s| s.to_string())
        ),
        EventData::McpMessage(e) => format!(
            "{:?} {}",
            e.direction,
            e.method.as_deref().unwrap_or("(response)")
        ),
        EventData::BudgetExceeded(e) => format!(
            "{} used of {}{}",
            trim_number(e.used),
            trim_number(e.limit),
            e.tool
                .as_ref()
                .map_or_else(String::new, |t| format!(" · at a {t} call"))
        ),
        EventData::AgentIdentity(e) => {
            let mut parts = Vec::new();
            if !e.models.is_empty() {
                parts.push(e.models.join(", "));
            }
            let prompts = e.system_prompts.len();
            parts.push(format!(
                "{prompts} system prompt{}",
                render::plural(prompts as u64)
            ));
            if e.tools.is_empty() {
                parts.push("no tools".to_owned());
            } else {
                let names: Vec<&str> = e.tools.keys().map(String::as_str).collect();
                parts.push(format!("tools {}", render::truncate(&names.join(", "), 60)));
            }
            // Characters, not bytes: a fingerprint comes from a tape anyone can write.
            let short: String = e.fingerprint.chars().take(8).collect();
            parts.push(format!("fingerprint {short}"));
            parts.join(" · ")
        }
        EventData::RunFinished(e) => format!("{} — {}", e.status, e.stop_reason),
    };
    let kind = match &event.data {
        EventData::BudgetExceeded(e) => e.budget.as_str().to_owned(),
        EventData::PolicyDecision(_) => "policy".to_owned(),
        other => other.kind().to_owned(),
    };
    Ok((kind, text))
}

/// The text of a recorded assistant message, whatever the API shape: Chat Completions
/// (`content` a string or parts, or a `refusal`), Anthropic (`content` blocks: the `text` ones,
/// not `tool_use` or `thinking`), the Responses API as the proxy records it (`output` items:
/// the `output_text` and `refusal` parts of each `message`), or a bare string.
fn message_text(message: &Value) -> String {
    fn parts_text<'a>(content: Option<&'a Value>, out: &mut Vec<&'a str>) {
        match content {
            Some(Value::String(s)) => out.push(s),
            Some(Value::Array(parts)) => {
                for part in parts {
                    let text = match part.get("type").and_then(Value::as_str) {
                        Some("refusal") => part.get("refusal"),
                        Some("text" | "output_text") | None => part.get("text"),
                        Some(_) => None,
                    };
                    out.extend(text.and_then(Value::as_str));
                }
            }
            _ => {}
        }
    }
    let mut texts = Vec::new();
    parts_text(message.get("content"), &mut texts);
    for item in message
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("message"))
    {
        parts_text(item.get("content"), &mut texts);
    }
    if texts.is_empty() {
        texts.extend(message.get("refusal").and_then(Value::as_str));
        texts.extend(message.as_str());
    }
    texts.retain(|t| !t.trim().is_empty());
    texts.join(" ")
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Allowed => "allowed",
        Decision::Denied => "denied",
        Decision::NeedsApproval => "needs approval",
        Decision::Approved => "approved",
        Decision::Rejected => "rejected",
        Decision::Deduped => "deduped",
        Decision::Degraded => "degraded",
        Decision::KillSwitch => "kill switch",
    }
}

/// Prints the policy decisions as an audit log.
fn audit(run: &Run, events: &[Event]) {
    let h = HEADING;
    anstream::println!("{h}audit log{h:#}");
    let mut table = render::table(&[
        "SEQ",
        "TIME (UTC)",
        "CALL",
        "TOOL",
        "DECISION",
        "RULE",
        "DETAIL",
    ]);
    let mut rows = 0;
    for event in events {
        if let EventData::PolicyDecision(e) = &event.data {
            rows += 1;
            table.add_row(vec![
                event.seq.to_string(),
                render::time(event.at),
                e.call_id.clone().unwrap_or_else(|| "-".to_owned()),
                e.tool.clone().unwrap_or_else(|| "-".to_owned()),
                decision_name(e.decision).to_owned(),
                e.rule.clone(),
                e.detail
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |d| render::truncate(d, 60)),
            ]);
        }
    }
    if rows == 0 {
        anstream::println!("  no policy decisions in run {}", run.id.short());
    } else {
        anstream::println!("{}", table.trim_fmt());
    }
}
