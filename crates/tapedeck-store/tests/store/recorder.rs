//! Recording: a run's round trip through `Recorder` and `Store`, commit on flush interval,
//! on batch size and on drop, `running` vs `incomplete` owners, and many threads on one writer.

use std::time::{Duration, Instant};
use tapedeck_testkit::on_both_stores;

use serde_json::json;
use tapedeck_store::{RunFilter, Store, StoreError, Writer, WriterOptions};
use tapedeck_trace::{
    EventData, LlmRetry, Run, RunStatus, Source, StopReason, expand_messages, hash_json,
};

use crate::support::*;

on_both_stores! {
    fn recorded_run_reads_back_with_totals_and_outcome(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let writer = store.writer().unwrap();
        let mut run = run_with(&fixed_id(0xaaaa_1111), 0);
        run.suite = Some("vendor".into());
        run.task = Some("health".into());
        run.input = Some("is the vendor API healthy?".into());
        run.agent = agent("research-bot", "f00dfeed");
        run.labels.insert("model".into(), "gpt-4.1-mini".into());
        let mut rec = writer.start_run(run.clone()).unwrap();
        // The run is in the store (and running) as soon as start_run returns.
        assert_eq!(store.run(&run.id).unwrap().status, RunStatus::Running);

        let sample = record_sample(&mut rec, "You are research-bot.", "acme");
        // Storing a blob twice gives the same hash and stores it once.
        let again = rec.blob(&sample.blobs[1].1).unwrap();
        assert_eq!(again, sample.blobs[1].0);

        let finished = rec
            .finish_at(StopReason::MaxToolCalls, Some("partial".into()), at(60))
            .unwrap();
        let last = sample.events.len() as u64 + 1;
        assert_eq!(
            rec.committed_seq(),
            last,
            "committed_seq after finish is the last seq"
        );
        drop(rec);

        let stored = store.run(&run.id).unwrap();
        assert_eq!(stored, finished);
        assert_eq!(stored.status, RunStatus::Stopped);
        assert_eq!(stored.stop_reason, Some(StopReason::MaxToolCalls));
        assert_eq!(stored.answer.as_deref(), Some("partial"));
        assert_eq!(stored.ended_at, Some(at(60)));
        assert_eq!(stored.suite.as_deref(), Some("vendor"));
        assert_eq!(stored.agent, run.agent);
        assert_eq!(stored.labels, run.labels);
        let t = &stored.totals;
        assert_eq!(t.steps, 2);
        assert_eq!(t.tool_calls.get("browser.open"), Some(&2));
        assert_eq!(t.tool_calls.get("kb.read"), Some(&1));
        assert_eq!(t.tool_calls_total(), 3);
        assert_eq!((t.tokens_in, t.tokens_out), (Some(800), Some(50)));
        assert!(
            (t.cost_usd.unwrap() - 1.47).abs() < 1e-9,
            "{:?}",
            t.cost_usd
        );
        assert_eq!(t.latency_ms, Some(60_000));

        let events = store.events(&run.id).unwrap();
        assert_eq!(events.len() as u64, last);
        let full_messages = expand_messages(&events);
        for (i, (event, data)) in events.iter().zip(&sample.events).enumerate() {
            let seq = i as u64 + 1;
            assert_eq!(event.seq, seq);
            assert_eq!(event.at, at(1 + i as i64));
            match (&event.data, data) {
                // Requests are stored compacted; expanded, they are what was appended.
                (EventData::LlmRequest(stored), EventData::LlmRequest(sent)) => {
                    assert_eq!(full_messages[&seq], sent.messages, "event {seq}");
                    let mut expanded = stored.clone();
                    expanded.messages = full_messages[&seq].clone();
                    expanded.extends = None;
                    assert_eq!(&expanded, sent, "event {seq}");
                }
                (stored, sent) => assert_eq!(stored, sent, "event {seq}"),
            }
        }
        // The second request resends the first one's messages: it is stored as extending it.
        match (&events[1].data, &events[9].data) {
            (EventData::LlmRequest(first), EventData::LlmRequest(second)) => {
                assert_eq!((first.extends, first.messages.len()), (None, 2));
                assert_eq!((second.extends, second.messages.len()), (Some(2), 1));
            }
            other => panic!("{other:?}"),
        }
        match &events[last as usize - 1].data {
            EventData::RunFinished(f) => {
                assert_eq!(f.stop_reason, StopReason::MaxToolCalls);
                assert_eq!(f.status, RunStatus::Stopped);
                assert_eq!(f.answer.as_deref(), Some("partial"));
            }
            other => panic!("last event is {other:?}"),
        }
        assert_eq!(store.last_seq(&run.id).unwrap(), last);
        for (hash, value) in &sample.blobs {
            assert_eq!(&store.blob(hash, &run.id).unwrap(), value);
        }
        let distinct: std::collections::HashSet<_> = sample.blobs.iter().map(|(h, _)| *h).collect();
        assert_eq!(
            tmp.count("SELECT count(*) FROM blobs") as usize,
            distinct.len()
        );

        // A second open of the file sees the same.
        drop(writer);
        drop(store);
        let reopened = tmp.open();
        assert_eq!(reopened.run(&run.id).unwrap(), finished);
        assert_eq!(reopened.events(&run.id).unwrap(), events);
    }
}

on_both_stores! {
    /// A proxy run learns its agent's fingerprint only at its end: set then, the agent is found by
    /// `runs --agent` (name or fingerprint prefix) only once the run is finished, and stays set when
    /// totals are rewritten in the same batch.
    fn an_agent_set_at_the_end_of_a_run_is_stored_and_found(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let writer = store.writer().unwrap();
        let mut run = run_with(&fixed_id(0xa9e7), 0);
        run.source = Source::Proxy;
        let mut rec = writer.start_run(run.clone()).unwrap();
        record_sample(&mut rec, "You are weather-bot.", "acme");
        rec.flush().unwrap();
        let by = |agent: &str| {
            store
                .runs(&RunFilter {
                    agent: Some(agent.into()),
                    ..RunFilter::default()
                })
                .unwrap()
                .len()
        };
        assert_eq!(by("weather-bot"), 0);
        rec.set_agent(tapedeck_trace::AgentInfo {
            name: "weather-bot".into(),
            fingerprint: "c0ffee42".into(),
        });
        rec.append(retry(1)).unwrap();
        let finished = rec.finish(StopReason::Ok, None).unwrap();
        assert_eq!(finished.agent, agent("weather-bot", "c0ffee42"));
        assert_eq!(store.run(&run.id).unwrap().agent, finished.agent);
        assert_eq!(by("weather-bot"), 1);
        assert_eq!(by("c0ff"), 1);
        assert_eq!(by("weather"), 0);
        let report = store.monitor(&RunFilter::default()).unwrap();
        assert_eq!(report.agents[0].agent, "weather-bot");
        assert_eq!(report.agents[0].fingerprint.as_deref(), Some("c0ffee42"));
    }
}

on_both_stores! {
    fn ok_and_error_stop_reasons_set_the_status(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let writer = store.writer().unwrap();
        for (reason, status) in [
            (StopReason::Ok, RunStatus::Ok),
            (StopReason::ModelError, RunStatus::Error),
            (
                StopReason::ToolDenied("http.get".into()),
                RunStatus::Stopped,
            ),
        ] {
            let rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
            let id = rec.id();
            let run = rec.finish(reason.clone(), None).unwrap();
            assert_eq!(run.status, status);
            let stored = store.run(&id).unwrap();
            assert_eq!((stored.status, stored.stop_reason), (status, Some(reason)));
            assert!(stored.ended_at.is_some() && stored.totals.latency_ms.is_some());
        }
    }
}

on_both_stores! {
    /// Regression: events appended after `finish_at` used to be dropped without a word.
    fn appending_to_a_finished_run_is_an_error(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let writer = store.writer().unwrap();
        let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
        let id = rec.id();
        rec.finish_at(StopReason::Ok, None, tapedeck_trace::Timestamp::now())
            .unwrap();
        let err = rec.append(retry(1)).unwrap_err();
        assert!(matches!(err, StoreError::RunFinished(_)), "{err:?}");
        drop(rec);
        assert_eq!(
            store.last_seq(&id).unwrap(),
            1,
            "only run_finished is stored"
        );
    }
}

/// Regression: a proxy run whose events could not be stored ended with "run X: some events
/// could not be written: … has finished; no more events can be recorded into it", the message
/// of another error. Triggered here for real: the `events` table is dropped under a recording,
/// so the writer's next commit fails; the error names the run, how many of its events are
/// missing, the store and SQLite's reason.
#[test]
fn a_failed_write_names_the_run_the_missing_events_and_the_store() {
    let tmp = TempStore::new();
    let store = tmp.open();
    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
    let id = rec.id();
    rec.append(retry(1)).unwrap();
    assert_eq!(rec.flush().unwrap(), 1);
    tmp.sql().execute_batch("DROP TABLE events").unwrap();
    rec.append(retry(2)).unwrap();
    rec.append(retry(3)).unwrap();
    let err = rec
        .finish_at(StopReason::Ok, None, tapedeck_trace::Timestamp::now())
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::EventsNotWritten { count: 3, .. }),
        "{err:?}"
    );
    // Events 2, 3 and run_finished.
    assert_eq!(
        err.to_string(),
        format!(
            "run {id}: 3 events could not be written to `{}`: no such table: events",
            tmp.path.display()
        )
    );
    assert!(!err.is_input_error());
    // The writer stays failed: a later write of the run says so the same way.
    let err = rec.append(retry(4)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("run {id}: 4 events could not be written to `")),
        "{err}"
    );
}

fn retry(i: u64) -> EventData {
    EventData::LlmRetry(LlmRetry {
        step: 1,
        attempt: i as u32,
        status: Some(503),
        error: None,
        wait_ms: i,
    })
}

fn wait_for(mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(2), "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

on_both_stores! {
    fn events_commit_on_the_flush_interval_without_an_explicit_flush(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let options = WriterOptions {
            flush_interval: Duration::from_millis(20),
            ..WriterOptions::default()
        };
        let writer = store.writer_with(options).unwrap();
        let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
        assert_eq!(rec.committed_seq(), 0);
        for i in 1..=3 {
            assert_eq!(rec.append(retry(i)).unwrap(), i);
        }
        let waited = wait_for(|| rec.committed_seq() == 3);
        assert!(waited < Duration::from_millis(500), "{waited:?}");
        // Committed means visible to another connection.
        assert_eq!(store.events(&rec.id()).unwrap().len(), 3);
        assert_eq!(store.last_seq(&rec.id()).unwrap(), 3);
        rec.append(retry(4)).unwrap();
        wait_for(|| rec.committed_seq() == 4);
        assert_eq!(store.last_seq(&rec.id()).unwrap(), 4);
    }
}

on_both_stores! {
    fn a_full_batch_commits_before_the_interval(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let options = WriterOptions {
            flush_interval: Duration::from_secs(3600),
            batch_size: 4,
            ..WriterOptions::default()
        };
        let writer = store.writer_with(options).unwrap();
        let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
        for i in 1..=8 {
            rec.append(retry(i)).unwrap();
        }
        wait_for(|| rec.committed_seq() == 8);
        assert_eq!(store.last_seq(&rec.id()).unwrap(), 8);
        // Two more stay pending until flushed (the interval is an hour away).
        rec.append(retry(9)).unwrap();
        rec.append(retry(10)).unwrap();
        assert_eq!(rec.flush().unwrap(), 10);
        assert_eq!(store.last_seq(&rec.id()).unwrap(), 10);
    }
}

#[test]
fn dropping_a_recorder_commits_and_leaves_the_run_running_while_its_process_lives() {
    let tmp = TempStore::new();
    let store = tmp.open();
    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(run_with(&fixed_id(1), 0)).unwrap();
    let id = rec.id();
    let sample = record_sample(&mut rec, "system", "drop");
    drop(rec);
    drop(writer);

    // Another open of the store (as `tapedeck ls` would do) while this process is alive.
    let reopened = tmp.open();
    let run = reopened.run(&id).unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.stop_reason, None);
    assert_eq!(reopened.events(&id).unwrap().len(), sample.events.len());
    // Totals were kept up to date while recording.
    assert_eq!(run.totals.steps, 2);
    assert_eq!(run.totals.tool_calls_total(), 3);
    let owner: String = tmp
        .sql()
        .query_row("SELECT owner FROM runs", [], |r| r.get(0))
        .unwrap();
    assert!(
        owner.contains(&format!("/{}/", std::process::id())),
        "{owner}"
    );
    assert_eq!(
        store.runs(&RunFilter::default()).unwrap()[0].status,
        RunStatus::Running
    );
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

/// Records a run, leaves it unfinished, then sets its owner as given.
fn unfinished_run_owned_by(owner: &str) -> (TempStore, tapedeck_trace::RunId, usize) {
    let tmp = TempStore::new();
    let store = tmp.open();
    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
    let id = rec.id();
    let n = record_sample(&mut rec, "system", "dead").events.len();
    drop(rec);
    drop(writer);
    drop(store);
    let changed = tmp
        .sql()
        .execute(
            "UPDATE runs SET owner = ?1 WHERE id = ?2",
            [owner, &id.to_string()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    (tmp, id, n)
}

#[test]
fn a_run_whose_process_died_is_incomplete_on_open() {
    let (tmp, id, n) = unfinished_run_owned_by(&format!("{}/999999999/1", hostname()));
    let store = tmp.open();
    let run = store.run(&id).unwrap();
    assert_eq!(run.status, RunStatus::Incomplete);
    assert_eq!(
        store.events(&id).unwrap().len(),
        n,
        "committed events are kept"
    );
    let filter = RunFilter {
        status: Some(RunStatus::Incomplete),
        ..RunFilter::default()
    };
    assert_eq!(store.runs(&filter).unwrap().len(), 1);
    let (status, owner): (String, Option<String>) = tmp
        .sql()
        .query_row("SELECT status, owner FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((status.as_str(), owner), ("incomplete", None));
}

#[test]
fn a_reused_pid_does_not_keep_a_dead_run_running() {
    // Our own pid, but another start time: the process that recorded the run is gone and the
    // pid was given to someone else (us).
    let (tmp, id, _) = unfinished_run_owned_by(&format!("{}/{}/1", hostname(), std::process::id()));
    assert_eq!(tmp.open().run(&id).unwrap().status, RunStatus::Incomplete);
}

#[test]
fn a_run_owned_on_another_host_stays_running() {
    let (tmp, id, _) = unfinished_run_owned_by("some-other-host.invalid/12/34");
    assert_eq!(tmp.open().run(&id).unwrap().status, RunStatus::Running);
}

on_both_stores! {
    fn four_threads_record_through_one_writer(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let writer = store.writer().unwrap();
        const EVENTS: u64 = 2_000;
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
                    let tool = format!("tool.{t}");
                    let args = rec.blob(&json!({"thread": t})).unwrap();
                    for i in 1..=EVENTS {
                        let call = tool_call(1, &format!("c{i}"), &tool, args);
                        assert_eq!(rec.append(call).unwrap(), i);
                    }
                    rec.finish(StopReason::Ok, Some(format!("thread {t}")))
                        .unwrap()
                })
            })
            .collect();
        let runs: Vec<Run> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(store.runs(&RunFilter::default()).unwrap().len(), 4);
        for (t, run) in runs.iter().enumerate() {
            let stored = store.run(&run.id).unwrap();
            assert_eq!(stored.status, RunStatus::Ok);
            assert_eq!(
                stored.totals.tool_calls.get(&format!("tool.{t}")),
                Some(&EVENTS)
            );
            assert_eq!(stored.totals.tool_calls.len(), 1);
            let events = store.events(&run.id).unwrap();
            assert_eq!(events.len() as u64, EVENTS + 1);
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.seq, i as u64 + 1);
            }
            let (args, _) = hash_json(&json!({"thread": t})).unwrap();
            assert!(matches!(&events[0].data, EventData::ToolCall(c) if c.args == args));
        }
        assert_eq!(
            tmp.count("SELECT count(*) FROM events"),
            4 * (EVENTS as i64 + 1)
        );
    }
}

#[test]
fn writers_for_one_file_are_shared_and_open_existing_does_not_create() {
    let tmp = TempStore::new();
    assert!(Store::open_existing(&tmp.path).unwrap().is_none());
    assert!(!tmp.path.exists());
    let store = tmp.open();
    assert!(tmp.path.exists());
    assert!(Store::open_existing(&tmp.path).unwrap().is_some());
    assert_eq!(store.path(), tmp.path.as_path());
    // Two writers of one process on one file share the queue: a flush on one commits
    // what the other's recorder appended.
    let a = store.writer().unwrap();
    let b = Writer::start(&tmp.path, WriterOptions::default()).unwrap();
    let mut rec = a.start_run(Run::new(Source::Runtime)).unwrap();
    rec.append(retry(1)).unwrap();
    b.flush().unwrap();
    assert_eq!(rec.committed_seq(), 1);
}

on_both_stores! {
    /// Regression: starting a run whose id is already stored (an importer run twice) failed the
    /// whole batch, lost the other recorders' pending events and left the process's writer failed
    /// for good, so every later recording in the process failed too.
    fn starting_a_run_twice_is_refused_without_stopping_other_recordings(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let writer = store.writer().unwrap();
        let mut other = writer.start_run(Run::new(Source::Runtime)).unwrap();
        let id = fixed_id(0xd0d0);
        let first = writer.start_run(run_with(&id, 0)).unwrap();
        let stored = first.finish(StopReason::Ok, Some("first".into())).unwrap();
        // Pending in the same batch as the duplicate start.
        other.append(retry(1)).unwrap();

        match writer.start_run(run_with(&id, 5)) {
            Err(StoreError::DuplicateRun(dup)) => assert_eq!(dup, id),
            Err(e) => panic!("expected DuplicateRun, got {e:?}"),
            Ok(_) => panic!("a second run with id {id} was started"),
        }
        assert_eq!(
            store.run(&stored.id).unwrap(),
            stored,
            "the stored run is unchanged"
        );

        // Everything else goes on.
        other.append(retry(2)).unwrap();
        assert_eq!(other.flush().unwrap(), 2);
        let other_id = other.id();
        other.finish(StopReason::Ok, None).unwrap();
        assert_eq!(store.events(&other_id).unwrap().len(), 3);
        let later = writer.start_run(Run::new(Source::Runtime)).unwrap();
        later.finish(StopReason::Ok, None).unwrap();
        assert_eq!(store.runs(&RunFilter::default()).unwrap().len(), 3);
    }
}
