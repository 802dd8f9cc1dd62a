//! Ingest: 1M small events through the `Recorder`, against a plain rusqlite batched INSERT of
//! the same rows into the same table (the practical limit); and the Recorder's peak RSS. With
//! `--postgres URL`, the same into a PostgreSQL store (`ingest_postgres`).

use std::time::Instant;

use anyhow::Context as _;
use rusqlite::params;
use tapedeck_store::Store;
use tapedeck_trace::{Decision, EventData, PolicyDecision, Run, Source, StopReason};

use crate::Exit;
use crate::render;

/// Options of `bench ingest`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo run --release -- bench ingest\n  cargo run --release -- bench ingest --events 200000\n  createdb tapedeck_bench && cargo run --release -- bench ingest --postgres postgres://me@127.0.0.1:5432/tapedeck_bench"
)]
pub struct Args {
    /// Events to record
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Also measure a PostgreSQL store: a database the benchmark may write to
    /// (postgres://USER@HOST:PORT/DB, its password from PGPASSWORD or ~/.pgpass). A database
    /// without a store is migrated; one holding runs other than this benchmark's is refused.
    /// The benchmark's own runs are deleted afterwards
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            events: 1_000_000,
            postgres: None,
        }
    }
}

/// Options of the hidden child.
#[derive(Debug, clap::Args)]
pub struct ChildArgs {
    /// Events to record
    #[arg(long)]
    events: u64,
    /// The store file
    #[arg(long)]
    path: std::path::PathBuf,
}

/// The small event both sides write.
pub(super) fn event(i: u64) -> EventData {
    EventData::PolicyDecision(PolicyDecision {
        call_id: Some(format!("call_{i}")),
        tool: Some("kb.read".to_owned()),
        decision: Decision::Allowed,
        rule: "tools.allow".to_owned(),
        detail: None,
    })
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    // The database is checked (and migrated, if it holds no store) before anything is timed.
    let postgres = args
        .postgres
        .as_deref()
        .map(super::ingest_postgres::Bench::prepare)
        .transpose()?;
    let dir = super::scratch_dir()?;
    let n = args.events;
    anstream::println!("ingest: {} small events", render::thousands(n));

    let baseline_secs = baseline(&dir.join("baseline.db"), n)?;
    let recorder_secs = recorder(&dir.join("recorder.db"), n)?.0;
    let child_path = dir.join("child.db");
    let rss = child_rss(&child_path, n)?;
    let rate = |secs: f64| n as f64 / secs;
    anstream::println!(
        "  baseline: plain rusqlite batched INSERT of the same rows  {:>9.0} events/s",
        rate(baseline_secs)
    );
    anstream::println!(
        "  Recorder: typed events, canonical JSON, writer thread     {:>9.0} events/s",
        rate(recorder_secs)
    );
    anstream::println!(
        "  ratio Recorder / baseline: {:.2}   (goal ≥ 0.50)",
        baseline_secs / recorder_secs
    );
    anstream::println!(
        "  peak RSS recording {} events: {:.1} MB   (goal < 100 MB)",
        render::thousands(n),
        rss as f64 / 1e6
    );
    if let Some(postgres) = postgres {
        postgres.run(n, rate(recorder_secs))?;
    }
    Ok(Exit::Ok)
}

/// The practical limit: the same rows, pre-serialized, one prepared INSERT, 8192 rows per
/// transaction.
fn baseline(path: &std::path::Path, n: u64) -> anyhow::Result<f64> {
    let store = Store::open(path)?;
    let run = {
        let writer = store.writer()?;
        let recorder = writer.start_run(Run::new(Source::Runtime))?;
        recorder.id()
    };
    drop(store);
    let payloads: Vec<String> = (0..n)
        .map(|i| {
            let data = event(i);
            tapedeck_trace::canonical_json(&data.payload()).map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<_>>()?;
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    let key: i64 = conn.query_row(
        "SELECT key FROM runs WHERE id = ?1",
        [run.to_string()],
        |r| r.get(0),
    )?;
    let start = Instant::now();
    let mut seq = 0i64;
    for chunk in payloads.chunks(8192) {
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (run, seq, at, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for payload in chunk {
                seq += 1;
                stmt.execute(params![key, seq, seq, "policy_decision", payload])?;
            }
        }
        tx.commit()?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// tapedeck's path: typed events through a Recorder, finished (so everything is committed).
fn recorder(path: &std::path::Path, n: u64) -> anyhow::Result<(f64, u64)> {
    let store = Store::open(path)?;
    let writer = store.writer()?;
    let start = Instant::now();
    let mut recorder = writer.start_run(Run::new(Source::Runtime))?;
    for i in 0..n {
        recorder.append(event(i))?;
    }
    recorder.finish(StopReason::Ok, None)?;
    let secs = start.elapsed().as_secs_f64();
    let stored = store.last_seq(&store.runs(&Default::default())?[0].id)?;
    anyhow::ensure!(stored == n + 1, "expected {} events, found {stored}", n + 1);
    Ok((secs, stored))
}

/// Runs the recorder in a child process and returns its peak RSS in bytes.
fn child_rss(path: &std::path::Path, n: u64) -> anyhow::Result<u64> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args([
            "bench",
            "ingest-child",
            "--events",
            &n.to_string(),
            "--path",
        ])
        .arg(path)
        .output()
        .context("cannot start the ingest child")?;
    anyhow::ensure!(
        out.status.success(),
        "the ingest child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("the ingest child printed no RSS")
}

pub fn child(args: ChildArgs) -> anyhow::Result<Exit> {
    recorder(&args.path, args.events)?;
    anstream::println!("{}", super::peak_rss_bytes().unwrap_or(0));
    Ok(Exit::Ok)
}
