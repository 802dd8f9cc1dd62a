//! How content is stored: a conversation that resends every message stays linear in size
//! (messages are blobs stored once), and large blobs are compressed.

use serde_json::{Value, json};
use tapedeck_trace::{Run, Source, StopReason, hash_json};

use crate::support::*;

/// A distinct message of about 200 bytes.
fn message(i: usize) -> Value {
    let role = if i % 2 == 0 { "user" } else { "assistant" };
    let text: String = format!("message {i:04}: ")
        .chars()
        .chain((0..180).map(|k| char::from(b'a' + ((i * 7 + k * 13) % 26) as u8)))
        .collect();
    json!({"role": role, "content": text})
}

/// Records a conversation of `rounds` model calls, each resending every earlier message;
/// returns the store size after a flush and the number of distinct messages.
fn conversation_size(rounds: usize) -> (u64, usize, i64) {
    let tmp = TempStore::new();
    let store = tmp.open();
    let writer = store.writer().unwrap();
    let mut rec = writer.start_run(Run::new(Source::Runtime)).unwrap();
    let mut history = Vec::new();
    let mut distinct = 0;
    for round in 0..rounds {
        history.push(message(2 * round));
        distinct += 1;
        // The agent resends the whole conversation: every message is put again.
        let refs = history.iter().map(|m| rec.blob(m).unwrap()).collect();
        rec.append(request(round as u64 + 1, refs, None)).unwrap();
        let answer = message(2 * round + 1);
        let hash = rec.blob(&answer).unwrap();
        history.push(answer);
        distinct += 1;
        rec.append(response(round as u64 + 1, hash, &[], Some((10, 10)), None)).unwrap();
    }
    rec.flush().unwrap();
    let size = store.file_size();
    rec.finish(StopReason::Ok, None).unwrap();
    let blobs = tmp.count("SELECT count(*) FROM blobs");
    (size, distinct, blobs)
}

#[test]
fn a_resent_conversation_grows_linearly() {
    let (s10, d10, b10) = conversation_size(10);
    let (s30, d30, b30) = conversation_size(30);
    let (s100, d100, b100) = conversation_size(100);
    assert_eq!((b10, b30, b100), (d10 as i64, d30 as i64, d100 as i64), "one blob per message");
    assert_eq!(d100, 200);
    assert!(s10 < s30 && s30 < s100, "{s10} {s30} {s100}");
    let r30 = s30 as f64 / s10 as f64;
    let r100 = s100 as f64 / s10 as f64;
    assert!(r100 < 15.0, "size(100)/size(10) = {r100:.1} ({s10} -> {s100} bytes)");
    assert!(r30 < 5.0, "size(30)/size(10) = {r30:.1} ({s10} -> {s30} bytes)");
    // Storing each request whole would take at least sum(2r - 1) * 200 bytes.
    let whole: u64 = (1..=100u64).map(|r| (2 * r - 1) * 200).sum();
    assert!(s100 * 2 < whole, "{s100} bytes is not much below the {whole} of whole requests");
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
    rec.append(tool_result("c1", "browser.open", Some(large_hash), None)).unwrap();
    rec.append(tool_result("c2", "browser.open", Some(small_hash), None)).unwrap();
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
    assert_eq!((codec, size, stored), (0, 14, 14), "small blobs stay raw canonical text");
    assert_eq!(store.blob(&small_hash, &id).unwrap(), small);
    let raw: Vec<u8> = tmp
        .sql()
        .query_row("SELECT data FROM blobs WHERE hash = ?1", [small_hash.as_bytes().as_slice()], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(raw, b"{\"status\":503}");
}
