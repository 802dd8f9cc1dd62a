//! `tapedeck import FILE…`: read tapes, or OpenTelemetry (OTLP/JSON) traces, into the store.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use tapedeck_store::{ImportOutcome, Store, StoreError};

use crate::Exit;
use crate::render;
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
    after_help = "Each tape is imported whole or not at all; a run already in the store is skipped.\nWith --format otel, each trace becomes a run: spans written by `tapedeck export --format otel`\ncome back as the same run; GenAI spans from other tools import as best they can (chat spans\nare steps, execute_tool spans tool calls; cost and unreported usage stay unknown).\n\nExamples:\n  tapedeck import incident.jsonl\n  tapedeck import golden/support/tapes/*/*.jsonl\n  cat run.jsonl | tapedeck import -\n  tapedeck import --format otel incident.otlp.json"
)]
pub struct Args {
    /// Tape files (`-` for standard input)
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The input format
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
}

fn import(
    store: &Store,
    format: Format,
    input: &mut dyn BufRead,
) -> Result<Vec<ImportOutcome>, StoreError> {
    match format {
        Format::Jsonl => store.import_tape(input).map(|o| vec![o]),
        Format::Otel => store.import_otel(input),
    }
}

/// Runs `tapedeck import`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let store = settings.open_store()?;
    let mut failed = 0;
    for path in &args.files {
        let name = path.display().to_string();
        let outcome = if name == "-" {
            import(&store, args.format, &mut std::io::stdin().lock())
        } else {
            match std::fs::File::open(path) {
                Ok(file) => import(&store, args.format, &mut BufReader::new(file)),
                Err(e) => {
                    render::error(&anyhow::anyhow!("cannot read `{name}`: {e}"));
                    failed += 1;
                    continue;
                }
            }
        };
        match outcome {
            Ok(outcomes) => {
                for outcome in outcomes {
                    match outcome {
                        ImportOutcome::Imported { id, events } => {
                            anstream::println!(
                                "imported {} ({events} events) from {name}",
                                id.short()
                            );
                        }
                        ImportOutcome::AlreadyPresent(id) => {
                            anstream::println!(
                                "skipped {} from {name}: already in the store",
                                id.short()
                            );
                        }
                    }
                }
            }
            Err(e) => {
                render::error(&anyhow::anyhow!("{name}: {e}"));
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 { Exit::Ok } else { Exit::Error })
}
