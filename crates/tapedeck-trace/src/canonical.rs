//! Canonical JSON (RFC 8785, JCS) and sha256 content hashes, [`ContentHash`].
//!
//! A value has exactly one canonical text, so its hash names it: blobs are stored once under
//! their hash, and two tool calls with the same arguments have the same `args_hash` whatever the
//! key order or whitespace the model produced.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The canonical JSON text (RFC 8785) of a value: sorted keys, no insignificant whitespace,
/// ECMAScript number formatting.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<String, TraceError> {
    serde_json_canonicalizer::to_string(value).map_err(TraceError::Canonical)
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
