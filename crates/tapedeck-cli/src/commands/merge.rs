//! `tapedeck merge OTHER`: copy in the runs of another store, a file or a PostgreSQL database,
//! in either direction.

use std::ffi::OsString;

use anyhow::bail;
use tapedeck_store::{Store, StoreLocation};

use crate::Exit;
use crate::settings::Settings;

/// Copy every run of another store into this one (runs already here are skipped)
#[derive(Debug, clap::Args)]
#[command(
    after_help = "OTHER is a store file or a PostgreSQL store's postgres:// URL.\n\nExamples:\n  tapedeck merge ci-artifacts/tapedeck.db\n  tapedeck --store team.db merge laptop.db\n  tapedeck --store postgres://ci@db.internal/tapedeck merge runner-3.db\n  tapedeck --store laptop.db merge postgres://me@db.internal/tapedeck"
)]
pub struct Args {
    /// The store to copy runs from: a file or a postgres:// URL
    #[arg(value_name = "OTHER")]
    other: OsString,
}

/// Runs `tapedeck merge`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let other = StoreLocation::parse(&args.other)?;
    if let Some(path) = other.file()
        && !path.exists()
    {
        bail!("`{}` does not exist", path.display());
    }
    if other.same_as(&settings.store) {
        bail!("cannot merge the store `{other}` into itself");
    }
    let other_store = Store::open_location(&other)?;
    let store = settings.open_store()?;
    let report = store.merge_from(&other_store)?;
    // Runs present on both sides that got the other store's later events (a spool's).
    let extended = match report.extended.len() {
        0 => String::new(),
        n => format!(", extended {n} run{}", crate::render::plural(n as u64)),
    };
    anstream::println!(
        "merged {} run{} from {}{extended} ({} already present)",
        report.added.len(),
        crate::render::plural(report.added.len() as u64),
        other,
        report.skipped
    );
    Ok(Exit::Ok)
}
