//! `tapedeck replay RUN … -- CMD` for an agent written as code: the command runs again in a
//! session, its model calls answered from the recording (exact), from the upstream
//! (`--live-model`) or both (`--from-step K`), and every tool it reports through the session
//! answered from the recording — a write tool never runs.

use std::collections::HashSet;
use std::sync::Mutex;

use tapedeck_proxy::http::{self, Backend, Pricing, Proxy, Upstreams};
use tapedeck_proxy::session::{McpRecording, Tools};
use tapedeck_replay::MissPolicy;
use tapedeck_replay::session::{SessionTools, session_divergence};
use tapedeck_store::Store;
use tapedeck_trace::{Run, Source};

use super::{Args, OnMiss, divergence_lines};
use crate::Exit;
use crate::render::{self, DIM};

/// Replays `parent`, a run of `tapedeck record -- CMD`, by running the command again.
pub(super) fn replay(store: &Store, parent: Run, args: &Args) -> anyhow::Result<Exit> {
    let ignore = crate::commands::record::ignore_patterns(&args.ignore)?;
    let events = store.events(&parent.id)?;
    let blob = |hash: &tapedeck_trace::ContentHash| store.blob(hash, &parent.id);
    let recording = http::Recording::from_events(&events, blob, ignore)?;
    let mcp = McpRecording::from_events(&events, blob)?;
    let calls = tapedeck_replay::Recording::load(store, &parent.id)?.calls;
    let on_miss = match args.on_miss.unwrap_or(OnMiss::Error) {
        OnMiss::Error => MissPolicy::Error,
        OnMiss::Live => MissPolicy::Live,
        OnMiss::Closest => MissPolicy::Closest,
    };
    let answers = SessionTools::new(
        calls,
        on_miss,
        args.live_allow.iter().cloned().collect::<HashSet<_>>(),
        args.match_position,
    );
    let (backend, mode) = if args.live_model {
        let defaults = Upstreams::from_env();
        let upstreams = Upstreams {
            openai: args.upstream_openai.clone().unwrap_or(defaults.openai),
            anthropic: args
                .upstream_anthropic
                .clone()
                .unwrap_or(defaults.anthropic),
        };
        let client =
            http::client().map_err(|e| anyhow::anyhow!("cannot set up the HTTP client: {e}"))?;
        match args.from_step {
            Some(0) => anyhow::bail!("--from-step counts from 1"),
            Some(k) => (
                Backend::Fork {
                    recording: Mutex::new(recording),
                    through_step: k,
                    client,
                    upstreams,
                },
                format!("fork@{k}"),
            ),
            None => (Backend::Live { client, upstreams }, "live-model".to_owned()),
        }
    } else {
        (Backend::Replay(Mutex::new(recording)), "proxy".to_owned())
    };
    let writer = store.writer()?;
    let mut run = Run::new(Source::Proxy);
    run.parent = Some(parent.id);
    run.mode = Some(mode);
    let redactor = crate::commands::record::redactor(&args.redact)?;
    run.input = Some(redactor.text(&crate::shell::quote(&args.command)));
    run.task.clone_from(&parent.task);
    run.suite.clone_from(&parent.suite);
    if !args.live_model {
        // Served calls keep their recorded cost: when that was unknown, so is the replay's,
        // even if it missed before serving any.
        run.totals.cost_usd = parent.totals.cost_usd.map(|_| 0.0);
    }
    let recorder = writer.start_run(run)?;
    let proxy =
        Proxy::new(backend, redactor, Pricing::default(), recorder).with_tools(Tools::Replay {
            answers: Box::new(answers),
            mcp,
        });
    // The replay is a run of the recorded agent: its fingerprint says whether it sent the same.
    proxy.name_agent(&parent.agent.as_ref().map_or_else(
        || crate::shell::agent_name(&args.command),
        |a| a.name.clone(),
    ));
    let ended = crate::commands::record::run_client_to_end(proxy, &args.command)?;
    drop(writer);
    let divergence = session_divergence(store, &parent.id, &ended.run.id)?;
    print_comparison(&parent, &ended.run);
    match &divergence {
        None => anstream::eprintln!("  the trajectory matches the recording"),
        Some(d) => {
            // The command's own output has stdout: tapedeck speaks on stderr.
            for line in divergence_lines(d) {
                anstream::eprintln!("{line}");
            }
        }
    }
    let exit = ended.exit();
    Ok(match (exit, divergence) {
        (Exit::Ok, Some(_)) => Exit::Findings,
        (exit, _) => exit,
    })
}

/// The replay's counts beside the recording's.
fn print_comparison(parent: &Run, replay: &Run) {
    let dim = DIM;
    let (a, b) = (&parent.totals, &replay.totals);
    let tokens = |t: &tapedeck_trace::Totals| {
        t.tokens_total()
            .map_or_else(|| "?".to_owned(), |n| n.to_string())
    };
    anstream::eprintln!(
        "  {dim}recorded {} → replay {}:{dim:#} {} → {} model call{} · {} → {} tool call{} · {} → {} tokens",
        parent.id.short(),
        replay.id.short(),
        a.steps,
        b.steps,
        render::plural(b.steps),
        a.tool_calls_total(),
        b.tool_calls_total(),
        render::plural(b.tool_calls_total()),
        tokens(a),
        tokens(b),
    );
}
