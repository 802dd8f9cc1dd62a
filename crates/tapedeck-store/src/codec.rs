//! How content is laid out in the tables: blobs (`blobs.data`, with its `codec`) and event
//! payloads (`events.data`), each canonical JSON, compressed when that makes it smaller.
//!
//! Most of what a run stores is small: an event payload, a chat message or a model's response
//! is a few hundred bytes of the same JSON shapes, too little for zstd to find repeats in. So
//! new content is compressed with a built-in dictionary ([`DICTIONARY_V1`]: event fields, chat
//! messages, tool calls and model responses of the OpenAI and Anthropic APIs), which gives zstd
//! those shapes to refer to. The dictionary's bytes are part of the file format — content
//! compressed with it reads back only with the same bytes — so it is never edited: a better one
//! comes as a new codec, and every older codec stays readable.
//!
//! | content | stored as | read as |
//! |---|---|---|
//! | blob, codec 0 | the canonical text | as is |
//! | blob, codec 1 | zstd, no dictionary (stores of schema 1) | decompressed |
//! | blob, codec 2 | zstd with [`DICTIONARY_V1`] | decompressed |
//! | event payload, `TEXT` | the canonical text | as is |
//! | event payload, `BLOB` | zstd with [`DICTIONARY_V1`] (schema 2 on) | decompressed |

use std::cell::RefCell;
use std::sync::OnceLock;

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};
use serde_json::Value;
use tapedeck_trace::ContentHash;
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The dictionary small content is compressed with. Never edit it (see the module docs); a
/// test pins its hash.
const DICTIONARY_V1: &[u8] = include_bytes!("dictionary-v1.txt");

/// zstd's default level: within a few percent of the best ratio on records this small, at a
/// fraction of the time.
const LEVEL: i32 = 3;

/// Content shorter than this is stored as is: compressing it would save a few bytes at a cost
/// (about a microsecond) that matters to a run recording many small events.
const COMPRESS_FROM: usize = 128;

/// The largest content a stored frame may claim to hold: a corrupt or hostile frame header is
/// refused instead of allocated.
const MAX_CONTENT: usize = 256 << 20;

const CODEC_RAW: i64 = 0;
const CODEC_ZSTD: i64 = 1;
const CODEC_ZSTD_DICTIONARY_V1: i64 = 2;

/// A blob ready to insert: hash, codec, original size, stored bytes.
pub(crate) struct EncodedBlob {
    pub hash: ContentHash,
    pub codec: i64,
    pub size: i64,
    pub data: Vec<u8>,
}

/// Encodes the canonical text of a blob.
pub(crate) fn encode_blob(hash: ContentHash, canonical: String) -> EncodedBlob {
    let size = canonical.len() as i64;
    match compress(canonical.as_bytes()) {
        Some(packed) => EncodedBlob {
            hash,
            codec: CODEC_ZSTD_DICTIONARY_V1,
            size,
            data: packed,
        },
        None => EncodedBlob {
            hash,
            codec: CODEC_RAW,
            size,
            data: canonical.into_bytes(),
        },
    }
}

/// Decodes stored bytes back to the blob's JSON value.
pub(crate) fn decode_blob(codec: i64, size: i64, data: &[u8]) -> Result<Value, String> {
    let capacity = usize::try_from(size)
        .ok()
        .filter(|&s| s <= MAX_CONTENT)
        .ok_or_else(|| format!("implausible blob size {size}"))?;
    let text = match codec {
        CODEC_RAW => std::borrow::Cow::Borrowed(data),
        CODEC_ZSTD => std::borrow::Cow::Owned(
            zstd::bulk::decompress(data, capacity)
                .map_err(|e| format!("cannot decompress: {e}"))?,
        ),
        CODEC_ZSTD_DICTIONARY_V1 => std::borrow::Cow::Owned(decompress(data, capacity)?),
        other => return Err(format!("unknown blob codec {other}")),
    };
    serde_json::from_slice(&text).map_err(|e| format!("blob is not JSON: {e}"))
}

/// An event payload as the `events.data` column holds it: its canonical text, or that text
/// compressed when compression makes it smaller.
#[derive(Debug)]
pub(crate) enum StoredPayload {
    Text(String),
    Compressed(Vec<u8>),
}

impl StoredPayload {
    /// Encodes the canonical text of an event payload.
    pub(crate) fn encode(canonical: String) -> Self {
        match compress(canonical.as_bytes()) {
            Some(packed) => Self::Compressed(packed),
            None => Self::Text(canonical),
        }
    }
}

impl ToSql for StoredPayload {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Self::Compressed(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

/// How PostgreSQL's `events.codec` says a payload is stored (its columns have one type, where
/// SQLite tells by the value's: `TEXT` is [`PAYLOAD_TEXT`], `BLOB` [`PAYLOAD_ZSTD_DICTIONARY_V1`]).
pub(crate) const PAYLOAD_TEXT: i16 = 0;
/// See [`PAYLOAD_TEXT`].
pub(crate) const PAYLOAD_ZSTD_DICTIONARY_V1: i16 = 2;

impl StoredPayload {
    /// The codec and bytes PostgreSQL's `events` row holds.
    pub(crate) fn to_parts(&self) -> (i16, &[u8]) {
        match self {
            Self::Text(text) => (PAYLOAD_TEXT, text.as_bytes()),
            Self::Compressed(bytes) => (PAYLOAD_ZSTD_DICTIONARY_V1, bytes),
        }
    }
}

/// Decodes a PostgreSQL `events` row's codec and bytes back to the payload's canonical text.
pub(crate) fn decode_payload_parts(codec: i16, data: &[u8]) -> Result<String, String> {
    match codec {
        PAYLOAD_TEXT => decode_payload(ValueRef::Text(data)),
        PAYLOAD_ZSTD_DICTIONARY_V1 => decode_payload(ValueRef::Blob(data)),
        other => Err(format!("unknown payload codec {other}")),
    }
}

/// Decodes an `events.data` value back to the payload's canonical text.
pub(crate) fn decode_payload(value: ValueRef<'_>) -> Result<String, String> {
    let bytes = match value {
        ValueRef::Text(text) => return text_of(text.to_vec()),
        ValueRef::Blob(packed) => {
            let capacity = Decompressor::upper_bound(packed)
                .filter(|&s| s <= MAX_CONTENT)
                .ok_or("the compressed payload does not say a plausible size")?;
            decompress(packed, capacity)?
        }
        other => return Err(format!("payload is {:?}, not text", other.data_type())),
    };
    text_of(bytes)
}

fn text_of(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|_| "payload is not UTF-8".to_owned())
}

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static DICTIONARY: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    DICTIONARY.get_or_init(|| EncoderDictionary::copy(DICTIONARY_V1, LEVEL))
}

fn decoder_dictionary() -> &'static DecoderDictionary<'static> {
    static DICTIONARY: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    DICTIONARY.get_or_init(|| DecoderDictionary::copy(DICTIONARY_V1))
}

thread_local! {
    // One context a thread: preparing one costs more than compressing a small record.
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `text` compressed with [`DICTIONARY_V1`], or `None` when it is too short to be worth it,
/// compression does not make it smaller, or zstd fails (which leaves the text stored as is).
fn compress(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() < COMPRESS_FROM {
        return None;
    }
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match &mut *cell {
            Some(compressor) => compressor,
            empty => empty.insert(Compressor::with_prepared_dictionary(encoder_dictionary()).ok()?),
        };
        compressor
            .compress(text)
            .ok()
            .filter(|packed| packed.len() < text.len())
    })
}

/// Decompresses what [`compress`] made, expecting at most `capacity` bytes.
fn decompress(packed: &[u8], capacity: usize) -> Result<Vec<u8>, String> {
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match &mut *cell {
            Some(decompressor) => decompressor,
            empty => empty.insert(
                Decompressor::with_prepared_dictionary(decoder_dictionary())
                    .map_err(|e| format!("cannot decompress: {e}"))?,
            ),
        };
        decompressor
            .decompress(packed, capacity)
            .map_err(|e| format!("cannot decompress: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_never_edited() {
        // Content compressed with it reads back only with these exact bytes.
        use sha2::Digest as _;
        let digest = ContentHash::from_bytes(sha2::Sha256::digest(DICTIONARY_V1).into());
        assert_eq!(
            digest.to_string(),
            "sha256:093ed64a457c8da9874b4a665491580ebaf9ee92ed428998bb51668b8d3ebdb3"
        );
    }

    #[test]
    fn payloads_and_blobs_read_back_as_written() {
        for text in [
            String::new(),
            "{}".to_owned(),
            r#"{"call_id":"call_1","latency_ms":0,"origin":"live","tool":"kb.read"}"#.to_owned(),
            format!(r#"{{"answer":"{}"}}"#, "x".repeat(100_000)),
        ] {
            let stored = StoredPayload::encode(text.clone());
            let value = match &stored {
                StoredPayload::Text(t) => ValueRef::Text(t.as_bytes()),
                StoredPayload::Compressed(b) => ValueRef::Blob(b),
            };
            assert_eq!(decode_payload(value).expect("reads back"), text);
        }
        let canonical = r#"{"content":"hello","role":"user"}"#.to_owned();
        let blob = encode_blob(ContentHash::from_bytes([0; 32]), canonical.clone());
        let value = decode_blob(blob.codec, blob.size, &blob.data).expect("reads back");
        assert_eq!(value.to_string(), canonical);
    }

    #[test]
    fn small_event_payloads_are_compressed() {
        let text = r#"{"call_id":"call_7","latency_ms":12,"origin":"live","output":"sha256:8c704dfdef12fd14911aceca4495ede55ea2a824953f3a5c401b8e43750f6174","tool":"kb.search"}"#;
        let StoredPayload::Compressed(packed) = StoredPayload::encode(text.to_owned()) else {
            panic!("a typical tool_result payload is stored uncompressed");
        };
        assert!(
            packed.len() * 10 < text.len() * 7,
            "{} of {} bytes",
            packed.len(),
            text.len()
        );
    }

    #[test]
    fn a_corrupt_payload_is_an_error() {
        assert!(decode_payload(ValueRef::Blob(b"\x28\xb5\x2f\xfd garbage")).is_err());
        assert!(decode_payload(ValueRef::Integer(3)).is_err());
        assert!(decode_blob(CODEC_ZSTD_DICTIONARY_V1, 10, b"garbage").is_err());
        assert!(decode_blob(7, 2, b"{}").is_err());
        assert!(decode_blob(CODEC_RAW, -1, b"{}").is_err());
    }
}
