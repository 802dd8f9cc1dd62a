//! `tapedeck replay`: rerun a recorded run offline (exact), a new agent version against its
//! recorded tool outputs (tools only), or fork it at a step; or replay a folder of tapes; or
//! rerun an agent written as code in a session (`command`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tapedeck_agent::LoadedConfig;
use tapedeck_replay::{Divergence, MissPolicy, Mode, Options, ReplayReport};
use tapedeck_store::{ImportOutcome, Store};
use tapedeck_trace::{Source, StopReason};

use crate::Exit;
use crate::json_output;
use crate::render::{self, DIM, HEADING, WARN};
use crate::settings::Settings;

mod command;

/// What to do with a tool call the recording has no answer for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum OnMiss {
    /// Stop the run `replay_miss:<tool>`, naming the closest recorded call
    Error,
    /// Run the tool for real: only read tools listed with --live-allow
    Live,
    /// Serve the closest recorded call of the same tool
    Closest,
}

/// Replay a recorded run: offline and exact, against a new agent version, or forked at a step
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Modes of a runtime run:\n  RUN                    exact: the recorded version, model responses and tool outputs; the\n                         trajectory must match the recording (offline: no API key, no tool runs)\n  RUN --agent NEW.yaml   tools only: NEW's own model; every tool call answered from the recording\n  RUN --from-step K      fork: steps 1..K from the recording, then the agent goes on live\n\nModes of an agent written as code (a run of `tapedeck record -- CMD`), rerun as CMD in a session:\n  RUN -- CMD                          exact: model responses, MCP and in-process tools all from\n                                      the recording (offline: no API key, no tool side effect)\n  RUN --live-model -- CMD             the model live through the upstream (a new model or prompt);\n                                      every tool answered from the recording\n  RUN --live-model --from-step K -- CMD   model calls 1..K from the recording, the rest live\nA write tool never runs in a replay of a command, whatever the flags.\n\nEvery replay is recorded as a run (parent and mode in `tapedeck show`). Exit codes: 0 the replay\nended ok and matches; 1 it diverged or stopped for another reason; 2 bad input (a flag that does\nnot apply to the kind of run is refused); a command's own code when it failed.\n\nExamples:\n  tapedeck replay 3f9c2e1a\n  tapedeck replay 3f9c2e1a --agent agents/support-v2.yaml --on-miss live --live-allow kb.read\n  tapedeck replay 3f9c2e1a --from-step 3 --agent agents/support-v2.yaml\n  tapedeck replay --tapes golden/support/tapes --agent agents/support-v2.yaml -j 2\n  tapedeck replay 7d2a90c4 -- python agent.py\n  tapedeck replay 7d2a90c4 --live-model --upstream-openai http://127.0.0.1:8080/v1 -- python agent.py --model gpt-5-mini"
)]
pub struct Args {
    /// The run to replay: its short id or a unique prefix of its full id
    #[arg(
        value_name = "RUN",
        required_unless_present = "tapes",
        conflicts_with = "tapes"
    )]
    run: Option<String>,
    /// Replay every tape (*.jsonl) under this folder against --agent
    #[arg(long, value_name = "DIR", requires = "agent")]
    tapes: Option<PathBuf>,
    /// The agent version to replay (default: the recorded one, exact)
    #[arg(long, value_name = "NEW.yaml")]
    agent: Option<PathBuf>,
    /// Serve steps 1..K from the recording, then go on live
    #[arg(long, value_name = "K", conflicts_with = "tapes")]
    from_step: Option<u64>,
    /// What a tool call the recording has no answer for does
    #[arg(long, value_enum, value_name = "POLICY")]
    on_miss: Option<OnMiss>,
    /// A read tool that may run live on a miss (repeatable; with --on-miss live)
    #[arg(long, value_name = "TOOL")]
    live_allow: Vec<String>,
    /// Also match a call to the recorded call of the same tool at the same position
    #[arg(long)]
    match_position: bool,
    /// Refuse a recording whose tools changed their schemas since, instead of warning
    #[arg(long)]
    strict: bool,
    /// Replays to run at once with --tapes
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Print JSON
    #[arg(long)]
    json: bool,
    /// With `-- CMD`: replace matches of this regex in message text before matching requests
    /// (dates, ids; repeatable)
    #[arg(long, value_name = "REGEX")]
    ignore: Vec<String>,
    /// With `-- CMD`: the `--redact` patterns the run was recorded with (repeatable)
    #[arg(long, value_name = "REGEX")]
    redact: Vec<String>,
    /// With `-- CMD`: send the model calls to the upstream (a new model or prompt) while every
    /// tool is answered from the recording
    #[arg(long)]
    live_model: bool,
    /// With `--live-model`: the upstream OpenAI base URL, `/v1` included [default:
    /// $OPENAI_BASE_URL, else https://api.openai.com/v1]
    #[arg(long, value_name = "URL")]
    upstream_openai: Option<String>,
    /// With `--live-model`: the upstream Anthropic base URL [default: $ANTHROPIC_BASE_URL,
    /// else https://api.anthropic.com]
    #[arg(long, value_name = "URL")]
    upstream_anthropic: Option<String>,
    /// The client command of a proxy-recorded run
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs `tapedeck replay`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    check_flags(&args)?;
    let on_miss = args.on_miss.unwrap_or(OnMiss::Error);
    if !args.live_allow.is_empty() && !matches!(on_miss, OnMiss::Live) {
        bail!("--live-allow needs --on-miss live");
    }
    let agent = match &args.agent {
        Some(path) => Some(LoadedConfig::load(path)?),
        None => None,
    };
    let mode = match (args.from_step, agent) {
        (Some(0), _) => bail!("--from-step counts from 1"),
        (Some(k), agent) => Mode::Fork { k, agent },
        (None, Some(agent)) => Mode::ToolsOnly(agent),
        (None, None) => Mode::Exact,
    };
    let options = Options {
        mode,
        on_miss: match on_miss {
            OnMiss::Error => MissPolicy::Error,
            OnMiss::Live => MissPolicy::Live,
            OnMiss::Closest => MissPolicy::Closest,
        },
        live_allow: args.live_allow.clone(),
        match_position: args.match_position,
        strict: args.strict,
        base_dir: args
            .agent
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from(".")),
        ask: crate::terminal_approval::ask,
    };
    let store = settings.open_store()?;
    if let Some(dir) = &args.tapes {
        return replay_tapes(&store, dir, &options, args.jobs, args.json);
    }
    let query = args.run.as_deref().unwrap_or_default();
    let id = store.resolve_run(query)?;
    if !args.command.is_empty() {
        let run = store.run(&id)?;
        match run.source {
            Source::Proxy => return command::replay(&store, run, &args),
            Source::Mcp => bail!(
                "run {} was recorded by the MCP proxy: replay it with `tapedeck mcp replay {}` as the client's server command",
                id.short(),
                id.short()
            ),
            _ => bail!(
                "run {} was recorded by the {}, not a proxy: replay it without `-- CMD`",
                id.short(),
                run.source
            ),
        }
    }
    let writer = store.writer()?;
    let report = tapedeck_replay::replay(&store, &writer, &id, &options)?;
    for change in &report.stale {
        render::warning(&format!("{change}: the tape may need recording again"));
    }
    if args.json {
        json_output::REPLAY.print(&report)?;
    } else {
        print_report(&report);
    }
    Ok(exit_of(&report))
}

/// Refuses flags that the kind of replay asked for would ignore: the runtime's replay options
/// with `-- CMD`, the client's without it.
fn check_flags(args: &Args) -> anyhow::Result<()> {
    let runtime_flags = [
        ("--agent", args.agent.is_some()),
        ("--strict", args.strict),
        ("--json", args.json),
    ];
    let client_flags = [
        ("--ignore", !args.ignore.is_empty()),
        ("--redact", !args.redact.is_empty()),
        ("--live-model", args.live_model),
        ("--upstream-openai", args.upstream_openai.is_some()),
        ("--upstream-anthropic", args.upstream_anthropic.is_some()),
    ];
    if args.command.is_empty() {
        if let Some((flag, _)) = client_flags.iter().find(|(_, given)| *given) {
            bail!(
                "{flag} applies to the replay of an agent written as code: `tapedeck replay RUN {flag} … -- CMD…`"
            );
        }
    } else {
        if let Some((flag, _)) = runtime_flags.iter().find(|(_, given)| *given) {
            bail!(
                "{flag} does not apply to `replay RUN -- CMD` (the command is the agent version; give it another model or prompt with --live-model); drop it, or replay a runtime run without `-- CMD`"
            );
        }
        if args.from_step.is_some() && !args.live_model {
            bail!(
                "--from-step with `-- CMD` needs --live-model: model calls 1..K come from the recording, the rest from the upstream"
            );
        }
        for (flag, given) in [
            ("--upstream-openai", args.upstream_openai.is_some()),
            ("--upstream-anthropic", args.upstream_anthropic.is_some()),
        ] {
            if given && !args.live_model {
                bail!("{flag} needs --live-model: an exact replay never calls the upstream");
            }
        }
        tapedeck_proxy::command_line::check_program(&args.command, "run")?;
    }
    Ok(())
}

fn exit_of(report: &ReplayReport) -> Exit {
    let ok = report
        .run
        .stop_reason
        .as_ref()
        .is_some_and(StopReason::is_ok);
    if report.divergence.is_none() && ok {
        Exit::Ok
    } else {
        Exit::Findings
    }
}

fn print_report(report: &ReplayReport) {
    let h = HEADING;
    let dim = DIM;
    let style = render::status_style(report.run.status);
    let t = &report.run.totals;
    anstream::println!(
        "{h}replayed {} ({}){h:#} as {}: {style}{} — {}{style:#} {dim}· {} step{} · {} tool call{} · {}{dim:#}",
        report.parent.id.short(),
        report.mode,
        report.run.id.short(),
        report.run.status,
        report
            .run
            .stop_reason
            .as_ref()
            .map_or_else(String::new, ToString::to_string),
        t.steps,
        render::plural(t.steps),
        t.tool_calls_total(),
        render::plural(t.tool_calls_total()),
        render::usd(t.cost_usd),
    );
    if let Some(error) = &report.run.error {
        anstream::println!("  {dim}reason{dim:#} {error}");
    }
    match &report.divergence {
        None => anstream::println!("  the trajectory matches the recording"),
        Some(d) => {
            for line in divergence_lines(d) {
                anstream::println!("{line}");
            }
        }
    }
    anstream::println!(
        "  {dim}compare:{dim:#} tapedeck show {}  ·  tapedeck show {}",
        report.parent.id.short(),
        report.run.id.short()
    );
}

/// The first divergence, as lines for the terminal.
pub(super) fn divergence_lines(d: &Divergence) -> Vec<String> {
    let w = WARN;
    let dim = DIM;
    let mut lines = vec![format!(
        "  {w}first divergence{w:#} at step {} ({}):",
        d.step, d.kind
    )];
    let show = |m: &Option<tapedeck_replay::Move>| {
        m.as_ref().map_or_else(
            || "(nothing: the run had ended)".to_owned(),
            |m| format!("{} {}", m.kind, render::truncate(&m.summary, 100)),
        )
    };
    lines.push(format!("    {dim}expected{dim:#}  {}", show(&d.expected)));
    lines.push(format!("    {dim}actual  {dim:#}  {}", show(&d.actual)));
    if let Some(diff) = &d.argument_diff {
        lines.push(format!("    {dim}arguments{dim:#}"));
        lines.extend(diff.lines().map(|line| format!("      {line}")));
    }
    if let Some(before) = &d.before {
        lines.push(format!(
            "    {dim}before it{dim:#} step {}: {} {}",
            before.step,
            before.kind,
            render::truncate(&before.summary, 80)
        ));
    }
    lines
}

/// Every tape under `dir`, sorted.
fn tapes_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read the folder `{}`", folder.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// `replay --tapes --json`'s content.
#[derive(serde::Serialize)]
struct JsonReplays<'a> {
    replays: Vec<&'a ReplayReport>,
}

/// Replays every tape under `dir` against the agent of `options`, `jobs` at a time.
fn replay_tapes(
    store: &Store,
    dir: &Path,
    options: &Options,
    jobs: u32,
    json: bool,
) -> anyhow::Result<Exit> {
    let tapes = tapes_under(dir)?;
    if tapes.is_empty() {
        bail!("no tapes (*.jsonl) under `{}`", dir.display());
    }
    let mut ids = Vec::with_capacity(tapes.len());
    for tape in &tapes {
        let file = std::fs::File::open(tape)
            .with_context(|| format!("cannot read `{}`", tape.display()))?;
        let outcome = store
            .import_tape(&mut std::io::BufReader::new(file))
            .with_context(|| tape.display().to_string())?;
        ids.push(match outcome {
            ImportOutcome::Imported { id, .. } | ImportOutcome::AlreadyPresent(id) => id,
        });
    }
    let writer = store.writer()?;
    let bar = render::progress_bar(ids.len() as u64, "tapes replayed");
    let tick = || bar.inc(1);
    let reports = tapedeck_store::on_workers(
        store.location(),
        ids.len(),
        jobs as usize,
        &tick,
        |store, i| {
            let tape = tapes[i].display();
            match store {
                Ok(store) => tapedeck_replay::replay(store, &writer, &ids[i], options)
                    .map_err(|e| format!("{tape}: {e}")),
                Err(e) => Err(format!("{tape}: cannot open the store: {e}")),
            }
        },
    );
    bar.finish_and_clear();
    let mut failed = 0;
    let mut findings = 0;
    let mut rows = Vec::new();
    for (i, result) in reports.into_iter().enumerate() {
        match result {
            Ok(report) => {
                if exit_of(&report) != Exit::Ok {
                    findings += 1;
                }
                rows.push((tapes.get(i).cloned().unwrap_or_default(), report));
            }
            Err(message) => {
                failed += 1;
                render::error(&anyhow::anyhow!(message));
            }
        }
    }
    if json {
        let replays = rows.iter().map(|(_, report)| report).collect();
        json_output::REPLAYS.print(&JsonReplays { replays })?;
    } else {
        let mut table = render::table(&["TAPE", "RUN", "REPLAY", "STOP REASON", "DIVERGED AT"]);
        for (tape, report) in &rows {
            table.add_row(vec![
                tape.strip_prefix(dir).unwrap_or(tape).display().to_string(),
                report.parent.id.short(),
                report.run.id.short(),
                report
                    .run
                    .stop_reason
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                report.divergence.as_ref().map_or_else(
                    || "-".to_owned(),
                    |d| format!("step {} ({})", d.step, d.kind),
                ),
            ]);
        }
        anstream::println!("{}", table.trim_fmt());
        anstream::println!(
            "\n{} tapes replayed: {} match and ended ok, {} diverged or stopped, {} failed",
            rows.len() + failed,
            rows.len() - findings,
            findings,
            failed
        );
    }
    Ok(if failed > 0 {
        Exit::Error
    } else if findings > 0 {
        Exit::Findings
    } else {
        Exit::Ok
    })
}
