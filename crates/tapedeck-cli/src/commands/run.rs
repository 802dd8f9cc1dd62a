//! `tapedeck run AGENT.yaml --input "…"`: run an agent version once, guarded and recorded.

use std::path::PathBuf;

use tapedeck_agent::{Agent, LoadedConfig};
use tapedeck_trace::StopReason;

use crate::Exit;
use crate::render::{self, DIM};
use crate::settings::Settings;

/// Run an agent version once, within its budgets, and record the run
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints the answer, the stop reason and the run id. Exits 0 when the run ended `ok`, 1 for any other stop reason, 2 when the config is invalid.\n\nExamples:\n  tapedeck run agents/support.yaml --input \"How do I reset my password?\"\n  tapedeck run agents/research.yaml --input \"Is the Acme API healthy?\" --task vendor-health --label model=gpt-4.1"
)]
pub struct Args {
    /// The agent version (YAML or JSON)
    #[arg(value_name = "AGENT.yaml")]
    agent: PathBuf,
    /// The task input given to the agent
    #[arg(long, short = 'i')]
    input: String,
    /// The task id the run belongs to
    #[arg(long)]
    task: Option<String>,
    /// A label for the run (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = super::parse_label)]
    labels: Vec<(String, String)>,
}

/// Runs `tapedeck run`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let config = LoadedConfig::load(&args.agent)?;
    config.model()?;
    for warning in &config.warnings {
        render::warning(&format!("{}: {warning}", args.agent.display()));
    }
    let mut agent = Agent::from_config(config)?;
    let store = settings.open_store()?;
    let writer = store.writer()?;
    let mut run = agent.new_run(&args.input);
    run.task = args.task;
    run.labels.extend(args.labels);
    let (run, outcome) = agent.run_recorded(&writer, run)?;
    let dim = DIM;
    let style = render::status_style(run.status);
    if let Some(answer) = outcome.answer.as_ref().filter(|a| !a.is_empty()) {
        anstream::println!("{answer}\n");
    }
    let t = &run.totals;
    anstream::println!(
        "{style}{} — {}{style:#} {dim}· {} step{} · {} tool call{} · {} tokens · {}{dim:#}",
        run.status,
        outcome.stop_reason,
        t.steps,
        render::plural(t.steps),
        t.tool_calls_total(),
        render::plural(t.tool_calls_total()),
        render::count(t.tokens_total()),
        render::usd(t.cost_usd),
    );
    if let Some(error) = &outcome.error {
        anstream::println!("{dim}reason:{dim:#} {error}");
    }
    anstream::println!(
        "{dim}run{dim:#} {}  {dim}(tapedeck show {}){dim:#}",
        run.id.short(),
        run.id.short()
    );
    Ok(if outcome.stop_reason == StopReason::Ok {
        Exit::Ok
    } else {
        Exit::Findings
    })
}
