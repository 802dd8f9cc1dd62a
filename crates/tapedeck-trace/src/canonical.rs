//! Canonical JSON (RFC 8785, JCS) and sha256 content hashes, [`ContentHash`].
//!
//! A value has exactly one canonical text, so its hash names it: blobs are stored once under
//! their hash, and two tool calls with the same arguments have the same `args_hash` whatever the
//! key order or whitespace the model produced.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::TraceError;

/// `sha256:` followed by the 64 lowercase hex digits of a sha256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// The raw 32 digest bytes (the form the store keys blobs by).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a hash from 32 raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The first `n` hex digits, for display.
    pub fn short(&self, n: usize) -> String {
        let hex = const_hex::encode(self.0);
        hex[..n.min(hex.len())].to_owned()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", const_hex::encode(self.0))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ContentHash {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TraceError::ContentHash(s.to_owned());
        let hex = s.strip_prefix("sha256:").ok_or_else(err)?;
        if hex.len() != 64 || hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err());
        }
        let mut out = [0u8; 32];
        const_hex::decode_to_slice(hex, &mut out).map_err(|_| err())?;
        Ok(Self(out))
    }
}

serde_via_str!(ContentHash);

/// The canonical JSON text (RFC 8785) of a value: sorted keys, no insignificant whitespace,
/// ECMAScript number formatting — except that integers beyond 2^53 keep all their digits
/// (RFC 8785 would round them to a double; see `write_number`). NaN and infinities, which JSON
/// cannot hold, become `null`.
///
/// The value goes through `serde_json::Value` and is written by [`write_canonical`]; this is
/// several times faster than a streaming JCS serializer that buffers and re-parses every key,
/// and recording serializes every event. Tests check it against `serde_json_canonicalizer`.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<String, TraceError> {
    canonical_value(&serde_json::to_value(value).map_err(TraceError::Canonical)?)
}

/// [`canonical_json`] of a value that is JSON already, without copying it first.
pub fn canonical_value(value: &Value) -> Result<String, TraceError> {
    let mut out = String::with_capacity(128);
    write_canonical(value, &mut out)?;
    Ok(out)
}

/// Appends the canonical text of a JSON value to `out`.
pub fn write_canonical(value: &Value, out: &mut String) -> Result<(), TraceError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // UTF-8 byte order is RFC 8785's UTF-16 code-unit order unless a key holds a
            // character from U+E000 up (UTF-8 lead byte 0xEE or above). The map usually
            // iterates in byte order already (the sort is then one linear pass), but not when
            // any crate in the build turns on serde_json's `preserve_order`.
            if entries.iter().any(|(k, _)| k.bytes().any(|b| b >= 0xEE)) {
                entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            } else {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(n: &serde_json::Number, out: &mut String) -> Result<(), TraceError> {
    // Integers are written exactly. RFC 8785 treats every number as an IEEE double and would
    // round integers beyond 2^53 — 64-bit ids in tool outputs among them — so a replay would
    // serve a different id than the tool returned. Within ±2^53 both agree.
    if let Some(i) = n.as_i64() {
        out.push_str(itoa::Buffer::new().format(i));
    } else if let Some(u) = n.as_u64() {
        out.push_str(itoa::Buffer::new().format(u));
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if !f.is_finite() {
            return Err(TraceError::Canonical(serde::ser::Error::custom(
                "NaN and infinite numbers have no JSON form",
            )));
        }
        out.push_str(ryu_js::Buffer::new().format_finite(f));
    }
    Ok(())
}

/// A JSON string with RFC 8785's escapes: quote, backslash, `b f n r t`, other control
/// characters as `u00xx` (lowercase hex); everything else as is.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The sha256 of some bytes.
pub fn hash_bytes(bytes: &[u8]) -> ContentHash {
    ContentHash(Sha256::digest(bytes).into())
}

/// The canonical text of a value and the hash of that text.
pub fn hash_json<T: Serialize>(value: &T) -> Result<(ContentHash, String), TraceError> {
    let text = canonical_json(value)?;
    Ok((hash_bytes(text.as_bytes()), text))
}

/// [`hash_json`] of a value that is JSON already, without copying it first.
pub fn hash_value(value: &Value) -> Result<(ContentHash, String), TraceError> {
    let text = canonical_value(value)?;
    Ok((hash_bytes(text.as_bytes()), text))
}
