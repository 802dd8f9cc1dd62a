//! `tapedeck proxy --listen ADDR --mode record|replay`: the long-lived HTTP proxy, one run per
//! `x-tapedeck-run` header value (and a new one after `--split-idle`), until Ctrl-C; with
//! `--sessions`, one session at a time opened and closed by a test harness, each recorded to or
//! replayed from its own tape (`tapedeck_replay::tapes`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tapedeck_proxy::http::{self, Backend, Hub, Proxy, Recording, SessionHub};
use tapedeck_replay::tapes::TapeSessions;
use tapedeck_trace::Source;

use super::record::{self, RecordingArgs};
use crate::Exit;
use crate::settings::Settings;

/// Record or replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Forward to the upstreams and record
    Record,
    /// Answer from the recording of --run
    Replay,
}

/// Serve the recording (or replaying) HTTP proxy until Ctrl-C, one run per client session
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Point a client at it with OPENAI_BASE_URL=http://ADDR/v1 or ANTHROPIC_BASE_URL=http://ADDR. Requests with the same `x-tapedeck-run` header value (none counts as one value) go to the same run; with --split-idle, a gap that long starts a new run. A Responses API request without the header that continues an earlier response (previous_response_id) joins that response's run. Ctrl-C or SIGTERM ends every open run.\n\nWith --sessions (what the pytest plugin starts), the proxy serves one session at a time, opened and closed on its control endpoints: POST /tapedeck/control/v1/open {\"mode\": \"record\"|\"replay\"|\"new_episodes\"|\"check\", \"tape\": PATH} starts a run — recorded live; replayed from the tape (the model and every tool from the recording, a write tool never run); new episodes (what the tape holds from it, the rest live); or a check (the model live, every tool from the tape) — and POST /tapedeck/control/v1/close ends it, writes the tape of a recording (and of new episodes) and answers with the run, the tape's run, its stop reason and a replay's first divergence. While it is open every model request and the session protocol (TAPEDECK_SESSION=http://ADDR/tapedeck/session/v1) go to it; with none open, a model request is forwarded to the upstream unrecorded (a test the harness does not handle works as without it), or refused (409) with --outside-sessions refuse.\n\nEvery run's agent is --name (default: `proxy`) with the fingerprint of the models, system prompts and tools its requests sent; --input is refused (a run here has no one command line or input).\n\nExamples:\n  tapedeck proxy --listen 127.0.0.1:8411 --name support-bot\n  tapedeck proxy --listen 127.0.0.1:8411 --mode replay --run 3f9c2e1a\n  tapedeck proxy --listen 127.0.0.1:0 --sessions --store /tmp/t.db"
)]
pub struct Args {
    /// The address to listen on (port 0: any free port; the address is printed on stderr)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8411")]
    listen: SocketAddr,
    /// Record (forward to the upstreams) or replay (answer from --run)
    #[arg(long, value_enum, default_value = "record")]
    mode: Mode,
    /// The recorded proxy run to replay (with --mode replay)
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// Start a new run after this long without requests (e.g. 30s, 5m)
    #[arg(long, value_name = "AGE", value_parser = crate::when::age_arg)]
    split_idle: Option<i64>,
    #[command(flatten)]
    recording: RecordingArgs,
    /// In replay, replace matches of this regex in message text before matching (repeatable)
    #[arg(long, value_name = "REGEX")]
    ignore: Vec<String>,
    /// Serve one session at a time, each recorded to or replayed from its own tape, opened and
    /// closed on the control endpoints (below)
    #[arg(long, conflicts_with_all = ["mode", "run", "split_idle", "ignore"])]
    sessions: bool,
    /// With --sessions, what a model request gets while no session is open: forwarded to the
    /// upstream unrecorded, or refused (409; the pytest plugin's `--tapedeck-mode none`)
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = Outside::Forward, requires = "sessions")]
    outside_sessions: Outside,
}

/// What `--sessions` does with a request outside every session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Outside {
    /// Forward it unrecorded, as if the proxy were not there.
    Forward,
    /// Refuse it (409), so nothing reaches an upstream unrecorded.
    Refuse,
}

/// Runs `tapedeck proxy`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let options = &args.recording;
    options.refuse_input(
        "each run of `tapedeck proxy` is one client session, with no command line or input of its own; record one client with `tapedeck record --input TEXT -- CMD`",
    )?;
    // Checked once here; each new run makes its own redactor, which learns the keys it sees.
    options.redactor()?;
    let ignore = record::ignore_patterns(&args.ignore)?;
    let pricing = options.pricing()?;
    let store = settings.open_store()?;
    if args.sessions {
        return serve_sessions(
            store,
            args.listen,
            args.recording,
            pricing,
            args.outside_sessions,
        );
    }
    let parent = match (args.mode, &args.run) {
        (Mode::Replay, None) => bail!("--mode replay needs --run RUN"),
        (Mode::Record, Some(_)) => bail!("--run is for --mode replay"),
        (Mode::Replay, Some(query)) => {
            let id = store.resolve_run(query)?;
            let run = store.run(&id)?;
            if run.source != Source::Proxy {
                bail!(
                    "run {} was recorded by the {}, not the HTTP proxy",
                    id.short(),
                    run.source
                );
            }
            let events = store.events(&id)?;
            // Read once here; each new run answers from a fresh copy.
            let recording = Recording::from_events(&events, |h| store.blob(h, &id), ignore)?;
            Some((id, recording))
        }
        (Mode::Record, None) => None,
    };
    let upstreams = options.upstreams();
    let client = http::client().context("cannot set up the HTTP client")?;
    let writer = store.writer()?;
    let recording = args.recording;
    let agent = recording.name().unwrap_or("proxy").to_owned();
    let make = move |key: Option<&str>| {
        let mut run = recording.new_run();
        if let Some(key) = key {
            run.labels
                .insert("x-tapedeck-run".to_owned(), key.to_owned());
        }
        let backend = match &parent {
            None => Backend::Live {
                client: client.clone(),
                upstreams: upstreams.clone(),
            },
            Some((id, recorded)) => {
                run.parent = Some(*id);
                run.mode = Some("proxy".to_owned());
                Backend::Replay(Mutex::new(recorded.clone()))
            }
        };
        let recorder = writer.start_run(run)?;
        let redactor = recording.redactor().unwrap_or_default();
        let proxy = Proxy::new(backend, redactor, pricing.clone(), recorder);
        proxy.name_agent(&agent);
        Ok(proxy)
    };
    let hub = Hub::new(
        Box::new(make),
        args.split_idle
            .map(|micros| Duration::from_micros(micros.unsigned_abs())),
    );
    let runtime = http::runtime().context("cannot start the async runtime")?;
    let ended = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        anstream::eprintln!("tapedeck proxy listening on http://{addr} (Ctrl-C to stop)");
        // SIGTERM (a service manager stopping it) ends the open runs as Ctrl-C does, instead
        // of leaving them `incomplete`.
        let mut interrupts = crate::interrupt::forward()?;
        let shutdown = async move {
            let _ = interrupts.recv().await;
        };
        Arc::clone(&hub)
            .serve(listener, shutdown)
            .await
            .map_err(anyhow::Error::from)
    })?;
    let mut failed = false;
    for run in ended {
        match run {
            Ok(run) => anstream::eprintln!(
                "run {}  {} — {}",
                run.id.short(),
                run.status,
                run.stop_reason
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string)
            ),
            Err(e) => {
                failed = true;
                crate::render::error(&anyhow::Error::from(e));
            }
        }
    }
    Ok(if failed { Exit::Findings } else { Exit::Ok })
}

/// Runs `tapedeck proxy --sessions`.
fn serve_sessions(
    store: tapedeck_store::Store,
    listen: SocketAddr,
    recording: RecordingArgs,
    pricing: http::Pricing,
    outside: Outside,
) -> anyhow::Result<Exit> {
    let sessions = TapeSessions::new(
        store,
        recording.upstreams(),
        recording.redact_patterns().to_vec(),
        pricing,
        recording.new_run(),
        recording.name().unwrap_or("proxy").to_owned(),
        outside == Outside::Forward,
    )?;
    let hub = SessionHub::new(Box::new(sessions));
    let runtime = http::runtime().context("cannot start the async runtime")?;
    let ended = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        anstream::eprintln!("tapedeck proxy listening on http://{addr} (sessions; Ctrl-C to stop)");
        let mut interrupts = crate::interrupt::forward()?;
        let shutdown = async move {
            let _ = interrupts.recv().await;
        };
        hub.serve(listener, shutdown)
            .await
            .map_err(anyhow::Error::from)
    })?;
    match ended {
        Some(Ok(run)) => {
            anstream::eprintln!(
                "run {}  {} — ended with the proxy",
                run.id.short(),
                run.status
            );
            Ok(Exit::Ok)
        }
        Some(Err(e)) => {
            crate::render::error(&anyhow::Error::from(e));
            Ok(Exit::Findings)
        }
        None => Ok(Exit::Ok),
    }
}
