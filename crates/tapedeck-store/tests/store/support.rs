//! Shared helpers: a store in a temporary folder (or a PostgreSQL database of its own, for the
//! tests written once for both engines with `on_both_stores!`), runs with fixed ids and times,
//! and builders for real `EventData` values.

use std::path::PathBuf;

use serde_json::{Value, json};
use tapedeck_store::pg::{self, PgTarget};
use tapedeck_store::{Recorder, Store};
pub use tapedeck_testkit::cli::Backend;
use tapedeck_testkit::postgres;
use tapedeck_trace::{
    AgentInfo, ContentHash, Decision, EventData, LlmRequest, LlmResponse, Origin, PolicyDecision,
    Run, RunId, RunStarted, Source, Timestamp, ToolCall, ToolCallSummary, ToolResult, Usage,
    Validation, hash_json,
};

/// A store file in a fresh temporary folder, or a migrated PostgreSQL database of its own
/// ([`TempStore::on`]); kept alive by the returned guard.
pub struct TempStore {
    /// Removed (with the store) when the guard drops.
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    /// The store's database, on PostgreSQL.
    database: Option<postgres::TestDb>,
}

impl TempStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store").join("tapedeck.db");
        Self {
            _dir: dir,
            path,
            database: None,
        }
    }

    /// A store on `backend`: the file, or a database with the schema in it.
    pub fn on(backend: Backend) -> Self {
        let mut store = Self::new();
        if backend == Backend::Postgres {
            let database = postgres::database().expect("PostgreSQL is installed");
            pg::migrate(&PgTarget::from_env(&database.url()).unwrap()).unwrap();
            store.database = Some(database);
        }
        store
    }

    pub fn open(&self) -> Store {
        match &self.database {
            Some(database) => Store::open_url(&database.url()).unwrap(),
            None => Store::open(&self.path).unwrap(),
        }
    }

    /// A raw SQLite connection to the same file, for checks the API does not expose.
    pub fn sql(&self) -> rusqlite::Connection {
        assert!(self.database.is_none(), "a SQLite store's check");
        rusqlite::Connection::open(&self.path).unwrap()
    }

    /// The number one SQL query (in the dialect both engines share) counts.
    pub fn count(&self, sql: &str) -> i64 {
        match &self.database {
            Some(database) => database.psql(sql).parse().unwrap(),
            None => self.sql().query_row(sql, [], |r| r.get(0)).unwrap(),
        }
    }
}

/// 2026-11-26T00:00:00Z plus `secs`.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_micros(1_795_651_200_000_000 + secs * 1_000_000)
}

/// A run with a fixed id, starting at `at(start_secs)`.
pub fn run_with(id: &str, start_secs: i64) -> Run {
    let mut run = Run::new(Source::Runtime);
    run.id = id.parse().unwrap();
    run.started_at = at(start_secs);
    run
}

pub fn agent(name: &str, fingerprint: &str) -> Option<AgentInfo> {
    Some(AgentInfo {
        name: name.to_owned(),
        fingerprint: fingerprint.to_owned(),
    })
}

/// A fixed, valid UUIDv7 text whose last 12 hex digits are `tail`.
pub fn fixed_id(n: u32) -> String {
    format!("019ac1f2-3b4c-7d5e-8f60-{n:012x}")
}

pub fn started(config: Option<ContentHash>) -> EventData {
    EventData::RunStarted(RunStarted {
        input: Some("is the vendor API healthy?".into()),
        agent_config: config,
        budgets: json!({"max_steps": 30, "max_tool_calls": 15, "max_usd": null}),
        policy: json!({"allow": ["browser.open", "kb.read"]}),
    })
}

pub fn request(step: u64, messages: Vec<ContentHash>, tools: Option<ContentHash>) -> EventData {
    let (request_hash, _) = hash_json(&json!({"step": step, "messages": messages})).unwrap();
    EventData::LlmRequest(LlmRequest {
        step,
        provider: Some("scripted".into()),
        model: "gpt-4.1-mini".into(),
        params: json!({"temperature": 0}),
        extends: None,
        messages,
        tools,
        request_hash,
    })
}

pub fn response(
    step: u64,
    message: ContentHash,
    calls: &[(&str, &str)],
    usage: Option<(u64, u64)>,
    cost: Option<f64>,
) -> EventData {
    EventData::LlmResponse(LlmResponse {
        step,
        message,
        tool_calls: calls
            .iter()
            .map(|(id, name)| ToolCallSummary {
                id: (*id).into(),
                name: (*name).into(),
            })
            .collect(),
        finish_reason: Some(
            if calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            }
            .into(),
        ),
        usage: usage.map(|(input_tokens, output_tokens)| Usage {
            input_tokens,
            output_tokens,
        }),
        cost_usd: cost,
        latency_ms: 420,
        streamed: false,
        truncated: false,
    })
}

pub fn tool_call(step: u64, call_id: &str, tool: &str, args: ContentHash) -> EventData {
    EventData::ToolCall(ToolCall {
        step,
        call_id: call_id.into(),
        tool: tool.into(),
        args,
        args_hash: args,
        idempotency_key: None,
    })
}

pub fn allowed(call_id: &str, tool: &str) -> EventData {
    EventData::PolicyDecision(PolicyDecision {
        call_id: Some(call_id.into()),
        tool: Some(tool.into()),
        decision: Decision::Allowed,
        rule: "tools.allow".into(),
        detail: None,
    })
}

pub fn tool_result(
    call_id: &str,
    tool: &str,
    output: Option<ContentHash>,
    cost: Option<f64>,
) -> EventData {
    EventData::ToolResult(ToolResult {
        call_id: call_id.into(),
        tool: tool.into(),
        output,
        error: if output.is_none() {
            Some("503 Service Unavailable".into())
        } else {
            None
        },
        latency_ms: 35,
        validation: Validation::NotChecked,
        origin: Origin::Live,
        cost_usd: cost,
    })
}

/// What `record_sample` recorded.
pub struct Sample {
    pub id: RunId,
    pub events: Vec<EventData>,
    pub blobs: Vec<(ContentHash, Value)>,
}

/// Records a small but complete run: two model steps, three tool calls over two tools, every
/// referenced blob stored. `shared` is put in as the system prompt, so two samples can share a
/// blob. Does not finish the run.
pub fn record_sample(rec: &mut Recorder, shared: &str, unique: &str) -> Sample {
    let mut blobs = Vec::new();
    let mut blob = |rec: &mut Recorder, v: Value| {
        let h = rec.blob(&v).unwrap();
        blobs.push((h, v));
        h
    };
    let config = blob(
        rec,
        json!({"name": "research-bot", "tools": ["browser.open", "kb.read"]}),
    );
    let system = blob(rec, json!({"role": "system", "content": shared}));
    let user = blob(
        rec,
        json!({"role": "user", "content": format!("{unique}: is it up?")}),
    );
    let a1 = blob(
        rec,
        json!({"role": "assistant", "tool_calls": [{"id": "c1"}, {"id": "c2"}]}),
    );
    let args = blob(
        rec,
        json!({"url": format!("https://status.example.com/{unique}")}),
    );
    let kb_args = blob(rec, json!({"q": "vendor status page"}));
    let out = blob(rec, json!({"status": 503, "body": "upstream unavailable"}));
    let a2 = blob(
        rec,
        json!({"role": "assistant", "content": format!("{unique} is down")}),
    );
    let events = vec![
        started(Some(config)),
        request(1, vec![system, user], None),
        response(
            1,
            a1,
            &[("c1", "browser.open"), ("c2", "kb.read")],
            Some((300, 40)),
            Some(0.01),
        ),
        tool_call(1, "c1", "browser.open", args),
        allowed("c1", "browser.open"),
        tool_result("c1", "browser.open", None, Some(0.72)),
        tool_call(1, "c2", "kb.read", kb_args),
        allowed("c2", "kb.read"),
        tool_result("c2", "kb.read", Some(out), None),
        request(2, vec![system, user, a1], None),
        response(
            2,
            a2,
            &[("c3", "browser.open")],
            Some((500, 10)),
            Some(0.02),
        ),
        tool_call(2, "c3", "browser.open", args),
        tool_result("c3", "browser.open", None, Some(0.72)),
    ];
    for (i, e) in events.iter().enumerate() {
        rec.append_at(e.clone(), at(1 + i as i64)).unwrap();
    }
    Sample {
        id: rec.id(),
        events,
        blobs,
    }
}
