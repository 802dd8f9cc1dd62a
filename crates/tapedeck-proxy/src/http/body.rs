//! Taking a request's body: read whole up to the proxy's limit, or refused.

use super::*;

/// Why a request's body was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It is over the proxy's limit.
    #[error("the request body is over the proxy's limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The client's connection failed while sending it.
    #[error("the request body could not be read: {0}")]
    Read(String),
}

/// Reads a request body of at most `limit` bytes; one whose `content-length` says it is over
/// the limit is not read at all.
pub(super) async fn read_body(parts: &Parts, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut stream = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        len += chunk.len();
        if len > limit {
            return Err(BodyError::TooLarge { limit });
        }
        // A body in one piece (the usual case) is kept as it came, without a copy.
        match &first {
            None if rest.is_empty() => first = Some(chunk),
            _ => {
                if let Some(first) = first.take() {
                    rest.extend_from_slice(&first);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(rest)))
}

/// A request's path with its query.
pub(super) fn path_of(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(pieces: &[&'static str]) -> (Parts, Body) {
        let (parts, ()) = Request::builder()
            .method("POST")
            .uri("/v1/chat/completions")
            .body(())
            .expect("a request")
            .into_parts();
        let stream = futures_util::stream::iter(
            pieces
                .iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p.as_bytes())))
                .collect::<Vec<_>>(),
        );
        (parts, Body::from_stream(stream))
    }

    #[tokio::test]
    async fn a_body_in_pieces_is_joined_up_to_the_limit() {
        let (parts, body) = chunked(&["ab", "cd", "e"]);
        let bytes = read_body(&parts, body, 5).await.expect("at the limit");
        assert_eq!(&bytes[..], b"abcde");
        let (parts, body) = chunked(&["ab", "cd", "ef"]);
        assert!(matches!(
            read_body(&parts, body, 5).await,
            Err(BodyError::TooLarge { limit: 5 })
        ));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let (mut parts, body) = chunked(&["ab"]);
        parts
            .headers
            .insert("content-length", HeaderValue::from_static("6"));
        assert!(matches!(
            read_body(&parts, body, 5).await,
            Err(BodyError::TooLarge { limit: 5 })
        ));
    }
}
