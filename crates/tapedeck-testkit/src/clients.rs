//! The real clients end-to-end tests drive (headless Chromium, the official Python SDKs and MCP
//! client, the `openai` npm package): a test whose client is missing fails, naming the command
//! that installs it, unless [`SKIP_REAL_CLIENTS`]`=1` opts out — the one way to skip one.

/// The environment variable that lets tests whose real client is missing pass without
/// running (for a machine that cannot install it); `.ci/test` installs every client instead.
pub const SKIP_REAL_CLIENTS: &str = "TAPEDECK_SKIP_REAL_CLIENTS";

/// Whether a test that needs `client` runs: `true` when it is `available`. When it is not, the
/// test fails naming `install`, unless [`SKIP_REAL_CLIENTS`]`=1`, which makes this `false`
/// (the caller returns) with a note on stderr.
pub fn require(client: &str, available: bool, install: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var(SKIP_REAL_CLIENTS).as_deref() == Ok("1"),
        "{client} is not installed: `{install}` installs it (`.ci/test` does), or set \
         {SKIP_REAL_CLIENTS}=1 to let the tests that need it pass without running"
    );
    eprintln!("note: {client} is missing and {SKIP_REAL_CLIENTS}=1: this test did not run");
    false
}

/// Whether `python3` can import every module of `modules` (`"mcp, mcp_server_time"`).
pub fn python_imports(modules: &str) -> bool {
    std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
