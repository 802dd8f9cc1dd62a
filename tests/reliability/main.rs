//! Reliability of the store file against what really happens to recording processes: being
//! SIGKILLed at any moment (mid-batch, mid-migration, mid-first-transaction) and several
//! processes, each with several recording threads, writing into one file at once.
//!
//! Every test drives the real `tapedeck` binary through its hidden load generator
//! (`bench record-load`), which prints `committed RUN SEQ` once the writer has committed a run
//! up to SEQ and `finished RUN N` once the run is finished. Those lines are the claims checked
//! here: whatever the process said was committed must be in the file after it dies.
//!
//! The tests run in the nextest `serial` group (see `.config/nextest.toml`). Their checks hold
//! under any timing, but they time kills in milliseconds and start up to eight processes each:
//! run beside other tests, the kills would land at other moments than intended and the
//! processes would starve each other and everything else.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tapedeck_store::{RunFilter, Store};
use tapedeck_testkit::postgres;
use tapedeck_trace::{EventData, RunId, RunStatus};

/// Events per run when the run is meant to be killed: over 3 s of recording even in a release
/// build (about 35 s in a debug one), well past the longest kill delay, so the kill lands while
/// events are still flowing. The run never gets far, so the number costs nothing.
const EVENTS_UNTIL_KILLED: &str = "2000000";

/// Seed of the kill delays; `TAPEDECK_RELIABILITY_SEED` overrides it to explore other timings
/// (the seed in use is printed, so a failure can be replayed).
const DEFAULT_SEED: u64 = 0x5EED_7A9E_DEC0_0001;

fn tapedeck() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tapedeck"))
}

/// A deterministic xorshift64 generator: the kill moments differ between iterations but are
/// the same on every run of the test, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn from_env() -> Self {
        let seed = std::env::var("TAPEDECK_RELIABILITY_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(DEFAULT_SEED);
        eprintln!("kill delays seeded with {seed} (TAPEDECK_RELIABILITY_SEED)");
        // Zero is xorshift's one fixed point.
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// What a load generator printed before it ended.
#[derive(Debug, Default)]
struct LoadReport {
    /// The highest sequence number reported committed, per run.
    committed: BTreeMap<RunId, u64>,
    /// Runs reported finished, with their event count.
    finished: BTreeMap<RunId, u64>,
}

impl LoadReport {
    fn parse(lines: &[String]) -> Self {
        let mut report = Self::default();
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            let [word, id, n] = fields.as_slice() else {
                panic!("unexpected load generator line {line:?}");
            };
            let id: RunId = id.parse().expect("a run id in a load generator line");
            let n: u64 = n.parse().expect("a number in a load generator line");
            match *word {
                "committed" => {
                    let seq = report.committed.entry(id).or_default();
                    // The writer only ever moves forward; a smaller number would be a
                    // committed event being taken back.
                    assert!(n > *seq, "run {id}: committed {n} reported after {seq}");
                    *seq = n;
                }
                "finished" => {
                    report.finished.insert(id, n);
                }
                _ => panic!("unexpected load generator line {line:?}"),
            }
        }
        report
    }
}

/// Reads a child's stdout on a thread, keeping only whole lines: a line cut short by the kill
/// was never a complete claim.
fn read_lines(stdout: impl Read + Send + 'static) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return lines,
                Ok(_) => {
                    if let Some(whole) = line.strip_suffix('\n') {
                        lines.push(whole.to_owned());
                    }
                }
            }
        }
    })
}

fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

fn spawn_load(db: impl AsRef<OsStr>, events: &str, threads: &str, tag: &str) -> Child {
    tapedeck()
        .arg("--store")
        .arg(db)
        .args([
            "bench",
            "record-load",
            "--events",
            events,
            "--threads",
            threads,
        ])
        .args(["--tag", tag])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start `tapedeck bench record-load`")
}

/// Waits for a child that is expected to end by itself; a hang (a deadlock between processes,
/// a lock never released) fails the test instead of stalling it.
fn wait_until(child: &mut Child, deadline: Instant, what: &str) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("poll a child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `PRAGMA integrity_check` through a plain SQLite connection, not the store: the file must be
/// sound for any SQLite reader, before tapedeck gets a chance to repair anything.
fn integrity_check(db: &Path) -> String {
    let conn = Connection::open(db).expect("open the store file with plain SQLite");
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .expect("prepare integrity_check");
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(Iterator::collect)
        .expect("run integrity_check");
    rows.join("\n")
}

/// `PRAGMA user_version`: 0 until the migration has committed.
fn schema_version(db: &Path) -> i64 {
    Connection::open(db)
        .and_then(|conn| conn.query_row("PRAGMA user_version", [], |r| r.get(0)))
        .expect("read the schema version")
}

/// Per run: status, number of events and highest sequence number, straight from the tables
/// (parsing every event of every earlier run after each kill would dominate the test's time).
fn run_table(db: &Path) -> BTreeMap<RunId, (String, u64, u64)> {
    let conn = Connection::open(db).expect("open the store file with plain SQLite");
    let mut stmt = conn
        .prepare(
            "SELECT r.id, r.status, count(e.seq), coalesce(max(e.seq), 0)
             FROM runs r LEFT JOIN events e ON e.run = r.key GROUP BY r.key",
        )
        .expect("prepare the run summary");
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })
    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
    .expect("read the run summary")
    .into_iter()
    .map(|(id, status, count, max)| {
        let id: RunId = id.parse().expect("a stored run id");
        (id, (status, count as u64, max as u64))
    })
    .collect()
}

/// The runs `tapedeck ls --status incomplete --json` lists: what a user sees after a crash.
fn cli_incomplete_runs(db: &Path) -> BTreeSet<RunId> {
    let output = tapedeck()
        .arg("--store")
        .arg(db)
        .args(["ls", "--status", "incomplete", "--json", "--limit", "1000"])
        .output()
        .expect("run `tapedeck ls`");
    assert!(
        output.status.success(),
        "`tapedeck ls` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("`ls --json` prints JSON");
    assert_eq!(listing["format"], "tapedeck-runs", "{listing}");
    listing["runs"]
        .as_array()
        .expect("`ls --json` lists the runs under `runs`")
        .iter()
        .map(|row| {
            assert_eq!(
                row["status"], "incomplete",
                "ls --status incomplete listed {row}"
            );
            row["id"]
                .as_str()
                .expect("a run id in `ls --json`")
                .parse()
                .expect("a valid run id in `ls --json`")
        })
        .collect()
}

/// Checks the events of `id`: sequence numbers 1, 2, 3… with no gap, at least `committed` of
/// them. Returns how many there are.
fn check_events(store: &Store, id: &RunId, committed: u64) -> u64 {
    let events = store.events(id).expect("read the run's events");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event.seq,
            i as u64 + 1,
            "run {id}: gap in the event sequence"
        );
    }
    let stored = events.len() as u64;
    assert!(
        stored >= committed,
        "run {id}: the load generator saw seq {committed} committed, the file has {stored} events"
    );
    stored
}

/// Kills `tapedeck bench record-load` at random moments, over and over, into one file.
///
/// What could break: events the writer reported committed missing after the kill (a commit
/// acknowledged before it was durable, a batch published before its transaction ended); a
/// damaged file (a write outside a transaction); a dead run left `running` forever (the owner
/// liveness check); earlier runs damaged by later crashes (WAL recovery, checkpoints).
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "telling a dead recorder from a live one needs /proc"
)]
fn sigkill_at_random_moments_never_loses_committed_events() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = dir.path().join("crash.db");
    let mut rng = XorShift::from_env();
    // Every run seen so far with (status, events, highest seq) once its process was dead.
    let mut known: BTreeMap<RunId, (String, u64, u64)> = BTreeMap::new();
    let started = Instant::now();
    for iteration in 0..20 {
        // The first kills land during start-up: process start, creating the file, switching
        // it to WAL, the migration, the run's first insert. The rest land mid-recording,
        // before or after the first commit (about 100 ms in) and between later batches.
        let delay = match iteration {
            0 => 5,
            1 => 12,
            2 => 25,
            _ => rng.between(50, 600),
        };
        let mut child = spawn_load(&db, EVENTS_UNTIL_KILLED, "1", &format!("crash{iteration}"));
        let stdout = read_lines(child.stdout.take().expect("piped stdout"));
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        std::thread::sleep(Duration::from_millis(delay));
        let exited_by_itself = child.try_wait().expect("poll the load generator");
        child.kill().expect("SIGKILL the load generator");
        let status = child.wait().expect("reap the load generator");
        let report = LoadReport::parse(&stdout.join().expect("stdout reader"));
        let stderr = stderr.join().expect("stderr reader");
        if let Some(status) = exited_by_itself {
            // Only possible if recording got much faster than EVENTS_UNTIL_KILLED assumes.
            assert!(status.success(), "the load generator failed: {stderr}");
            assert!(
                !report.finished.is_empty(),
                "it exited without finishing its run"
            );
        } else {
            use std::os::unix::process::ExitStatusExt as _;
            assert_eq!(
                status.signal(),
                Some(9),
                "not killed by SIGKILL: {status}, {stderr}"
            );
        }

        // A kill before SQLite created the file leaves nothing, which is fine.
        if db.exists() {
            assert_eq!(
                integrity_check(&db),
                "ok",
                "iteration {iteration}: damaged file"
            );
        }
        // Opening the store is what marks runs of dead processes incomplete; it must work on
        // whatever the kill left (a half-created file included).
        let store = Store::open(&db).expect("open the store after the kill");

        assert!(report.committed.len() <= 1, "one thread records one run");
        let mut checked = String::from("no commit reported");
        if let Some((&id, &committed)) = report.committed.last_key_value() {
            let stored = check_events(&store, &id, committed);
            let run = store.run(&id).expect("the killed run is in the store");
            match report.finished.get(&id) {
                Some(&n) => {
                    assert_eq!(run.status, RunStatus::Ok, "run {id} finished");
                    assert_eq!(stored, n, "run {id}: finished with {n} events");
                }
                None => assert_eq!(run.status, RunStatus::Incomplete, "run {id} was killed"),
            }
            checked = format!("committed {committed}, stored {stored}");
        }

        // Every process is dead: no run may still look like it is being recorded, and runs of
        // earlier iterations must be exactly as they were.
        let table = run_table(&db);
        for (id, (status, count, max)) in &table {
            assert_ne!(
                status, "running",
                "run {id} is left running by a dead process"
            );
            assert_eq!(count, max, "run {id}: {count} events but seq up to {max}");
            if let Some(before) = known.get(id) {
                assert_eq!(
                    before,
                    &(status.clone(), *count, *max),
                    "run {id} changed after a later crash"
                );
            }
        }
        for id in known.keys() {
            assert!(
                table.contains_key(id),
                "run {id} vanished after a later crash"
            );
        }
        // Runs killed before their first event commit have no `committed` line but are in
        // the file too; they are held to the same rules from now on.
        known = table;

        let incomplete: BTreeSet<RunId> = store
            .runs(&RunFilter {
                status: Some(RunStatus::Incomplete),
                ..RunFilter::default()
            })
            .expect("list incomplete runs")
            .iter()
            .map(|run| run.id)
            .collect();
        drop(store);
        assert_eq!(
            cli_incomplete_runs(&db),
            incomplete,
            "`ls --status incomplete`"
        );
        for id in report.committed.keys() {
            if !report.finished.contains_key(id) {
                assert!(
                    incomplete.contains(id),
                    "run {id} is not listed as incomplete"
                );
            }
        }
        eprintln!(
            "iteration {iteration:2}: killed at {delay:3} ms, {checked}; {} runs in the file",
            known.len()
        );
    }
    eprintln!("20 kills in {:.1?}", started.elapsed());
}

/// Kills `tapedeck bench record-load` while it creates a fresh store: the file must be valid
/// SQLite, open as a store, and take a complete recording afterwards.
///
/// What could break: a migration that is not one transaction (a store with half a schema,
/// or a schema without its version, which then reads as a foreign database), a kill between
/// creating the file and switching it to WAL, a run inserted without its owner.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "telling a dead recorder from a live one needs /proc"
)]
fn sigkill_while_a_store_is_being_created_leaves_a_usable_file() {
    let dir = tempfile::tempdir().expect("temporary folder");
    // Start-up takes a few milliseconds in a debug build (the file appears after about 4 ms,
    // the first run is in it a few ms later): spread the kills over that window and past it.
    for (i, delay) in [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 60]
        .into_iter()
        .enumerate()
    {
        let db = dir.path().join(format!("fresh{i}.db"));
        let mut child = spawn_load(&db, EVENTS_UNTIL_KILLED, "1", "startup");
        let stdout = read_lines(child.stdout.take().expect("piped stdout"));
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL the load generator");
        child.wait().expect("reap the load generator");
        let report = LoadReport::parse(&stdout.join().expect("stdout reader"));

        // What the kill left, for the log: no file, an empty one, or one with a schema.
        let left = if db.exists() {
            assert_eq!(
                integrity_check(&db),
                "ok",
                "killed at {delay} ms: damaged file"
            );
            format!("schema version {}", schema_version(&db))
        } else {
            "no file".to_owned()
        };
        let store = Store::open(&db).expect("open a store killed while being created");
        for (id, &committed) in &report.committed {
            check_events(&store, id, committed);
        }
        let killed = store.runs(&RunFilter::default()).expect("list runs");
        assert!(killed.len() <= 1, "one run at most");
        for run in &killed {
            assert_eq!(
                run.status,
                RunStatus::Incomplete,
                "run {} was killed",
                run.id
            );
        }
        drop(store);

        // The file must still be fully usable: a whole recording into it succeeds.
        let mut child = spawn_load(&db, "100", "1", "after");
        let stdout = read_lines(child.stdout.take().expect("piped stdout"));
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        let status = wait_until(
            &mut child,
            Instant::now() + Duration::from_secs(60),
            "a run",
        );
        let stderr = stderr.join().expect("stderr reader");
        assert!(
            status.success(),
            "recording after a kill at {delay} ms failed: {stderr}"
        );
        let report = LoadReport::parse(&stdout.join().expect("stdout reader"));
        let (id, n) = report.finished.first_key_value().expect("a finished run");
        let store = Store::open(&db).expect("open the store");
        assert_eq!(check_events(&store, id, *n), 101);
        assert_eq!(store.run(id).expect("the run").status, RunStatus::Ok);
        eprintln!(
            "killed at {delay:2} ms: {left}, {} killed run(s)",
            killed.len()
        );
    }
}

/// Runs `count` load generators into `db` (a file or a URL) at once, each `--events events
/// --threads threads`; returns the runs they reported finished, with the process's tag.
fn record_concurrently(
    db: &OsStr,
    count: usize,
    events: &str,
    threads: &str,
) -> Vec<(String, RunId, u64)> {
    // Every pipe is drained from the start, so that no process blocks on a full pipe while
    // the test waits for another one.
    let children: Vec<_> = (0..count)
        .map(|i| {
            let tag = format!("p{i}");
            let mut child = spawn_load(db, events, threads, &tag);
            let stdout = read_lines(child.stdout.take().expect("piped stdout"));
            let stderr = read_all(child.stderr.take().expect("piped stderr"));
            (tag, child, stdout, stderr)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut finished = Vec::new();
    for (tag, mut child, stdout, stderr) in children {
        let status = wait_until(&mut child, deadline, &format!("process {tag}"));
        let stderr = stderr.join().expect("stderr reader");
        let lower = stderr.to_lowercase();
        // Busy and locked are the symptoms of processes contending for the write lock: the
        // store must wait its turn, never report them.
        assert!(
            !lower.contains("busy") && !lower.contains("locked"),
            "process {tag} reported contention: {stderr}"
        );
        assert!(
            status.success(),
            "process {tag} failed ({status}): {stderr}"
        );
        let report = LoadReport::parse(&stdout.join().expect("stdout reader"));
        for (id, n) in report.finished {
            finished.push((tag.clone(), id, n));
        }
    }
    finished
}

/// Four processes with two recording threads each write into one fresh file at once.
///
/// What could break: SQLITE_BUSY escaping the retry loop (a lock upgrade, a checkpoint, the
/// switch to WAL, two processes migrating the new file), events of one run landing in
/// another's, a live process's runs marked incomplete by another process opening the store,
/// batches of one process lost to another's commit.
#[test]
fn four_processes_two_threads_record_into_one_file() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = dir.path().join("shared.db");
    let started = Instant::now();
    let finished = record_concurrently(db.as_os_str(), 4, "5000", "2");
    eprintln!(
        "4 processes x 2 threads x 5000 events in {:.1?}",
        started.elapsed()
    );
    assert_eq!(
        finished.len(),
        8,
        "each process finishes two runs: {finished:?}"
    );

    assert_eq!(integrity_check(&db), "ok");
    let store = Store::open(&db).expect("open the shared store");
    check_concurrent_runs(&store, &finished, 5000);
}

/// Checks that the store holds exactly the runs `finished` reports, each `ok`, labelled with its
/// process and thread (one run a thread), with `events` events and `run_finished`, numbered
/// 1, 2, 3… with no gap.
fn check_concurrent_runs(store: &Store, finished: &[(String, RunId, u64)], events: u64) {
    let runs = store
        .runs(&RunFilter {
            limit: Some(100_000),
            ..RunFilter::default()
        })
        .expect("list runs");
    assert_eq!(
        runs.len(),
        finished.len(),
        "every finished run is stored, no other"
    );
    let mut seen = BTreeSet::new();
    for run in &runs {
        assert_eq!(run.status, RunStatus::Ok, "run {}", run.id);
        let (tag, _, n) = finished
            .iter()
            .find(|(_, id, _)| *id == run.id)
            .expect("every stored run was reported finished");
        assert_eq!(*n, events + 1);
        assert_eq!(
            run.labels.get("load"),
            Some(tag),
            "run {} is labelled with its process",
            run.id
        );
        let thread = run.labels.get("thread").expect("a thread label").clone();
        assert!(
            seen.insert((tag.clone(), thread)),
            "two runs for one thread"
        );
        let stored = store.events(&run.id).expect("read the run's events");
        assert_eq!(
            stored.len() as u64,
            events + 1,
            "run {}: {events} events and run_finished",
            run.id
        );
        for (i, event) in stored.iter().enumerate() {
            assert_eq!(
                event.seq,
                i as u64 + 1,
                "run {}: gap in the event sequence",
                run.id
            );
        }
        let last = stored.last().map(|e| &e.data);
        assert!(
            matches!(last, Some(EventData::RunFinished(_))),
            "run {} ends with run_finished",
            run.id
        );
    }
}

/// Eight processes record fifty runs each (a thread a run) into one PostgreSQL store at once:
/// a fleet of CI runners or production hosts sharing the team store.
///
/// What could break: two writers inserting the same run key or blob in different orders
/// (deadlock), a batch's transaction committing part of its events, events of one run landing
/// in another's, a process's runs marked incomplete by another process opening the store
/// (their leases are live), a connection limit reached.
#[test]
fn eight_processes_fifty_runs_each_record_into_one_postgres_store() {
    if !postgres::available() {
        return;
    }
    let db = postgres::database().expect("PostgreSQL is installed");
    let url = db.url();
    let migrate = tapedeck()
        .args(["--store", &url, "store", "migrate"])
        .output()
        .expect("tapedeck runs");
    assert!(migrate.status.success(), "{migrate:?}");
    let started = Instant::now();
    let finished = record_concurrently(url.as_ref(), 8, "40", "50");
    eprintln!(
        "8 processes x 50 runs x 40 events into PostgreSQL in {:.1?}",
        started.elapsed()
    );
    assert_eq!(finished.len(), 400, "each process finishes fifty runs");
    let store = Store::open_url(&url).expect("open the team store");
    check_concurrent_runs(&store, &finished, 40);
}

/// Many processes create the same store at once, again and again.
///
/// What could break: opening a store tells a fresh file from another program's database by
/// its schema version and its tables. Read in two statements (as they once were), another
/// process can commit the migration in between, and the store being created is refused as
/// "not a tapedeck store". The window is microseconds wide: 100 cheap rounds hit it nearly
/// every time when the reads are split (checked by splitting them again).
#[test]
fn processes_creating_one_store_at_once_all_succeed() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let started = Instant::now();
    for round in 0..100 {
        let db = dir.path().join(format!("race{round}.db"));
        let finished = record_concurrently(db.as_os_str(), 8, "1", "1");
        assert_eq!(
            finished.len(),
            8,
            "round {round}: every process records its run"
        );
        let store = Store::open(&db).expect("open the store");
        assert_eq!(
            store.runs(&RunFilter::default()).expect("list runs").len(),
            8
        );
    }
    eprintln!("100 rounds of 8 processes in {:.1?}", started.elapsed());
}
