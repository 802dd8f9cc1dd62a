//! `tapedeck golden record SUITE`: run every task once with the agent version, recorded, and
//! keep each run as the task's baseline tape and behaviour snapshot.

use std::path::PathBuf;

use anyhow::bail;
use tapedeck_diff::golden::Suite;
use tapedeck_golden::Recorder;
use tapedeck_proxy::command_line;
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
            let upstreams = tapedeck_proxy::http::Upstreams::given_or_env(
                args.upstream_openai.as_deref(),
                args.upstream_anthropic.as_deref(),
            );
            let shown = PathBuf::from(command_line::quote(&command.argv));
            let recorder = Recorder::Command {
                command,
                upstreams,
                interrupts: crate::interrupt::forward,
            };
            (recorder, shown)
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
            let recorder = Recorder::Agent {
                config: Box::new(config),
                ask: crate::terminal_approval::ask,
            };
            (recorder, agent_path)
        }
    };
    recorder.check()?;
    let tasks: Vec<_> = super::select(&suite, &args.tasks)?
        .into_iter()
        .cloned()
        .collect();
    let task_refs: Vec<_> = tasks.iter().collect();
    let store = settings.open_store()?;
    let writer = store.writer()?;
    let repeat = super::repeat_of(&suite, args.repeat);
    let recordings =
        tapedeck_golden::record(&store, &writer, &suite, &task_refs, &recorder, repeat)?;
    let mut header = vec!["TASK", "RUN", "STOP REASON", "TOOL CALLS", "TOKENS", "COST"];
    if repeat > 1 {
        header.insert(1, "REP");
    }
    let mut table = render::table(&header);
    let mut failed = 0;
    for recording in &recordings {
        for (i, run) in recording.runs.iter().enumerate() {
            table.add_row(row(&recording.task.id, run, i, repeat));
        }
        if let Some(e) = &recording.error {
            // Runs are in the store already: the other tasks still recorded, and the command
            // fails with 1, not as an input error.
            failed += 1;
            let done = recording.runs.len();
            let baseline = if done == 0 {
                "its baseline is as it was".to_owned()
            } else {
                format!(
                    "its baseline now holds only the {done} run{} recorded before; record it again",
                    render::plural(done as u64)
                )
            };
            render::error(&anyhow::anyhow!(
                "task `{}`: {} ({baseline})",
                recording.task.id,
                render::one_line(e)
            ));
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

/// The table row of repetition `i` (from 0) of a task.
fn row(task: &str, run: &Run, i: usize, repeat: usize) -> Vec<String> {
    let t = &run.totals;
    let mut row = vec![
        task.to_owned(),
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
    row
}
