//! `tapedeck golden record SUITE`: run every task once with the agent version, recorded, and
//! keep each run as the task's baseline tape and behaviour snapshot.

use std::path::PathBuf;

use anyhow::bail;
use tapedeck_diff::golden::{Suite, SuiteCommand, Task};
use tapedeck_proxy::http::Upstreams;
use tapedeck_trace::Run;

use crate::Exit;
use crate::render::{self, DIM};
use crate::settings::Settings;

/// Record the baseline of every task (or the named ones): tape and snapshot
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each task runs once with the agent version (recorded in the store with its suite and task) — for\na suite of a command (`command:` in suite.yaml), its command runs in a recording session, the\nmodel through --upstream-openai / --upstream-anthropic, its output kept in a log an error quotes —, its\nrun is exported to tapes/<task>/1.jsonl and its behaviour written to snapshots/<task>.snap.\nWith --repeat N each task runs N times (tapes/<task>/1.jsonl … N.jsonl; the snapshot is that of\nrun 1); run i is labelled `repeat=i`, and a scripted model gets seed + i - 1 for it, so `one_of`\nrules vary as a real model does. The seed is a parameter of the run: the recorded config and the\nfingerprint stay those of the agent version as written. With --agent, suite.yaml is pointed at\nthat version, so a later `golden check` without --agent checks the same one.\n\nExamples:\n  tapedeck golden record golden/support\n  tapedeck golden record golden/support --agent agents/support-v2.yaml\n  tapedeck golden record golden/support password-reset refund-order\n  tapedeck golden record golden/noisy --repeat 5\n  tapedeck golden record golden/weather-py --upstream-openai http://127.0.0.1:8080/v1"
)]
pub struct Args {
    /// The suite's folder
    #[arg(value_name = "SUITE")]
    suite: PathBuf,
    /// Only these tasks
    #[arg(value_name = "TASK")]
    tasks: Vec<String>,
    /// The agent version to record (default: the one suite.yaml names); suite.yaml is updated
    #[arg(long, value_name = "AGENT.yaml")]
    agent: Option<PathBuf>,
    /// Baseline runs per task (default: `repeat` in suite.yaml, else 1): tapes 1.jsonl … N.jsonl
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: Option<u32>,
    /// A command suite's upstream OpenAI base URL, `/v1` included [default: $OPENAI_BASE_URL,
    /// else https://api.openai.com/v1]
    #[arg(long, value_name = "URL")]
    upstream_openai: Option<String>,
    /// A command suite's upstream Anthropic base URL [default: $ANTHROPIC_BASE_URL, else
    /// https://api.anthropic.com]
    #[arg(long, value_name = "URL")]
    upstream_anthropic: Option<String>,
}

/// What records the tasks: a YAML agent version, or a command suite's command.
enum Recorder {
    Agent(Box<tapedeck_agent::LoadedConfig>),
    Command(SuiteCommand, Upstreams),
}

/// Runs `tapedeck golden record`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    // Everything that can be wrong with the input is found before anything is recorded: the
    // suite, the agent version (its model, tools and approvals built once), the tasks, the
    // store.
    let mut suite = Suite::load(&args.suite)?;
    let (recorder, agent_path) = match suite.command() {
        Some(command) => {
            if args.agent.is_some() {
                bail!(
                    "--agent does not apply to suite `{}`: it runs a command (`command:` in suite.yaml)",
                    suite.name
                );
            }
            super::command::check(&command)?;
            let upstreams = super::command::upstreams(
                args.upstream_openai.as_deref(),
                args.upstream_anthropic.as_deref(),
            );
            let shown = PathBuf::from(crate::shell::quote(&command.argv));
            (Recorder::Command(command, upstreams), shown)
        }
        None => {
            for (flag, given) in [
                ("--upstream-openai", args.upstream_openai.is_some()),
                ("--upstream-anthropic", args.upstream_anthropic.is_some()),
            ] {
                if given {
                    bail!(
                        "{flag} applies to a suite that runs a command; suite `{}` runs an agent version, whose model its YAML names",
                        suite.name
                    );
                }
            }
            let (config, agent_path) = super::load_agent(&suite, args.agent.as_deref())?;
            super::agent_for_repetition(&config, 0)?;
            (Recorder::Agent(Box::new(config)), agent_path)
        }
    };
    let tasks: Vec<_> = super::select(&suite, &args.tasks)?
        .into_iter()
        .cloned()
        .collect();
    let store = settings.open_store()?;
    let writer = store.writer()?;
    let repeat = super::repeat_of(&suite, args.repeat);
    let mut header = vec!["TASK", "RUN", "STOP REASON", "TOOL CALLS", "TOKENS", "COST"];
    if repeat > 1 {
        header.insert(1, "REP");
    }
    let mut table = render::table(&header);
    let mut failed = 0;
    for task in &tasks {
        let mut done = 0;
        let recorded = (0..repeat).try_for_each(|i| {
            let row = record_one(&store, &writer, &suite, &recorder, task, i, repeat)?;
            table.add_row(row);
            done += 1;
            anyhow::Ok(())
        });
        if let Err(e) = &recorded {
            // Runs are in the store already: the other tasks still record, and the command
            // fails with 1, not as an input error.
            failed += 1;
            let baseline = if done == 0 {
                "its baseline is as it was".to_owned()
            } else {
                format!(
                    "its baseline now holds only the {done} run{} recorded before; record it again",
                    render::plural(done as u64)
                )
            };
            render::error(&anyhow::anyhow!("task `{}`: {e:#} ({baseline})", task.id));
            if done == 0 {
                continue;
            }
        }
        // Tapes of an earlier recording belong to another baseline: a longer one, or the
        // rest of the old one when a repetition failed partway (a check then finds them
        // missing rather than mixing two baselines).
        for n in (done + 1)..=suite.recorded_repetitions(&task.id).max(repeat) {
            tapedeck_diff::golden::remove_if_present(&suite.repeat_tape_path(&task.id, n))?;
        }
    }
    if args.agent.is_some() {
        suite.set_agent(&agent_path);
        suite.save()?;
    }
    anstream::println!("{}", table.trim_fmt());
    let dim = DIM;
    anstream::println!(
        "\nrecorded {} task{}{} of suite `{}` with {} {dim}(tapes in {}, snapshots in {}){dim:#}",
        tasks.len() - failed,
        render::plural((tasks.len() - failed) as u64),
        if repeat > 1 {
            format!(" × {repeat} runs")
        } else {
            String::new()
        },
        suite.name,
        agent_path.display(),
        suite.dir.join("tapes").display(),
        suite.dir.join("snapshots").display(),
    );
    Ok(if failed > 0 { Exit::Findings } else { Exit::Ok })
}

/// Records repetition `i` (from 0) of a task: its run, tape and (for the first) snapshot;
/// returns its table row.
fn record_one(
    store: &tapedeck_store::Store,
    writer: &tapedeck_store::Writer,
    suite: &Suite,
    recorder: &Recorder,
    task: &Task,
    i: usize,
    repeat: usize,
) -> anyhow::Result<Vec<String>> {
    let run = match recorder {
        Recorder::Agent(config) => record_agent(writer, suite, config, task, i, repeat)?,
        Recorder::Command(command, upstreams) => super::command::record(
            super::command::Runs {
                store,
                writer,
                command,
            },
            suite,
            task,
            i,
            repeat,
            upstreams,
        )?,
    };
    super::export_tape(store, &run.id, &suite.repeat_tape_path(&task.id, i + 1))?;
    if i == 0 {
        super::write_snapshot(store, suite, &task.id, &run.id)?;
    }
    let t = &run.totals;
    let mut row = vec![
        task.id.clone(),
        run.id.short(),
        run.stop_reason
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string),
        t.tool_calls_total().to_string(),
        render::count(t.tokens_total()),
        render::usd(t.cost_usd),
    ];
    if repeat > 1 {
        row.insert(1, (i + 1).to_string());
    }
    Ok(row)
}

/// Runs repetition `i` (from 0) of a task with the agent version, recorded.
fn record_agent(
    writer: &tapedeck_store::Writer,
    suite: &Suite,
    config: &tapedeck_agent::LoadedConfig,
    task: &Task,
    i: usize,
    repeat: usize,
) -> anyhow::Result<Run> {
    let mut agent = super::agent_for_repetition(config, i)?;
    let mut run = agent.new_run(&task.input);
    run.suite = Some(suite.name.clone());
    run.task = Some(task.id.clone());
    run.labels.extend(task.labels.clone());
    if repeat > 1 {
        // The repetition (and so its seed) is a parameter of the run: replays read it here.
        run.labels.insert(
            tapedeck_agent::model::REPEAT_LABEL.to_owned(),
            (i + 1).to_string(),
        );
    }
    let (run, _) = agent.run_recorded(writer, run)?;
    writer.flush()?;
    Ok(run)
}
