//! nextest's setup script `postgres` (`.config/nextest.toml`): starts one PostgreSQL server for
//! the whole test run and tells the tests where it is (`TAPEDECK_TEST_POSTGRES`, through the
//! file nextest names in `NEXTEST_ENV`), so that test processes share it instead of each
//! starting its own. A watchdog stops the server when nextest (this program's parent) exits.
//!
//! On a machine without PostgreSQL it starts nothing: each test then fails naming the package
//! to install, or passes without running under `TAPEDECK_SKIP_REAL_CLIENTS=1`.

use std::io::Write as _;

use tapedeck_testkit::postgres::{PgServer, SHARED_SERVER, find_bindir};

fn main() {
    let Some(bindir) = find_bindir() else {
        eprintln!("PostgreSQL is not installed: no shared test server");
        return;
    };
    let Some(env_file) = std::env::var_os("NEXTEST_ENV") else {
        eprintln!("NEXTEST_ENV is not set: run this as nextest's setup script");
        std::process::exit(2);
    };
    let runner = rustix::process::getppid().map_or(std::process::id(), |pid| {
        u32::try_from(pid.as_raw_nonzero().get()).expect("a pid is positive")
    });
    let dir = PgServer::start_for_run(bindir, runner);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&env_file)
        .expect("open NEXTEST_ENV");
    writeln!(file, "{SHARED_SERVER}={}", dir.display()).expect("write NEXTEST_ENV");
}
