//! Storage: an agent conversation where every LLM request resends the whole history and each
//! round adds distinct text, recorded by tapedeck, against its naive size — every request and
//! response body as JSON, as an HTTP cassette holds them.

use serde_json::{Value, json};
use tapedeck_store::Store;
use tapedeck_trace::{
    EventData, LlmRequest, LlmResponse, Origin, Run, Source, StopReason, ToolCall, ToolCallSummary,
    ToolResult, Usage, Validation, hash_json,
};

use crate::Exit;
use crate::commands::gc::bytes;

/// Options of `bench storage`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Conversation lengths (rounds) to measure
    #[arg(long, value_delimiter = ',', default_values_t = [10, 30, 100])]
    rounds: Vec<u64>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            rounds: vec![10, 30, 100],
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
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
    anstream::println!(
        "  {:>6}  {:>10}  {:>10}  {:>6}  {:>10}  {:>6}  {:>11}  {:>13}",
        "rounds",
        "naive",
        "file",
        "ratio",
        "content",
        "ratio",
        "naive/round",
        "content/round"
    );
    for &rounds in &args.rounds {
        let path = dir.join(format!("conversation-{rounds}.db"));
        let store = Store::open(&path)?;
        let naive = record_conversation(&store, rounds)?;
        let file = settle(&store)?;
        // What the run itself occupies: the file less the fixed size of an empty store.
        let content = file.saturating_sub(empty);
        anstream::println!(
            "  {rounds:>6}  {:>10}  {:>10}  {:>6.3}  {:>10}  {:>6.3}  {:>11}  {:>13}",
            bytes(naive),
            bytes(file),
            file as f64 / naive as f64,
            bytes(content),
            content as f64 / naive as f64,
            bytes(naive / rounds),
            bytes(content / rounds),
        );
    }
    anstream::println!(
        "  naive: every request and response body as JSON, as an HTTP cassette holds them"
    );
    anstream::println!(
        "  goal: ratio ≤ 0.2 at 30 rounds; content/round stays flat (linear growth)"
    );
    Ok(Exit::Ok)
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

/// Records a `rounds`-round tool-calling conversation; returns its naive (cassette) size.
fn record_conversation(store: &Store, rounds: u64) -> anyhow::Result<u64> {
    let writer = store.writer()?;
    let mut recorder = writer.start_run(Run::new(Source::Runtime))?;
    let mut prose = Prose(0x9E37_79B9_7F4A_7C15);
    let tools = json!([{
        "type": "function",
        "function": {
            "name": "kb.search",
            "description": prose.words(60),
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
        }
    }]);
    let mut history: Vec<Value> = vec![
        json!({"role": "system", "content": prose.words(250)}),
        json!({"role": "user", "content": prose.words(40)}),
    ];
    let tools_ref = recorder.blob(&tools)?;
    let mut refs = Vec::new();
    for message in &history {
        refs.push(recorder.blob(message)?);
    }
    let mut naive = 0u64;
    for step in 1..=rounds {
        let request = json!({"model": "gpt-4.1-mini", "messages": history, "tools": tools});
        naive += serde_json::to_string(&request)?.len() as u64;
        let (request_hash, _) = hash_json(&request)?;
        recorder.append(EventData::LlmRequest(LlmRequest {
            step,
            provider: Some("openai".to_owned()),
            model: "gpt-4.1-mini".to_owned(),
            params: Value::Null,
            extends: None,
            messages: refs.clone(),
            tools: Some(tools_ref),
            request_hash,
        }))?;
        let call_id = format!("call_{step}");
        let args = json!({"query": prose.words(6)});
        let assistant = json!({
            "role": "assistant", "content": null,
            "tool_calls": [{"id": call_id, "type": "function",
                "function": {"name": "kb.search", "arguments": serde_json::to_string(&args)?}}]
        });
        let response = json!({
            "id": format!("chatcmpl-{step}"), "object": "chat.completion", "model": "gpt-4.1-mini",
            "choices": [{"index": 0, "message": assistant, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 1000 * step, "completion_tokens": 20}
        });
        naive += serde_json::to_string(&response)?.len() as u64;
        let message = recorder.blob(&assistant)?;
        recorder.append(EventData::LlmResponse(LlmResponse {
            step,
            message,
            tool_calls: vec![ToolCallSummary {
                id: call_id.clone(),
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
        let args_ref = recorder.blob(&args)?;
        recorder.append(EventData::ToolCall(ToolCall {
            step,
            call_id: call_id.clone(),
            tool: "kb.search".to_owned(),
            args: args_ref,
            args_hash: args_ref,
            idempotency_key: None,
        }))?;
        let output = json!({"results": [prose.words(70), prose.words(70)]});
        let output_ref = recorder.blob(&output)?;
        recorder.append(EventData::ToolResult(ToolResult {
            call_id: call_id.clone(),
            tool: "kb.search".to_owned(),
            output: Some(output_ref),
            error: None,
            latency_ms: 120,
            validation: Validation::NotChecked,
            origin: Origin::Live,
            cost_usd: None,
        }))?;
        let tool_message = json!({"role": "tool", "tool_call_id": call_id, "content": serde_json::to_string(&output)?});
        refs.push(message);
        refs.push(recorder.blob(&tool_message)?);
        history.push(assistant);
        history.push(tool_message);
    }
    recorder.finish(StopReason::Ok, Some(prose.words(30)))?;
    Ok(naive)
}
