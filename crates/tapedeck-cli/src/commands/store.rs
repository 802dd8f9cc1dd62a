//! `tapedeck store migrate`: create or upgrade a store's schema explicitly.
//!
//! A SQLite file is migrated whenever it is opened; a PostgreSQL store (#17) never is, so that
//! one upgraded CI runner cannot lock a fleet of older proxies out: it is created and upgraded
//! only here, and every other command refuses it at another schema version, naming this one.

use tapedeck_store::pg;
use tapedeck_store::{SCHEMA_VERSION, Store, StoreLocation};

use crate::Exit;
use crate::settings::Settings;

/// Manage the store itself
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck --store postgres://ci@db.internal:5432/tapedeck store migrate\n  tapedeck store migrate"
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Migrate(MigrateArgs),
}

/// Create the store, or upgrade its schema to this tapedeck's
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A PostgreSQL store (--store postgres://USER@HOST:PORT/DB, its password from PGPASSWORD or\n~/.pgpass) is created and upgraded only by this command; upgrade every tapedeck that writes to it\nfirst. A SQLite file is migrated whenever it is opened.\n\nExamples:\n  tapedeck --store postgres://ci@db.internal:5432/tapedeck store migrate\n  tapedeck store migrate"
)]
struct MigrateArgs {}

/// Runs `tapedeck store`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let Command::Migrate(MigrateArgs {}) = args.command;
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
