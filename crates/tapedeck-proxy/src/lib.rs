//! The record/replay proxies, for agents not written against tapedeck's runtime: an HTTP proxy
//! for the OpenAI and Anthropic APIs ([`http`]) and an MCP stdio proxy ([`mcp`]), both turning
//! what crosses the wire into tapedeck events, with secrets removed first ([`redact`]). The
//! wire formats themselves are read by `tapedeck-wire`.

#![warn(missing_docs)]

pub mod http;
pub mod mcp;
pub mod redact;
pub mod session;
