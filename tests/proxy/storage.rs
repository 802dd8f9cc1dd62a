//! How a proxy run's storage grows: a conversation that resends its whole history with every
//! request must cost the store about the same bytes a round whatever its length — linear, not
//! quadratic, in the number of rounds.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Value, json};

use crate::long_lived::{LongLived, post_raw};
use crate::server::{FakeServer, Reply};
use crate::{Env, KEY};

/// The conversation lengths measured.
const LENGTHS: [u64; 3] = [10, 40, 100];

/// How much more a round of the longest conversation may cost than a round of the shortest.
/// Linear storage costs a long conversation's round slightly less (the system prompt, the tools
/// and the run's own rows are shared by more rounds); storing every request's whole history
/// (compressed) cost it 2.2 times as much, and ever more the longer the conversation.
const MAX_GROWTH: f64 = 1.3;

/// Deterministic prose: words drawn by a xorshift generator, so every message is distinct.
struct Prose(u64);

impl Prose {
    fn words(&mut self, n: usize) -> String {
        const WORDS: [&str; 16] = [
            "payment", "service", "returned", "latency", "region", "invoice", "customer",
            "account", "status", "retry", "queue", "refund", "upstream", "report", "incident",
            "rollback",
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

/// The model's answer of round `step`: a call of the search tool with distinct arguments.
fn tool_call(step: u64, prose: &mut Prose) -> Value {
    let arguments = json!({"query": prose.words(6)}).to_string();
    json!({"id": format!("chatcmpl-{step}"), "object": "chat.completion", "model": "gpt-test",
           "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
               "role": "assistant", "content": null,
               "tool_calls": [{"id": format!("call_{step}"), "type": "function",
                               "function": {"name": "kb_search", "arguments": arguments}}]}}],
           "usage": {"prompt_tokens": 1000 * step, "completion_tokens": 20}})
}

/// POSTs `body` to the proxy at `addr` on a fresh connection; returns the response's body,
/// failing the test unless it is a 200.
fn post(addr: &str, body: &str) -> Vec<u8> {
    let headers = format!("authorization: Bearer {KEY}\r\n");
    let out = post_raw(addr, "/v1/chat/completions", &headers, body);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let body = &out[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return body.to_vec();
    }
    let mut reader = BufReader::new(body);
    let mut joined = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a chunk size");
        let size = usize::from_str_radix(line.trim(), 16).expect("a chunk size in hex");
        if size == 0 {
            return joined;
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).expect("a chunk");
        joined.extend_from_slice(&chunk[..size]);
    }
}

/// The store's size on disk after moving its write-ahead log into the file.
fn settled_size(store: &Path) -> u64 {
    let conn = rusqlite::Connection::open(store).expect("open the store");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint the store");
    drop(conn);
    let wal = store.with_extension("db-wal");
    std::fs::metadata(store).expect("the store").len()
        + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

/// Records a `rounds`-round tool conversation through `tapedeck proxy` into the store `file`:
/// every request carries the system prompt, the tools and every earlier message; every round
/// adds the model's tool call and the tool's distinct result.
fn record(env: &Env, file: &str, rounds: u64) {
    let mut prose = Prose(0x9E37_79B9_7F4A_7C15);
    let tools = json!([{"type": "function", "function": {
        "name": "kb_search", "description": prose.words(60),
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]);
    let mut messages = vec![
        json!({"role": "system", "content": prose.words(250)}),
        json!({"role": "user", "content": prose.words(40)}),
    ];
    let server = FakeServer::start(
        (1..=rounds)
            .map(|step| Reply::json(200, &tool_call(step, &mut prose)))
            .collect(),
    );
    let upstream = format!("{}/v1", server.base);
    let proxy = LongLived::start_in(env, file, &["--upstream-openai", &upstream]);
    let addr = &proxy.addr;
    for step in 1..=rounds {
        let request = json!({"model": "gpt-test", "messages": messages, "tools": tools});
        let answer: Value =
            serde_json::from_slice(&post(addr, &request.to_string())).expect("a JSON answer");
        let message = answer["choices"][0]["message"].clone();
        assert!(message.is_object(), "round {step}: {answer}");
        messages.push(message);
        let result = json!({"results": [prose.words(70), prose.words(70)]});
        messages.push(
            json!({"role": "tool", "tool_call_id": format!("call_{step}"),
                             "content": result.to_string()}),
        );
    }
    proxy.stop();
    assert_eq!(server.requests().len() as u64, rounds);
}

// Every model call stored the request's whole matching form as one blob, so a conversation
// resending its history stored it again each round: 100 rounds cost 2.2 times as much a round
// as 10 rounds (17.1 KB against 7.8 KB), the growth quadratic.
#[test]
fn proxy_storage_grows_linearly_with_the_rounds_of_a_conversation() {
    let env = Env::new();
    let empty = env.path("empty.db");
    drop(tapedeck_store::Store::open(&empty).expect("create an empty store"));
    let empty = settled_size(&empty);
    let mut per_round = Vec::new();
    for rounds in LENGTHS {
        let file = format!("rounds-{rounds}.db");
        record(&env, &file, rounds);
        let content = settled_size(&env.path(&file)).saturating_sub(empty);
        per_round.push((rounds, content / rounds));
    }
    let described = per_round
        .iter()
        .map(|(rounds, bytes)| format!("{rounds} rounds: {bytes} B a round"))
        .collect::<Vec<_>>()
        .join(", ");
    let (first, last) = (per_round[0].1, per_round[per_round.len() - 1].1);
    assert!(
        last as f64 <= MAX_GROWTH * first as f64,
        "the store grows faster than the conversation: {described} (the longest may cost at most {MAX_GROWTH}× the shortest a round)"
    );
}
