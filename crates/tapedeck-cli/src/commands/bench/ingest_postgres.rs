//! `bench ingest --postgres URL`: the same small events through the `Recorder` into a
//! PostgreSQL store, against a plain batched multi-row INSERT of the same rows (the same
//! columns, the same bytes) into the same `events` table, in transactions of the writer's batch
//! size; a binary COPY of them is reported for reference. The main type is [`Bench`]: a
//! database checked to be safe to write to.
//!
//! What the benchmark does to the database, so that pointing it at the wrong one costs nothing:
//! - a database without a store is migrated (as `tapedeck store migrate` would); a store at
//!   another schema version, or another program's `runs` table, is refused and left alone;
//! - a store holding any run but this benchmark's own is refused: it writes and deletes three
//!   runs of N events each, load that a store in use should not take;
//! - each of its runs carries the label [`LABEL`]; they are deleted when it ends, failed or not,
//!   and runs of an interrupted earlier benchmark (with that label) are deleted when it starts.

use std::time::Instant;

use anyhow::Context as _;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use tapedeck_store::pg::{self, PgTarget};
use tapedeck_store::{RunFilter, Store, StoreError, WriterOptions};
use tapedeck_trace::{Run, RunId, Source, StopReason, Timestamp};

use super::ingest::event;
use crate::render;

/// The label (key and value) of the runs this benchmark records.
const LABEL: (&str, &str) = ("tapedeck-bench", "ingest");

/// The six columns of an `events` row, as `pg/writer.rs` inserts them.
const COLUMNS: usize = 6;

/// A PostgreSQL store the benchmark may write to: migrated, holding no runs but (leftovers of)
/// its own.
pub struct Bench {
    target: PgTarget,
    store: Store,
    /// What the benchmark found: "store created at schema version 2", "schema version 2".
    found: String,
}

impl Bench {
    /// Opens the store at `url` (migrating a database that holds none) and checks it holds no
    /// run but the benchmark's own, which it deletes.
    pub fn prepare(url: &str) -> anyhow::Result<Self> {
        let target = PgTarget::from_env(url)?;
        let (store, found) = match Store::open_postgres(target.clone()) {
            Ok(store) => (
                store,
                format!("schema version {}", tapedeck_store::SCHEMA_VERSION),
            ),
            Err(StoreError::PgNeedsMigration { found: 0, .. }) => {
                let report = pg::migrate(&target)?;
                let store = Store::open_postgres(target.clone())?;
                (
                    store,
                    format!("store created at schema version {}", report.to),
                )
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(
                    "`bench ingest --postgres` migrates only a database without a store",
                ));
            }
        };
        let mut client = target.connect()?;
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM runs r WHERE NOT EXISTS
                   (SELECT 1 FROM run_labels l WHERE l.run = r.key AND l.key = $1 AND l.value = $2)",
                &[&LABEL.0, &LABEL.1],
            )
            .context("cannot count the store's runs")?
            .get(0);
        anyhow::ensure!(
            others == 0,
            "the store `{url}` holds {} {} not recorded by `bench ingest`: the benchmark writes and \
             deletes three runs of many events, so give it a database of its own (`createdb \
             tapedeck_bench`)",
            render::thousands(others as u64),
            if others == 1 { "run" } else { "runs" }
        );
        // Only now that the store is known to be the benchmark's: what an interrupted
        // benchmark left behind.
        let leftovers: Vec<RunId> = store
            .runs(&bench_runs())?
            .iter()
            .map(|run| run.id)
            .collect();
        store.remove_runs(&leftovers)?;
        Ok(Self {
            target,
            store,
            found,
        })
    }

    /// Measures the baseline, the COPY, then the `Recorder`, and prints their rates, the ratio
    /// Recorder / baseline and the SQLite Recorder's rate (`sqlite_rate`, events/s) beside
    /// them.
    pub fn run(self, n: u64, sqlite_rate: f64) -> anyhow::Result<()> {
        let batch = WriterOptions::default().batch_size;
        let cleanup = Cleanup(&self.store);
        let (baseline_secs, baseline_rows) = self.raw(n, batch, Raw::Insert)?;
        let (copy_secs, copy_rows) = self.raw(n, batch, Raw::Copy)?;
        let (recorder_secs, recorder_rows) = self.recorder(n)?;
        for (how, rows) in [("baseline", baseline_rows), ("COPY", copy_rows)] {
            anyhow::ensure!(
                rows == recorder_rows,
                "the {how} stored other rows than the Recorder: {rows:?} against \
                 {recorder_rows:?} (rows, sum of codecs, payload bytes)"
            );
        }
        drop(cleanup);
        let rate = |secs: f64| n as f64 / secs;
        let pg_rate = rate(recorder_secs);
        anstream::println!(
            "ingest into PostgreSQL `{}` ({}):",
            self.target.url(),
            self.found
        );
        let baseline = format!(
            "baseline: plain multi-row INSERT, {}-row transactions",
            render::thousands(batch as u64)
        );
        anstream::println!("  {baseline:<56}  {:>9.0} events/s", rate(baseline_secs));
        anstream::println!(
            "  {:<56}  {pg_rate:>9.0} events/s",
            "Recorder: typed events, canonical JSON, writer thread"
        );
        anstream::println!(
            "  ratio Recorder / baseline: {:.2}   (goal ≥ 0.50)",
            baseline_secs / recorder_secs
        );
        let copy = format!(
            "for reference: binary COPY, {}-row transactions",
            render::thousands(batch as u64)
        );
        anstream::println!(
            "  {copy:<56}  {:>9.0} events/s   (Recorder / COPY {:.2})",
            rate(copy_secs),
            copy_secs / recorder_secs
        );
        anstream::println!(
            "  beside SQLite's Recorder ({:.0} events/s): PostgreSQL / SQLite {:.2}",
            sqlite_rate,
            pg_rate / sqlite_rate
        );
        Ok(())
    }

    /// The same rows written without tapedeck, pre-encoded, in transactions of `batch` rows
    /// into a scratch run: the baseline (one prepared multi-row INSERT a transaction), or a
    /// binary COPY. Then the run is deleted and the table vacuumed, so each measurement starts
    /// from the same table. The time, and what was stored ([`stored_rows`]).
    fn raw(&self, n: u64, batch: usize, how: Raw) -> anyhow::Result<(f64, StoredRows)> {
        let run = self.start_run()?;
        let mut client = self.target.connect()?;
        let key: i64 = client
            .query_one("SELECT key FROM runs WHERE id = $1", &[&run.to_string()])?
            .get(0);
        let at = Timestamp::now().as_micros();
        let rows: Vec<(i64, i64, &str, i16, Vec<u8>)> = (1..=n)
            .map(|seq| {
                let (kind, codec, data) = pg::event_columns(&event(seq - 1))?;
                Ok((seq as i64, at + seq as i64, kind, codec, data))
            })
            .collect::<anyhow::Result<_>>()?;
        // Prepared whatever `how` is: the COPY does not use it, and it is not timed.
        let full = client.prepare(&insert_sql(batch))?;
        let start = Instant::now();
        for chunk in rows.chunks(batch) {
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * COLUMNS);
            for (seq, at, kind, codec, data) in chunk {
                params.extend([&key as &(dyn ToSql + Sync), seq, at, kind, codec, data]);
            }
            let mut tx = client.transaction()?;
            match how {
                Raw::Insert if chunk.len() == batch => {
                    tx.execute(&full, &params)?;
                }
                Raw::Insert => {
                    tx.execute(insert_sql(chunk.len()).as_str(), &params)?;
                }
                Raw::Copy => {
                    let sink = tx.copy_in(
                        "COPY events (run, seq, at, kind, codec, data) FROM STDIN (FORMAT binary)",
                    )?;
                    let types = [
                        Type::INT8,
                        Type::INT8,
                        Type::INT8,
                        Type::TEXT,
                        Type::INT2,
                        Type::BYTEA,
                    ];
                    let mut writer = BinaryCopyInWriter::new(sink, &types);
                    for row in params.chunks(COLUMNS) {
                        writer.write(row)?;
                    }
                    writer.finish()?;
                }
            }
            tx.commit()?;
        }
        let secs = start.elapsed().as_secs_f64();
        let stored = stored_rows(&mut client, &run, n)?;
        anyhow::ensure!(
            stored.0 as u64 == n,
            "expected {n} raw events, found {}",
            stored.0
        );
        self.store.remove_runs(&[run])?;
        // Plain VACUUM takes no exclusive lock; a role that does not own the table gets a
        // warning from the server and nothing is done.
        client.batch_execute("VACUUM events")?;
        Ok((secs, stored))
    }

    /// tapedeck's path: typed events through a Recorder, finished (so everything is
    /// committed), checked to have stored as many events. The time, and what was stored
    /// ([`stored_rows`]).
    fn recorder(&self, n: u64) -> anyhow::Result<(f64, StoredRows)> {
        let writer = self.store.writer()?;
        let start = Instant::now();
        let mut recorder = writer.start_run(bench_run())?;
        for i in 0..n {
            recorder.append(event(i))?;
        }
        let run = recorder.finish(StopReason::Ok, None)?;
        let secs = start.elapsed().as_secs_f64();
        let stored = self.store.last_seq(&run.id)?;
        anyhow::ensure!(stored == n + 1, "expected {} events, found {stored}", n + 1);
        let rows = stored_rows(&mut self.target.connect()?, &run.id, n)?;
        Ok((secs, rows))
    }

    /// Starts (and commits) a run of the benchmark's, for the baseline's rows.
    fn start_run(&self) -> anyhow::Result<RunId> {
        let writer = self.store.writer()?;
        let recorder = writer.start_run(bench_run())?;
        recorder.flush()?;
        Ok(recorder.id())
    }
}

/// How [`Bench::raw`] writes.
#[derive(Clone, Copy)]
enum Raw {
    /// The baseline: `INSERT INTO events (…) VALUES (…), (…), …`.
    Insert,
    /// `COPY events (…) FROM STDIN (FORMAT binary)`.
    Copy,
}

/// How many of a run's first events are stored, the sum of their codecs and of their payloads'
/// lengths: the baseline must store the rows the Recorder does.
type StoredRows = (i64, i64, i64);

fn stored_rows(client: &mut postgres::Client, run: &RunId, n: u64) -> anyhow::Result<StoredRows> {
    let row = client.query_one(
        "SELECT count(*), coalesce(sum(e.codec), 0)::bigint, coalesce(sum(length(e.data)), 0)::bigint
         FROM events e JOIN runs r ON r.key = e.run WHERE r.id = $1 AND e.seq <= $2",
        &[&run.to_string(), &(n as i64)],
    )?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Deletes the benchmark's runs when dropped, whether it finished or failed.
struct Cleanup<'a>(&'a Store);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Ok(runs) = self.0.runs(&bench_runs()) {
            let ids: Vec<RunId> = runs.iter().map(|run| run.id).collect();
            let _ = self.0.remove_runs(&ids);
        }
    }
}

/// A run labelled as the benchmark's.
fn bench_run() -> Run {
    let mut run = Run::new(Source::Runtime);
    run.labels.insert(LABEL.0.to_owned(), LABEL.1.to_owned());
    run
}

/// The benchmark's runs.
fn bench_runs() -> RunFilter {
    RunFilter {
        labels: vec![(LABEL.0.to_owned(), LABEL.1.to_owned())],
        ..RunFilter::default()
    }
}

/// `INSERT INTO events (…) VALUES (…), (…), …` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO events (run, seq, at, kind, codec, data) VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        let p = row * COLUMNS;
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6
        ));
    }
    sql
}
