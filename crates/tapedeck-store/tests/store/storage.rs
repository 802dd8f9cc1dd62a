//! How content is stored: a conversation that resends every message stays linear in size
//! (messages are blobs stored once), and large blobs are compressed.

use serde_json::{Value, json};
use tapedeck_trace::{Run, Source, StopReason, hash_json};

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
fn large_blobs_are_compressed_and_read_back_equal() {
    let tmp = TempStore::new();
    let store = tmp.open();
    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
    let id = rec.id();
    let large = json!({"html": "<tr><td>browser.open</td><td>503</td></tr>".repeat(100)});
    let small = json!({"status": 503});
    let (large_hash, large_text) = hash_json(&large).unwrap();
    assert!(large_text.len() > 512);
    assert_eq!(rec.blob(&large).unwrap(), large_hash);
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
    assert_eq!(codec, 1, "zstd");
    assert_eq!(size, large_text.len() as i64);
    assert!(stored * 4 < size, "{stored} of {size} bytes");
    assert_eq!(store.blob(&large_hash, &id).unwrap(), large);

    let (codec, size, stored) = row(&small_hash);
    assert_eq!(
        (codec, size, stored),
        (0, 14, 14),
        "small blobs stay raw canonical text"
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
    assert_eq!(raw, b"{\"status\":503}");
}
