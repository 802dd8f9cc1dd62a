//! The store on PostgreSQL (issue #17): connecting ([`PgTarget`], which reads what libpq would
//! read), the schema ([`migrate`], [`check`]) and an open store ([`PgStore`]).
//!
//! This is the foundation of the second backend; how it joins the SQLite store behind one
//! interface is planned in `POSTGRES.md` beside this crate's `Cargo.toml`.

mod connect;
mod schema;

use postgres::Client;

pub use connect::{PgSslMode, PgTarget, is_postgres_url};
pub use schema::{MigrateReport, check, migrate};

use crate::StoreError;

/// A store on PostgreSQL, open: its schema was checked to be this build's.
pub struct PgStore {
    target: PgTarget,
    client: Client,
}

impl PgStore {
    /// Connects to the store `url` names (resolved with this process's environment) and
    /// checks its schema; a database without one, or at another version, is refused with the
    /// command to run.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_target(PgTarget::from_env(url)?)
    }

    /// [`open`](PgStore::open) with a target already resolved.
    pub fn open_target(target: PgTarget) -> Result<Self, StoreError> {
        let mut client = target.connect()?;
        check(&mut client, &target)?;
        Ok(Self { target, client })
    }

    /// Where the store is.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// The connection, for the queries of this crate.
    #[expect(
        dead_code,
        reason = "the first reads and writes come in the next slice"
    )]
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}
