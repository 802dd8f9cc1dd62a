//! Agent: the loop itself — the scripted model calling an in-process tool on every step — run
//! with recording (a `Recorder` into a store file, as `tapedeck run` does) against the same
//! runs without it (`NullSink`, the baseline), alternating so that machine noise hits both.
//!
//! Conversations grow, so a long run gets slower per step (every request carries the whole
//! history); the benchmark repeats runs of a fixed, moderate length instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_agent::approvals::ApprovalSource;
use tapedeck_agent::model::scripted::Scripted;
use tapedeck_agent::sink::NullSink;
use tapedeck_agent::tool::ToolSet;
use tapedeck_agent::{Agent, LoadedConfig, RunOutcome};
use tapedeck_store::{Ending, Store};
use tapedeck_trace::{BudgetKind, RunId};

use crate::Exit;
use crate::render;

/// Options of `bench agent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs measured each way (with and without recording)
    #[arg(long, default_value_t = 500)]
    runs: u64,
    /// Steps in every run (one model call and one tool call each)
    #[arg(long, default_value_t = 20)]
    steps: u64,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            runs: 500,
            steps: 20,
        }
    }
}

/// The task every run gets.
const INPUT: &str = "How do I reset my password?";

/// Runs before measuring, each way, to warm caches and the store file.
const WARMUP_RUNS: u64 = 20;

/// Time spent in each phase, summed over the measured runs.
#[derive(Default)]
struct Totals {
    /// `Agent::run` with a `NullSink`.
    null_loop: Duration,
    /// `Writer::start_run`: waits for the run's row to commit.
    start: Duration,
    /// `Agent::run` with the `Recorder`.
    recorded_loop: Duration,
    /// `Recorder::end`: appends `run_finished` and waits for every event to commit.
    end: Duration,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    anyhow::ensure!(args.steps > 0, "--steps must be at least 1");
    let dir = super::scratch_dir()?;
    let steps = args.steps;
    anstream::println!(
        "agent: the loop with the scripted model and an in-process tool, {steps} steps a run, \
         {} runs each way (alternating)",
        render::thousands(args.runs)
    );
    let mut agent = agent(&dir, steps)?;
    let store = Store::open(dir.join("agent.db"))?;
    let writer = store.writer()?;

    let mut totals = Totals::default();
    let mut recorded_runs = Vec::new();
    for i in 0..WARMUP_RUNS + args.runs {
        let measured = i >= WARMUP_RUNS;
        let mut pass = Totals::default();
        // Alternate which goes first, so neither always runs on a cache the other warmed.
        for recording in [i % 2 == 0, i % 2 == 1] {
            if recording {
                let began = Instant::now();
                let mut recorder = writer.start_run(agent.new_run(INPUT))?;
                let started = Instant::now();
                let mut timed = Timed {
                    inner: &mut recorder,
                    blob: Duration::ZERO,
                    append: Duration::ZERO,
                    blobs: 0,
                };
                let outcome = agent.run(INPUT, &mut timed)?;
                if measured {
                    let mut tb = TB.lock().unwrap();
                    tb[2] += timed.blob;
                    tb[3] += timed.append;
                }
                let ran = Instant::now();
                check(&outcome, steps)?;
                let run = recorder.end(Ending {
                    stop_reason: outcome.stop_reason,
                    answer: outcome.answer,
                    error: outcome.error,
                })?;
                pass.end = ran.elapsed();
                pass.recorded_loop = ran - started;
                pass.start = started - began;
                anyhow::ensure!(
                    run.totals.steps == steps,
                    "a recorded run took {} steps, not {steps}",
                    run.totals.steps
                );
                if measured {
                    recorded_runs.push(run.id);
                }
            } else {
                let began = Instant::now();
                let mut null = NullSink::default();
                let mut timed = Timed {
                    inner: &mut null,
                    blob: Duration::ZERO,
                    append: Duration::ZERO,
                    blobs: 0,
                };
                let outcome = agent.run(INPUT, &mut timed)?;
                if measured {
                    let mut tb = TB.lock().unwrap();
                    tb[0] += timed.blob;
                    tb[1] += timed.append;
                }
                pass.null_loop = began.elapsed();
                check(&outcome, steps)?;
            }
        }
        if measured {
            totals.null_loop += pass.null_loop;
            totals.start += pass.start;
            totals.recorded_loop += pass.recorded_loop;
            totals.end += pass.end;
        }
    }
    let events = count_events(&store, &recorded_runs)?;
    report(&totals, args.runs, steps, events);
    drop(writer);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Exit::Ok)
}

struct Timed<'a> {
    inner: &'a mut dyn tapedeck_agent::EventSink,
    blob: Duration,
    append: Duration,
    blobs: u64,
}

impl tapedeck_agent::EventSink for Timed<'_> {
    fn blob(
        &mut self,
        value: &Value,
    ) -> Result<tapedeck_trace::ContentHash, tapedeck_store::StoreError> {
        let t = Instant::now();
        let r = self.inner.blob(value);
        self.blob += t.elapsed();
        self.blobs += 1;
        r
    }
    fn append(
        &mut self,
        data: tapedeck_trace::EventData,
    ) -> Result<u64, tapedeck_store::StoreError> {
        let t = Instant::now();
        let r = self.inner.append(data);
        self.append += t.elapsed();
        r
    }
}

static TB: std::sync::Mutex<[Duration; 4]> = std::sync::Mutex::new([Duration::ZERO; 4]);

/// Every run must take all its steps and stop at `max_steps`, or the figures mean nothing.
fn check(outcome: &RunOutcome, steps: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        outcome.stop_reason == BudgetKind::MaxSteps.stop_reason(),
        "a benchmark run of {steps} steps ended with {} ({})",
        outcome.stop_reason,
        outcome.error.as_deref().unwrap_or("no error")
    );
    Ok(())
}

/// The events the measured recorded runs hold (their last sequence numbers).
fn count_events(store: &Store, runs: &[RunId]) -> anyhow::Result<u64> {
    let mut events = 0;
    for id in runs {
        events += store.last_seq(id)?;
    }
    Ok(events)
}

fn report(totals: &Totals, runs: u64, steps: u64, events: u64) {
    let all_steps = (runs * steps) as f64;
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let null_step = micros(totals.null_loop) / all_steps;
    let recorded_step = micros(totals.recorded_loop) / all_steps;
    let added_step = recorded_step - null_step;
    let start_end_run = micros(totals.start + totals.end) / runs as f64;
    let added_all =
        micros(totals.start + totals.recorded_loop + totals.end) - micros(totals.null_loop);
    let events_per_run = events as f64 / runs as f64;
    let tb = TB.lock().unwrap();
    eprintln!(
        "null blob {:.1} append {:.1}; rec blob {:.1} append {:.1} µs/step",
        micros(tb[0]) / all_steps,
        micros(tb[1]) / all_steps,
        micros(tb[2]) / all_steps,
        micros(tb[3]) / all_steps
    );
    anstream::println!(
        "  baseline: the loop without recording (NullSink)        {null_step:>8.1} µs/step"
    );
    anstream::println!(
        "  the loop recording into a store (Recorder)             {recorded_step:>8.1} µs/step"
    );
    anstream::println!("  recording adds: {added_step:.1} µs/step   (goal < 50 µs)");
    anstream::println!(
        "  run start + end (each waits for its commit): {start_end_run:.0} µs a run (start {:.0}, end {:.0}), {:.1} µs/step at {steps} steps",
        micros(totals.start) / runs as f64,
        micros(totals.end) / runs as f64,
        start_end_run / steps as f64
    );
    anstream::println!(
        "  events: {:.1} per step ({events_per_run:.0} a run); recording costs {:.2} µs an event \
         in the loop, {:.2} µs counting start + end",
        events_per_run / steps as f64,
        added_step * all_steps / events as f64,
        added_all / events as f64
    );
}

/// The agent every run uses: a scripted model that calls `kb.read` on every step (dedupe off,
/// so each call runs), served by an in-process closure; stopped by `max_steps` after `steps`.
fn agent(dir: &std::path::Path, steps: u64) -> anyhow::Result<Agent> {
    let script = json!({
        "responses": [
            {"tool_calls": [{"name": "kb.read", "arguments": {"article": "password-reset"}}]}
        ],
        "repeat_last": true,
    });
    std::fs::write(
        dir.join("script.json"),
        serde_json::to_string_pretty(&script)?,
    )?;
    let config = json!({
        "name": "bench-agent",
        "model": {"provider": "scripted", "name": "scripted-bench", "script": "script.json"},
        "system_prompt": "You are a support agent for Acme. Answer from the knowledge base only: \
            look the relevant article up with kb.read before answering, quote the steps it \
            gives, and say so when no article covers the question.",
        "tools": {
            "allow": ["kb.read"],
            "defs": [{
                "name": "kb.read",
                "description": "Reads a knowledge-base article by its slug.",
                "input_schema": {
                    "type": "object",
                    "properties": {"article": {"type": "string"}},
                    "required": ["article"]
                }
            }]
        },
        "budgets": {
            "max_steps": steps,
            "max_tool_calls": steps,
            "max_seconds": 3600.0
        },
        "dedupe": {"read_window_s": 0.0},
    });
    let path = dir.join("agent.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    let config = LoadedConfig::load(&path)?;
    let script = config
        .script
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the benchmark config has no script"))?;
    let model = Box::new(Scripted::new(script)?);
    let mut tools = ToolSet::default();
    let served = AtomicU64::new(0);
    tools.register(
        "kb.read",
        Arc::new(move |args: &Value| -> Result<Value, String> {
            let n = served.fetch_add(1, Ordering::Relaxed);
            let article = args
                .get("article")
                .and_then(Value::as_str)
                .ok_or("no `article`")?;
            Ok(json!({
                "article": article,
                "revision": n,
                "title": format!("Knowledge base: {article}"),
                "summary": "Open Settings > Security, choose Reset password, and follow the link \
                    sent to the account's email address within 30 minutes.",
            }))
        }),
    );
    Ok(Agent::new(
        config,
        model,
        tools,
        Box::new(ApprovalSource::Nobody),
    ))
}
