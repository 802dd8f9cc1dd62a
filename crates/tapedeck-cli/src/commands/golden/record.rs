//! `tapedeck golden record SUITE`: run every task once with the agent version, recorded, and
//! keep each run as the task's baseline tape and behaviour snapshot.

use std::path::PathBuf;

use tapedeck_agent::Agent;
use tapedeck_diff::golden::Suite;

use crate::Exit;
use crate::render::{self, DIM};
use crate::settings::Settings;

/// Record the baseline of every task (or the named ones): tape and snapshot
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each task runs once with the agent version (recorded in the store with its suite and task), its\nrun is exported to tapes/<task>/1.jsonl and its behaviour written to snapshots/<task>.snap.\nWith --repeat N each task runs N times (tapes/<task>/1.jsonl … N.jsonl; the snapshot is that of\nrun 1); run i of a scripted model has its script's `seed` moved to seed + i - 1, so `one_of`\nrules vary as a real model does. With --agent, suite.yaml is pointed at that version, so a later\n`golden check` without --agent checks the same one.\n\nExamples:\n  tapedeck golden record golden/support\n  tapedeck golden record golden/support --agent agents/support-v2.yaml\n  tapedeck golden record golden/support password-reset refund-order\n  tapedeck golden record golden/noisy --repeat 5"
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
}

/// Runs `tapedeck golden record`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let mut suite = Suite::load(&args.suite)?;
    let (config, agent_path) = super::load_agent(&suite, args.agent.as_deref())?;
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
    for task in &tasks {
        for i in 0..repeat {
            let mut agent = Agent::from_config(super::for_repetition(&config, i))?;
            let mut run = agent.new_run(&task.input);
            run.suite = Some(suite.name.clone());
            run.task = Some(task.id.clone());
            run.labels.extend(task.labels.clone());
            let (run, outcome) = agent.run_recorded(&writer, run)?;
            writer.flush()?;
            super::export_tape(&store, &run.id, &suite.repeat_tape_path(&task.id, i + 1))?;
            if i == 0 {
                super::write_snapshot(&store, &suite, &task.id, &run.id)?;
            }
            let t = &run.totals;
            let mut row = vec![
                task.id.clone(),
                run.id.short(),
                outcome.stop_reason.to_string(),
                t.tool_calls_total().to_string(),
                render::count(t.tokens_total()),
                render::usd(t.cost_usd),
            ];
            if repeat > 1 {
                row.insert(1, (i + 1).to_string());
            }
            table.add_row(row);
        }
        // Tapes of an earlier, longer recording belong to another baseline.
        for n in (repeat + 1)..=suite.recorded_repetitions(&task.id) {
            super::remove_if_present(&suite.repeat_tape_path(&task.id, n))?;
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
        tasks.len(),
        render::plural(tasks.len() as u64),
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
    Ok(Exit::Ok)
}
