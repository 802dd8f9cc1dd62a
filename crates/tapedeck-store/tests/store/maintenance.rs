//! Keeping a store tidy: `merge_from` is idempotent, `remove_runs` + `gc` drop only blobs no
//! remaining run references, and the file does not grow.

use std::collections::HashSet;
use tapedeck_testkit::on_both_stores;

use tapedeck_store::{RunFilter, Store, StoreError};
use tapedeck_trace::{RunId, StopReason};

use crate::support::*;

/// Records a finished sample run; returns its id and the hashes of its blobs.
fn add_sample(
    store: &Store,
    n: u32,
    shared: &str,
) -> (RunId, HashSet<tapedeck_trace::ContentHash>) {
    let writer = store.writer().unwrap();
    let mut rec = writer
        .start_run(run_with(&fixed_id(n), i64::from(n)))
        .unwrap();
    let sample = record_sample(&mut rec, shared, &format!("run{n}"));
    rec.finish_at(StopReason::Ok, None, at(i64::from(n) + 100))
        .unwrap();
    (
        sample.id,
        sample.blobs.into_iter().map(|(h, _)| h).collect(),
    )
}

fn export(store: &Store, id: &RunId) -> Vec<u8> {
    let mut out = Vec::new();
    store.export_tape(id, &mut out).unwrap();
    out
}

on_both_stores! {
    fn merging_twice_adds_nothing_the_second_time(backend) {
        let src = TempStore::on(backend);
        let a = src.open();
        let (r1, _) = add_sample(&a, 1, "shared system prompt");
        let (r2, _) = add_sample(&a, 2, "shared system prompt");
        let dst = TempStore::new();
        let b = dst.open();
        let (r3, _) = add_sample(&b, 3, "another prompt");

        let first = b.merge_from(&a).unwrap();
        assert_eq!(first.added, vec![r1, r2], "oldest first");
        assert_eq!(first.skipped, 0);
        let second = b.merge_from(&a).unwrap();
        assert!(second.added.is_empty());
        assert_eq!(second.skipped, 2);
        assert_eq!(b.runs(&RunFilter::default()).unwrap().len(), 3);
        for id in [r1, r2] {
            assert_eq!(export(&b, &id), export(&a, &id));
        }
        // Merging back the other way brings only the run `a` lacks.
        let back = a.merge_from(&b).unwrap();
        assert_eq!((back.added, back.skipped), (vec![r3], 2));
        // Blobs shared by runs are stored once.
        assert_eq!(
            src.count("SELECT count(*) FROM blobs"),
            dst.count("SELECT count(*) FROM blobs")
        );
    }
}

#[test]
fn remove_and_gc_keep_blobs_other_runs_still_use() {
    let tmp = TempStore::new();
    let store = tmp.open();
    let (r1, b1) = add_sample(&store, 1, "shared system prompt");
    let (r2, b2) = add_sample(&store, 2, "shared system prompt");
    let shared: HashSet<_> = b1.intersection(&b2).copied().collect();
    let only_r1: HashSet<_> = b1.difference(&b2).copied().collect();
    assert!(!shared.is_empty() && !only_r1.is_empty());
    let tape_r2 = export(&store, &r2);
    let total_blobs = b1.union(&b2).count() as i64;
    assert_eq!(tmp.count("SELECT count(*) FROM blobs"), total_blobs);

    let size_before = store.file_size();
    assert_eq!(
        store
            .remove_runs(&[r1, "019ac1f2-3b4c-7d5e-8f60-00000000ffff".parse().unwrap()])
            .unwrap(),
        1
    );
    assert!(matches!(store.run(&r1), Err(StoreError::RunNotFound(_))));
    assert!(matches!(store.events(&r1), Err(StoreError::RunNotFound(_))));
    assert_eq!(
        tmp.count("SELECT count(*) FROM events"),
        14,
        "only r2's events remain"
    );
    // Removing keeps blobs until gc.
    assert_eq!(tmp.count("SELECT count(*) FROM blobs"), total_blobs);

    let report = store.gc().unwrap();
    assert_eq!(report.blobs_removed, only_r1.len() as u64);
    assert!(report.bytes_after <= report.bytes_before, "{report:?}");
    assert!(
        store.file_size() <= size_before,
        "{} > {size_before}",
        store.file_size()
    );
    assert_eq!(tmp.count("SELECT count(*) FROM blobs"), b2.len() as i64);
    for hash in &shared {
        store.blob(hash, &r2).unwrap();
    }
    for hash in &only_r1 {
        assert!(matches!(
            store.blob(hash, &r1),
            Err(StoreError::MissingBlob { .. })
        ));
    }
    // r2 is whole: its tape is unchanged.
    assert_eq!(export(&store, &r2), tape_r2);
    // A second gc finds nothing to do.
    assert_eq!(store.gc().unwrap().blobs_removed, 0);
}

#[test]
fn gc_after_removing_everything_shrinks_the_file() {
    let tmp = TempStore::new();
    let store = tmp.open();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(add_sample(&store, n, &"long shared system prompt ".repeat(50)).0);
    }
    let before = store.file_size();
    assert_eq!(store.remove_runs(&ids).unwrap(), 5);
    let report = store.gc().unwrap();
    assert!(report.blobs_removed > 0);
    assert!(report.bytes_after < before, "{report:?}");
    assert_eq!(tmp.count("SELECT count(*) FROM blobs"), 0);
    assert_eq!(tmp.count("SELECT count(*) FROM run_blobs"), 0);
    assert_eq!(tmp.count("SELECT count(*) FROM run_labels"), 0);
}
