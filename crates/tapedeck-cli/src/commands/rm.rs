//! `tapedeck rm`: remove runs by id or by age.

use anyhow::bail;
use tapedeck_store::RunFilter;
use tapedeck_trace::RunId;

use crate::Exit;
use crate::settings::Settings;

/// Remove runs (their blobs stay until `tapedeck gc`)
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck rm 3f9c2e1a 77d0e2b4\n  tapedeck rm --older-than 30d --dry-run\n  tapedeck rm --older-than 30d && tapedeck gc"
)]
pub struct Args {
    /// Runs to remove: short ids or unique prefixes of full ids
    #[arg(
        value_name = "RUN",
        required_unless_present = "older_than",
        conflicts_with = "older_than"
    )]
    runs: Vec<String>,
    /// Remove every run started longer ago than this (30d, 12h, 2w)
    #[arg(long, value_name = "AGE", value_parser = crate::when::age_arg)]
    older_than: Option<i64>,
    /// Say what would be removed, remove nothing
    #[arg(long)]
    dry_run: bool,
}

/// Runs `tapedeck rm`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let Some(store) = settings.open_existing_store()? else {
        bail!("the store `{}` does not exist", settings.store);
    };
    let ids: Vec<RunId> = match args.older_than {
        Some(age) => {
            let cutoff = crate::when::ago(age);
            let filter = RunFilter {
                before: Some(cutoff),
                ..RunFilter::default()
            };
            store.runs(&filter)?.into_iter().map(|r| r.id).collect()
        }
        None => args
            .runs
            .iter()
            .map(|r| store.resolve_run(r))
            .collect::<Result<_, _>>()?,
    };
    if args.dry_run {
        for id in &ids {
            anstream::println!("would remove {}", id.short());
        }
        anstream::println!(
            "{} run{} would be removed",
            ids.len(),
            crate::render::plural(ids.len() as u64)
        );
        return Ok(Exit::Ok);
    }
    let removed = store.remove_runs(&ids)?;
    anstream::println!(
        "removed {removed} run{}; `tapedeck gc` reclaims the space of blobs no run uses",
        crate::render::plural(removed as u64)
    );
    Ok(Exit::Ok)
}
