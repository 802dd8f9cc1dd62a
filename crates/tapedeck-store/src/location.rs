//! Where a store lives: a SQLite file, or a PostgreSQL database named by its URL.
//!
//! Every command takes a store the same way (`--store`, `TAPEDECK_STORE`): a path is a SQLite
//! file, a `postgres://` or `postgresql://` URL a PostgreSQL store. [`StoreLocation::parse`] is
//! the one place that tells them apart, before anything can create a file or folder from a URL.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::pg::PgTarget;

/// A store's location, parsed once from what the user gave.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per command, parsed once; boxing the target would change the public variant"
)]
pub enum StoreLocation {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL database, its URL resolved with the environment as libpq would.
    Postgres(PgTarget),
}

impl StoreLocation {
    /// Parses a `--store` value: a `postgres://` or `postgresql://` URL (resolved with this
    /// process's environment: [`PgTarget::from_env`]), any other `scheme://` refused, anything
    /// else a file path.
    pub fn parse(given: &OsStr) -> Result<Self, StoreError> {
        let Some(scheme) = url_scheme(given) else {
            return Ok(Self::File(PathBuf::from(given)));
        };
        if matches!(scheme.as_str(), "postgres" | "postgresql") {
            // `url_scheme` only finds a scheme in valid UTF-8.
            let url = given.to_str().unwrap_or_default();
            return Ok(Self::Postgres(PgTarget::from_env(url)?));
        }
        Err(StoreError::UnsupportedScheme { scheme })
    }

    /// The file, for a SQLite store.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }

    /// Whether two locations are certainly the same store: the same file (both existing, by
    /// their canonical paths) or the same URL.
    pub fn same_as(&self, other: &StoreLocation) -> bool {
        match (self, other) {
            (Self::File(a), Self::File(b)) => match (a.canonicalize(), b.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            },
            (Self::Postgres(a), Self::Postgres(b)) => a.url() == b.url(),
            _ => false,
        }
    }
}

/// The file's path, or the URL (which never holds a password: [`PgTarget`] refuses one).
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Postgres(target) => write!(f, "{target}"),
        }
    }
}

/// The scheme of a value written as a URL (`postgres://…`), lowercased. Left alone, such a
/// value would name a folder `postgres:` and a store file deep inside it.
fn url_scheme(given: &OsStr) -> Option<String> {
    let text = given.to_str()?;
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
        let scheme = |text: &str| url_scheme(OsStr::new(text));
        assert_eq!(scheme("postgres://u@db/x").as_deref(), Some("postgres"));
        assert_eq!(scheme("SQLite://x.db").as_deref(), Some("sqlite"));
        for path in [
            ".tapedeck/tapedeck.db",
            "/tmp/a://b",
            "C:\\db",
            "a b://c",
            "://x",
        ] {
            assert_eq!(scheme(path), None, "{path}");
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        let error = StoreLocation::parse(OsStr::new("mysql://db/x")).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("`mysql://` stores are not supported"),
            "{error}"
        );
        assert!(matches!(
            StoreLocation::parse(OsStr::new("runs/a.db")).expect("a path"),
            StoreLocation::File(_)
        ));
    }
}
