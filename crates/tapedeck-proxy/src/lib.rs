//! The record/replay proxies, for agents not written against tapedeck's runtime: an HTTP proxy
//! for the OpenAI and Anthropic APIs ([`http`]) and an MCP stdio proxy ([`mcp`]), both turning
//! what crosses the wire into tapedeck events, with secrets removed first ([`redact`]). The
//! wire formats themselves are read by `tapedeck-wire`.

//!
//! ```
//! use tapedeck_proxy::redact::{REDACTED, Redactor};
//!
//! // Secrets are removed before anything is stored: configured patterns, and the value of a
//! // secret header seen on the wire wherever it is echoed later.
//! let redactor = Redactor::new(&["acct-[0-9]+".to_owned()])?;
//! redactor.learn("sk-live-0123456789");
//! let stored = redactor.text("upstream said: bad key sk-live-0123456789 for acct-42");
//! assert_eq!(stored, format!("upstream said: bad key {REDACTED} for {REDACTED}"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod command_line;
pub mod http;
pub mod mcp;
pub mod redact;
pub mod session;
