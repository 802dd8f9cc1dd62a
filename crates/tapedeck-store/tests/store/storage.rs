//! How content is stored: a conversation that resends every message stays linear in size
//! (messages are blobs stored once), content is compressed when that shrinks it, and a store
//! written by an older tapedeck (schema 1, schema 2) is read and written on.

use serde_json::{Value, json};
use tapedeck_trace::{Run, RunStatus, Source, StopReason, Timestamp, hash_json};

use crate::support::*;

/// A distinct message of about 200 bytes.
fn message(i: usize) -> Value {
    let role = if i.is_multiple_of(2) {
        "user"
    } else {
        "assistant"
    };
    let text: String = format!("message {i:04}: ")
        .chars()
        .chain((0..180).map(|k| char::from(b'a' + ((i * 7 + k * 13) % 26) as u8)))
        .collect();
    json!({"role": role, "content": text})
}

/// What storing a conversation took.
struct Sizes {
    /// `Store::file_size` after a flush (file and write-ahead log).
    flushed: u64,
    /// Bytes of event rows.
    event_bytes: i64,
    /// Distinct messages sent, and blob rows stored.
    messages: usize,
    blobs: i64,
}

/// Records a conversation of `rounds` model calls, each resending every earlier message.
fn conversation(rounds: usize) -> Sizes {
    let tmp = TempStore::new();
    let store = tmp.open();
    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
    let mut history = Vec::new();
    let mut messages = 0;
    for round in 0..rounds {
        history.push(message(2 * round));
        messages += 1;
        // The agent resends the whole conversation: every message is put again.
        let refs = history.iter().map(|m| rec.blob(m).unwrap()).collect();
        rec.append(request(round as u64 + 1, refs, None)).unwrap();
        let answer = message(2 * round + 1);
        let hash = rec.blob(&answer).unwrap();
        history.push(answer);
        messages += 1;
        rec.append(response(round as u64 + 1, hash, &[], Some((10, 10)), None))
            .unwrap();
    }
    rec.flush().unwrap();
    let flushed = store.file_size();
    let id = rec.id();
    rec.finish(StopReason::Ok, None).unwrap();
    // Every request still reads back as the whole conversation up to it.
    let events = store.events(&id).unwrap();
    let full = tapedeck_trace::expand_messages(&events);
    assert_eq!(full.len(), rounds);
    assert_eq!(full.values().last().unwrap().len(), 2 * rounds - 1);
    Sizes {
        flushed,
        event_bytes: tmp.count("SELECT sum(length(data)) FROM events"),
        messages,
        blobs: tmp.count("SELECT count(*) FROM blobs"),
    }
}

#[test]
fn a_resent_conversation_grows_linearly() {
    let [s10, s30, s100] = [10, 30, 100].map(conversation);
    for s in [&s10, &s30, &s100] {
        assert_eq!(s.blobs, s.messages as i64, "one blob per distinct message");
    }
    assert_eq!(s100.messages, 200);
    let (f10, f30, f100) = (s10.flushed, s30.flushed, s100.flushed);
    assert!(f10 < f30 && f30 < f100, "{f10} {f30} {f100}");
    let r100 = f100 as f64 / f10 as f64;
    assert!(
        r100 < 15.0,
        "size(100)/size(10) = {r100:.1} ({f10} -> {f100} bytes)"
    );
    assert!(f30 as f64 / f10 as f64 <= 3.0, "{f10} -> {f30} bytes");
    // The file size has fixed costs (schema pages, log frames); the event rows alone show
    // the growth: the same bytes per round at 10, 30 and 100 rounds. Listing every message
    // hash in every request (about 74 bytes each) would make 100 rounds cost ~90 times 10.
    let per_round =
        |a: &Sizes, b: &Sizes, rounds: i64| (b.event_bytes - a.event_bytes) as f64 / rounds as f64;
    let early = per_round(&s10, &s30, 20);
    let late = per_round(&s30, &s100, 70);
    assert!(
        late < early * 1.2,
        "event bytes per round grew from {early:.0} to {late:.0}"
    );
    let ratio = s100.event_bytes as f64 / s10.event_bytes as f64;
    assert!(
        ratio < 11.0,
        "event bytes: {} -> {} ({ratio:.1}x)",
        s10.event_bytes,
        s100.event_bytes
    );
    // Storing each request whole would take at least sum(2r - 1) * 200 bytes.
    let whole: u64 = (1..=100u64).map(|r| (2 * r - 1) * 200).sum();
    assert!(
        f100 * 2 < whole,
        "{f100} bytes is not much below the {whole} of whole requests"
    );
}

#[test]
fn blobs_are_compressed_when_that_shrinks_them_and_read_back_equal() {
    let tmp = TempStore::new();
    let store = tmp.open();
    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
    let id = rec.id();
    let large = json!({"html": "<tr><td>browser.open</td><td>503</td></tr>".repeat(100)});
    // A typical chat message: a few hundred bytes, whose shape the store's dictionary knows.
    let message = json!({"role": "assistant", "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "status.read", "arguments": "{\"service\":\"payments\"}"}
    }], "content": "Checking the payments API first: its status page lists the last incidents."});
    // Too short to be worth compressing.
    let small = json!({"n": 7});
    let (large_hash, large_text) = hash_json(&large).unwrap();
    assert!(large_text.len() > 512);
    assert_eq!(rec.blob(&large).unwrap(), large_hash);
    let message_hash = rec.blob(&message).unwrap();
    let small_hash = rec.blob(&small).unwrap();
    rec.append(tool_result("c1", "browser.open", Some(large_hash), None))
        .unwrap();
    rec.append(tool_result("c2", "browser.open", Some(small_hash), None))
        .unwrap();
    rec.finish(StopReason::Ok, None).unwrap();

    let row = |hash: &tapedeck_trace::ContentHash| -> (i64, i64, i64) {
        tmp.sql()
            .query_row(
                "SELECT codec, size, length(data) FROM blobs WHERE hash = ?1",
                [hash.as_bytes().as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    let (codec, size, stored) = row(&large_hash);
    assert_eq!(codec, 2, "zstd with the store's dictionary");
    assert_eq!(size, large_text.len() as i64);
    assert!(stored * 4 < size, "{stored} of {size} bytes");
    assert_eq!(store.blob(&large_hash, &id).unwrap(), large);

    let (codec, size, stored) = row(&message_hash);
    assert_eq!(codec, 2);
    assert!(stored < size, "{stored} of {size} bytes");
    assert_eq!(store.blob(&message_hash, &id).unwrap(), message);

    let (codec, size, stored) = row(&small_hash);
    assert_eq!(
        (codec, size, stored),
        (0, 7, 7),
        "what compression cannot shrink stays raw canonical text"
    );
    assert_eq!(store.blob(&small_hash, &id).unwrap(), small);
    let raw: Vec<u8> = tmp
        .sql()
        .query_row(
            "SELECT data FROM blobs WHERE hash = ?1",
            [small_hash.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(raw, b"{\"n\":7}");
}

/// A store of schema 1 (`tests/data/store-schema-1.sql`: zstd blobs without the dictionary,
/// event payloads as text; the `clean` fixture imported) opens, migrates, exports the same tape
/// byte for byte, and records new runs beside the old one.
#[test]
fn a_store_of_schema_1_is_read_and_written_on() {
    let tmp = TempStore::new();
    std::fs::create_dir_all(tmp.path.parent().unwrap()).unwrap();
    tmp.sql()
        .execute_batch(include_str!("../data/store-schema-1.sql"))
        .unwrap();
    assert_eq!(
        tmp.count("SELECT count(*) FROM blobs WHERE codec = 1"),
        2,
        "the dump holds zstd blobs of schema 1"
    );
    let store = tmp.open();
    assert_eq!(
        tmp.count("PRAGMA user_version"),
        tapedeck_store::SCHEMA_VERSION
    );
    let old = store.runs(&Default::default()).unwrap().remove(0).id;
    let mut tape = Vec::new();
    store.export_tape(&old, &mut tape).unwrap();
    assert_eq!(
        String::from_utf8(tape).unwrap(),
        include_str!("../../../../fixtures/tapes/clean.jsonl")
    );

    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
    let new = rec.id();
    let output = rec.blob(&json!({"status": "healthy"})).unwrap();
    rec.append(tool_result("c1", "status.read", Some(output), None))
        .unwrap();
    rec.finish(StopReason::Ok, None).unwrap();
    assert_eq!(
        tmp.count("SELECT count(*) FROM events WHERE typeof(data) = 'blob'"),
        1,
        "the new run's tool_result is compressed (its run_finished is too short to be)"
    );
    assert_eq!(store.events(&new).unwrap().len(), 2);
    assert_eq!(store.events(&old).unwrap().len(), 9);
}

/// A store of schema 2 (`tests/data/store-schema-2.sql`: the `clean` fixture imported, and a run
/// left `running` by a recorder on another host) opens and migrates to schema 3: every run gets
/// its id's tail, the running one (whose writer knew no lease) an hour's lease, every blob the
/// migration time; the runs read back and new ones are recorded beside them.
#[test]
fn a_store_of_schema_2_gets_leases_tails_and_blob_ages() {
    let tmp = TempStore::new();
    std::fs::create_dir_all(tmp.path.parent().unwrap()).unwrap();
    tmp.sql()
        .execute_batch(include_str!("../data/store-schema-2.sql"))
        .unwrap();
    assert_eq!(tmp.count("PRAGMA user_version"), 2);
    let store = tmp.open();
    assert_eq!(
        tmp.count("PRAGMA user_version"),
        tapedeck_store::SCHEMA_VERSION
    );
    assert_eq!(
        tmp.count("SELECT count(*) FROM runs WHERE tail = substr(id, -12) AND length(tail) = 12"),
        2
    );
    let now = Timestamp::now().as_micros();
    let lease_left = tmp.count("SELECT lease_until FROM runs WHERE status = 'running'") - now;
    assert!(
        (3_500_000_000..=3_600_000_000).contains(&lease_left),
        "an hour's lease, not {lease_left} µs"
    );
    assert_eq!(
        tmp.count("SELECT count(*) FROM runs WHERE status = 'ok' AND lease_until IS NULL"),
        1
    );
    assert_eq!(
        tmp.count(&format!(
            "SELECT count(*) FROM blobs WHERE abs(created_at - {now}) < 60000000"
        )),
        tmp.count("SELECT count(*) FROM blobs")
    );

    // The run of another host stays `running`: no pid can be checked there, and its lease holds.
    let runs = store.runs(&Default::default()).unwrap();
    assert_eq!(
        runs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [RunStatus::Running, RunStatus::Ok]
    );
    assert_eq!(store.events(&runs[0].id).unwrap().len(), 13);
    let mut tape = Vec::new();
    store.export_tape(&runs[1].id, &mut tape).unwrap();
    assert_eq!(
        String::from_utf8(tape).unwrap(),
        include_str!("../../../../fixtures/tapes/clean.jsonl")
    );

    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
    let new = rec.id();
    let output = rec.blob(&json!({"status": "healthy"})).unwrap();
    rec.append(tool_result("c1", "status.read", Some(output), None))
        .unwrap();
    assert_eq!(
        tmp.count(&format!(
            "SELECT count(*) FROM runs WHERE id = '{new}' AND lease_until > {now}"
        )),
        1,
        "a new run has a lease"
    );
    rec.finish(StopReason::Ok, None).unwrap();
    assert_eq!(store.events(&new).unwrap().len(), 2);
    assert_eq!(
        tmp.count(&format!(
            "SELECT count(*) FROM runs WHERE id = '{new}' AND lease_until IS NULL"
        )),
        1,
        "an ended run has none"
    );
}
