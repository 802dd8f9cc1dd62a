//! Global arguments and the settings resolved from them (flag, then environment, then
//! default) before any command starts.

use std::path::{Path, PathBuf};

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
    /// The PostgreSQL store's URL, for the one command that takes one yet (`store migrate`);
    /// `store` is then unused.
    pub postgres: Option<String>,
}

impl Settings {
    /// Resolves the global arguments. A store given as a URL is refused here, before any
    /// command can create a file or folder from it.
    /// `takes_url`: the command works on a PostgreSQL store (`store migrate`), whose URL is
    /// kept in [`Settings::postgres`].
    pub fn resolve(args: &GlobalArgs, takes_url: bool) -> anyhow::Result<Self> {
        let store = args
            .store
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_PATH));
        if let Some(scheme) = url_scheme(&store) {
            // The URL itself is not repeated: it may hold a password.
            if matches!(scheme.as_str(), "postgres" | "postgresql") {
                if takes_url {
                    let url = store
                        .to_str()
                        .context("the store URL is not UTF-8")?
                        .to_owned();
                    return Ok(Self {
                        store,
                        postgres: Some(url),
                    });
                }
                bail!("PostgreSQL stores are not supported yet; --store takes a SQLite file path");
            }
            bail!("`{scheme}://` stores are not supported; --store takes a SQLite file path");
        }
        Ok(Self {
            store,
            postgres: None,
        })
    }

    /// The store as a user named it, for messages: `postgres://…` or the file's path.
    pub fn store_display(&self) -> String {
        match &self.postgres {
            Some(url) => format!("`{url}`"),
            None => format!("`{}`", self.store.display()),
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

/// The scheme of a path that is written as a URL (`postgres://…`), lowercased. Left alone, the
/// path would name a folder `postgres:` and a store file deep inside it.
fn url_scheme(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_schemes() {
        assert_eq!(
            url_scheme(Path::new("postgres://u:p@db/x")).as_deref(),
            Some("postgres")
        );
        assert_eq!(
            url_scheme(Path::new("SQLite://x.db")).as_deref(),
            Some("sqlite")
        );
        for path in [
            ".tapedeck/tapedeck.db",
            "/tmp/a://b",
            "C:\\db",
            "a b://c",
            "://x",
        ] {
            assert_eq!(url_scheme(Path::new(path)), None, "{path}");
        }
    }
}
