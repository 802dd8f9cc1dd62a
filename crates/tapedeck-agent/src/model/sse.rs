//! Placeholder for the SSE parser.
