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
use tapedeck_agent::tool::ToolSet;
use tapedeck_agent::{Agent, EventSink, LoadedConfig, RunOutcome};
use tapedeck_store::Store;
use tapedeck_trace::{BudgetKind, ContentHash, EventData, NullSink, RunId, SinkError};

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

/// Runs each way before measuring, to warm caches and the store file.
const WARMUP_RUNS: u64 = 20;

/// A short sleep before every timed loop, recorded or not. The recorded loop starts right after
/// `start_run` has waited for the writer; without the same pause before the baseline, the
/// scheduler treats the two differently on a busy machine (a thread that just slept runs
/// longer before being preempted).
const PAUSE: Duration = Duration::from_micros(200);

/// Time spent in each phase, summed over the measured runs.
#[derive(Default)]
struct Totals {
    /// `Agent::run` with a `NullSink`.
    null_loop: Duration,
    /// Of which inside the sink.
    null_sink: Duration,
    /// `Writer::start_run`: waits for the run's row to commit.
    start: Duration,
    /// `Agent::run` with the `Recorder`.
    recorded_loop: Duration,
    /// Of which inside the sink.
    recorded_sink: Duration,
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
                pass.start = began.elapsed();
                std::thread::sleep(PAUSE);
                let mut sink = Timed::new(&mut recorder);
                let began = Instant::now();
                let outcome = agent.run(INPUT, &mut sink)?;
                pass.recorded_loop = began.elapsed();
                pass.recorded_sink = sink.spent;
                check(&outcome, steps)?;
                let began = Instant::now();
                let run = recorder.end(outcome.into())?;
                pass.end = began.elapsed();
                anyhow::ensure!(
                    run.totals.steps == steps,
                    "a recorded run took {} steps, not {steps}",
                    run.totals.steps
                );
                if measured {
                    recorded_runs.push(run.id);
                }
            } else {
                std::thread::sleep(PAUSE);
                let mut null = NullSink::default();
                let mut sink = Timed::new(&mut null);
                let began = Instant::now();
                let outcome = agent.run(INPUT, &mut sink)?;
                pass.null_loop = began.elapsed();
                pass.null_sink = sink.spent;
                check(&outcome, steps)?;
            }
        }
        if measured {
            totals.null_loop += pass.null_loop;
            totals.null_sink += pass.null_sink;
            totals.start += pass.start;
            totals.recorded_loop += pass.recorded_loop;
            totals.recorded_sink += pass.recorded_sink;
            totals.end += pass.end;
        }
    }
    let events = count_events(&store, &recorded_runs)?;
    report(&totals, args.runs, steps, events);
    drop(writer);
    drop(store);
    Ok(Exit::Ok)
}

/// A sink that times the calls into another: the part of the loop that recording can change
/// (blobs are hashed in both sinks; only the `Recorder` stores them).
struct Timed<'a> {
    inner: &'a mut dyn EventSink,
    spent: Duration,
}

impl<'a> Timed<'a> {
    fn new(inner: &'a mut dyn EventSink) -> Self {
        Self {
            inner,
            spent: Duration::ZERO,
        }
    }
}

impl EventSink for Timed<'_> {
    fn blob(&mut self, value: &Value) -> Result<ContentHash, SinkError> {
        let began = Instant::now();
        let hash = self.inner.blob(value);
        self.spent += began.elapsed();
        hash
    }

    fn append(&mut self, data: EventData) -> Result<u64, SinkError> {
        let began = Instant::now();
        let seq = self.inner.append(data);
        self.spent += began.elapsed();
        seq
    }
}

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
    let per_step = |d: Duration| d.as_secs_f64() * 1e6 / all_steps;
    let per_run = |d: Duration| d.as_secs_f64() * 1e6 / runs as f64;
    let null = per_step(totals.null_loop);
    let recorded = per_step(totals.recorded_loop);
    let added = recorded - null;
    let (null_sink, recorded_sink) = (per_step(totals.null_sink), per_step(totals.recorded_sink));
    let start_end = per_run(totals.start + totals.end);
    let events_per_step = events as f64 / all_steps;
    anstream::println!(
        "  baseline: the loop recording nothing (NullSink)        {null:>7.1} µs/step   \
         (in the sink: {null_sink:.1})"
    );
    anstream::println!(
        "  the loop recording into a store (Recorder)             {recorded:>7.1} µs/step   \
         (in the sink: {recorded_sink:.1})"
    );
    anstream::println!(
        "  recording adds: {added:.1} µs/step ({:.1} µs/step inside the sink)   (goal < 50 µs)",
        recorded_sink - null_sink
    );
    anstream::println!(
        "  {events_per_step:.2} events a step: {:.2} µs an event",
        added / events_per_step
    );
    anstream::println!(
        "  per run, outside the loop: start {:.0} µs + end {:.0} µs (each waits for the \
         writer's commit) = {:.1} µs/step at {steps} steps",
        per_run(totals.start),
        per_run(totals.end),
        start_end / steps as f64
    );
    anstream::println!(
        "  all in (start + loop + end against the baseline loop): {:.1} µs/step, {:.2} µs an event",
        added + start_end / steps as f64,
        (added + start_end / steps as f64) / events_per_step
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
    // Every call gets a new revision, so every observation is a new blob.
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
