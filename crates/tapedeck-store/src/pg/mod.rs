//! The store on PostgreSQL (issue #17): connecting ([`PgTarget`], which reads what libpq would
//! read), the schema ([`migrate`], [`check`]) and an open store ([`PgStore`]).
//!
//! `Store` holds a `PgStore` as its second backend; how the two engines share one interface,
//! and what is left, is in `POSTGRES.md` beside this crate's `Cargo.toml`.

mod connect;
mod query;
mod schema;
mod writer;

use std::sync::Mutex;

use postgres::Client;
use tapedeck_trace::EventData;

pub use connect::{PgSslMode, PgTarget, is_postgres_url};
pub(crate) use query::PgParam;
pub use schema::{MigrateReport, check, migrate};
pub(crate) use writer::PgSink;

use crate::StoreError;

/// The server's clock in microseconds since the epoch, as SQL: the time of leases and of
/// `blobs.created_at` (`now()`, the transaction's start), so that hosts' clocks need not agree.
pub(crate) const NOW_MICROS: &str = "(extract(epoch FROM now()) * 1000000)::bigint";

/// A store on PostgreSQL, open: its schema was checked to be this build's. `Store` holds
/// one as its second backend ([`crate::Store::open_url`]).
pub struct PgStore {
    target: PgTarget,
    /// Locked per statement: `Store`'s methods take `&self`, the driver's `&mut self`.
    client: Mutex<Client>,
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
        Ok(Self {
            target,
            client: Mutex::new(client),
        })
    }

    /// Where the store is.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }
}

/// The `kind`, `codec` and `data` columns of the `events` row the store writes for an event
/// (its payload's canonical JSON, compressed with the store's dictionary when that makes it
/// smaller), for a tool that writes the same rows itself: `tapedeck bench ingest`'s baseline.
pub fn event_columns(data: &EventData) -> Result<(&'static str, i16, Vec<u8>), StoreError> {
    let payload = crate::codec::StoredPayload::encode(crate::writer::payload_json(data)?);
    let (codec, bytes) = payload.to_parts();
    Ok((data.kind(), codec, bytes.to_vec()))
}
