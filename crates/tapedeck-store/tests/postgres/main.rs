//! The PostgreSQL backend against a real server (tapedeck-testkit's `postgres`: one server per
//! test process, a database per test). One module per area; `support` resolves targets with a
//! test's own environment.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod connect;
mod leases;
mod record;
mod schema;
mod spool;
mod support;

/// The SQLite store tests' runs and events, to record the same runs into both engines.
#[path = "../store/support.rs"]
#[expect(dead_code, reason = "shared with tests/store, which uses the rest")]
mod sample;
