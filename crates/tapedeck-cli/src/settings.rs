//! Global arguments and the settings resolved from them (flag, then environment, then
//! default) before any command starts.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use tapedeck_store::{DEFAULT_STORE_PATH, Store, StoreLocation};

/// Arguments every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// The store: a SQLite file, or a PostgreSQL database as postgres://USER@HOST:PORT/DB (its
    /// password from PGPASSWORD or ~/.pgpass) [default: .tapedeck/tapedeck.db]
    #[arg(long, global = true, env = "TAPEDECK_STORE", value_name = "PATH|URL")]
    store: Option<std::ffi::OsString>,
}

/// What every command works with.
#[derive(Debug)]
pub struct Settings {
    /// The store.
    pub store: StoreLocation,
}

impl Settings {
    /// Resolves the global arguments. A store given as a URL is told from a path here, before
    /// any command can create a file or folder from it.
    pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Self> {
        let given = args
            .store
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_STORE_PATH.into());
        Ok(Self {
            store: StoreLocation::parse(&given)?,
        })
    }

    /// Whether the store is the default file, which commands need not name.
    pub fn is_default_store(&self) -> bool {
        self.store
            .file()
            .is_some_and(|path| path == std::path::Path::new(DEFAULT_STORE_PATH))
    }

    /// The folder beside the store file, for what a command writes next to it (the demo's
    /// agents); `.tapedeck` for a PostgreSQL store.
    pub fn folder_beside_store(&self) -> PathBuf {
        match self.store.file().and_then(|path| path.parent()) {
            Some(parent) => parent.to_path_buf(),
            None if self.store.file().is_some() => PathBuf::new(),
            None => PathBuf::from(".tapedeck"),
        }
    }

    /// Opens the store, creating a file if needed (a PostgreSQL store is created only by
    /// `tapedeck store migrate`).
    pub fn open_store(&self) -> anyhow::Result<Store> {
        Store::open_location(&self.store).map_err(anyhow::Error::from)
    }

    /// Opens the store, which must exist: for commands that only read or remove runs, so a
    /// mistyped `--store` is an error rather than a new, empty store.
    pub fn open_required_store(&self) -> anyhow::Result<Store> {
        match self.open_existing_store()? {
            Some(store) => Ok(store),
            None => bail!(
                "the store `{}` does not exist (record runs with `tapedeck demo`, or pass another --store)",
                self.store
            ),
        }
    }

    /// Opens the store only if it exists. A PostgreSQL store always "exists": one without a
    /// schema is refused by opening it, with the command that creates it.
    pub fn open_existing_store(&self) -> anyhow::Result<Option<Store>> {
        let StoreLocation::File(path) = &self.store else {
            return self.open_store().map(Some);
        };
        // A path that cannot name a file (its parent is a regular file, or unreadable) is an
        // error, not an empty store: `Path::exists` would say "no such file" for both.
        if let Err(e) = std::fs::metadata(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            bail!("cannot open the store `{}`: {e}", path.display());
        }
        Store::open_existing(path)
            .with_context(|| format!("cannot open the store `{}`", path.display()))
    }
}
