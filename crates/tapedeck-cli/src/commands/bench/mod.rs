//! `tapedeck bench`: the committed benchmarks behind the figures in the README, each reported
//! as a ratio against a baseline measured in the same run.

mod agent;
mod diff;
mod golden;
mod golden_command;
mod ingest;
mod ingest_postgres;
mod load;
mod proxy;
mod proxy_replay;
mod pytest;
mod replay;
mod session;
mod storage;

use clap::Subcommand;

use crate::Exit;
use crate::settings::Settings;

/// Run tapedeck's benchmarks and print ratios against their baselines
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo run --release -- bench            every benchmark\n  cargo run --release -- bench ingest --events 200000\n  cargo run --release -- bench ingest --postgres postgres://me@127.0.0.1:5432/tapedeck_bench\n  cargo run --release -- bench storage\n  cargo run --release -- bench agent --runs 1000 --steps 20\n  cargo run --release -- bench replay --tapes 200 --live 10\n  cargo run --release -- bench proxy-replay --requests 1000\n  cargo run --release -- bench session"
)]
pub struct Args {
    #[command(subcommand)]
    which: Option<Which>,
}

#[derive(Debug, Subcommand)]
enum Which {
    /// Recorder ingest rate against plain batched rusqlite INSERTs, and peak RSS; with
    /// `--postgres`, also into PostgreSQL against plain batched multi-row INSERTs
    Ingest(ingest::Args),
    /// Store size of a growing conversation, recorded by the agent runtime and through the
    /// HTTP proxy, against the naive size of its HTTP bodies
    Storage(storage::Args),
    /// Time per step of the agent loop recording into a store, against the same loop
    /// recording nothing
    Agent(agent::Args),
    /// Exact replays of recorded tapes against the same runs live on a fake API (50 ms)
    Replay(replay::Args),
    /// Loading two 100k-event runs and diffing them: time and peak RSS against their goals
    Diff(diff::Args),
    /// `golden check -j 2` of a 1,000-task suite: time per task, against replaying the same
    /// tapes with `tapedeck replay --tapes`
    Golden(golden::Args),
    /// `golden check -j 2` of a 100-task command suite: time per task added over running the
    /// same commands bare against the same fake upstream
    GoldenCommand(golden_command::Args),
    /// Latency the recording HTTP proxy adds over a direct client on loopback (p50/p99 over
    /// 10k requests from 8 clients), streaming time to first byte added, RSS across the 10k
    Proxy(proxy::Args),
    /// Chat completions a replay proxy serves from a recording per second, against the
    /// recording proxy's rate from a fake upstream answering at once
    ProxyReplay(proxy_replay::Args),
    /// The client libraries' tool decorator's cost (Python, JavaScript): outside a session
    /// against the bare function, and per call recorded through a session
    Session(session::Args),
    /// What the pytest plugin adds to a test replayed from its tape, against the same test
    /// run bare on a fake upstream
    Pytest(pytest::Args),
    /// Every benchmark with its default size
    All,
    /// Records events and reports the committed sequence number as it goes (the load
    /// generator of the crash and concurrency tests)
    #[command(hide = true)]
    RecordLoad(load::Args),
    /// Records events through the Recorder only, then prints its peak RSS (run by `ingest`
    /// in a child process so the figure is its own)
    #[command(hide = true)]
    IngestChild(ingest::ChildArgs),
    /// Loads two runs and diffs them, then prints the time and its peak RSS (run by `diff` in a
    /// child process so the figure is its own)
    #[command(hide = true)]
    DiffChild(diff::ChildArgs),
}

/// Runs `tapedeck bench`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    match args.which.unwrap_or(Which::All) {
        Which::Ingest(a) => ingest::run(a),
        Which::Storage(a) => storage::run(a),
        Which::Agent(a) => agent::run(a),
        Which::Replay(a) => replay::run(a),
        Which::Diff(a) => diff::run(a),
        Which::Golden(a) => golden::run(a),
        Which::GoldenCommand(a) => golden_command::run(a),
        Which::Proxy(a) => proxy::run(a),
        Which::ProxyReplay(a) => proxy_replay::run(a),
        Which::Session(a) => session::run(a),
        Which::Pytest(a) => pytest::run(a),
        Which::All => {
            ingest::run(ingest::Args::default())?;
            anstream::println!();
            storage::run(storage::Args::default())?;
            anstream::println!();
            agent::run(agent::Args::default())?;
            anstream::println!();
            replay::run(replay::Args::default())?;
            anstream::println!();
            diff::run(diff::Args::default())?;
            anstream::println!();
            golden::run(golden::Args::default())?;
            anstream::println!();
            golden_command::run(golden_command::Args::default())?;
            anstream::println!();
            proxy::run(proxy::Args::default())?;
            anstream::println!();
            proxy_replay::run(proxy_replay::Args::default())?;
            anstream::println!();
            session::run(session::Args::default())?;
            anstream::println!();
            pytest::run(pytest::Args::default())
        }
        Which::RecordLoad(a) => load::run(settings, a),
        Which::IngestChild(a) => ingest::child(a),
        Which::DiffChild(a) => diff::child(a),
    }
}

/// A fresh temporary folder for one benchmark's store files, removed when dropped (whether
/// the benchmark finished or failed).
struct ScratchDir(std::path::PathBuf);

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir() -> anyhow::Result<ScratchDir> {
    let dir = std::env::temp_dir().join(format!(
        "tapedeck-bench-{}-{}",
        std::process::id(),
        tapedeck_trace::Timestamp::now().as_micros()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(ScratchDir(dir))
}

/// The CPU time (user and system, all threads) this process has used so far, Linux only.
fn cpu_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (in parentheses, which may hold anything): state, then fields 4…;
    // utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(std::time::Duration::from_millis(ticks * 10))
}

/// A size this process's `/proc/self/status` gives under `key` (`VmRSS`, `VmHWM`), in bytes;
/// Linux only.
fn status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// This process's peak resident set size (`VmHWM`).
fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM")
}
