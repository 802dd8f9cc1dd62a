//! `tapedeck import FILE…`: read tapes, or OpenTelemetry (OTLP/JSON) traces, into the store.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use tapedeck_store::{ImportOutcome, Store};

use crate::Exit;
use crate::settings::Settings;

/// Formats `import` reads.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// Tapes: canonical JSONL, as written by `export`
    Jsonl,
    /// OTLP/JSON trace spans (GenAI semantic conventions): one run per trace
    Otel,
}

/// Read tapes (JSONL, as written by `export`) into the store
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every tape is checked before any is imported: one that cannot be imported is an input error\n(exit 2) and nothing is imported. A run already in the store is skipped.\nWith --format otel, each trace becomes a run: spans written by `tapedeck export --format otel`\ncome back as the same run; GenAI spans from other tools import as best they can (chat spans\nare steps, execute_tool spans tool calls; cost and unreported usage stay unknown).\n\nExamples:\n  tapedeck import incident.jsonl\n  tapedeck import golden/support/tapes/*/*.jsonl\n  cat run.jsonl | tapedeck import -\n  tapedeck import --format otel incident.otlp.json"
)]
pub struct Args {
    /// Tape files (`-` for standard input)
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The input format
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
}

/// Runs `tapedeck import`: every input is read and checked before any is imported, so an
/// input error leaves the store as it was.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let name = path.display().to_string();
        let mut bytes = Vec::new();
        let read = if name == "-" {
            std::io::stdin().lock().read_to_end(&mut bytes)
        } else {
            std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
        };
        read.with_context(|| format!("cannot read `{name}`"))?;
        let tapes = match args.format {
            Format::Jsonl => vec![bytes],
            Format::Otel => Store::otel_tapes(&mut bytes.as_slice())
                .with_context(|| name.clone())?
                .into_iter()
                .map(String::into_bytes)
                .collect(),
        };
        inputs.push((name, tapes));
    }
    // Every tape is imported into a scratch store in memory first, as `golden check` does
    // with its baselines: one that does not import is an input error before the store is
    // opened.
    let scratch = Store::open(":memory:").context("cannot open a store in memory")?;
    for (name, tapes) in &inputs {
        for tape in tapes {
            scratch
                .import_tape(&mut tape.as_slice())
                .with_context(|| name.clone())?;
        }
    }
    let store = settings.open_store()?;
    for (name, tapes) in &inputs {
        for tape in tapes {
            match store
                .import_tape(&mut tape.as_slice())
                .with_context(|| name.clone())?
            {
                ImportOutcome::Imported { id, events } => {
                    anstream::println!("imported {} ({events} events) from {name}", id.short());
                }
                ImportOutcome::AlreadyPresent(id) => {
                    anstream::println!("skipped {} from {name}: already in the store", id.short());
                }
            }
        }
    }
    Ok(Exit::Ok)
}
