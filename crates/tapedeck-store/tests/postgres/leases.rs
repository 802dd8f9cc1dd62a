//! Leases (schema 3) on both engines: the writer sets and renews the lease of every run it
//! records, and a run whose recorder was killed on another host (`TAPEDECK_HOST`), where no pid
//! can be checked, turns `incomplete` once its lease lapses, every committed event kept.
//!
//! The killed recorder is a real process: this test binary run again, with
//! [`RECORD_INTO`] selecting the hidden test [`recorder_process`].

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tapedeck_store::{RunFilter, Store, WriterOptions};
use tapedeck_testkit::postgres;
use tapedeck_trace::{RunId, RunStatus, StopReason};

use crate::sample::{TempStore, fixed_id, record_sample, run_with};
use crate::support::migrated;

/// Where [`recorder_process`] records: a `postgres://` URL or a SQLite file's path.
const RECORD_INTO: &str = "TAPEDECK_TEST_RECORD_INTO";

/// What [`recorder_process`] prints once its events are committed, before the run id and the
/// committed sequence number.
const RECORDED: &str = "RECORDED ";

/// The host name the recorder process claims: not this one, so no pid check applies to it.
const OTHER_HOST: &str = "ci-runner-elsewhere";

/// The recorder process's lease, through `TAPEDECK_LEASE_SECS` (as a CLI test would set it):
/// short, but with room for a loaded machine to renew it in time (every second).
const CHILD_LEASE_SECS: u64 = 3;

/// Opens the store `location` names, as the recorder process and the test both do.
fn open(location: &str) -> Store {
    if location.starts_with("postgres://") {
        Store::open_url(location).unwrap()
    } else {
        Store::open(location).unwrap()
    }
}

/// Not a test of its own: the recording process of
/// [`a_recorder_killed_on_another_host_leaves_its_run_incomplete`], run by it with
/// [`RECORD_INTO`] set. Records a run (lease and host from the environment), says so once the
/// events are committed, and waits to be killed.
#[test]
#[ignore = "a child process of the lease tests, not a test"]
fn recorder_process() {
    let Ok(location) = std::env::var(RECORD_INTO) else {
        return;
    };
    let store = open(&location);
    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(run_with(&fixed_id(7), 0)).unwrap();
    record_sample(&mut rec, "You are a research bot.", "killed");
    let committed = rec.flush().unwrap();
    println!("\n{RECORDED}{} {committed}", rec.id());
    std::thread::sleep(Duration::from_secs(120));
}

/// A child process, killed when the test ends however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This test binary running [`recorder_process`] into `location`, on "another host".
fn spawn_recorder(location: &str) -> Killed {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "leases::recorder_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RECORD_INTO, location)
        .env("TAPEDECK_HOST", OTHER_HOST)
        .env("TAPEDECK_LEASE_SECS", CHILD_LEASE_SECS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Killed(child)
}

/// Waits for the recorder's line; the run id and its committed sequence number.
fn wait_recorded(child: &mut Child) -> (RunId, u64) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split_once(RECORDED).map(|(_, rest)| rest.to_owned()) {
                let _ = tx.send(rest);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the recorder process said it recorded");
    let (id, seq) = line.trim().split_once(' ').unwrap();
    (id.parse().unwrap(), seq.parse().unwrap())
}

fn status(store: &Store, id: &RunId) -> RunStatus {
    store
        .runs(&RunFilter::default())
        .unwrap()
        .into_iter()
        .find(|r| r.id == *id)
        .unwrap()
        .status
}

/// The scenario on the store at `location`: `owner` reads the run's owner string.
fn killed_recorder_on_another_host(location: &str, owner: impl Fn(&RunId) -> String) {
    let mut child = spawn_recorder(location);
    let (id, committed) = wait_recorded(&mut child.0);
    assert_eq!(committed, 13, "every event of the sample is committed");
    assert!(
        owner(&id).starts_with(&format!("{OTHER_HOST}/")),
        "{}",
        owner(&id)
    );
    let store = open(location);
    assert_eq!(status(&store, &id), RunStatus::Running);

    // SIGKILL: nothing of the recorder runs after it.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let killed = Instant::now();
    // Its lease (renewed every second) has two seconds or more left: the run of another host's
    // dead process still looks alive, whether the store is opened again or listed.
    assert_eq!(status(&open(location), &id), RunStatus::Running);
    assert_eq!(status(&store, &id), RunStatus::Running);

    while status(&store, &id) == RunStatus::Running {
        assert!(
            killed.elapsed() < Duration::from_secs(CHILD_LEASE_SECS + 10),
            "the run is still running long after its lease lapsed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = store.run(&id).unwrap();
    assert_eq!(run.status, RunStatus::Incomplete);
    assert_eq!(run.ended_at, None);
    assert_eq!(store.events(&id).unwrap().len() as u64, committed);
    assert_eq!(store.last_seq(&id).unwrap(), committed);
    // The record is the canonical JSON of the run (what an export and a merge carry).
    let mut tape = Vec::new();
    store.export_tape(&id, &mut tape).unwrap();
    assert!(
        String::from_utf8(tape)
            .unwrap()
            .contains(r#""status":"incomplete""#)
    );
    assert_eq!(owner(&id), "", "an expired run has no owner any more");
}

#[test]
fn a_recorder_killed_on_another_host_leaves_its_run_incomplete_on_postgres() {
    let Some(db) = postgres::database() else {
        return;
    };
    migrated(&db);
    killed_recorder_on_another_host(&db.url(), |id| {
        db.psql(&format!("SELECT owner FROM runs WHERE id = '{id}'"))
    });
    assert_eq!(
        db.psql("SELECT count(*) FROM runs WHERE lease_until IS NOT NULL"),
        "0"
    );
}

#[test]
fn a_recorder_killed_on_another_host_leaves_its_run_incomplete_on_sqlite() {
    let file = TempStore::new();
    drop(file.open());
    let path = file.path.to_str().unwrap().to_owned();
    killed_recorder_on_another_host(&path, |id| {
        file.sql()
            .query_row(
                "SELECT coalesce(owner, '') FROM runs WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .unwrap()
    });
}

/// Records a run with a lease of 1 s and checks, through `lease_until` (the run's lease and
/// `now`, in microseconds, on the store's clock), that it is set at the start, renewed while
/// the writer idles, and cleared at the end.
fn leases_written_and_renewed(store: &Store, lease_until: impl Fn(&RunId) -> (Option<i64>, i64)) {
    let options = WriterOptions {
        lease: Duration::from_secs(1),
        ..WriterOptions::default()
    };
    let writer = store.writer_with(options).unwrap();
    let mut rec = writer.start_run(run_with(&fixed_id(1), 0)).unwrap();
    let id = rec.id();
    let (first, now) = lease_until(&id);
    let first = first.expect("a lease from the start");
    // A second from the insert, which was moments ago.
    assert!(
        (200_000..=1_000_000).contains(&(first - now)),
        "{first} {now}"
    );

    // Idle, the writer renews every third of the lease on its own: the lease never lapses.
    let mut last = first;
    let mut renewals = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(100));
        let (until, now) = lease_until(&id);
        let until = until.unwrap();
        assert!(until > now, "the lease lapsed: {until} <= {now}");
        renewals += usize::from(until > last);
        last = until;
    }
    // Checked for more than twice a lease's length: renewed again and again, never lapsed.
    assert!(renewals >= 2, "{renewals} renewals in 2.5 s");
    assert_eq!(status(store, &id), RunStatus::Running);

    // Events go on being renewed with their batches; the end clears the lease.
    record_sample(&mut rec, "You are a research bot.", "leased");
    rec.flush().unwrap();
    assert!(lease_until(&id).0.unwrap() >= last);
    rec.finish(StopReason::Ok, None).unwrap();
    assert_eq!(lease_until(&id).0, None);
    assert_eq!(status(store, &id), RunStatus::Ok);
}

#[test]
fn leases_are_written_and_renewed_on_postgres() {
    let Some(db) = postgres::database() else {
        return;
    };
    let store = Store::open_postgres(migrated(&db)).unwrap();
    leases_written_and_renewed(&store, |id| {
        let row = db.psql(&format!(
            "SELECT coalesce(lease_until::text, ''), (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
             FROM runs WHERE id = '{id}'"
        ));
        let (until, now) = row.split_once('|').unwrap();
        (until.parse().ok(), now.parse().unwrap())
    });
}

#[test]
fn leases_are_written_and_renewed_on_sqlite() {
    let file = TempStore::new();
    let store = file.open();
    leases_written_and_renewed(&store, |id| {
        let until = file
            .sql()
            .query_row(
                "SELECT lease_until FROM runs WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        (until, tapedeck_trace::Timestamp::now().as_micros())
    });
}

/// A run whose lease lapsed while its writer stalled is not brought back by the writer's next
/// renewal: the expiry and the renewal are both conditional on the run being `running`.
#[test]
fn a_lapsed_lease_is_expired_by_listing_and_not_renewed_after() {
    let Some(db) = postgres::database() else {
        return;
    };
    let store = Store::open_postgres(migrated(&db)).unwrap();
    let options = WriterOptions {
        lease: Duration::from_secs(1),
        ..WriterOptions::default()
    };
    let writer = store.writer_with(options).unwrap();
    let rec = writer.start_run(run_with(&fixed_id(2), 0)).unwrap();
    let id = rec.id();
    // As if the writer had stalled for a minute.
    db.psql(&format!(
        "UPDATE runs SET lease_until = lease_until - 60000000 WHERE id = '{id}'"
    ));
    assert_eq!(status(&store, &id), RunStatus::Incomplete);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        db.psql(&format!(
            "SELECT status, lease_until IS NULL FROM runs WHERE id = '{id}'"
        )),
        "incomplete|t"
    );
}
