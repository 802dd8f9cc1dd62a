//! `tapedeck demo`: runs the demo agents — a support bot and the research agent of the
//! browser-retry incident — through the guarded runtime, records the runs into the store,
//! shows them, and prints the commands to explore them.
//!
//! The agent versions (`fixtures/agents/`: configs, scripted models, mock tools, an approvals
//! file) are compiled into the binary and written next to the store (`.tapedeck/demo/`), so
//! the demo works from any directory and its agents can be run again with `tapedeck run`.

use std::path::Path;

use anyhow::Context as _;
use tapedeck_agent::{Agent, LoadedConfig};
use tapedeck_store::Store;
use tapedeck_trace::RunId;

use crate::Exit;
use crate::render::{self, DIM, HEADING, WARN};
use crate::settings::Settings;

/// The demo's agent files: (file name, contents).
const AGENT_FILES: [(&str, &str); 7] = [
    (
        "support-bot.yaml",
        include_str!("../../../../fixtures/agents/support-bot.yaml"),
    ),
    (
        "support-bot.script.yaml",
        include_str!("../../../../fixtures/agents/support-bot.script.yaml"),
    ),
    (
        "approvals.yaml",
        include_str!("../../../../fixtures/agents/approvals.yaml"),
    ),
    (
        "research-bot.yaml",
        include_str!("../../../../fixtures/agents/research-bot.yaml"),
    ),
    (
        "research-bot.script.yaml",
        include_str!("../../../../fixtures/agents/research-bot.script.yaml"),
    ),
    (
        "support-bot-drift.yaml",
        include_str!("../../../../fixtures/agents/support-bot-drift.yaml"),
    ),
    (
        "support-bot-drift.script.yaml",
        include_str!("../../../../fixtures/agents/support-bot-drift.script.yaml"),
    ),
];

/// The candidate version the demo checks for drift against the support bot's runs.
const CANDIDATE: &str = "support-bot-drift.yaml";

/// The demo runs: (agent file, task id, input). The incident comes last.
const DEMO_RUNS: [(&str, &str, &str); 4] = [
    (
        "support-bot.yaml",
        "password-reset",
        "How do I reset my password?",
    ),
    (
        "support-bot.yaml",
        "refund",
        "Please refund order A-1234, it arrived broken.",
    ),
    (
        "support-bot.yaml",
        "webhook",
        "Send a test event to our webhook.",
    ),
    (
        "research-bot.yaml",
        "vendor-health",
        "Is the Acme payments API healthy right now?",
    ),
];

/// How many calls the unguarded agent made in a day in the incident the demo retells.
const UNGUARDED_CALLS_PER_DAY: u64 = 1_800;

/// Run the demo agents (the browser-retry incident among them), record and show the runs
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The demo's agent versions are written to a `demo/` folder beside the store, to read, edit and run again with `tapedeck run`.\n\nExamples:\n  tapedeck demo\n  tapedeck --store /tmp/demo.db demo"
)]
pub struct Args {}

/// Runs `tapedeck demo`.
pub fn run(settings: &Settings, _args: Args) -> anyhow::Result<Exit> {
    let store = settings.open_store()?;
    let dir = settings.folder_beside_store().join("demo");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo folder `{}`", dir.display()))?;
    for (name, text) in AGENT_FILES {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    let writer = store.writer()?;
    let mut recorded = Vec::new();
    for (file, task, input) in DEMO_RUNS {
        let config = LoadedConfig::load(&dir.join(file))?;
        let mut agent = Agent::from_config(config, crate::terminal_approval::ask)?;
        let mut run = agent.new_run(input);
        run.task = Some(task.to_owned());
        run.labels.insert("demo".to_owned(), "1".to_owned());
        let (run, _) = agent.run_recorded(&writer, run)?;
        recorded.push(run.id);
    }
    let mut runs = recorded
        .iter()
        .map(|id| store.run(id))
        .collect::<Result<Vec<_>, _>>()?;
    runs.sort_by_key(|run| std::cmp::Reverse(run.started_at));
    let h = HEADING;
    let dim = DIM;
    anstream::println!(
        "{h}recorded {} demo runs into {}{h:#}\n",
        runs.len(),
        settings.store
    );
    anstream::println!(
        "{}\n",
        super::ls::table(&runs, &store.shared_short_ids(&recorded)?).trim_fmt()
    );
    let incident = *recorded.last().context("no demo runs")?;
    show_incident(&store, &incident)?;
    let short = incident.short();
    // The commands must find these runs: they name the store unless it is the default one.
    let tapedeck = if settings.is_default_store() {
        "tapedeck".to_owned()
    } else {
        format!(
            "tapedeck --store {}",
            shell_word(&settings.store.to_string())
        )
    };
    anstream::println!("\n{h}explore{h:#}");
    let commands = [
        (
            format!("{tapedeck} show {short}"),
            "the incident's summary and timeline",
        ),
        (
            format!("{tapedeck} show {short} --audit"),
            "every gateway decision",
        ),
        (
            format!("{tapedeck} ls --stop-reason max_tool_calls"),
            "runs stopped by the tool-call budget",
        ),
        (
            format!("{tapedeck} stats"),
            "monitoring figures per agent version",
        ),
        (
            format!("{tapedeck} replay {short}"),
            "replay the incident offline, exactly",
        ),
        (
            format!("{tapedeck} export {short} > incident.jsonl"),
            "the run as a portable tape",
        ),
        (
            format!(
                "{tapedeck} run {} --input 'How do I reset my password?'",
                shell_word(&dir.join("support-bot.yaml").display().to_string())
            ),
            "run an agent again",
        ),
    ];
    let width = commands
        .iter()
        .map(|(cmd, _)| cmd.chars().count())
        .max()
        .unwrap_or(0);
    for (cmd, what) in commands {
        anstream::println!("  {cmd:<width$}  {dim}# {what}{dim:#}");
    }
    drift_report(
        &store,
        &writer,
        &dir,
        &tapedeck,
        &recorded[..recorded.len() - 1],
    )?;
    Ok(Exit::Ok)
}

/// `word`, single-quoted for a POSIX shell when it holds anything but plain path characters.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn show_incident(store: &Store, id: &RunId) -> anyhow::Result<()> {
    let run = store.run(id)?;
    let events = store.events(id)?;
    let h = HEADING;
    let w = WARN;
    anstream::println!("{h}the browser-retry incident, with budgets{h:#}");
    super::show::summary(&run, &events);
    if let Some(top) = tapedeck_diff::tool_spend(&events)
        .first()
        .filter(|t| t.calls > 0)
    {
        let per_call = top.cost_usd / top.calls as f64;
        let unguarded = per_call * UNGUARDED_CALLS_PER_DAY as f64;
        anstream::println!(
            "\n  {w}without budgets{w:#} the same loop made ~{} {} calls in a day: ~{} \
             ({} a call), and on-call needed 3 hours to find the load generator.\n  \
             with the safe defaults it stopped at {} calls, {} on {}.",
            render::thousands(UNGUARDED_CALLS_PER_DAY),
            top.tool,
            render::usd(Some(unguarded)),
            render::usd(Some(per_call)),
            top.calls,
            render::usd(Some(top.cost_usd)),
            top.tool,
        );
    }
    Ok(())
}

/// Replays the support bot's runs against its next version (tools from the recordings) and
/// prints what drifted: the check a CI job runs before that version ships.
fn drift_report(
    store: &Store,
    writer: &tapedeck_store::Writer,
    dir: &Path,
    tapedeck: &str,
    runs: &[RunId],
) -> anyhow::Result<()> {
    use tapedeck_diff::{RunSummary, Tolerances, diff_runs};
    let h = HEADING;
    let dim = DIM;
    let w = WARN;
    anstream::println!(
        "\n{h}checking the support bot's next version ({CANDIDATE}) against these runs{h:#}"
    );
    let candidate = LoadedConfig::load(&dir.join(CANDIDATE))?;
    let options = tapedeck_replay::Options::tools_only(candidate);
    let mut table = render::table(&[
        "TASK",
        "VERDICT",
        "TOOL CALLS",
        "TOKENS",
        "FIRST DIVERGENCE",
    ]);
    let mut drifting = 0;
    let mut first_drift = None;
    for id in runs {
        let report = tapedeck_replay::replay(store, writer, id, &options)?;
        let diff = diff_runs(
            RunSummary::load(store, id)?,
            RunSummary::load(store, &report.run.id)?,
            &Tolerances::default(),
        );
        drifting += usize::from(diff.drift);
        if diff.drift && first_drift.is_none() {
            first_drift = Some((id.short(), report.run.id.short()));
        }
        let metric = |name: &str| {
            diff.metrics
                .iter()
                .find(|m| m.metric == name)
                .map_or_else(String::new, |m| {
                    format!(
                        "{} → {} {}",
                        m.baseline,
                        m.candidate,
                        tapedeck_diff::report::change_text(m.change)
                    )
                })
        };
        table.add_row(vec![
            report.parent.task.clone().unwrap_or_default(),
            if diff.drift {
                "DRIFT".to_owned()
            } else {
                "ok".to_owned()
            },
            metric("tool_calls"),
            metric("tokens"),
            diff.first_divergence.as_ref().map_or_else(
                || "-".to_owned(),
                |d| match (&d.expected, &d.actual) {
                    (_, Some(actual)) => format!(
                        "call {}: {} {}",
                        d.candidate_index + 1,
                        actual.tool,
                        actual.args
                    ),
                    (Some(expected), None) => {
                        format!("call {} missing: {}", d.baseline_index + 1, expected.tool)
                    }
                    (None, None) => "-".to_owned(),
                },
            ),
        ]);
    }
    anstream::println!("{}", table.trim_fmt());
    if drifting > 0 {
        anstream::println!(
            "  {w}{drifting} of {} tasks drift{w:#} {dim}(beyond tolerance: {}){dim:#}",
            runs.len(),
            Tolerances::default()
        );
    }
    if let Some((baseline, candidate)) = first_drift {
        anstream::println!("  {dim}the whole diff:{dim:#} {tapedeck} diff {baseline} {candidate}");
    }
    Ok(())
}
