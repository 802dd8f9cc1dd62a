//! `tapedeck export RUN`: write a run as a portable tape, or as OpenTelemetry (OTLP/JSON) spans.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::Exit;
use crate::settings::Settings;

/// Tape formats `export` writes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// Canonical JSONL: a header line, then one event a line with its blobs inlined
    Jsonl,
    /// OTLP/JSON trace spans following the OpenTelemetry GenAI semantic conventions
    Otel,
}

/// Write a run as a portable tape (the format of golden baselines)
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck export 3f9c2e1a > incident.jsonl\n  tapedeck export 3f9c2e1a -o golden/support/tapes/incident/1.jsonl\n  tapedeck export 3f9c2e1a --format otel -o incident.otlp.json"
)]
pub struct Args {
    /// The run: its short id, or a unique prefix of its full id
    run: String,
    /// The tape format
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Write to this file instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs `tapedeck export`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let store = settings.open_required_store()?;
    let id = store.resolve_run(&args.run)?;
    let export = |out: &mut dyn Write| match args.format {
        Format::Jsonl => store.export_tape(&id, out),
        Format::Otel => store.export_otel(&id, out),
    };
    match &args.output {
        Some(path) => {
            // Written aside and renamed, so a failed export never leaves half a tape.
            let mut tmp = path.clone().into_os_string();
            tmp.push(".partial");
            let tmp = PathBuf::from(tmp);
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create `{}`", tmp.display()))?;
            let mut out = std::io::BufWriter::new(file);
            export(&mut out)?;
            out.flush()?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            export(&mut out)?;
        }
    }
    Ok(Exit::Ok)
}
