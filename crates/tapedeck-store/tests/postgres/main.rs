//! The PostgreSQL backend against a real server (tapedeck-testkit's `postgres`: one server per
//! test process, a database per test). One module per area; `support` resolves targets with a
//! test's own environment.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod connect;
mod schema;
mod support;
