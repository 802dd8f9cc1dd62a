//! `tapedeck replay RUN … -- CMD` for an agent written as code: the command runs again in a
//! session, its model calls answered from the recording (exact), from the upstream
//! (`--live-model`) or both (`--from-step K`), and every tool it reports through the session
//! answered from the recording — a write tool never runs.

use tapedeck_proxy::http::{ClientCommand, Pricing, Upstreams};
use tapedeck_replay::MissPolicy;
use tapedeck_replay::session::{CommandReplay, ModelSource, replay_proxy, session_divergence};
use tapedeck_store::Store;
use tapedeck_trace::Run;

use super::{Args, OnMiss, divergence_lines};
use crate::Exit;
use crate::render::{self, DIM};

/// Replays `parent`, a run of `tapedeck record -- CMD`, by running the command again.
pub(super) fn replay(store: &Store, parent: Run, args: &Args) -> anyhow::Result<Exit> {
    let upstreams = || {
        Upstreams::given_or_env(
            args.upstream_openai.as_deref(),
            args.upstream_anthropic.as_deref(),
        )
    };
    let model = match (args.live_model, args.from_step) {
        (false, _) => ModelSource::Recorded,
        (true, None) => ModelSource::Live(upstreams()),
        (true, Some(0)) => anyhow::bail!("--from-step counts from 1"),
        (true, Some(k)) => ModelSource::Fork {
            through_step: k,
            upstreams: upstreams(),
        },
    };
    let options = CommandReplay {
        model,
        on_miss: match args.on_miss.unwrap_or(OnMiss::Error) {
            OnMiss::Error => MissPolicy::Error,
            OnMiss::Live => MissPolicy::Live,
            OnMiss::Closest => MissPolicy::Closest,
        },
        live_allow: args.live_allow.iter().cloned().collect(),
        match_position: args.match_position,
        ignore: crate::commands::record::ignore_patterns(&args.ignore)?,
        redactor: crate::commands::record::redactor(&args.redact)?,
        pricing: Pricing::default(),
    };
    let writer = store.writer()?;
    let proxy = replay_proxy(
        store,
        &writer,
        &parent,
        options,
        tapedeck_proxy::command_line::quote(&args.command),
    )?;
    if parent.agent.is_none() {
        proxy.name_agent(&tapedeck_proxy::command_line::agent_name(&args.command));
    }
    let ended =
        crate::commands::record::run_client_to_end(proxy, &ClientCommand::new(&args.command))?;
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
    let exit = crate::commands::record::exit_of(&ended);
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
