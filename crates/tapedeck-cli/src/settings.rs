//! Global arguments and the settings resolved from them (flag, then environment, then
//! default) before any command starts.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use tapedeck_store::{DEFAULT_STORE_PATH, Store};

/// Arguments every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// The store file [default: .tapedeck/tapedeck.db]
    #[arg(long, global = true, env = "TAPEDECK_STORE", value_name = "PATH")]
    store: Option<PathBuf>,
}

/// What every command works with.
#[derive(Debug)]
pub struct Settings {
    /// The store file.
    pub store: PathBuf,
}

impl Settings {
    /// Resolves the global arguments.
    pub fn resolve(args: &GlobalArgs) -> Self {
        Self {
            store: args
                .store
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_PATH)),
        }
    }

    /// Opens (creating if needed) the store.
    pub fn open_store(&self) -> anyhow::Result<Store> {
        Store::open(&self.store).map_err(anyhow::Error::from)
    }

    /// Opens the store, which must exist: for commands that only read or remove runs, so a
    /// mistyped `--store` is an error rather than a new, empty store.
    pub fn open_required_store(&self) -> anyhow::Result<Store> {
        match self.open_existing_store()? {
            Some(store) => Ok(store),
            None => bail!(
                "the store `{}` does not exist (record runs with `tapedeck demo`, or pass another --store)",
                self.store.display()
            ),
        }
    }

    /// Opens the store only if it exists.
    pub fn open_existing_store(&self) -> anyhow::Result<Option<Store>> {
        // A path that cannot name a file (its parent is a regular file, or unreadable) is an
        // error, not an empty store: `Path::exists` would say "no such file" for both.
        if let Err(e) = std::fs::metadata(&self.store)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            bail!("cannot open the store `{}`: {e}", self.store.display());
        }
        Store::open_existing(&self.store)
            .with_context(|| format!("cannot open the store `{}`", self.store.display()))
    }
}
