//! Pinned canonical texts and hashes (`tests/data/pinned_hashes.json`), so that the canonical
//! form, and with it every stored content hash, never changes by accident.
//!
//! The expected values were computed outside this crate by an independent RFC 8785
//! implementation in Python (key order by UTF-16 code units, ECMAScript number formatting,
//! JCS string escaping), checked against the example of RFC 8785 section 3.2.2 and the number
//! vectors of its appendix B, and hashed with Python's `hashlib.sha256`.

use serde::Deserialize;
use serde_json::Value;
use tapedeck_trace::{ContentHash, canonical_json, hash_bytes, hash_json};

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    numbers: Vec<NumberVector>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    /// The input, as JSON text (any formatting).
    json: String,
    canonical: String,
    sha256: String,
}

#[derive(Deserialize)]
struct NumberVector {
    /// The IEEE-754 bits of the number, in hex.
    bits: String,
    canonical: String,
}

fn fixture() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pinned_hashes.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn pinned_canonical_texts_and_hashes() {
    let fixture = fixture();
    assert!(fixture.cases.len() >= 8);
    for case in &fixture.cases {
        let value: Value = serde_json::from_str(&case.json)
            .unwrap_or_else(|e| panic!("case {}: input is not JSON: {e}", case.name));
        let expected_hash: ContentHash = case.sha256.parse().unwrap();
        let (hash, text) = hash_json(&value).unwrap();
        assert_eq!(text, case.canonical, "canonical text of case {}", case.name);
        assert_eq!(hash, expected_hash, "hash of case {}", case.name);
        assert_eq!(
            hash.to_string(),
            case.sha256,
            "hash text of case {}",
            case.name
        );
        assert_eq!(
            hash_bytes(case.canonical.as_bytes()),
            expected_hash,
            "case {}",
            case.name
        );
        assert_eq!(
            canonical_json(&value).unwrap(),
            case.canonical,
            "case {}",
            case.name
        );
    }
}

#[test]
fn pinned_rfc8785_number_vectors() {
    let fixture = fixture();
    assert!(fixture.numbers.len() >= 20);
    for vector in &fixture.numbers {
        let bits = u64::from_str_radix(&vector.bits, 16).unwrap();
        let number = f64::from_bits(bits);
        assert_eq!(
            canonical_json(&number).unwrap(),
            vector.canonical,
            "bits {} ({number:e})",
            vector.bits
        );
        // The same number inside a serde_json value formats the same way.
        assert_eq!(
            canonical_json(&Value::from(number)).unwrap(),
            vector.canonical
        );
    }
}

#[test]
fn integers_and_floats_of_equal_value_have_one_canonical_form() {
    // A model writing `1800`, `1800.0` or `1.8e3` asks for the same thing.
    let forms = ["1800", "1800.0", "1.8e3", "18e2"];
    let hashes: Vec<_> = forms
        .iter()
        .map(|f| hash_json(&serde_json::from_str::<Value>(f).unwrap()).unwrap())
        .collect();
    for (form, h) in forms.iter().zip(&hashes) {
        assert_eq!(h.1, "1800", "{form}");
        assert_eq!(h.0, hashes[0].0, "{form}");
    }
}
