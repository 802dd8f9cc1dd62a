//! `tapedeck diff A B`: two runs side by side — for proxy runs what changed between their agent
//! versions, then metric deltas against tolerances, the tool-call trajectories aligned with
//! their first divergence, and the answer diff.

use std::path::PathBuf;

use anyhow::Context as _;
use tapedeck_diff::{RunSummary, Tolerances, diff_runs, report};

use crate::Exit;
use crate::json_output;
use crate::render::{BAD, GOOD};
use crate::settings::Settings;

/// Output formats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Format {
    /// Text for the terminal
    Text,
    /// JSON for tools
    Json,
    /// Markdown for a pull-request comment
    Md,
    /// One self-contained HTML page
    Html,
}

/// Compare two runs: metric drift against tolerances, trajectories, answers
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Tolerances (growth allowed before it is drift): tool_calls=+20% steps=+20% tokens=+15% cost=+10%\nanswer_similarity=0.9 stop_reason=equal latency_p95=off. Exit codes: 0 no drift, 1 drift, 2 bad input.\n\nTwo runs recorded with `tapedeck record` first say what changed between their agent versions: the\nmodels, the system prompt as a line diff, the tools added, removed and changed (information, not\ndrift).\n\nExamples:\n  tapedeck diff 3f9c2e1a 7d2e91b0\n  tapedeck diff 3f9c2e1a 7d2e91b0 --tolerance tool_calls=+50% --tolerance answer_similarity=0.8\n  tapedeck diff 3f9c2e1a 7d2e91b0 --format md > comment.md"
)]
pub struct Args {
    /// The baseline run
    #[arg(value_name = "BASELINE")]
    baseline: String,
    /// The candidate run
    #[arg(value_name = "CANDIDATE")]
    candidate: String,
    /// Override a tolerance (repeatable): KEY=VALUE
    #[arg(long = "tolerance", short = 't', value_name = "KEY=VALUE", value_parser = super::parse_label)]
    tolerances: Vec<(String, String)>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Write to this file instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs `tapedeck diff`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let mut tolerances = Tolerances::default();
    for (key, value) in &args.tolerances {
        tolerances.set(key, value)?;
    }
    let store = settings.open_required_store()?;
    let a = store.resolve_run(&args.baseline)?;
    let b = store.resolve_run(&args.candidate)?;
    let diff = diff_runs(
        RunSummary::load(&store, &a)?,
        RunSummary::load(&store, &b)?,
        &tolerances,
    );
    let text = match args.format {
        Format::Text if args.output.is_none() => {
            print_text(&diff);
            None
        }
        Format::Text => Some(report::text(&diff)),
        Format::Json => Some(json_output::DIFF.to_text(&diff)?),
        Format::Md => Some(report::markdown(&diff)),
        Format::Html => Some(report::html(&diff)),
    };
    if let Some(text) = text {
        match &args.output {
            Some(path) => std::fs::write(path, text)
                .with_context(|| format!("cannot write `{}`", path.display()))?,
            None => anstream::print!("{text}"),
        }
    }
    Ok(if diff.drift { Exit::Findings } else { Exit::Ok })
}

/// The text report, with drift in color.
fn print_text(diff: &tapedeck_diff::RunDiff) {
    let (good, bad) = (GOOD, BAD);
    for line in report::text(diff).lines() {
        if line.ends_with("DRIFT") || line.starts_with("DRIFT") {
            anstream::println!("{bad}{line}{bad:#}");
        } else if line.starts_with("no drift") {
            anstream::println!("{good}{line}{good:#}");
        } else if line.starts_with("  -") || line.starts_with("    -") {
            // A removed tool call, or a removed line of the system prompt.
            anstream::println!("{bad}{line}{bad:#}");
        } else if line.starts_with("  +") || line.starts_with("    +") {
            anstream::println!("{good}{line}{good:#}");
        } else {
            anstream::println!("{line}");
        }
    }
}
