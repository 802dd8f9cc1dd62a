//! Integration tests of the trace model: canonical JSON and content hashes, stop reasons, ids
//! and timestamps, tape lines and run totals. One module per area.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod canonical;
mod exchange;
mod history;
mod identity;
mod ids_time;
mod pinned;
mod stop;
mod tape;
mod totals;
