//! `tapedeck run AGENT.yaml --input "…"`: run an agent version once, guarded and recorded.

use std::path::PathBuf;

use tapedeck_agent::Agent;
use tapedeck_agent::model::REPEAT_LABEL;
use tapedeck_trace::StopReason;

use crate::Exit;
use crate::interrupt::Interrupts;
use crate::render;
use crate::settings::Settings;

/// Run an agent version once, within its budgets, and record the run
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints the answer, the stop reason and the run id. Exits 0 when the run ended `ok`, 1 for any other stop reason, 2 when the config is invalid\n(nothing recorded), 130 / 143 when SIGINT / SIGTERM interrupted it: the run then ends\n`cancelled` after the model or tool call under way (a second signal stops at once).\n\nExamples:\n  tapedeck run agents/support.yaml --input \"How do I reset my password?\"\n  tapedeck run agents/research.yaml --input \"Is the Acme API healthy?\" --task vendor-health --label model=gpt-4.1"
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
    if args.labels.iter().any(|(k, _)| k == REPEAT_LABEL) {
        anyhow::bail!(
            "the label `{REPEAT_LABEL}` is kept for golden repetitions (a replay moves a scripted model's seed by it); choose another name"
        );
    }
    let config = super::load_runnable_agent(&args.agent)?;
    let mut agent = Agent::from_config(config, crate::terminal_approval::ask)?;
    let store = settings.open_store()?;
    let writer = store.writer()?;
    let mut run = agent.new_run(&args.input);
    run.task = args.task;
    run.labels.extend(args.labels);
    let interrupts = Interrupts::listen()?;
    agent.set_cancel_token(interrupts.token());
    let (run, outcome) = agent.run_recorded(&writer, run)?;
    if let Some(answer) = outcome.answer.as_ref().filter(|a| !a.is_empty()) {
        anstream::println!("{answer}\n");
    }
    let stop = outcome.stop_reason.to_string();
    for line in render::run_ending(&run, &stop, "step", outcome.error.as_deref()) {
        anstream::println!("{line}");
    }
    // A signal that came after the last step leaves an `ok` run `ok`, and the exit 0.
    if let Some(signal) = interrupts
        .received()
        .filter(|_| outcome.stop_reason == StopReason::Cancelled)
    {
        return Ok(Exit::Interrupted(signal));
    }
    Ok(if outcome.stop_reason == StopReason::Ok {
        Exit::Ok
    } else {
        Exit::Findings
    })
}
