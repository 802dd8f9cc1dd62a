//! Reading a streamed response from a byte stream: [`read_stream`] runs the [`SseReader`] over
//! the bytes (at most [`MAX_RESPONSE_BYTES`] of them) and gives each event to an API's
//! assembler ([`Assemble`]) until it says the response is complete or the stream ends.

use std::io::{self, Read};

use crate::anthropic::MessagesStream;
use crate::anthropic::read_message;
use crate::openai::ChatStream;
use crate::openai::read_completion;
use crate::responses::ResponsesStream;
use crate::sse::{SseEvent, SseReader};
use crate::{MAX_RESPONSE_BYTES, OverLimit, Reply, WireError};

/// A stream assembler: one per API.
pub trait Assemble {
    /// Takes in one event.
    fn push_event(&mut self, event: &SseEvent) -> Result<(), WireError>;
    /// Whether the stream said it was complete.
    fn is_done(&self) -> bool;
}

impl Assemble for ChatStream {
    fn push_event(&mut self, event: &SseEvent) -> Result<(), WireError> {
        self.push(&event.data)
    }
    fn is_done(&self) -> bool {
        ChatStream::is_done(self)
    }
}

impl Assemble for MessagesStream {
    fn push_event(&mut self, event: &SseEvent) -> Result<(), WireError> {
        self.push(event.event.as_deref(), &event.data)
    }
    fn is_done(&self) -> bool {
        MessagesStream::is_done(self)
    }
}

impl Assemble for ResponsesStream {
    fn push_event(&mut self, event: &SseEvent) -> Result<(), WireError> {
        self.push(&event.data)
    }
    fn is_done(&self) -> bool {
        ResponsesStream::is_done(self)
    }
}

/// An API the agent's backends read into a [`Reply`]: its stream assembler, and the reader of a
/// whole body.
pub trait ReplyStream: Assemble + Default {
    /// Reads a whole body.
    fn read_body(body: &serde_json::Value) -> Result<Reply, WireError>;
    /// The reply the stream amounts to so far.
    fn reply(&self) -> Result<Reply, WireError>;
    /// Whether the stream ended without saying it was complete.
    fn is_truncated(&self) -> bool;
}

impl ReplyStream for ChatStream {
    fn read_body(body: &serde_json::Value) -> Result<Reply, WireError> {
        read_completion(body)
    }
    fn reply(&self) -> Result<Reply, WireError> {
        ChatStream::reply(self)
    }
    fn is_truncated(&self) -> bool {
        ChatStream::is_truncated(self)
    }
}

impl ReplyStream for MessagesStream {
    fn read_body(body: &serde_json::Value) -> Result<Reply, WireError> {
        read_message(body)
    }
    fn reply(&self) -> Result<Reply, WireError> {
        MessagesStream::reply(self)
    }
    fn is_truncated(&self) -> bool {
        MessagesStream::is_truncated(self)
    }
}

/// Why a stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// An event was not what the API documents, or the stream broke a bound.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Reading the bytes failed.
    #[error("{error}")]
    Io {
        /// The failure.
        error: io::Error,
        /// Whether any event had arrived before it (the answer is then cut, not missing).
        anything_arrived: bool,
    },
}

/// Reads the events of `input` into `stream` until it is complete or `input` ends. An event
/// that fails to parse because the stream was cut inside it ends the reading: that is the cut,
/// not a malformed answer. Past [`MAX_RESPONSE_BYTES`] the reading fails with
/// [`OverLimit::Size`].
pub fn read_stream(input: impl Read, stream: &mut impl Assemble) -> Result<(), ReadError> {
    let mut reader = SseReader::new(Capped {
        inner: input,
        read: 0,
    });
    let mut anything_arrived = false;
    loop {
        match reader.next_event() {
            Ok(Some(event)) => {
                let cut_short = reader.is_finished() && !reader.ended_cleanly();
                anything_arrived = true;
                match stream.push_event(&event) {
                    Ok(()) if stream.is_done() => return Ok(()),
                    Ok(()) => {}
                    Err(WireError::Malformed(_)) if cut_short => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(None) => return Ok(()),
            Err(error) => {
                if let Some(over) = error.get_ref().and_then(|e| e.downcast_ref::<OverLimit>()) {
                    return Err(WireError::from(over.clone()).into());
                }
                return Err(ReadError::Io {
                    error,
                    anything_arrived,
                });
            }
        }
    }
}

/// A reader that fails with [`OverLimit::Size`] once more than [`MAX_RESPONSE_BYTES`] came
/// through it: a stream is bounded like a whole body.
struct Capped<R> {
    inner: R,
    read: usize,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        if self.read > MAX_RESPONSE_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, OverLimit::Size));
        }
        Ok(n)
    }
}
