//! Properties of `canonical_json` / `hash_json` over arbitrary JSON trees: idempotence and
//! independence from key order, whitespace and map implementation.

use proptest::prelude::*;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use tapedeck_trace::{ContentHash, canonical_json, hash_bytes, hash_json};

/// Strings that exercise escaping: quotes, backslashes, control characters, DEL, line
/// separators, non-BMP characters, plus arbitrary printable unicode.
fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        "[\"\\\\/\u{0}-\u{1f}\u{7f}\u{2028}\u{2029}aé€😀\u{fb01}\u{ffff}]{0,12}",
    ]
}

fn arb_number() -> impl Strategy<Value = Value> {
    use proptest::num::f64 as f;
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        (f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO).prop_map(Value::from),
        // Decimal fractions people write: 0.1, 10.8, 1e21 …
        (-100_000i64..100_000, 0u32..25)
            .prop_map(|(m, e)| Value::from(m as f64 / 10f64.powi(e as i32))),
        (1u32..10, 15i32..25).prop_map(|(m, e)| Value::from(f64::from(m) * 10f64.powi(e))),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((arb_string(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A deterministic shuffle (xorshift) so a failing case reproduces from its seed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Serializes a value with every object's keys in a shuffled order, so the canonicalizer
/// (not `serde_json::Map`, which may already sort) has to do the sorting.
struct Shuffled<'a> {
    value: &'a Value,
    seed: u64,
}

impl Serialize for Shuffled<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                shuffle(&mut entries, self.seed);
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    let seed = self.seed.wrapping_mul(31).wrapping_add(i as u64);
                    out.serialize_entry(k, &Shuffled { value: v, seed })?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for (i, v) in items.iter().enumerate() {
                    let seed = self.seed.wrapping_mul(17).wrapping_add(i as u64);
                    out.serialize_element(&Shuffled { value: v, seed })?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// The same value rebuilt with every object's keys inserted in a shuffled order.
fn reinsert_shuffled(value: &Value, seed: u64) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            shuffle(&mut entries, seed);
            let mut out = Map::new();
            for (i, (k, v)) in entries.into_iter().enumerate() {
                out.insert(k.clone(), reinsert_shuffled(v, seed ^ (i as u64 + 1)));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| reinsert_shuffled(v, seed ^ (i as u64 + 7)))
                .collect(),
        ),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_json_is_idempotent(value in arb_json()) {
        let first = canonical_json(&value).unwrap();
        let reparsed: Value = serde_json::from_str(&first).unwrap();
        let second = canonical_json(&reparsed).unwrap();
        prop_assert_eq!(&first, &second);
        // Canonical text has no insignificant whitespace: pretty-printed input gives the same.
        let pretty: Value = serde_json::from_str(&serde_json::to_string_pretty(&value).unwrap()).unwrap();
        prop_assert_eq!(&first, &canonical_json(&pretty).unwrap());
    }

    #[test]
    fn canonical_json_ignores_key_order(value in arb_json(), seed in any::<u64>()) {
        let (hash, text) = hash_json(&value).unwrap();
        prop_assert_eq!(hash, hash_bytes(text.as_bytes()));

        let shuffled = Shuffled { value: &value, seed };
        prop_assert_eq!(&canonical_json(&shuffled).unwrap(), &text);
        prop_assert_eq!(hash_json(&shuffled).unwrap().0, hash);

        let rebuilt = reinsert_shuffled(&value, seed);
        prop_assert_eq!(hash_json(&rebuilt).unwrap(), (hash, text.clone()));

        // Text written with shuffled keys and parsed back also hashes the same.
        let shuffled_text = serde_json::to_string(&shuffled).unwrap();
        let parsed: Value = serde_json::from_str(&shuffled_text).unwrap();
        prop_assert_eq!(hash_json(&parsed).unwrap().0, hash);
    }

    /// The hand-written canonical writer agrees with the reference JCS implementation on every
    /// value RFC 8785 writes exactly (integers beyond 2^53 are kept exact on purpose: see the
    /// `integer_beyond_2_53` pinned case).
    #[test]
    fn canonical_json_matches_the_reference_implementation(value in arb_json()) {
        prop_assume!(!has_integer_beyond_2_53(&value));
        let reference = serde_json_canonicalizer::to_string(&value).unwrap();
        prop_assert_eq!(canonical_json(&value).unwrap(), reference);
    }

    #[test]
    fn content_hash_text_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let hash = hash_bytes(&bytes);
        let text = hash.to_string();
        prop_assert_eq!(text.len(), "sha256:".len() + 64);
        prop_assert_eq!(text.parse::<ContentHash>().unwrap(), hash);
        let json = serde_json::to_string(&hash).unwrap();
        prop_assert_eq!(serde_json::from_str::<ContentHash>(&json).unwrap(), hash);
        prop_assert_eq!(ContentHash::from_bytes(*hash.as_bytes()), hash);
    }
}

#[test]
fn sha256_matches_known_vectors() {
    // FIPS 180-2 test vectors.
    assert_eq!(
        hash_bytes(b"").to_string(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hash_bytes(b"abc").to_string(),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(hash_bytes(b"abc").short(12), "ba7816bf8f01");
    assert_eq!(hash_bytes(b"abc").short(100).len(), 64);
}

#[test]
fn content_hash_rejects_malformed_text() {
    let good = hash_bytes(b"abc").to_string();
    let hex = good.strip_prefix("sha256:").unwrap();
    for bad in [
        hex.to_owned(),                           // no prefix
        format!("sha1:{hex}"),                    // wrong algorithm
        format!("sha256:{}", hex.to_uppercase()), // uppercase
        format!("sha256:{}", &hex[..63]),         // short
        format!("sha256:{hex}0"),                 // long
        format!("sha256:{}g", &hex[..63]),        // not hex
        String::new(),
    ] {
        let err = bad.parse::<ContentHash>().unwrap_err();
        assert!(
            matches!(err, tapedeck_trace::TraceError::ContentHash(ref s) if *s == bad),
            "{bad:?} gave {err:?}"
        );
        assert!(serde_json::from_value::<ContentHash>(Value::String(bad)).is_err());
    }
}

#[test]
fn canonical_json_never_writes_non_finite_numbers() {
    // JSON has no NaN or infinity: they are refused, or (as serde_json does) written as null;
    // never as `NaN` text that no reader accepts.
    for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        match canonical_json(&x) {
            Err(_) => {}
            Ok(text) => assert_eq!(text, "null", "{x}"),
        }
    }
    assert_eq!(canonical_json(&-0.0f64).unwrap(), "0");
    assert_eq!(canonical_json(&vec![1.5f64, 2.0]).unwrap(), "[1.5,2]");
}

#[test]
fn keys_sort_by_utf16_code_units() {
    // U+FB01 (one UTF-16 unit, 0xFB01) sorts after U+1F600 (surrogates 0xD83D 0xDE00), although
    // its code point and its UTF-8 bytes are smaller.
    let value = serde_json::json!({"\u{fb01}": 1, "\u{1f600}": 2, "\u{e000}": 3, "z": 4});
    assert_eq!(
        canonical_json(&value).unwrap(),
        "{\"z\":4,\"\u{1f600}\":2,\"\u{e000}\":3,\"\u{fb01}\":1}"
    );
    let shuffled = Shuffled {
        value: &value,
        seed: 7,
    };
    assert_eq!(
        canonical_json(&shuffled).unwrap(),
        canonical_json(&value).unwrap()
    );
}

/// Whether a value holds an integer a double cannot represent exactly.
fn has_integer_beyond_2_53(value: &Value) -> bool {
    const EXACT: u64 = 1 << 53;
    match value {
        Value::Number(n) => {
            n.as_i64().is_some_and(|i| i.unsigned_abs() > EXACT)
                || n.as_u64().is_some_and(|u| u > EXACT)
        }
        Value::Array(items) => items.iter().any(has_integer_beyond_2_53),
        Value::Object(map) => map.values().any(has_integer_beyond_2_53),
        _ => false,
    }
}
