//! `Timestamp` text round trips and `RunId` short ids (taken from the random end of the UUID).

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use tapedeck_trace::{RunId, Timestamp, TraceError};

#[test]
fn timestamp_text_round_trips_byte_for_byte() {
    for text in [
        "2026-11-26T02:54:18.123456Z",
        "2026-11-26T02:54:18.000000Z",
        "2026-11-26T02:54:18.000001Z",
        "2026-11-26T02:54:18.100000Z",
        "1970-01-01T00:00:00.000000Z",
        "1969-12-31T23:59:59.999999Z",
        "2000-02-29T23:59:59.999999Z",
        "9999-12-30T21:59:59.999999Z",
    ] {
        let ts: Timestamp = text.parse().unwrap();
        assert_eq!(ts.to_string(), text);
        let json = serde_json::to_string(&ts).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), ts);
    }
    assert_eq!(
        Timestamp::from_micros(0).to_string(),
        "1970-01-01T00:00:00.000000Z"
    );
    assert_eq!(
        Timestamp::from_micros(-1).to_string(),
        "1969-12-31T23:59:59.999999Z"
    );
    assert_eq!(
        "2026-11-26T02:54:18.123456Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_micros(),
        1_795_661_658_123_456
    );
}

#[test]
fn timestamp_accepts_other_rfc3339_forms_and_writes_utc() {
    let utc: Timestamp = "2026-11-26T02:54:18.5Z".parse().unwrap();
    assert_eq!(utc.to_string(), "2026-11-26T02:54:18.500000Z");
    let offset: Timestamp = "2026-11-26T03:54:18.5+01:00".parse().unwrap();
    assert_eq!(offset, utc);
    let plain: Timestamp = "2026-11-26T02:54:18Z".parse().unwrap();
    assert_eq!(plain.to_string(), "2026-11-26T02:54:18.000000Z");
}

#[test]
fn timestamp_rejects_non_rfc3339_text() {
    for bad in [
        "yesterday",
        "",
        "2026-11-26",
        "2026-11-26 02:54:18",
        "2026-13-01T00:00:00Z",
    ] {
        match bad.parse::<Timestamp>() {
            Err(TraceError::Timestamp(s)) => assert_eq!(s, bad),
            other => panic!("{bad:?} parsed as {other:?}"),
        }
    }
}

#[test]
fn timestamp_now_round_trips_and_measures_intervals() {
    let now = Timestamp::now();
    assert_eq!(now.to_string().parse::<Timestamp>().unwrap(), now);
    let start = Timestamp::from_micros(1_000_000);
    assert_eq!(start.millis_until(Timestamp::from_micros(3_500_999)), 2500);
    assert_eq!(start.millis_until(Timestamp::from_micros(0)), 0);
}

proptest! {
    #[test]
    fn timestamp_micros_round_trip(micros in -2_208_988_800_000_000i64..7_258_118_400_000_000) {
        let ts = Timestamp::from_micros(micros);
        let text = ts.to_string();
        prop_assert_eq!(text.len(), "2026-11-26T02:54:18.123456Z".len());
        let back: Timestamp = text.parse().unwrap();
        prop_assert_eq!(back.as_micros(), micros);
        prop_assert_eq!(back.to_string(), text);
    }
}

#[test]
fn run_id_short_is_the_last_eight_hex_digits() {
    let id = RunId::new();
    let short = id.short();
    assert_eq!(short.len(), 8);
    assert!(
        short
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{short}"
    );
    let simple = id.as_uuid().simple().to_string();
    assert!(simple.ends_with(&short), "{simple} / {short}");
    assert!(id.to_string().ends_with(&short));
    assert_eq!(id.as_uuid().get_version_num(), 7);

    let fixed: RunId = "019ac1f2-3b4c-7d5e-8f60-0123456789ab".parse().unwrap();
    assert_eq!(fixed.short(), "456789ab");
    assert_eq!(fixed.to_string(), "019ac1f2-3b4c-7d5e-8f60-0123456789ab");
    assert_eq!(
        serde_json::to_string(&fixed).unwrap(),
        "\"019ac1f2-3b4c-7d5e-8f60-0123456789ab\""
    );
    assert_eq!(
        serde_json::from_str::<RunId>("\"019ac1f2-3b4c-7d5e-8f60-0123456789ab\"").unwrap(),
        fixed
    );
    assert!(
        matches!("not-a-uuid".parse::<RunId>(), Err(TraceError::RunId(s)) if s == "not-a-uuid")
    );
}

#[test]
fn run_ids_of_the_same_millisecond_have_different_short_ids() {
    let ids: Vec<RunId> = (0..300).map(|_| RunId::new()).collect();
    // Group by the 48-bit millisecond timestamp at the front of the UUIDv7.
    let mut by_ms: HashMap<String, Vec<RunId>> = HashMap::new();
    for id in &ids {
        by_ms
            .entry(id.as_uuid().simple().to_string()[..12].to_owned())
            .or_default()
            .push(*id);
    }
    let same_ms = by_ms.values().filter(|group| group.len() >= 2).count();
    assert!(
        same_ms > 0,
        "300 ids in a tight loop should share a millisecond"
    );
    for group in by_ms.values() {
        let shorts: HashSet<String> = group.iter().map(RunId::short).collect();
        assert_eq!(
            shorts.len(),
            group.len(),
            "short ids collide within one millisecond"
        );
        // The leading digits (the timestamp) are the same: a prefix-based short id would collide.
        let prefixes: HashSet<String> = group
            .iter()
            .map(|id| id.to_string()[..8].to_owned())
            .collect();
        assert_eq!(prefixes.len(), 1);
    }
    // Ids sort by creation time.
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids);
}
