//! MCP stdio lines (`tapedeck_proxy::mcp`): the input is a recorded session, one message a line
//! (`>` before a client's, `<` before a server's), then a line `---`, then what a client sends.
//! Every line is read as the proxies read one (`parse_line`), and the client is answered from
//! the recording as `tapedeck mcp replay` would (`serve_messages`). Nothing panics, and every
//! line written to the client is one JSON object (recorded messages go out as they were
//! recorded, so only replay's own carry `"jsonrpc": "2.0"` for certain).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_proxy::mcp::{parse_line, serve_messages};
use tapedeck_proxy::session::McpRecorded;
use tapedeck_trace::Direction;

/// Splits the input at its first `---` line: (the recording, the client's bytes).
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let mut at = 0;
    for line in data.split_inclusive(|b| *b == b'\n') {
        if line.strip_suffix(b"\n").unwrap_or(line) == b"---" {
            return (&data[..at], &data[at + line.len()..]);
        }
        at += line.len();
    }
    (data, &[])
}

fuzz_target!(|data: &[u8]| {
    let (recording, client) = split(data);
    let mut recorded = Vec::new();
    for line in recording.split(|b| *b == b'\n') {
        let direction = match line.first() {
            Some(b'>') => Direction::ClientToServer,
            Some(b'<') => Direction::ServerToClient,
            _ => continue,
        };
        if let Some(message) = parse_line(&line[1..]) {
            assert!(message.is_object());
            recorded.push(McpRecorded { direction, message });
        }
    }
    let mut out = Vec::new();
    let misses = serve_messages(&recorded, client, &mut out).expect("memory does not fail");
    let requests = client.split(|b| *b == b'\n').count();
    assert!(misses.len() <= requests, "a miss is a request");
    let Some(written) = out.strip_suffix(b"\n") else {
        assert!(out.is_empty(), "every line written ends");
        return;
    };
    for line in written.split(|b| *b == b'\n') {
        assert!(
            parse_line(line).is_some(),
            "replay writes one message a line"
        );
    }
});
