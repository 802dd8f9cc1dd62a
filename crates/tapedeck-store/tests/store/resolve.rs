//! `Store::resolve_run`: full ids, short ids and unique prefixes of either, tails; unknown and
//! ambiguous queries.

use std::collections::HashMap;
use tapedeck_testkit::on_both_stores;

use tapedeck_store::{Store, StoreError};
use tapedeck_trace::{Run, RunId, Source, StopReason};

use crate::support::*;

fn add(store: &Store, id: &str, start: i64) -> RunId {
    let writer = store.writer().unwrap();
    let rec = writer.start_run(run_with(id, start)).unwrap();
    rec.finish(StopReason::Ok, None).unwrap().id
}

const A: &str = "019ac1f2-3b4c-7d5e-8f60-0000aaaa1111";
const B: &str = "019ac1f2-3b4c-7d5e-8f60-0000aabb2222";
const C: &str = "019ac1f3-0000-7000-8000-0000cccc3333";

on_both_stores! {
    fn resolves_full_ids_short_ids_and_prefixes(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let a = add(&store, A, 0);
        let b = add(&store, B, 1);
        let c = add(&store, C, 2);
        assert_eq!(
            (a.short(), b.short(), c.short()),
            ("aaaa1111".into(), "aabb2222".into(), "cccc3333".into())
        );

        let ok = |q: &str| {
            store
                .resolve_run(q)
                .unwrap_or_else(|e| panic!("{q:?}: {e}"))
        };
        // Full id, in any case, hyphenated or not, with stray whitespace.
        assert_eq!(ok(A), a);
        assert_eq!(ok(&A.to_uppercase()), a);
        assert_eq!(ok(&A.replace('-', "")), a);
        assert_eq!(ok(&format!(" {C}\n")), c);
        // Short id and its prefixes.
        assert_eq!(ok("aaaa1111"), a);
        assert_eq!(ok("AAAA1111"), a);
        assert_eq!(ok("aaaa"), a);
        assert_eq!(ok("aab"), b);
        assert_eq!(ok("c"), c);
        // The tail (the last 12 hex digits), exactly.
        assert_eq!(ok("0000aaaa1111"), a);
        assert_eq!(ok("0000CCCC3333"), c);
        assert!(matches!(
            store.resolve_run("000aaaa1111"),
            Err(StoreError::RunNotFound(_))
        ));
        // Prefixes of the full id.
        assert_eq!(ok("019ac1f3"), c);
        assert_eq!(ok("019ac1f2-3b4c-7d5e-8f60-0000aaaa"), a);
        assert_eq!(ok("019ac1f2-3b4c-7d5e-8f60-0000aab"), b);
    }
}

on_both_stores! {
    fn unknown_ids_are_not_found(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        add(&store, A, 0);
        for q in [
            "ffff",
            "019ac1f2-3b4c-7d5e-8f60-0000aaaa1112", // a valid id that is not stored
            "xyz",
            "",
            "  ",
            "%",
            "_",
            "aaaa1111x",
            "019ac1f2_3b4c",
        ] {
            match store.resolve_run(q) {
                Err(StoreError::RunNotFound(s)) => assert_eq!(s, q),
                other => panic!("{q:?}: {other:?}"),
            }
        }
        let message = store.resolve_run("ffff").unwrap_err().to_string();
        assert!(
            message.contains("`ffff`") && message.contains("tapedeck ls"),
            "{message}"
        );
    }
}

on_both_stores! {
    fn ambiguous_prefixes_name_the_candidates(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        add(&store, A, 0);
        add(&store, B, 1);
        add(&store, C, 2);
        for (q, expected) in [
            ("aa", vec![B, A]),
            ("019ac1f2", vec![B, A]),
            ("0", vec![C, B, A]),
        ] {
            match store.resolve_run(q) {
                Err(StoreError::AmbiguousRun { prefix, candidates }) => {
                    assert_eq!(prefix, q);
                    let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
                    assert_eq!(ids, expected, "{q}");
                }
                other => panic!("{q:?}: {other:?}"),
            }
        }
        let message = store.resolve_run("aa").unwrap_err().to_string();
        assert!(
            message.contains(A) && message.contains(B) && !message.contains('\n'),
            "{message}"
        );
    }
}

on_both_stores! {
    fn real_ids_sharing_a_first_short_id_digit_are_ambiguous(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let writer = store.writer().unwrap();
        let mut by_first: HashMap<char, Vec<RunId>> = HashMap::new();
        // Sixteen hex digits: the seventeenth run at the latest shares its first digit.
        let (digit, pair) = loop {
            let rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
            let id = rec.finish(StopReason::Ok, None).unwrap().id;
            let first = id.short().chars().next().unwrap();
            let same = by_first.entry(first).or_default();
            same.push(id);
            if same.len() == 2 {
                break (first, same.clone());
            }
            assert!(by_first.values().map(Vec::len).sum::<usize>() <= 17);
        };
        match store.resolve_run(&digit.to_string()) {
            // `0` also prefixes every full id (they start with the timestamp), so the candidate
            // list (at most five) may show other runs.
            Err(StoreError::AmbiguousRun { candidates, .. }) if digit == '0' => {
                assert!(candidates.len() >= 2, "{candidates:?}");
            }
            Err(StoreError::AmbiguousRun { candidates, .. }) => {
                assert_eq!(candidates.len(), 2, "{candidates:?}");
                for id in &pair {
                    assert!(
                        candidates.iter().any(|c| c.id == id.to_string()),
                        "{candidates:?}"
                    );
                }
            }
            other => panic!("{digit}: {other:?}"),
        }
        // Each still resolves by its own short id and its full id.
        for id in &pair {
            assert_eq!(store.resolve_run(&id.short()).unwrap(), *id);
            assert_eq!(store.resolve_run(&id.to_string()).unwrap(), *id);
        }
    }
}
