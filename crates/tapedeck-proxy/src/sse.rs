//! A small incremental server-sent-events parser for the proxy's tee: it is fed the raw bytes
//! as they arrive (in whatever pieces the network gives) and yields each event's `data`; and
//! [`blocks`], the same split of a whole text, for the redactor to rewrite events in place.

use std::ops::Range;

/// One event's fields that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Accumulates bytes and splits them into events at blank lines.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    /// How far `buf` is known to hold no blank line: a long event arriving in many pieces is
    /// searched once, not once per piece.
    scanned: usize,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_blank_line(&self.buf, self.scanned) {
            let block: Vec<u8> = self.buf.drain(..end + sep).collect();
            self.scanned = 0;
            if let Some(event) = parse_block(&String::from_utf8_lossy(&block[..end])) {
                events.push(event);
            }
        }
        // A separator may start in the last three bytes and end in the next piece.
        self.scanned = self.buf.len().saturating_sub(3);
        events
    }

    /// Whether bytes of an unfinished event are left over.
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

/// The event blocks of a whole text: each block with the blank line that ends it, the last
/// one possibly unfinished; together they cover the text.
pub fn blocks(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some((end, sep)) = find_blank_line(&text.as_bytes()[start..], 0) {
        out.push(start..start + end + sep);
        start += end + sep;
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}

/// The index of the first blank line (event separator) at or after `from`, and its length.
fn find_blank_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    for i in from..buf.len() {
        for sep in [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"] {
            if buf[i..].starts_with(sep) {
                return Some((i, sep.len()));
            }
        }
    }
    None
}

/// The event of one block (its text without the blank line after it, or with it: blank lines
/// are ignored), `None` when it has neither `data` nor `event`.
pub fn parse_block(block: &str) -> Option<SseEvent> {
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() && event.is_none() {
        return None;
    }
    Some(SseEvent {
        event,
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_pieces() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: {\"a\"").is_empty());
        let evs = p.feed(b":1}\n\nevent: x\ndata: 2\r\n\r\ndata: [DO");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].data, "{\"a\":1}");
        assert_eq!(evs[1].event.as_deref(), Some("x"));
        assert!(p.has_partial());
        let evs = p.feed(b"NE]\n\n");
        assert_eq!(evs[0].data, "[DONE]");
        assert!(!p.has_partial());
    }

    #[test]
    fn a_separator_split_across_pieces_is_found() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: 1\r\n").is_empty());
        assert!(p.feed(b"\r").is_empty());
        assert_eq!(p.feed(b"\ndata: 2\n")[0].data, "1");
        assert_eq!(p.feed(b"\n")[0].data, "2");
    }

    #[test]
    fn blocks_cover_the_text() {
        let text = "data: a\n\nevent: x\r\ndata: b\r\n\r\ndata: c";
        let blocks = blocks(text);
        assert_eq!(blocks, vec![0..9, 9..30, 30..37]);
        let events: Vec<_> = blocks
            .iter()
            .filter_map(|b| parse_block(&text[b.clone()]))
            .map(|e| e.data)
            .collect();
        assert_eq!(events, ["a", "b", "c"]);
    }
}
