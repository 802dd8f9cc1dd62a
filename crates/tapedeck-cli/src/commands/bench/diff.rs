//! Diff: two long runs (100k events each, tool calls with varied arguments, a share of them
//! changed in the candidate) recorded through the `Recorder`, then both loaded as
//! `RunSummary`s and compared with `diff_runs` — timed, and with the peak RSS of a child process
//! doing only that (against the same child's RSS before it starts loading).
//!
//! Each step is a model response asking for `--calls-per-step` tool calls, then each call and
//! its result: `1 + 2 × calls` events a step. The candidate is the baseline with every call
//! picked by a fixed generator (`--changed` of them) given other arguments, so the tool-call
//! counts are equal and the alignment has that many replacements to find.

use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};
use tapedeck_diff::{RunSummary, Tolerances, diff_runs};
use tapedeck_store::{Store, Writer};
use tapedeck_trace::{
    EventData, LlmResponse, Origin, Run, RunId, Source, StopReason, ToolCall, ToolCallSummary,
    ToolResult, Usage, Validation,
};

use crate::Exit;
use crate::render;

/// Options of `bench diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events in each of the two runs (about)
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Share of the candidate's tool calls given other arguments
    #[arg(long, default_value_t = 0.05)]
    changed: f64,
    /// Tool calls each model response asks for
    #[arg(long, default_value_t = 3)]
    calls_per_step: u64,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            events: 100_000,
            changed: 0.05,
            calls_per_step: 3,
        }
    }
}

/// Options of the hidden child.
#[derive(Debug, clap::Args)]
pub struct ChildArgs {
    /// The store file
    #[arg(long)]
    path: std::path::PathBuf,
    /// The baseline run
    #[arg(long)]
    baseline: String,
    /// The candidate run
    #[arg(long)]
    candidate: String,
}

/// The goals: loading both runs and diffing them within this many seconds…
const GOAL_SECONDS: f64 = 1.0;
/// …in a process whose peak RSS stays under this many bytes.
const GOAL_RSS: f64 = 200e6;

/// The tools the runs call, in turn.
const TOOLS: [&str; 4] = ["kb.search", "kb.read", "orders.lookup", "tickets.comment"];

pub fn run(args: Args) -> anyhow::Result<Exit> {
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.changed),
        "--changed must be a share from 0 to 1"
    );
    anyhow::ensure!(
        args.calls_per_step > 0,
        "--calls-per-step must be at least 1"
    );
    let dir = super::scratch_dir()?;
    measure(&dir, &args)
}

fn measure(dir: &std::path::Path, args: &Args) -> anyhow::Result<Exit> {
    let per_step = 1 + 2 * args.calls_per_step;
    let steps = args.events.div_ceil(per_step);
    let calls = steps * args.calls_per_step;
    let changed = changed_calls(calls, args.changed);
    anstream::println!(
        "diff: two runs of {} events ({} tool calls each, {} of the candidate's with other \
         arguments), loaded as RunSummary and compared with diff_runs",
        render::thousands(steps * per_step + 1),
        render::thousands(calls),
        render::thousands(changed.len() as u64),
    );
    let path = dir.join("diff.db");
    let (baseline, candidate) = {
        let store = Store::open(&path)?;
        let writer = store.writer()?;
        let began = Instant::now();
        let baseline = record(&writer, steps, args.calls_per_step, &[])?;
        let candidate = record(&writer, steps, args.calls_per_step, &changed)?;
        writer.flush()?;
        anstream::println!(
            "  recorded both runs through the Recorder in {:.1} s (not timed below)",
            began.elapsed().as_secs_f64()
        );
        (baseline, candidate)
    };

    let child = child_figures(&path, &baseline, &candidate)?;
    let field = |name: &str| -> anyhow::Result<f64> {
        child
            .get(name)
            .and_then(Value::as_f64)
            .with_context(|| format!("the diff child printed no `{name}`"))
    };
    let (load_s, diff_s) = (field("load_secs")?, field("diff_secs")?);
    let (rss, rss_before) = (field("rss")?, field("rss_before")?);
    let total = load_s + diff_s;
    anstream::println!(
        "  RunSummary::load ×2: {:>7.3} s   ({:.2} µs/event)",
        load_s,
        load_s * 1e6 / (2 * steps * per_step) as f64
    );
    anstream::println!(
        "  diff_runs:           {:>7.3} s   ({} alignment rows{}, first divergence at call {})",
        diff_s,
        render::thousands(field("rows")? as u64),
        if child.get("truncated").and_then(Value::as_bool) == Some(true) {
            ", cut at the alignment deadline"
        } else {
            ", exact"
        },
        child
            .get("first_divergence")
            .and_then(Value::as_u64)
            .map_or_else(|| "none".to_owned(), render::thousands),
    );
    anstream::println!(
        "  load ×2 + diff: {total:.3} s = {:.2} of the goal (goal < {GOAL_SECONDS:.0} s; CPU time \
         {:.2} s)",
        total / GOAL_SECONDS,
        field("cpu_secs")?
    );
    anstream::println!(
        "  peak RSS of a process doing only that: {:.1} MB = {:.2} of the goal (goal < {:.0} MB; \
         {:.1} MB before loading)",
        rss / 1e6,
        rss / GOAL_RSS,
        GOAL_RSS / 1e6,
        rss_before / 1e6
    );
    Ok(Exit::Ok)
}

/// The candidate's calls given other arguments: `share` of `calls`, picked by xorshift.
fn changed_calls(calls: u64, share: f64) -> Vec<u64> {
    let want = ((calls as f64) * share).round() as usize;
    let mut picked = std::collections::BTreeSet::new();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    while picked.len() < want.min(calls as usize) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        picked.insert(state % calls);
    }
    picked.into_iter().collect()
}

/// The arguments of call `i` (varied: the same article comes back now and then).
fn arguments(i: u64, tool: &str, changed: bool) -> Value {
    let n = if changed { i + 7_919 } else { i };
    match tool {
        "kb.search" => json!({"query": format!("topic {}", n % 997), "limit": 5 + n % 3}),
        "kb.read" => json!({"article": format!("article-{}", n % 4_001)}),
        "orders.lookup" => json!({"order": format!("A-{:05}", n % 50_021)}),
        _ => json!({"ticket": format!("T-{}", n % 10_007), "body": format!("Noted, step {n}.")}),
    }
}

/// Records one run of `steps` steps; the calls in `changed` (sorted) get other arguments.
fn record(
    writer: &Writer,
    steps: u64,
    calls_per_step: u64,
    changed: &[u64],
) -> anyhow::Result<RunId> {
    let mut recorder = writer.start_run(Run::new(Source::Runtime))?;
    let output = recorder.blob(&json!({"ok": true}))?;
    let mut changed = changed.iter().peekable();
    let mut call = 0u64;
    for step in 1..=steps {
        let first = call;
        let ids: Vec<String> = (0..calls_per_step)
            .map(|k| format!("call_{}", first + k))
            .collect();
        let tools: Vec<&str> = (0..calls_per_step)
            .map(|k| TOOLS[((first + k) % TOOLS.len() as u64) as usize])
            .collect();
        let message = recorder.blob(&json!({"role": "assistant", "step": step}))?;
        recorder.append(EventData::LlmResponse(LlmResponse {
            step,
            message,
            tool_calls: ids
                .iter()
                .zip(&tools)
                .map(|(id, tool)| ToolCallSummary {
                    id: id.clone(),
                    name: (*tool).to_owned(),
                })
                .collect(),
            finish_reason: Some("tool_calls".to_owned()),
            usage: Some(Usage {
                input_tokens: 900,
                output_tokens: 30,
            }),
            cost_usd: Some(0.0004),
            latency_ms: 300 + step % 400,
            streamed: false,
            truncated: false,
        }))?;
        for (id, tool) in ids.into_iter().zip(tools) {
            let is_changed = changed.next_if_eq(&&call).is_some();
            let args = recorder.blob(&arguments(call, tool, is_changed))?;
            recorder.append(EventData::ToolCall(ToolCall {
                step,
                call_id: id.clone(),
                tool: tool.to_owned(),
                args,
                args_hash: args,
                idempotency_key: None,
            }))?;
            recorder.append(EventData::ToolResult(ToolResult {
                call_id: id,
                tool: tool.to_owned(),
                output: Some(output),
                error: None,
                latency_ms: 20 + call % 50,
                validation: Validation::NotChecked,
                origin: Origin::Live,
                cost_usd: None,
            }))?;
            call += 1;
        }
    }
    let id = recorder.id();
    recorder.finish(
        StopReason::Ok,
        Some(format!("Done after {steps} steps and {call} tool calls.")),
    )?;
    Ok(id)
}

/// Runs the load and diff in a child process; returns the figures it printed.
fn child_figures(
    path: &std::path::Path,
    baseline: &RunId,
    candidate: &RunId,
) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["bench", "diff-child", "--path"])
        .arg(path)
        .args([
            "--baseline",
            &baseline.to_string(),
            "--candidate",
            &candidate.to_string(),
        ])
        .output()
        .context("cannot start the diff child")?;
    anyhow::ensure!(
        out.status.success(),
        "the diff child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("the diff child printed no figures")
}

/// The child: loads both runs, diffs them, prints the figures as JSON.
pub fn child(args: ChildArgs) -> anyhow::Result<Exit> {
    let store = Store::open(&args.path)?;
    let baseline: RunId = args.baseline.parse()?;
    let candidate: RunId = args.candidate.parse()?;
    let rss_before = super::peak_rss_bytes().unwrap_or(0);
    let cpu_before = cpu_seconds().unwrap_or(0.0);
    let began = Instant::now();
    let b = RunSummary::load(&store, &baseline)?;
    let c = RunSummary::load(&store, &candidate)?;
    let loaded = began.elapsed();
    let diff = diff_runs(b, c, &Tolerances::default());
    let total = began.elapsed();
    let cpu = cpu_seconds().unwrap_or(0.0) - cpu_before;
    anyhow::ensure!(
        diff.baseline.sequence.len() == diff.candidate.sequence.len()
            && !diff.baseline.sequence.is_empty(),
        "the runs were not loaded whole"
    );
    let figures = json!({
        "load_secs": loaded.as_secs_f64(),
        "diff_secs": (total - loaded).as_secs_f64(),
        "rss": super::peak_rss_bytes().unwrap_or(0),
        "rss_before": rss_before,
        "cpu_secs": cpu,
        "rows": diff.alignment.len(),
        "truncated": diff.alignment_truncated,
        "first_divergence": diff.first_divergence.as_ref().map(|f| f.baseline_index),
    });
    anstream::println!("{figures}");
    Ok(Exit::Ok)
}

/// CPU seconds this process has used so far: on a busy machine they tell how much of the
/// wall-clock time was waiting for a core.
fn cpu_seconds() -> Option<f64> {
    super::cpu_time().map(|t| t.as_secs_f64())
}
