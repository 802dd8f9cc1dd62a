//! `tapedeck merge OTHER.db`: copy in the runs of another store.

use std::path::PathBuf;

use anyhow::bail;
use tapedeck_store::Store;

use crate::Exit;
use crate::settings::Settings;

/// Copy every run of another store into this one (runs already here are skipped)
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck merge ci-artifacts/tapedeck.db\n  tapedeck --store team.db merge laptop.db"
)]
pub struct Args {
    /// The store to copy runs from
    #[arg(value_name = "OTHER.db")]
    other: PathBuf,
}

/// Runs `tapedeck merge`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    if !args.other.exists() {
        bail!("`{}` does not exist", args.other.display());
    }
    let same = match (args.other.canonicalize(), settings.store.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        bail!(
            "cannot merge the store `{}` into itself",
            args.other.display()
        );
    }
    let other = Store::open(&args.other)?;
    let store = settings.open_store()?;
    let report = store.merge_from(&other)?;
    anstream::println!(
        "merged {} run{} from {} ({} already present)",
        report.added.len(),
        crate::render::plural(report.added.len() as u64),
        args.other.display(),
        report.skipped
    );
    Ok(Exit::Ok)
}
