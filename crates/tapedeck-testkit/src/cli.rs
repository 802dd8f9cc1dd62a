//! Running the `tapedeck` binary from end-to-end tests: a [`TestDir`] is a test's folder (its
//! files, its store, the working directory of its commands), [`tapedeck`] builds the command in
//! it, [`Outcome::of`] runs it to its end and keeps how it ended.
//!
//! A test written once runs on both store engines with [`on_both_stores!`](crate::on_both_stores):
//! its `TestDir` is made with [`TestDir::on`], whose store is the file `t.db` or a PostgreSQL
//! database of its own (migrated, on the test process's server: [`crate::postgres`]), and every
//! command it builds names that store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// The name of the store file in a test's folder.
pub const STORE: &str = "t.db";

/// `tapedeck`, run in `dir`, with plain 100-column output and no terminal (so nobody can
/// approve a write), and no store, colour or upstream settings inherited from the environment.
pub fn tapedeck_in(dir: &Path) -> Command {
    Command::from_std(process_in(dir))
}

/// [`tapedeck_in`] as a `std::process::Command`, for a test that starts it and acts while it
/// runs ([`interrupt`] it, say).
pub fn process_in(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tapedeck"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("TAPEDECK_STORE")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("FORCE_COLOR")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_BASE_URL");
    cmd
}

/// A signal that asks a process to stop.
#[derive(Clone, Copy, Debug)]
pub enum Interrupt {
    /// SIGINT (Ctrl-C): exit 130.
    Int,
    /// SIGTERM: exit 143.
    Term,
}

/// Sends `signal` to the running `child` (only it, not its own children).
pub fn interrupt(child: &std::process::Child, signal: Interrupt) {
    let pid = i32::try_from(child.id()).expect("a pid fits an i32");
    let pid = rustix::process::Pid::from_raw(pid).expect("a pid is not 0");
    let signal = match signal {
        Interrupt::Int => rustix::process::Signal::INT,
        Interrupt::Term => rustix::process::Signal::TERM,
    };
    rustix::process::kill_process(pid, signal).expect("signal the process");
}

/// Waits up to `limit` for `path` to exist (a client or tool saying it has started).
pub fn wait_for_file(path: &Path, limit: Duration) {
    let began = Instant::now();
    while !path.exists() {
        assert!(
            began.elapsed() < limit,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`tapedeck_in`] `dir` with the store `t.db` there (`--store t.db`).
pub fn tapedeck(dir: &Path) -> Command {
    let mut cmd = tapedeck_in(dir);
    cmd.arg("--store").arg(STORE);
    cmd
}

/// The engine of a test's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The file [`STORE`] in the test's folder.
    Sqlite,
    /// A PostgreSQL database of the test's own.
    Postgres,
}

/// Writes a test once for both store engines: `on_both_stores! { fn name(backend) { … } }`
/// makes the function `name(backend: Backend)` and the module `name` with the tests `sqlite`
/// and `postgres` calling it (so the body's snapshots keep the names they have without the
/// macro, shared by both engines). The `postgres` test returns at once on a machine without
/// PostgreSQL only when [`crate::clients::SKIP_REAL_CLIENTS`]`=1`.
#[macro_export]
macro_rules! on_both_stores {
    ($($(#[doc = $doc:literal])* fn $name:ident($backend:ident) $body:block)*) => {$(
        $(#[doc = $doc])*
        fn $name($backend: $crate::cli::Backend) $body

        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::cli::Backend::Sqlite)
            }

            #[test]
            fn postgres() {
                if $crate::postgres::available() {
                    super::$name($crate::cli::Backend::Postgres)
                }
            }
        }
    )*};
}

/// A test's temporary folder: its files, its store ([`STORE`], or a PostgreSQL database:
/// [`TestDir::on`]) and the working directory of the `tapedeck` commands it runs; removed when
/// the test ends. A test binary wraps it (`struct Env(TestDir)` with `Deref`) to add helpers of
/// its own, and says with [`TestDir::with_setup`] what every one of its commands needs (API
/// keys, say).
pub struct TestDir {
    /// The folder.
    pub dir: tempfile::TempDir,
    setup: fn(&mut Command),
    /// The store's database, on [`Backend::Postgres`].
    database: Option<crate::postgres::TestDb>,
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDir {
    /// An empty folder, its store the file [`STORE`] (not there until a command creates it).
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
            setup: |_| {},
            database: None,
        }
    }

    /// An empty folder with its store on `backend`: the file [`STORE`], or a new PostgreSQL
    /// database with an empty store in it (`tapedeck store migrate`).
    ///
    /// # Panics
    ///
    /// On [`Backend::Postgres`] when PostgreSQL is missing ([`on_both_stores!`] checks first).
    ///
    /// [`on_both_stores!`]: crate::on_both_stores
    pub fn on(backend: Backend) -> Self {
        let mut test_dir = Self::new();
        if backend == Backend::Postgres {
            let database = crate::postgres::database().expect("PostgreSQL is installed");
            test_dir.database = Some(database);
            Outcome::of(test_dir.tapedeck().args(["store", "migrate"])).expect_code(0);
        }
        test_dir
    }

    /// The engine of the store.
    pub fn backend(&self) -> Backend {
        match self.database {
            Some(_) => Backend::Postgres,
            None => Backend::Sqlite,
        }
    }

    /// The store as `--store` takes it: `t.db`, or the database's URL.
    pub fn store_arg(&self) -> String {
        match &self.database {
            Some(database) => database.url(),
            None => STORE.to_owned(),
        }
    }

    /// The store's database, on [`Backend::Postgres`] (for SQL a test checks with).
    pub fn database(&self) -> Option<&crate::postgres::TestDb> {
        self.database.as_ref()
    }

    /// The same folder, `setup` applied to every command [`TestDir::tapedeck`] builds.
    pub fn with_setup(self, setup: fn(&mut Command)) -> Self {
        Self { setup, ..self }
    }

    /// A path in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The store file (on [`Backend::Sqlite`]).
    pub fn store(&self) -> PathBuf {
        self.path(STORE)
    }

    /// Everything the store holds, as bytes to search (for a secret that must not be there):
    /// the SQLite files (the database, its WAL and shared memory), or the PostgreSQL database's
    /// runs, events and blobs.
    pub fn store_bytes(&self) -> Vec<u8> {
        if let Some(database) = &self.database {
            return database
                .psql(
                    "SELECT (SELECT coalesce(string_agg(r::text, ''), '') FROM runs r)
                         || (SELECT coalesce(string_agg(encode(d.data, 'escape'), ''), '')
                             FROM (SELECT data FROM events UNION ALL SELECT data FROM blobs) d)",
                )
                .into_bytes();
        }
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).expect("list the folder") {
            let path = entry.expect("an entry").path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.starts_with(STORE)) {
                bytes.extend(std::fs::read(&path).expect("read a store file"));
            }
        }
        bytes
    }

    /// Writes `text` to `name` in the folder (creating its folder); returns the path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the file's folder");
        }
        std::fs::write(&path, text).expect("write the file");
        path
    }

    /// The text of `name` in the folder; empty when there is no such file (a client that did
    /// not write it, say).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// `tapedeck --store STORE`, run in the folder, set up as the test binary said: the store
    /// is `t.db` ([`tapedeck`]) or the test's PostgreSQL database.
    pub fn tapedeck(&self) -> Command {
        let mut cmd = tapedeck_in(self.dir.path());
        cmd.arg("--store").arg(self.store_arg());
        (self.setup)(&mut cmd);
        cmd
    }

    /// Runs `cmd` to its end.
    pub fn exec(&self, cmd: &mut Command) -> Outcome {
        Outcome::of(cmd)
    }

    /// `show RUN --json`, which must succeed.
    pub fn show(&self, run: &str) -> Value {
        let out = Outcome::of(self.tapedeck().args(["show", run, "--json"]));
        out.expect_code(0);
        out.json()
    }

    /// The runs of `ls --json` (up to 1,000), newest first; it must succeed quietly.
    pub fn ls(&self) -> Vec<Value> {
        let out = Outcome::of(self.tapedeck().args(["ls", "--json", "-n", "1000"]));
        out.expect_code(0);
        assert_eq!(out.stderr, "", "expected nothing on stderr");
        out.runs_listed()
    }
}

/// How a command ended.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// How long it took, start to exit.
    pub elapsed: Duration,
}

impl Outcome {
    /// Runs `cmd` to its end.
    pub fn of(cmd: &mut Command) -> Self {
        let began = Instant::now();
        let output = cmd.output().expect("the command runs");
        Self {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
            elapsed: began.elapsed(),
        }
    }

    /// Checks the exit code (and that nothing panicked), showing both streams when it is
    /// another.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "tapedeck panicked:\n{}",
            self.stderr
        );
        self
    }

    /// An input error as the exit-code contract has it: exit 2, nothing on stdout, one line on
    /// stderr starting `error: `. Returns that line.
    pub fn expect_input_error(&self) -> &str {
        self.expect_code(2);
        assert_eq!(self.stdout, "", "an input error prints nothing on stdout");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr:\n{}",
            self.stderr
        );
        assert!(
            lines[0].starts_with("error: "),
            "the line does not start with `error: `: {}",
            self.stderr
        );
        lines[0]
    }

    /// Stdout as JSON (`--json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The runs of `ls --json` (its `tapedeck-runs` document's `runs`), newest first.
    pub fn runs_listed(&self) -> Vec<Value> {
        let listing = self.json();
        assert_eq!(listing["format"], "tapedeck-runs", "{listing}");
        match &listing["runs"] {
            Value::Array(runs) => runs.clone(),
            other => panic!("`ls --json` has {other} under `runs`, not a list"),
        }
    }

    /// The short run id on the `run 3f9c2e1a …` line of stderr (where `record` and `replay
    /// -- CMD` print it, leaving stdout to the client), else of stdout (where `run` prints it).
    pub fn run_id(&self) -> String {
        self.stderr
            .lines()
            .chain(self.stdout.lines())
            .find_map(|l| l.strip_prefix("run "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| {
                panic!(
                    "no `run ID` line:\n--- stdout\n{}\n--- stderr\n{}",
                    self.stdout, self.stderr
                )
            })
            .to_owned()
    }
}
