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
    after_help = "Each task runs once with the agent version (recorded in the store with its suite and task), its\nrun is exported to tapes/<task>/1.jsonl and its behaviour written to snapshots/<task>.snap.\nWith --agent, suite.yaml is pointed at that version, so a later `golden check` without --agent\nchecks the same one.\n\nExamples:\n  tapedeck golden record golden/support\n  tapedeck golden record golden/support --agent agents/support-v2.yaml\n  tapedeck golden record golden/support password-reset refund-order"
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
    let mut table = render::table(&["TASK", "RUN", "STOP REASON", "TOOL CALLS", "TOKENS", "COST"]);
    for task in &tasks {
        let mut agent = Agent::from_config(config.clone())?;
        let mut run = agent.new_run(&task.input);
        run.suite = Some(suite.name.clone());
        run.task = Some(task.id.clone());
        run.labels.extend(task.labels.clone());
        let (run, outcome) = agent.run_recorded(&writer, run)?;
        writer.flush()?;
        super::export_tape(&store, &run.id, &suite.tape_path(&task.id))?;
        super::write_snapshot(&store, &suite, &task.id, &run.id)?;
        let t = &run.totals;
        table.add_row(vec![
            task.id.clone(),
            run.id.short(),
            outcome.stop_reason.to_string(),
            t.tool_calls_total().to_string(),
            render::count(t.tokens_total()),
            render::usd(t.cost_usd),
        ]);
    }
    if args.agent.is_some() {
        suite.set_agent(&agent_path);
        suite.save()?;
    }
    anstream::println!("{}", table.trim_fmt());
    let dim = DIM;
    anstream::println!(
        "\nrecorded {} task{} of suite `{}` with {} {dim}(tapes in {}, snapshots in {}){dim:#}",
        tasks.len(),
        if tasks.len() == 1 { "" } else { "s" },
        suite.name,
        agent_path.display(),
        suite.dir.join("tapes").display(),
        suite.dir.join("snapshots").display(),
    );
    Ok(Exit::Ok)
}
