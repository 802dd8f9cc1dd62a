//! Tapes: export → import → export is byte-identical, a second import changes nothing, a tape of
//! every older version is read, and a bad line is refused with its line number, importing
//! nothing.

use serde_json::{Value, json};
use tapedeck_store::{ImportOutcome, RunFilter, Store, StoreError};
use tapedeck_testkit::on_both_stores;
use tapedeck_trace::tape::TAPE_VERSION;
use tapedeck_trace::{RunId, RunStatus, StopReason, TraceError, canonical_json};

use crate::support::*;

/// A finished sample run in a fresh store, and its tape.
fn sample_tape(backend: Backend) -> (TempStore, RunId, Vec<u8>) {
    let tmp = TempStore::on(backend);
    let store = tmp.open();
    let writer = store.writer().unwrap();
    let mut run = run_with(&fixed_id(0x7a7e), 0);
    run.suite = Some("vendor".into());
    run.agent = agent("research-bot", "f00d");
    run.labels.insert("pr".into(), "123".into());
    let mut rec = writer.start_run(run).unwrap();
    let id = rec.id();
    record_sample(&mut rec, "You are research-bot.", "acme");
    rec.finish_at(StopReason::MaxToolCalls, Some("down".into()), at(30))
        .unwrap();
    drop(rec);
    let mut tape = Vec::new();
    store.export_tape(&id, &mut tape).unwrap();
    (tmp, id, tape)
}

on_both_stores! {
    fn export_import_export_is_byte_identical(backend) {
        let (tmp, id, tape) = sample_tape(backend);
        let text = String::from_utf8(tape.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 14, "header + 13 events + run_finished");
        assert!(text.ends_with('\n'));
        for line in &lines {
            let value: Value = serde_json::from_str(line).unwrap();
            assert_eq!(&canonical_json(&value).unwrap(), line, "not canonical");
        }
        // Every blob appears once, at its first reference.
        let blob_count: usize = lines[1..]
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["blobs"]
                    .as_object()
                    .map_or(0, |m| m.len())
            })
            .sum();
        assert_eq!(blob_count, 8);

        let other = TempStore::new();
        let second = other.open();
        let outcome = second.import_tape(&mut tape.as_slice()).unwrap();
        assert_eq!(outcome, ImportOutcome::Imported { id, events: 14 });
        let mut again = Vec::new();
        second.export_tape(&id, &mut again).unwrap();
        assert_eq!(String::from_utf8(again).unwrap(), text);

        let first = tmp.open();
        assert_eq!(second.run(&id).unwrap(), first.run(&id).unwrap());
        assert_eq!(second.events(&id).unwrap(), first.events(&id).unwrap());
        assert_eq!(other.count("SELECT count(*) FROM blobs"), 8);

        // Importing again, here or into the original, changes nothing.
        assert_eq!(
            second.import_tape(&mut tape.as_slice()).unwrap(),
            ImportOutcome::AlreadyPresent(id)
        );
        assert_eq!(
            first.import_tape(&mut tape.as_slice()).unwrap(),
            ImportOutcome::AlreadyPresent(id)
        );
        assert_eq!(other.count("SELECT count(*) FROM events"), 14);
    }
}

on_both_stores! {
    fn an_unfinished_run_is_imported_as_incomplete(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let writer = store.writer().unwrap();
        let mut rec = writer.start_run(run_with(&fixed_id(0x1), 0)).unwrap();
        let id = rec.id();
        record_sample(&mut rec, "s", "u");
        rec.flush().unwrap();
        let mut tape = Vec::new();
        store.export_tape(&id, &mut tape).unwrap();
        drop(rec);
        let other = TempStore::new().open();
        other.import_tape(&mut tape.as_slice()).unwrap();
        assert_eq!(other.run(&id).unwrap().status, RunStatus::Incomplete);
    }
}

/// Replaces a tape's lines with `edit(lines)` and imports the result into a fresh store;
/// checks that nothing was imported and returns the error.
fn import_edited(tape: &[u8], edit: impl FnOnce(&mut Vec<String>)) -> StoreError {
    let mut lines: Vec<String> = String::from_utf8(tape.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    edit(&mut lines);
    let edited = lines.join("\n") + "\n";
    let tmp = TempStore::new();
    let store = tmp.open();
    let err = store.import_tape(&mut edited.as_bytes()).unwrap_err();
    assert!(!err.to_string().contains('\n'), "{err}");
    // All or nothing.
    assert!(store.runs(&RunFilter::default()).unwrap().is_empty());
    for table in ["runs", "events", "blobs", "run_blobs", "run_labels"] {
        assert_eq!(
            tmp.count(&format!("SELECT count(*) FROM {table}")),
            0,
            "{table}"
        );
    }
    // The store still works after the failed import.
    let ok = store.import_tape(&mut tape.to_vec().as_slice()).unwrap();
    assert!(matches!(ok, ImportOutcome::Imported { events: 14, .. }));
    err
}

fn line_of(err: &StoreError) -> usize {
    match err {
        StoreError::Tape(TraceError::TapeLine { line, .. }) => {
            assert!(
                err.to_string().starts_with(&format!("line {line}: ")),
                "{err}"
            );
            *line
        }
        other => panic!("expected a tape line error, got {other:?}"),
    }
}

fn edit_json(lines: &mut [String], n: usize, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&lines[n - 1]).unwrap();
    f(&mut v);
    lines[n - 1] = canonical_json(&v).unwrap();
}

on_both_stores! {
    fn a_gap_in_sequence_numbers_is_refused(backend) {
        let (_tmp, _id, tape) = sample_tape(backend);
        // Line 1 is the header, line k + 1 event k: drop event 5 (a policy decision, no blobs).
        let err = import_edited(&tape, |lines| {
            assert!(lines[5].contains("\"seq\":5") && lines[5].contains("policy_decision"));
            lines.remove(5);
        });
        assert_eq!(line_of(&err), 6);
        assert!(
            err.to_string().contains("expected event 5, found event 6"),
            "{err}"
        );
    }
}

on_both_stores! {
    fn a_blob_that_does_not_match_its_hash_is_refused(backend) {
        let (_tmp, _id, tape) = sample_tape(backend);
        let err = import_edited(&tape, |lines| {
            edit_json(lines, 3, |v| {
                let blobs = v["blobs"].as_object_mut().unwrap();
                let key = blobs.keys().next().unwrap().clone();
                blobs[&key] = json!({"role": "system", "content": "You are evil-bot."});
            });
        });
        assert_eq!(line_of(&err), 3);
        assert!(
            err.to_string().contains("does not match its content"),
            "{err}"
        );
    }
}

on_both_stores! {
    fn a_reference_to_a_blob_no_line_contains_is_refused(backend) {
        let (_tmp, _id, tape) = sample_tape(backend);
        let err = import_edited(&tape, |lines| {
            // Line 4 is event 3, the first response: it brings the assistant message.
            edit_json(lines, 4, |v| {
                v.as_object_mut().unwrap().remove("blobs");
            });
        });
        assert_eq!(line_of(&err), 4);
        assert!(
            err.to_string()
                .contains("which no line up to here contains"),
            "{err}"
        );
    }
}

on_both_stores! {
    fn malformed_json_is_refused_with_its_line(backend) {
        let (_tmp, _id, tape) = sample_tape(backend);
        let err = import_edited(&tape, |lines| {
            let n = lines.len();
            lines[n - 1].truncate(20);
        });
        assert_eq!(line_of(&err), 15);

        let err = import_edited(&tape, |lines| lines[5] = "not json at all".into());
        assert_eq!(line_of(&err), 6);

        let err = import_edited(&tape, |lines| {
            edit_json(lines, 9, |v| v["surprise"] = json!(1));
        });
        assert_eq!(line_of(&err), 9);
    }
}

/// A tape written by tapedeck at tape version 1 (`tests/data/tape-v1.jsonl`, the `clean`
/// fixture as it was then) is read: imported into a store, it exports as the current version
/// with every event line unchanged (version 1 is version 2 without its optional additions).
#[test]
fn a_version_1_tape_is_imported_and_exported_as_the_current_version() {
    let v1 = include_str!("../data/tape-v1.jsonl");
    assert!(v1.lines().next().unwrap().ends_with(r#""version":1}"#));
    let tmp = TempStore::new();
    let store = tmp.open();
    let ImportOutcome::Imported { id, events } = store.import_tape(&mut v1.as_bytes()).unwrap()
    else {
        panic!("the tape was already in a fresh store");
    };
    assert_eq!(events, 9);
    let run = store.run(&id).unwrap();
    assert_eq!(
        run.agent.as_ref().map(|a| a.name.as_str()),
        Some("support-bot")
    );
    assert_eq!(run.stop_reason, Some(StopReason::Ok));
    let found = store
        .runs(&RunFilter {
            agent: Some("support-bot".into()),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(found.len(), 1);

    let mut out = Vec::new();
    store.export_tape(&id, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let header: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], json!(TAPE_VERSION));
    let v1_header: Value = serde_json::from_str(v1.lines().next().unwrap()).unwrap();
    assert_eq!(header["run"], v1_header["run"]);
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        v1.lines().skip(1).collect::<Vec<_>>()
    );
}

on_both_stores! {
    fn bad_headers_are_refused(backend) {
        let (_tmp, _id, tape) = sample_tape(backend);
        let newer = u64::from(TAPE_VERSION) + 1;
        let err = import_edited(&tape, |lines| {
            edit_json(lines, 1, |v| v["version"] = json!(newer));
        });
        assert!(
            matches!(
                err,
                StoreError::Tape(TraceError::TapeVersion { found, .. }) if found == newer
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("upgrade"));

        let err = import_edited(&tape, |lines| {
            lines.remove(0);
        });
        assert_eq!(line_of(&err), 1);

        let store = TempStore::new().open();
        let err = store.import_tape(&mut "".as_bytes()).unwrap_err();
        assert_eq!(line_of(&err), 1);
    }
}

on_both_stores! {
    fn blank_lines_are_skipped_but_counted(backend) {
        let (_tmp, id, tape) = sample_tape(backend);
        let text = String::from_utf8(tape).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(3, "");
        let with_blank = lines.join("\n") + "\n";
        let store: Store = TempStore::new().open();
        assert_eq!(
            store.import_tape(&mut with_blank.as_bytes()).unwrap(),
            ImportOutcome::Imported { id, events: 14 }
        );
        // A bad line after the blank one is named by its line in the file.
        let mut bad = lines.clone();
        bad[10] = "{";
        let store: Store = TempStore::new().open();
        let err = store
            .import_tape(&mut (bad.join("\n") + "\n").as_bytes())
            .unwrap_err();
        assert_eq!(line_of(&err), 11);
    }
}

on_both_stores! {
    /// Regression: a header claiming `tokens_in` of 2^64 - 1 used to import, after which every
    /// `ls` failed on the stored run. A header's totals must be those of its events.
    fn a_header_whose_totals_disagree_with_its_events_is_refused(backend) {
        let (_tmp, _id, tape) = sample_tape(backend);
        let err = import_edited(&tape, |lines| {
            edit_json(lines, 1, |header| {
                header["run"]["totals"]["tokens_in"] = serde_json::json!(u64::MAX);
            });
        });
        assert_eq!(line_of(&err), 1);
        assert!(
            err.to_string().contains("disagree with its events"),
            "{err}"
        );

        let err = import_edited(&tape, |lines| {
            edit_json(lines, 1, |header| {
                header["run"]["totals"]["steps"] = serde_json::json!(99);
            });
        });
        assert_eq!(line_of(&err), 1);
    }
}
