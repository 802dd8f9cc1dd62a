//! Integration tests of the store through its public API, each on a real SQLite file in a
//! temporary folder. One module per area; `support` builds runs and events.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod errors;
mod maintenance;
mod otel;
mod query;
mod recorder;
mod resolve;
mod storage;
mod support;
mod tapes;
