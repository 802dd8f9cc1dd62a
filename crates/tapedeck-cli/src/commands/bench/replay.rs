//! Replay: exact replays of recorded tapes (model responses and tool outputs served from the
//! store) against the same agent run live on an OpenAI-compatible API that takes a fixed time
//! to answer (a fake server on 127.0.0.1), with the same parallelism.
//!
//! The tapes are recorded first, untimed: a 20-step agent (the scripted model calling one mock
//! tool on every step but the last, which answers) run once per tape with a different input.
//! The replays then run `tapedeck_replay::replay` over every tape, `--jobs` at a time (each
//! worker with its own store connection, one shared writer, as `tapedeck replay --tapes -j N`
//! does), each checked to end `ok` with no divergence. The live runs take the same steps
//! against the fake server; their time is scaled to the number of tapes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tapedeck_agent::approvals::ApprovalSource;
use tapedeck_agent::model::openai::OpenAi;
use tapedeck_agent::tool::ToolSet;
use tapedeck_agent::{Agent, LoadedConfig, ModelBackend};
use tapedeck_replay::Options;
use tapedeck_store::{Store, Writer};
use tapedeck_trace::{RunId, StopReason};

use crate::Exit;
use crate::render;

/// Options of `bench replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tapes recorded, then replayed
    #[arg(long, default_value_t = 1000)]
    tapes: u64,
    /// Steps in every run (a tool call on each but the last, which answers)
    #[arg(long, default_value_t = 20)]
    steps: u64,
    /// Live runs against the fake API, scaled to --tapes
    #[arg(long, default_value_t = 50)]
    live: u64,
    /// Runs at once, replayed or live
    #[arg(long, short = 'j', default_value_t = 2)]
    jobs: u64,
    /// How long the fake API takes to answer, in milliseconds
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            tapes: 1000,
            steps: 20,
            live: 50,
            jobs: 2,
            latency_ms: 50,
        }
    }
}

/// The tool every step but the last calls.
const TOOL: &str = "kb.read";

/// The goals: replaying every tape within this many seconds…
const GOAL_SECONDS: f64 = 10.0;
/// …and at least this many times faster than running them live.
const GOAL_SPEEDUP: f64 = 20.0;

pub fn run(args: Args) -> anyhow::Result<Exit> {
    anyhow::ensure!(args.tapes > 0, "--tapes must be at least 1");
    anyhow::ensure!(args.steps > 0, "--steps must be at least 1");
    anyhow::ensure!(args.live > 0, "--live must be at least 1");
    anyhow::ensure!(args.jobs > 0, "--jobs must be at least 1");
    let dir = super::scratch_dir()?;
    measure(&dir, &args)
}

fn measure(dir: &Path, args: &Args) -> anyhow::Result<Exit> {
    let steps = args.steps;
    anstream::println!(
        "replay: {} tapes of {steps} steps replayed exactly (recorded model and tool), {} at once; \
         against {} live runs on a fake OpenAI-compatible API answering in {} ms, scaled",
        render::thousands(args.tapes),
        args.jobs,
        render::thousands(args.live),
        args.latency_ms
    );
    let scripted = write_agent(dir, steps, None)?;
    let store_path = dir.join("replay.db");
    let store = Store::open(&store_path)?;
    let writer = store.writer()?;

    let began = Instant::now();
    let ids = record(&scripted, &writer, args)?;
    let recorded_in = began.elapsed();

    let began = Instant::now();
    let cpu_before = super::cpu_time();
    let replayed = replay_all(&store_path, &writer, &ids, args.jobs)?;
    let replay_time = began.elapsed();
    let replay_cpu = super::cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    anyhow::ensure!(
        replayed == ids.len(),
        "{replayed} of {} replays ended ok and matched",
        ids.len()
    );

    let server = FakeApi::start(steps, Duration::from_millis(args.latency_ms))?;
    let live = write_agent(dir, steps, Some(&server.base_url()))?;
    let began = Instant::now();
    live_runs(&live, &writer, args)?;
    let live_time = began.elapsed();
    let requests = server.stop();
    anyhow::ensure!(
        requests == args.live * steps,
        "the fake API answered {requests} requests, not {}",
        args.live * steps
    );
    drop(writer);
    drop(store);

    let tapes = args.tapes as f64;
    let replay_s = replay_time.as_secs_f64();
    let live_per_run = live_time.as_secs_f64() / args.live as f64;
    let live_scaled = live_per_run * tapes;
    let speedup = live_scaled / replay_s;
    anstream::println!(
        "  recorded {} tapes in {:.1} s (not timed below)",
        render::thousands(args.tapes),
        recorded_in.as_secs_f64()
    );
    anstream::println!(
        "  replay, exact:   {} tapes in {replay_s:>7.2} s   {:>8.2} ms/tape  {:>6.0} µs/step{}",
        render::thousands(args.tapes),
        replay_s * 1e3 / tapes,
        replay_s * 1e6 / (tapes * steps as f64),
        // On a shared machine the wall time counts other processes too; the CPU time does not.
        replay_cpu.map_or_else(String::new, |cpu| format!(
            "  (CPU {:.2} s, writer thread included)",
            cpu.as_secs_f64()
        ))
    );
    anstream::println!(
        "  live (baseline): {} runs in {:>7.2} s   {:>8.2} ms/run;  scaled to {} tapes: {live_scaled:.1} s",
        render::thousands(args.live),
        live_time.as_secs_f64(),
        live_per_run * 1e3,
        render::thousands(args.tapes)
    );
    anstream::println!(
        "  replay is {speedup:.0}× faster than live (goal ≥ {GOAL_SPEEDUP:.0}×); {} tapes in {replay_s:.2} s (goal ≤ {GOAL_SECONDS:.0} s for 1,000)",
        render::thousands(args.tapes),
    );
    Ok(Exit::Ok)
}

/// Writes the agent's script and config into `dir` and loads it: the scripted model when
/// `base_url` is `None`, else the OpenAI provider at `base_url` (the fake API).
fn write_agent(dir: &Path, steps: u64, base_url: Option<&str>) -> anyhow::Result<LoadedConfig> {
    let mut responses: Vec<Value> = (1..steps)
        .map(|step| json!({"tool_calls": [{"name": TOOL, "arguments": arguments(step)}]}))
        .collect();
    responses.push(json!({"content": answer(steps)}));
    std::fs::write(
        dir.join("script.json"),
        serde_json::to_string_pretty(&json!({ "responses": responses }))?,
    )?;
    let model = match base_url {
        None => json!({"provider": "scripted", "name": "bench-model", "script": "script.json"}),
        Some(url) => json!({"provider": "openai", "name": "bench-model", "base_url": url}),
    };
    let config = json!({
        "name": "bench-replay",
        "model": model,
        "system_prompt": "You are a support agent for Acme. Answer from the knowledge base only: \
            read every article that may apply with kb.read before answering, and quote the \
            steps it gives.",
        "tools": {
            "allow": [TOOL],
            "defs": [{
                "name": TOOL,
                "description": "Reads a knowledge-base article by its slug.",
                "input_schema": {
                    "type": "object",
                    "properties": {"article": {"type": "string"}},
                    "required": ["article"]
                },
                "builtin": "mock",
                "mock": [{"output": {
                    "title": "Resetting a password",
                    "body": "Open Settings > Security, choose Reset password, and follow the \
                        link sent to the account's email address within 30 minutes."
                }}]
            }]
        },
        "budgets": {"max_steps": steps, "max_tool_calls": steps, "max_seconds": 3600.0},
        "pricing": {"bench-model": {"input_per_mtok": 0.4, "output_per_mtok": 1.6}},
    });
    let name = if base_url.is_some() {
        "live.json"
    } else {
        "scripted.json"
    };
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    Ok(LoadedConfig::load(&path)?)
}

/// The arguments of the tool call at `step`.
fn arguments(step: u64) -> Value {
    json!({"article": format!("article-{step}")})
}

/// The final answer, at the last step.
fn answer(steps: u64) -> String {
    format!(
        "Read {} articles: open Settings > Security and choose Reset password.",
        steps - 1
    )
}

/// The input of tape `i`: every tape a different run.
fn input(i: u64) -> String {
    format!("Customer #{i}: how do I reset my password?")
}

/// Every run must answer at its last step, or the figures mean nothing.
fn check(stop_reason: Option<&StopReason>, steps: u64, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        stop_reason == Some(&StopReason::Ok),
        "a {what} run of {steps} steps ended with {}",
        stop_reason.map_or_else(|| "no stop reason".to_owned(), ToString::to_string)
    );
    Ok(())
}

/// Runs `work(i)` for `i` in `0..n`, `jobs` at a time, stopping at the first error.
fn parallel<T: Send>(
    n: u64,
    jobs: u64,
    work: impl Fn(u64) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<(u64, T)>> = Mutex::new(Vec::new());
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(n) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if i >= n || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    match work(i) {
                        Ok(value) => lock(&results).push((i, value)),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            lock(&first_error).get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = lock(&first_error).take() {
        return Err(e);
    }
    let mut results = std::mem::take(&mut *lock(&results));
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, v)| v).collect())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records the tapes with the scripted agent (untimed).
fn record(config: &LoadedConfig, writer: &Writer, args: &Args) -> anyhow::Result<Vec<RunId>> {
    let steps = args.steps;
    parallel(args.tapes, args.jobs, |i| {
        let mut agent = Agent::from_config(config.clone(), tapedeck_agent::approvals::nobody)?;
        let run = agent.new_run(&input(i));
        let (run, _) = agent.run_recorded(writer, run)?;
        check(run.stop_reason.as_ref(), steps, "recorded")?;
        anyhow::ensure!(
            run.totals.steps == steps,
            "a recorded run took {} steps",
            run.totals.steps
        );
        Ok(run.id)
    })
}

/// Replays every tape exactly; returns how many ended `ok` and matched their recording.
fn replay_all(store: &Path, writer: &Writer, ids: &[RunId], jobs: u64) -> anyhow::Result<usize> {
    let options = Options::exact();
    let next = AtomicUsize::new(0);
    let matched = AtomicUsize::new(0);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(ids.len() as u64) {
            scope.spawn(|| {
                let result = (|| -> anyhow::Result<()> {
                    let store = Store::open(store)?;
                    while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let report = tapedeck_replay::replay(&store, writer, id, &options)?;
                        if report.divergence.is_none()
                            && report.run.stop_reason == Some(StopReason::Ok)
                        {
                            matched.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    lock(&first_error).get_or_insert(e);
                    // Let the other workers run out of tapes.
                    next.store(ids.len(), Ordering::Relaxed);
                }
            });
        }
    });
    if let Some(e) = lock(&first_error).take() {
        return Err(e);
    }
    Ok(matched.into_inner())
}

/// Runs the agent live against the fake API, `--live` times.
fn live_runs(config: &LoadedConfig, writer: &Writer, args: &Args) -> anyhow::Result<()> {
    let steps = args.steps;
    parallel(args.live, args.jobs, |i| {
        let model: Box<dyn ModelBackend> =
            Box::new(OpenAi::with_key(config.model()?, "bench-key".to_owned())?);
        let tools = ToolSet::from_config(config)?;
        let mut agent = Agent::new(
            config.clone(),
            model,
            tools,
            Box::new(ApprovalSource::Nobody),
        );
        let run = agent.new_run(&input(i));
        let (run, outcome) = agent.run_recorded(writer, run)?;
        check(run.stop_reason.as_ref(), steps, "live")
            .map_err(|e| e.context(outcome.error.unwrap_or_default()))?;
        anyhow::ensure!(
            run.totals.steps == steps,
            "a live run took {} steps",
            run.totals.steps
        );
        Ok(())
    })?;
    Ok(())
}

/// A fake OpenAI-compatible Chat Completions API on 127.0.0.1: every request is answered after
/// `latency`, with a call of [`TOOL`] or, at the last step (told by how many messages the
/// request carries), the final answer. HTTP/1.1 with keep-alive, one thread per connection.
struct FakeApi {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    fn start(steps: u64, latency: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let requests = Arc::clone(&requests);
                    std::thread::spawn(move || {
                        let _ = serve(stream, steps, latency, &requests);
                    });
                }
            })
        };
        Ok(Self {
            addr,
            stop,
            requests,
            thread: Some(thread),
        })
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Stops accepting connections; returns how many requests were answered.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop up so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.requests.load(Ordering::Relaxed) as u64
    }
}

/// Answers the requests of one connection until the client closes it.
fn serve(
    stream: TcpStream,
    steps: u64,
    latency: Duration,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let messages = request
            .get("messages")
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as u64;
        // System and user, then an assistant message and a tool result per step before.
        let step = messages.saturating_sub(2) / 2 + 1;
        let message = if step < steps {
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": format!("call_{step}"),
                    "type": "function",
                    "function": {
                        "name": TOOL.replace('.', "_"),
                        "arguments": arguments(step).to_string(),
                    }
                }]
            })
        } else {
            json!({"role": "assistant", "content": answer(steps)})
        };
        let finish = if step < steps { "tool_calls" } else { "stop" };
        let reply = json!({
            "id": format!("chatcmpl-{step}"),
            "object": "chat.completion",
            "model": "bench-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 40 * messages, "completion_tokens": 12},
        })
        .to_string();
        std::thread::sleep(latency);
        requests.fetch_add(1, Ordering::Relaxed);
        // One write: headers and body in separate packets would meet delayed ACKs.
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        out.write_all(response.as_bytes())?;
    }
}
