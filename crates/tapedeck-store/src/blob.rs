//! How blob content is laid out in the `blobs` table: canonical JSON, zstd-compressed above
//! [`COMPRESS_ABOVE`] bytes.

use serde_json::Value;
use tapedeck_trace::ContentHash;

/// Content up to this many bytes is stored as is; compression costs more than it saves below.
pub(crate) const COMPRESS_ABOVE: usize = 512;

const CODEC_RAW: i64 = 0;
const CODEC_ZSTD: i64 = 1;

/// A blob ready to insert: hash, codec, original size, stored bytes.
pub(crate) struct EncodedBlob {
    pub hash: ContentHash,
    pub codec: i64,
    pub size: i64,
    pub data: Vec<u8>,
}

/// Encodes the canonical text of a blob.
pub(crate) fn encode(hash: ContentHash, canonical: String) -> EncodedBlob {
    let size = canonical.len() as i64;
    if canonical.len() > COMPRESS_ABOVE
        && let Ok(packed) = zstd::bulk::compress(canonical.as_bytes(), 3)
        && packed.len() < canonical.len()
    {
        return EncodedBlob {
            hash,
            codec: CODEC_ZSTD,
            size,
            data: packed,
        };
    }
    EncodedBlob {
        hash,
        codec: CODEC_RAW,
        size,
        data: canonical.into_bytes(),
    }
}

/// Decodes stored bytes back to the blob's JSON value.
pub(crate) fn decode(codec: i64, size: i64, data: &[u8]) -> Result<Value, String> {
    let text = match codec {
        CODEC_RAW => std::borrow::Cow::Borrowed(data),
        CODEC_ZSTD => std::borrow::Cow::Owned(
            zstd::bulk::decompress(data, size.max(0) as usize)
                .map_err(|e| format!("cannot decompress: {e}"))?,
        ),
        other => return Err(format!("unknown blob codec {other}")),
    };
    serde_json::from_slice(&text).map_err(|e| format!("blob is not JSON: {e}"))
}
