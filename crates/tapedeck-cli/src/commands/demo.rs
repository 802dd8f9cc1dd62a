//! `tapedeck demo`: records the demo runs — the browser-retry incident among them — into the
//! store, shows them, and prints the commands to explore them.
//!
//! The runs are the tapes in `fixtures/tapes/`, compiled into the binary so the demo works from
//! any directory; each is recorded as a new run (fresh id, times moved to now).

use std::path::Path;

use anyhow::Context as _;
use tapedeck_store::{DEFAULT_STORE_PATH, ImportOutcome, Store};
use tapedeck_trace::tape::{self, TapeEvent};
use tapedeck_trace::{RunId, Timestamp};

use crate::Exit;
use crate::render::{self, DIM, HEADING, WARN};
use crate::settings::Settings;

/// The demo tapes: (name, tape).
const DEMO_TAPES: [(&str, &str); 4] = [
    (
        "clean",
        include_str!("../../../../fixtures/tapes/clean.jsonl"),
    ),
    (
        "tool-denied",
        include_str!("../../../../fixtures/tapes/tool-denied.jsonl"),
    ),
    (
        "long-run",
        include_str!("../../../../fixtures/tapes/long-run.jsonl"),
    ),
    (
        "browser-retry-incident",
        include_str!("../../../../fixtures/tapes/browser-retry-incident.jsonl"),
    ),
];

/// How many calls the unguarded agent made in a day in the incident the demo retells.
const UNGUARDED_CALLS_PER_DAY: u64 = 1_800;

/// Record the demo runs (the browser-retry incident among them) and show them
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  tapedeck demo\n  tapedeck --store /tmp/demo.db demo")]
pub struct Args {}

/// Runs `tapedeck demo`.
pub fn run(settings: &Settings, _args: Args) -> anyhow::Result<Exit> {
    let store = settings.open_store()?;
    let now = Timestamp::now().as_micros();
    let mut recorded = Vec::new();
    for (i, (name, text)) in DEMO_TAPES.iter().enumerate() {
        // Space the runs a minute apart, oldest first, the last ending about now.
        let end = now - (DEMO_TAPES.len() - 1 - i) as i64 * 60_000_000;
        let rebased = rebase(text, end).with_context(|| format!("demo tape `{name}`"))?;
        match store.import_tape(&mut rebased.as_bytes())? {
            ImportOutcome::Imported { id, .. } | ImportOutcome::AlreadyPresent(id) => {
                recorded.push(id);
            }
        }
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
        settings.store.display()
    );
    anstream::println!("{}\n", super::ls::table(&runs).trim_fmt());
    let incident = *recorded.last().context("no demo runs")?;
    show_incident(&store, &incident)?;
    let short = incident.short();
    // The commands must find these runs: they name the store unless it is the default one.
    let tapedeck = if settings.store == Path::new(DEFAULT_STORE_PATH) {
        "tapedeck".to_owned()
    } else {
        format!(
            "tapedeck --store {}",
            shell_word(&settings.store.display().to_string())
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
            format!("{tapedeck} export {short} > incident.jsonl"),
            "the run as a portable tape",
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
    if let Some(top) = super::show::tool_spend(&events)
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

/// A copy of a tape as a new run: a fresh id, and every time shifted so the run ends at
/// `end` (microseconds since the epoch).
fn rebase(text: &str, end: i64) -> anyhow::Result<String> {
    let mut lines = text.lines();
    let mut header = tape::parse_header(lines.next().context("empty tape")?)?;
    let last = header
        .run
        .ended_at
        .unwrap_or(header.run.started_at)
        .as_micros();
    let shift = |ts: Timestamp| Timestamp::from_micros(ts.as_micros() - last + end);
    header.run.id = RunId::new();
    header.run.started_at = shift(header.run.started_at);
    header.run.ended_at = header.run.ended_at.map(shift);
    let mut out = tape::to_line(&header)?;
    for (i, line) in lines.enumerate() {
        let mut event: TapeEvent = tape::parse_event(line, i + 2)?;
        event.event.at = shift(event.event.at);
        out += &tape::to_line(&event)?;
    }
    Ok(out)
}
