//! The tapes in `fixtures/tapes/`: current with the scenarios that generate them, valid tapes,
//! and exactly what the store exports after importing them.

use std::collections::HashSet;
use std::path::PathBuf;

use tapedeck_store::{ImportOutcome, Store};
use tapedeck_testkit::scenarios::{self, ALL};
use tapedeck_testkit::{fixtures_dir, message};
use tapedeck_trace::tape::{self, TapeEvent};
use tapedeck_trace::{EventData, RunId, RunStatus, StopReason, hash_json};

fn tape_path(name: &str) -> PathBuf {
    fixtures_dir().join("tapes").join(name)
}

#[test]
fn fixtures_are_current() {
    let update = std::env::var_os("TAPEDECK_UPDATE_FIXTURES").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, build) in ALL {
        let path = tape_path(name);
        let text = build();
        if update {
            std::fs::create_dir_all(path.parent().expect("a tape has a folder"))
                .expect("create fixtures/tapes");
            std::fs::write(&path, &text).expect("write a fixture");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == text => {}
            Ok(_) => stale.push(format!("{} differs from its scenario", path.display())),
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "fixture tapes are out of date:\n  {}\nregenerate them with \
         `TAPEDECK_UPDATE_FIXTURES=1 cargo test -p tapedeck-testkit` and review the diff",
        stale.join("\n  ")
    );
}

#[test]
fn scenarios_are_deterministic() {
    for (name, build) in ALL {
        assert_eq!(build(), build(), "{name} differs between two builds");
    }
}

#[test]
fn every_tape_is_valid() {
    for (name, build) in ALL {
        let text = build();
        let mut lines = text.lines();
        let header = tape::parse_header(lines.next().expect("a header line"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let run = header.run;
        assert_ne!(run.status, RunStatus::Running, "{name} is finished");
        let mut defined = HashSet::new();
        let mut last = None;
        for (i, line) in lines.enumerate() {
            let TapeEvent { event, blobs } =
                tape::parse_event(line, i + 2).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(event.seq, i as u64 + 1, "{name}: events are numbered 1..n");
            for (hash, content) in &blobs {
                let (actual, _) = hash_json(content).expect("canonical blob");
                assert_eq!(&actual, hash, "{name} event {}: blob hash", event.seq);
                assert!(defined.insert(*hash), "{name}: blob {hash} inlined twice");
            }
            for hash in event.data.blob_refs() {
                assert!(
                    defined.contains(&hash),
                    "{name} event {}: blob {hash} used before it is defined",
                    event.seq
                );
            }
            if let EventData::ToolCall(call) = &event.data {
                assert_eq!(
                    call.args, call.args_hash,
                    "{name}: args_hash is the args blob"
                );
            }
            // Each line is canonical: writing what was read gives back the line.
            let again = tape::to_line(&TapeEvent {
                event: event.clone(),
                blobs,
            })
            .expect("canonical line");
            assert_eq!(
                again.trim_end(),
                line,
                "{name} event {} is canonical",
                event.seq
            );
            last = Some(event);
        }
        let last = last.expect("a tape has events");
        assert_eq!(
            Some(last.at),
            run.ended_at,
            "{name}: ends with its last event"
        );
        match last.data {
            EventData::RunFinished(f) => {
                assert_eq!(Some(f.stop_reason), run.stop_reason, "{name}");
                assert_eq!(f.status, run.status, "{name}");
            }
            other => panic!("{name} ends with {} instead of run_finished", other.kind()),
        }
    }
}

#[test]
fn store_round_trip_is_byte_identical() {
    // The scenario's text, not the file: `fixtures_are_current` checks they are equal, and may
    // be rewriting the files while this test runs.
    for (name, build) in ALL {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("tapedeck.db")).expect("open store");
        let bytes = build().into_bytes();
        let id = match store
            .import_tape(&mut bytes.as_slice())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
        {
            ImportOutcome::Imported { id, .. } => id,
            ImportOutcome::AlreadyPresent(id) => panic!("{name}: run {id} imported twice"),
        };
        let mut exported = Vec::new();
        store.export_tape(&id, &mut exported).expect("export");
        assert!(
            exported == bytes,
            "{name}: exporting the imported tape changed it"
        );
    }
}

#[test]
fn incident_spends_the_tool_call_budget_on_browser_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("tapedeck.db")).expect("open store");
    let text = scenarios::browser_retry_incident();
    store
        .import_tape(&mut text.as_bytes())
        .expect("import the incident");
    let id: RunId = scenarios::INCIDENT_RUN_ID.parse().expect("run id");
    let run = store.run(&id).expect("the incident run");
    let events = store.events(&id).expect("its events");

    assert_eq!(run.stop_reason, Some(StopReason::MaxToolCalls));
    assert_eq!(run.status, RunStatus::Stopped);
    assert_eq!(run.totals.tool_calls.len(), 1);
    assert_eq!(run.totals.tool_calls.get("browser.open"), Some(&15));
    assert_eq!(run.totals.steps, 16);

    let llm_cost: f64 = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::LlmResponse(r) => Some(r.cost_usd.expect("priced model")),
            _ => None,
        })
        .sum();
    let cost = run.totals.cost_usd.expect("known cost");
    assert!((cost - (10.80 + llm_cost)).abs() < 1e-9, "cost {cost}");
    assert!(
        run.totals.latency_ms.expect("finished") < 90_000,
        "max_seconds not reached"
    );

    let failed = events
        .iter()
        .filter(|e| matches!(&e.data, EventData::ToolResult(r) if r.error.is_some()))
        .count();
    assert_eq!(failed, 15, "every browser.open call failed");
    let kinds: Vec<&str> = events.iter().rev().take(3).map(|e| e.data.kind()).collect();
    assert_eq!(kinds, ["run_finished", "budget_exceeded", "llm_response"]);
}

#[test]
fn scenario_figures() {
    let cases = [
        (
            scenarios::clean_run(),
            9,
            StopReason::Ok,
            vec![("kb.read", 1)],
        ),
        (
            scenarios::tool_denied_run(),
            6,
            StopReason::ToolDenied("http.post".to_owned()),
            vec![("http.post", 1)],
        ),
        (
            scenarios::long_run(),
            604,
            StopReason::Ok,
            vec![("kb.read", 60), ("search.read", 60)],
        ),
        (
            scenarios::browser_retry_incident(),
            80,
            StopReason::MaxToolCalls,
            vec![("browser.open", 15)],
        ),
    ];
    for (text, events, reason, calls) in cases {
        let run = tape::parse_header(text.lines().next().expect("header"))
            .expect("header")
            .run;
        assert_eq!(text.lines().count() - 1, events, "{}", run.id);
        assert_eq!(run.stop_reason, Some(reason), "{}", run.id);
        let calls = calls.into_iter().map(|(t, n)| (t.to_owned(), n)).collect();
        assert_eq!(run.totals.tool_calls, calls, "{}", run.id);
    }
}

#[test]
fn history_is_resent_as_blob_refs() {
    // The second step of the clean run resends the system prompt and the question: its
    // request extends the first one (listing only the new messages) and inlines only what is
    // new; expanded, its history begins with the first request's messages.
    let text = scenarios::clean_run();
    let requests: Vec<TapeEvent> = text
        .lines()
        .skip(1)
        .enumerate()
        .map(|(i, l)| tape::parse_event(l, i + 2).expect("event"))
        .filter(|e| e.event.data.kind() == "llm_request")
        .collect();
    let [first, second] = requests.as_slice() else {
        panic!("two requests expected, found {}", requests.len());
    };
    let (EventData::LlmRequest(a), EventData::LlmRequest(b)) =
        (&first.event.data, &second.event.data)
    else {
        unreachable!("filtered on llm_request");
    };
    assert_eq!(a.messages.len(), 2);
    assert_eq!(a.extends, None);
    assert_eq!(b.extends, Some(first.event.seq));
    assert_eq!(
        b.messages.len(),
        2,
        "only the assistant and tool messages are new"
    );
    let events: Vec<_> = [first, second].iter().map(|t| t.event.clone()).collect();
    let full = tapedeck_trace::expand_messages(&events);
    let b_full = &full[&second.event.seq];
    assert_eq!(b_full.len(), 4);
    assert_eq!(a.messages[..], b_full[..2]);
    let (system, _) = hash_json(&message::system(
        "You are support-bot, the help desk of Acme. Answer from the knowledge base and name \
         the article you used. Never change account or billing data yourself.",
    ))
    .expect("hash");
    assert_eq!(a.messages[0], system);
    // The assistant message was inlined by step 1's response and the tool schemas by step 1's
    // request: step 2 inlines only the tool message.
    let tool_message = b_full[3];
    assert_eq!(
        second.blobs.keys().copied().collect::<Vec<_>>(),
        [tool_message]
    );
}
