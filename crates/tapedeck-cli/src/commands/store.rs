//! `tapedeck store`: the store itself. `migrate` creates or upgrades its schema explicitly;
//! `spools` lists the spools a writer left when it lost a PostgreSQL store, and what of them is
//! not merged back yet.
//!
//! A SQLite file is migrated whenever it is opened; a PostgreSQL store never is, so that one
//! upgraded CI runner cannot lock a fleet of older proxies out: it is created and upgraded only
//! here, and every other command refuses it at another schema version, naming this one.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tapedeck_proxy::command_line::quote;
use tapedeck_store::{SCHEMA_VERSION, Store, StoreError, StoreLocation, pg};
use tapedeck_trace::{RunId, RunStatus};

use crate::Exit;
use crate::settings::Settings;

/// Manage the store itself
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck --store postgres://ci@db.internal:5432/tapedeck store migrate\n  tapedeck store migrate\n  tapedeck --store postgres://ci@db.internal:5432/tapedeck store spools"
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Migrate(MigrateArgs),
    Spools(SpoolsArgs),
}

/// List the spools left by writers that lost a PostgreSQL store, and what is not merged yet
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A writer that cannot reach its PostgreSQL store for `spool_after` (30 s) records into a SQLite\nspool file instead; `tapedeck --store URL merge SPOOL` brings it in. A spool whose every run the\nstore holds whole can be deleted.\n\nExamples:\n  tapedeck --store postgres://ci@db.internal:5432/tapedeck store spools\n  tapedeck --store postgres://ci@db.internal:5432/tapedeck store spools --dir /var/lib/agent/.tapedeck/spool"
)]
struct SpoolsArgs {
    /// The folder of spools
    #[arg(long, value_name = "DIR", default_value = tapedeck_store::DEFAULT_SPOOL_DIR)]
    dir: PathBuf,
}

/// Create the store, or upgrade its schema to this tapedeck's
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A PostgreSQL store (--store postgres://USER@HOST:PORT/DB, its password from PGPASSWORD or\n~/.pgpass) is created and upgraded only by this command; upgrade every tapedeck that writes to it\nfirst. A SQLite file is migrated whenever it is opened.\n\nExamples:\n  tapedeck --store postgres://ci@db.internal:5432/tapedeck store migrate\n  tapedeck store migrate"
)]
struct MigrateArgs {}

/// Runs `tapedeck store`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    match args.command {
        Command::Migrate(MigrateArgs {}) => migrate(settings),
        Command::Spools(args) => spools(settings, &args.dir),
    }
}

fn migrate(settings: &Settings) -> anyhow::Result<Exit> {
    let (from, to) = match &settings.store {
        StoreLocation::Postgres(target) => {
            let report = pg::migrate(target)?;
            (report.from, report.to)
        }
        StoreLocation::File(path) => {
            let existed = path.exists();
            drop(Store::open(path)?);
            (if existed { SCHEMA_VERSION } else { 0 }, SCHEMA_VERSION)
        }
    };
    let store = format!("`{}`", settings.store);
    if from == to {
        anstream::println!("the store {store} is at schema version {to} already");
    } else if from == 0 {
        anstream::println!("created the store {store} (schema version {to})");
    } else {
        anstream::println!("upgraded the store {store} from schema version {from} to {to}");
    }
    Ok(Exit::Ok)
}

/// `store spools`: each spool file of `dir` with how many of its runs the store lacks, or
/// lacks events or the ending of.
fn spools(settings: &Settings, dir: &Path) -> anyhow::Result<Exit> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "db"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot list `{}`", dir.display())),
    };
    if files.is_empty() {
        anstream::println!("no spools in {}", dir.display());
        return Ok(Exit::Ok);
    }
    files.sort();
    let store = settings.open_required_store()?;
    for file in files {
        let spool = Store::open(&file)
            .with_context(|| format!("cannot open the spool `{}`", file.display()))?;
        let runs = spool.runs(&Default::default())?;
        let mut to_merge = 0;
        for run in &runs {
            if !merged(&store, &spool, &run.id, run.status)? {
                to_merge += 1;
            }
        }
        let n = runs.len();
        let plural = crate::render::plural(n as u64);
        if to_merge == 0 {
            anstream::println!(
                "{}  {n} run{plural}, all merged: it can be deleted",
                file.display()
            );
        } else {
            anstream::println!(
                "{}  {n} run{plural}, {to_merge} to merge: tapedeck --store {} merge {}",
                file.display(),
                quote(&[settings.store.to_string()]),
                quote(&[file.display().to_string()])
            );
        }
    }
    Ok(Exit::Ok)
}

/// Whether the store holds the spool's run whole: every event, and its ending once the spool
/// has one.
fn merged(store: &Store, spool: &Store, id: &RunId, status: RunStatus) -> anyhow::Result<bool> {
    let here = match store.run(id) {
        Ok(run) => run,
        Err(StoreError::RunNotFound(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let unfinished =
        |status: RunStatus| matches!(status, RunStatus::Running | RunStatus::Incomplete);
    // The store's copy is unfinished while the spool's has its ending: the ending is missing.
    let ending_missing = unfinished(here.status) && !unfinished(status);
    Ok(!ending_missing && store.last_seq(id)? >= spool.last_seq(id)?)
}
