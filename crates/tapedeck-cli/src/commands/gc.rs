//! `tapedeck gc`: drop blobs no run references, then reclaim the space.

use anyhow::bail;

use crate::Exit;
use crate::settings::Settings;

/// Drop blobs no run references, then compact the store file
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  tapedeck rm --older-than 30d && tapedeck gc")]
pub struct Args {}

/// Runs `tapedeck gc`.
pub fn run(settings: &Settings, _args: Args) -> anyhow::Result<Exit> {
    let Some(store) = settings.open_existing_store()? else {
        bail!("the store `{}` does not exist", settings.store);
    };
    let report = store.gc()?;
    anstream::println!(
        "removed {} unreferenced blob{}; store {} → {}",
        report.blobs_removed,
        crate::render::plural(report.blobs_removed),
        bytes(report.bytes_before),
        bytes(report.bytes_after)
    );
    Ok(Exit::Ok)
}

/// `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
