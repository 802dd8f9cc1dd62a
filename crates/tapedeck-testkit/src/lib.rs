//! Test support for tapedeck: deterministic tapes ([`TapeBuilder`]), the fixture runs every part
//! tests against ([`scenarios`]), a fake model API on 127.0.0.1 ([`fake_http`]), the binary run
//! from a test's folder ([`cli`]), the real clients the tests need ([`clients`]), a throwaway PostgreSQL
//! server with a database per test ([`postgres`]), and the filters that make CLI output snapshot-stable
//! ([`snapshot`]).
//!
//! Nothing here is used by a shipped binary. The tapes it builds are byte-identical to what the
//! store's export writes for the same run, so a fixture can be imported, exported and compared.

#![warn(missing_docs)]

mod builder;
pub mod cli;
pub mod clients;
pub mod fake_http;
pub mod message;
pub mod postgres;
pub mod scenarios;
pub mod snapshot;

use std::path::{Path, PathBuf};

pub use builder::{Call, TapeBuilder};

/// The workspace's root folder (`golden/`, `fixtures/`, `tests/`).
pub fn workspace_root() -> PathBuf {
    fixtures_dir()
        .parent()
        .expect("fixtures/ is in the workspace root")
        .to_path_buf()
}

/// Copies a folder, recursively, leaving pending snapshots (`.snap.new`) behind.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the folder");
    for entry in std::fs::read_dir(from).expect("read the folder") {
        let entry = entry.expect("a folder entry");
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else if !path.to_string_lossy().ends_with(".snap.new") {
            std::fs::copy(&path, &target).expect("copy a file");
        }
    }
}

/// The workspace's `fixtures/` folder (tapes live in `fixtures/tapes/`).
pub fn fixtures_dir() -> PathBuf {
    // This crate is `crates/tapedeck-testkit`: the workspace root is two levels up.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the testkit lives in crates/ of the workspace")
        .join("fixtures")
}
