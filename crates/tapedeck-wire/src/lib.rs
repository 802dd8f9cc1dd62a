//! The model APIs' wire formats, read in one place for every side of tapedeck that meets them
//! (the agent's model backends and the recording proxy): OpenAI Chat Completions
//! ([`openai`]), OpenAI Responses ([`responses`]) and Anthropic Messages ([`anthropic`]), their
//! server-sent-events streams ([`sse`]), the bounds on what an upstream may send ([`limits`]),
//! the request-side helpers the proxy matches and records with ([`request`]), and the price of
//! a call ([`Price`]).
//!
//! Each API has typed requests (what the agent sends), whole responses and stream events. A
//! whole or streamed response is read into a [`Reply`] (the agent) or an [`Answer`] (the
//! proxy); a stream is put back together by one bounded assembler per API, wrapped for the proxy
//! in [`Assembler`]. The proxy reads requests as JSON values instead: it forwards and matches
//! what a client sent, fields tapedeck does not know included.

//!
//! ```
//! use serde_json::json;
//! use tapedeck_wire::openai::{ChatStream, read_completion};
//! use tapedeck_wire::{ReplyStream, read_stream};
//!
//! // A whole Chat Completions body.
//! let body = json!({
//!     "choices": [{"finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
//!         "tool_calls": [{"id": "call_1", "type": "function",
//!             "function": {"name": "kb_read", "arguments": "{\"article\":\"refunds\"}"}}]}}],
//!     "usage": {"prompt_tokens": 12, "completion_tokens": 5}
//! });
//! let reply = read_completion(&body)?;
//! assert_eq!(reply.tool_calls[0].arguments, json!({"article": "refunds"}));
//!
//! // The same answer streamed: the deltas put back together.
//! let sse = concat!(
//!     "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Refunds take \"}}]}\n\n",
//!     "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"5 days.\"},\"finish_reason\":\"stop\"}]}\n\n",
//!     "data: [DONE]\n\n",
//! );
//! let mut stream = ChatStream::default();
//! read_stream(sse.as_bytes(), &mut stream)?;
//! assert_eq!(stream.reply()?.text, "Refunds take 5 days.");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod answer;
pub mod anthropic;
mod error;
pub mod limits;
pub mod openai;
mod price;
mod reply;
pub mod request;
pub mod responses;
pub mod sse;
pub mod stream;

pub use answer::{Answer, Assembler, answer};
pub use error::{WireError, shorten};
pub use limits::{MAX_INDEX, MAX_RESPONSE_BYTES, MAX_TOOL_CALLS, OverLimit};
pub use price::Price;
pub use reply::{Reply, ToolCall, parse_arguments};
pub use request::{
    Provider, ToolOutput, VOLATILE_FIELDS, normalize, request_messages, request_params, similarity,
    tool_outputs,
};
pub use stream::{Assemble, ReadError, ReplyStream, read_stream};
pub use tapedeck_trace::Usage;

#[cfg(test)]
mod tests;
