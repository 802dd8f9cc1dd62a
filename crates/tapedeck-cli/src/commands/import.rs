//! `tapedeck import FILE…`: read tapes into the store.

use std::io::BufReader;
use std::path::PathBuf;

use tapedeck_store::ImportOutcome;

use crate::Exit;
use crate::render;
use crate::settings::Settings;

/// Read tapes (JSONL, as written by `export`) into the store
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each tape is imported whole or not at all; a run already in the store is skipped.\n\nExamples:\n  tapedeck import incident.jsonl\n  tapedeck import golden/support/tapes/*/*.jsonl\n  cat run.jsonl | tapedeck import -"
)]
pub struct Args {
    /// Tape files (`-` for standard input)
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Runs `tapedeck import`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let store = settings.open_store()?;
    let mut failed = 0;
    for path in &args.files {
        let name = path.display().to_string();
        let outcome = if name == "-" {
            store.import_tape(&mut std::io::stdin().lock())
        } else {
            match std::fs::File::open(path) {
                Ok(file) => store.import_tape(&mut BufReader::new(file)),
                Err(e) => {
                    render::error(&anyhow::anyhow!("cannot read `{name}`: {e}"));
                    failed += 1;
                    continue;
                }
            }
        };
        match outcome {
            Ok(ImportOutcome::Imported { id, events }) => {
                anstream::println!("imported {} ({events} events) from {name}", id.short());
            }
            Ok(ImportOutcome::AlreadyPresent(id)) => {
                anstream::println!("skipped {} from {name}: already in the store", id.short());
            }
            Err(e) => {
                render::error(&anyhow::anyhow!("{name}: {e}"));
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 { Exit::Ok } else { Exit::Error })
}
