//! Storage: an agent conversation where every LLM request resends the whole history and each
//! round adds distinct text, recorded by tapedeck two ways — by the agent runtime's `Recorder`
//! and through `tapedeck record`'s HTTP proxy (a real HTTP client, a fake OpenAI-compatible
//! upstream on 127.0.0.1) — against its naive size: every request and response body as JSON, as
//! an HTTP cassette holds them.
//!
//! A store grows by pages of 4 KiB, and an empty store's tables each have a root page with room
//! for their first kilobytes: one short conversation is too few pages to measure to ±15 %. So
//! each length is recorded as several conversations of distinct text, one run each, into one
//! store — at least [`MIN_ROUNDS`] rounds in all — and the figures are per conversation.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use serde_json::{Value, json};
use tapedeck_proxy::http::{self};
use tapedeck_store::Store;
use tapedeck_trace::{
    EventData, LlmRequest, LlmResponse, Origin, Run, Source, StopReason, ToolCall, ToolCallSummary,
    ToolResult, Usage, Validation, hash_json,
};

use super::proxy::{Answer, connect, start_fake};
use crate::Exit;
use crate::commands::gc::bytes;

/// Options of `bench storage`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Conversation lengths (rounds) to measure, each recorded both ways
    #[arg(long, value_delimiter = ',', default_values_t = [10, 40, 100])]
    rounds: Vec<u64>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            rounds: vec![10, 40, 100],
        }
    }
}

/// The goals: the run's content at most this fraction of the naive size at [`GOAL_ROUNDS`]…
const GOAL_RATIO: f64 = 0.12;
const GOAL_ROUNDS: u64 = 40;
/// … and its bytes per round within ±15 % of each other across the lengths measured (the
/// largest at most this multiple of the smallest): linear growth.
const GOAL_SPREAD: f64 = 1.15;

/// Each length is recorded as this many rounds at least, in as many conversations as it takes.
const MIN_ROUNDS: u64 = 400;

/// How a conversation reaches the store.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// The agent runtime's events, through a `Recorder`.
    Runtime,
    /// HTTP through the recording proxy.
    Proxy,
}

impl Path {
    fn describe(self) -> &'static str {
        match self {
            Self::Runtime => "runtime (the agent loop's events through the Recorder)",
            Self::Proxy => {
                "proxy (a keep-alive HTTP client through `tapedeck record`'s proxy to a fake upstream on 127.0.0.1)"
            }
        }
    }
}

/// One conversation measured.
struct Row {
    rounds: u64,
    /// How many conversations of `rounds` were recorded.
    conversations: u64,
    naive: u64,
    file: u64,
    /// The file less the empty store's.
    content: u64,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    anyhow::ensure!(
        args.rounds.iter().all(|&r| r > 0),
        "--rounds takes conversation lengths of at least 1"
    );
    let dir = super::scratch_dir()?;
    let empty = {
        let path = dir.join("empty.db");
        let store = Store::open(&path)?;
        settle(&store)?
    };
    anstream::println!(
        "storage: a conversation resending its whole history on every request (empty store: {})",
        bytes(empty)
    );
    let mut verdicts = Vec::new();
    for path in [Path::Runtime, Path::Proxy] {
        anstream::println!("  {}", path.describe());
        anstream::println!(
            "    {:>6}  {:>4}  {:>10}  {:>10}  {:>6}  {:>10}  {:>6}  {:>11}  {:>13}",
            "rounds",
            "runs",
            "naive",
            "file",
            "ratio",
            "content",
            "ratio",
            "naive/round",
            "content/round"
        );
        let mut rows = Vec::new();
        for &rounds in &args.rounds {
            let conversations = MIN_ROUNDS.div_ceil(rounds);
            let file = dir.join(format!("{path:?}-{rounds}.db").to_lowercase());
            let store = Store::open(&file)?;
            let mut naive = 0;
            for conversation in 0..conversations {
                let script = Script::new(rounds, conversation);
                naive += match path {
                    Path::Runtime => record_runtime(&store, &script)?,
                    Path::Proxy => record_proxy(&store, &script)?,
                };
            }
            let file = settle(&store)?;
            // What the run itself occupies: the file less the fixed size of an empty store.
            let row = Row {
                rounds,
                conversations,
                naive,
                file,
                content: file.saturating_sub(empty),
            };
            let all_rounds = rounds * conversations;
            anstream::println!(
                "    {:>6}  {:>4}  {:>10}  {:>10}  {:>6.3}  {:>10}  {:>6.3}  {:>11}  {:>13}",
                row.rounds,
                row.conversations,
                bytes(row.naive / conversations),
                bytes(row.file),
                row.file as f64 / row.naive as f64,
                bytes(row.content / conversations),
                row.content as f64 / row.naive as f64,
                bytes(row.naive / all_rounds),
                bytes(row.content / all_rounds),
            );
            rows.push(row);
        }
        verdicts.push((path, verdict(&rows)));
    }
    anstream::println!(
        "  runs: conversations of distinct text recorded into the store (at least {MIN_ROUNDS} rounds in all, so page rounding is small); naive and content are per conversation, file is the whole store"
    );
    anstream::println!(
        "  naive: every request and response body as JSON, as an HTTP cassette holds them"
    );
    anstream::println!(
        "  goals, for each path: content ratio ≤ {GOAL_RATIO} at {GOAL_ROUNDS} rounds; content/round within ±15 % across the lengths (largest ≤ {GOAL_SPREAD}× smallest: linear growth)"
    );
    for (path, verdict) in verdicts {
        anstream::println!("  {:<8} {verdict}", format!("{path:?}:").to_lowercase());
    }
    Ok(Exit::Ok)
}

/// Whether a path's rows meet the goals, in words.
fn verdict(rows: &[Row]) -> String {
    let ratio = rows
        .iter()
        .find(|r| r.rounds == GOAL_ROUNDS)
        .map(|r| r.content as f64 / r.naive as f64);
    let per_round: Vec<f64> = rows
        .iter()
        .map(|r| r.content as f64 / (r.rounds * r.conversations) as f64)
        .collect();
    let spread = per_round.iter().copied().fold(f64::NAN, f64::max)
        / per_round.iter().copied().fold(f64::NAN, f64::min);
    let ratio_ok = ratio.map(|r| r <= GOAL_RATIO);
    let linear = spread <= GOAL_SPREAD;
    let ratio_text = match ratio {
        Some(r) => format!("ratio {r:.3} at {GOAL_ROUNDS} rounds"),
        None => format!("no {GOAL_ROUNDS}-round conversation measured"),
    };
    let spread_text = if rows.len() > 1 {
        format!("content/round largest {spread:.2}× smallest")
    } else {
        "one length measured".to_owned()
    };
    let outcome = match (ratio_ok, rows.len() > 1) {
        (Some(true), true) if linear => "meets both goals",
        (Some(false), true) if !linear => "misses both goals",
        (Some(false), _) => "misses the ratio goal",
        (_, true) if !linear => "misses the linear-growth goal",
        _ => "meets the goals it could check",
    };
    format!("{ratio_text}, {spread_text}: {outcome}")
}

/// Checkpoints the write-ahead log into the file and returns the file's size.
fn settle(store: &Store) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open(store.path())?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(store.file_size())
}

/// Deterministic prose: words drawn by a xorshift generator, so every message is distinct.
struct Prose(u64);

impl Prose {
    fn words(&mut self, n: usize) -> String {
        const WORDS: [&str; 32] = [
            "the", "payment", "service", "returned", "latency", "region", "invoice", "customer",
            "account", "status", "error", "retry", "queue", "order", "refund", "policy", "window",
            "upstream", "report", "degraded", "healthy", "incident", "metric", "alert", "ticket",
            "escalate", "timeout", "cache", "replica", "deploy", "rollback", "owner",
        ];
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            out.push(WORDS[(self.0 % WORDS.len() as u64) as usize]);
        }
        out.join(" ")
    }
}

/// The model every request names.
const MODEL: &str = "gpt-4.1-mini";

/// A tool-calling conversation, fixed in advance: the tools and the opening messages, then for
/// each round the model's answer (a tool call) and the tool's result.
struct Script {
    tools: Value,
    opening: Vec<Value>,
    rounds: Vec<Round>,
    /// The agent's final answer.
    answer: String,
}

/// One round: the model asks for a tool, the tool answers.
struct Round {
    call_id: String,
    args: Value,
    /// The assistant message asking for the tool call.
    assistant: Value,
    /// The model's response body.
    response: Value,
    output: Value,
    /// The tool's result as the next request carries it.
    tool_message: Value,
}

impl Script {
    /// The conversation numbered `conversation` (each has text of its own) of `rounds` rounds.
    fn new(rounds: u64, conversation: u64) -> Self {
        let mut prose =
            Prose((0x9E37_79B9_7F4A_7C15 ^ conversation.wrapping_mul(0xD1B5_4A32_D192_ED03)) | 1);
        let tools = json!([{
            "type": "function",
            "function": {
                "name": "kb.search",
                "description": prose.words(60),
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
            }
        }]);
        let opening = vec![
            json!({"role": "system", "content": prose.words(250)}),
            json!({"role": "user", "content": prose.words(40)}),
        ];
        let rounds = (1..=rounds)
            .map(|step| {
                let call_id = format!("call_{step}");
                let args = json!({"query": prose.words(6)});
                let assistant = json!({
                    "role": "assistant", "content": null,
                    "tool_calls": [{"id": call_id, "type": "function",
                        "function": {"name": "kb.search", "arguments": args.to_string()}}]
                });
                let response = json!({
                    "id": format!("chatcmpl-{step}"), "object": "chat.completion", "model": MODEL,
                    "choices": [{"index": 0, "message": assistant, "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": 1000 * step, "completion_tokens": 20}
                });
                let output = json!({"results": [prose.words(70), prose.words(70)]});
                let tool_message =
                    json!({"role": "tool", "tool_call_id": call_id, "content": output.to_string()});
                Round {
                    call_id,
                    args,
                    assistant,
                    response,
                    output,
                    tool_message,
                }
            })
            .collect();
        Self {
            tools,
            opening,
            rounds,
            answer: prose.words(30),
        }
    }

    /// A request body: the model, the history so far and the tools.
    fn request(&self, history: &[Value]) -> Value {
        json!({"model": MODEL, "messages": history, "tools": self.tools})
    }
}

/// Records the conversation as the agent runtime does (its events through a `Recorder`);
/// returns its naive (cassette) size.
fn record_runtime(store: &Store, script: &Script) -> anyhow::Result<u64> {
    let writer = store.writer()?;
    let mut recorder = writer.start_run(Run::new(Source::Runtime))?;
    let mut history = script.opening.clone();
    let tools_ref = recorder.blob(&script.tools)?;
    let mut refs = Vec::new();
    for message in &history {
        refs.push(recorder.blob(message)?);
    }
    let mut naive = 0u64;
    for (step, round) in (1..).zip(&script.rounds) {
        let request = script.request(&history);
        naive += serde_json::to_string(&request)?.len() as u64;
        let (request_hash, _) = hash_json(&request)?;
        recorder.append(EventData::LlmRequest(LlmRequest {
            step,
            provider: Some("openai".to_owned()),
            model: MODEL.to_owned(),
            params: Value::Null,
            extends: None,
            messages: refs.clone(),
            tools: Some(tools_ref),
            request_hash,
        }))?;
        naive += serde_json::to_string(&round.response)?.len() as u64;
        let message = recorder.blob(&round.assistant)?;
        recorder.append(EventData::LlmResponse(LlmResponse {
            step,
            message,
            tool_calls: vec![ToolCallSummary {
                id: round.call_id.clone(),
                name: "kb.search".to_owned(),
            }],
            finish_reason: Some("tool_calls".to_owned()),
            usage: Some(Usage {
                input_tokens: 1000 * step,
                output_tokens: 20,
            }),
            cost_usd: Some(0.0004),
            latency_ms: 800,
            streamed: false,
            truncated: false,
        }))?;
        let args_ref = recorder.blob(&round.args)?;
        recorder.append(EventData::ToolCall(ToolCall {
            step,
            call_id: round.call_id.clone(),
            tool: "kb.search".to_owned(),
            args: args_ref,
            args_hash: args_ref,
            idempotency_key: None,
        }))?;
        let output_ref = recorder.blob(&round.output)?;
        recorder.append(EventData::ToolResult(ToolResult {
            call_id: round.call_id.clone(),
            tool: "kb.search".to_owned(),
            output: Some(output_ref),
            error: None,
            latency_ms: 120,
            validation: Validation::NotChecked,
            origin: Origin::Live,
            cost_usd: None,
        }))?;
        refs.push(message);
        refs.push(recorder.blob(&round.tool_message)?);
        history.push(round.assistant.clone());
        history.push(round.tool_message.clone());
    }
    recorder.finish(StopReason::Ok, Some(script.answer.clone()))?;
    Ok(naive)
}

/// Records the conversation through `tapedeck record`'s HTTP proxy: one keep-alive client
/// sends each round's request, the fake upstream answers it with the round's response, and the
/// client puts the message it got back and the tool's result into the next request. Returns the
/// naive size of what went over the wire (every request and response body).
fn record_proxy(store: &Store, script: &Script) -> anyhow::Result<u64> {
    let responses: Vec<String> = script
        .rounds
        .iter()
        .map(|r| r.response.to_string())
        .collect();
    let next = AtomicUsize::new(0);
    let upstream = start_fake(move |_| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        Answer::Json(responses.get(n).cloned().unwrap_or_else(|| {
            json!({"error": {"message": format!("request {} of a {}-round script", n + 1, responses.len())}})
                .to_string()
        }))
    })?;
    let writer = store.writer()?;
    let recorder = writer.start_run(Run::new(Source::Proxy))?;
    let proxy = super::proxy::recording_proxy(upstream, recorder)?;
    // As `tapedeck record` runs it.
    let runtime = http::runtime().context("cannot start the async runtime")?;
    let running = runtime.block_on(http::start(proxy, SocketAddr::from(([127, 0, 0, 1], 0))))?;
    let mut conn = connect(running.addr, 1)?
        .pop()
        .context("no connection to the proxy")?;
    let mut history = script.opening.clone();
    let mut naive = 0u64;
    for (step, round) in (1..).zip(&script.rounds) {
        let request = script.request(&history).to_string();
        let reply = conn.post("/v1/chat/completions", request.as_bytes())?;
        anyhow::ensure!(
            reply.status == 200,
            "round {step}: HTTP {} from the proxy: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        naive += (request.len() + reply.body.len()) as u64;
        let response: Value = serde_json::from_slice(&reply.body)
            .with_context(|| format!("round {step}: the proxy's answer is not JSON"))?;
        let message = &response["choices"][0]["message"];
        anyhow::ensure!(
            message.is_object(),
            "round {step}: no message in the proxy's answer {response}"
        );
        history.push(message.clone());
        history.push(round.tool_message.clone());
    }
    drop(conn);
    let proxy = runtime.block_on(running.stop());
    let run = proxy.finish(Some(0))?;
    drop(runtime);
    let steps = run.totals.steps;
    anyhow::ensure!(
        steps == script.rounds.len() as u64,
        "the proxy recorded {steps} model calls of {}",
        script.rounds.len()
    );
    drop(writer);
    Ok(naive)
}
