//! A small server-sent-events parser: reads any [`std::io::Read`] incrementally and yields
//! [`SseEvent`]s, as the streaming model backends need them.
//!
//! It follows the parsing rules of the HTML standard's `text/event-stream`: lines end with
//! `\r\n`, `\n` or `\r` (also when a chunk boundary falls between the `\r` and the `\n`), a
//! leading byte-order mark is dropped, lines starting with `:` are comments, `data:` lines of
//! one event are joined with `\n`, one space after the colon is dropped, and an event without
//! `data` is not dispatched. Unlike a browser it also yields a final event that the stream ended
//! before its blank line, and it says whether the stream ended cleanly
//! ([`SseReader::ended_cleanly`]) so a caller can tell a cut stream from a finished one.
//!
//! It is hand-written rather than `eventsource-stream` because that crate is async-only and
//! drops the raw bytes that tapedeck's proxy keeps (see `DEPENDENCIES.md`).

use std::io::{self, Read};

/// The longest line accepted (16 MiB): a stream that never ends its line is an error, not an
/// unbounded buffer.
const MAX_LINE: usize = 16 << 20;

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `None` when the event had none (the standard's `message`).
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// The `id:` field given in this event, if any.
    pub id: Option<String>,
}

/// Reads events from a byte stream, pulling only as many bytes as the next event needs.
#[derive(Debug)]
pub struct SseReader<R> {
    inner: R,
    /// Bytes read and not yet consumed as lines: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// Where the search for the next line end resumes (`start <= scanned <= buf.len()`).
    scanned: usize,
    eof: bool,
    first_line: bool,
    /// Fields of the event being built.
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    /// A field line arrived since the last blank line.
    pending: bool,
    /// Set when the stream has ended: whether it ended cleanly.
    ended: Option<bool>,
}

impl<R: Read> SseReader<R> {
    /// A parser over `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(8192),
            start: 0,
            scanned: 0,
            eof: false,
            first_line: true,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            pending: false,
            ended: None,
        }
    }

    /// The next event, or `None` when the stream has ended. Errors of the underlying reader
    /// are passed on (and the parser can be asked again; the bytes read so far are kept).
    pub fn next_event(&mut self) -> io::Result<Option<SseEvent>> {
        if self.ended.is_some() {
            return Ok(None);
        }
        loop {
            if let Some((from, to)) = self.take_line() {
                let line = self.buf[from..to].to_vec();
                if line.is_empty() {
                    if let Some(event) = self.dispatch() {
                        return Ok(Some(event));
                    }
                } else {
                    self.field(&line);
                }
                continue;
            }
            if self.eof {
                // A last line without its line end, then whatever event was being built.
                let partial_line = self.start < self.buf.len();
                if partial_line {
                    let mut line = self.buf[self.start..].to_vec();
                    if std::mem::take(&mut self.first_line) && line.starts_with(b"\xEF\xBB\xBF") {
                        line.drain(..3);
                    }
                    self.start = self.buf.len();
                    self.field(&line);
                }
                self.ended = Some(!partial_line && !self.pending);
                return Ok(self.dispatch());
            }
            self.fill()?;
        }
    }

    /// Whether the stream ended after a complete event (its blank line) and not inside one.
    /// `false` until the stream has ended, so also `false` after a reader error.
    pub fn ended_cleanly(&self) -> bool {
        self.ended == Some(true)
    }

    /// Whether the end of the stream has been reached.
    pub fn is_finished(&self) -> bool {
        self.ended.is_some()
    }

    /// The reader, to look at what is left of it.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The bounds of the next complete line in `buf` (line end excluded) and consumes it, or
    /// `None` when more bytes are needed.
    fn take_line(&mut self) -> Option<(usize, usize)> {
        let rest = &self.buf[self.scanned..];
        let Some(offset) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') else {
            self.scanned = self.buf.len();
            return None;
        };
        let end = self.scanned + offset;
        let next = if self.buf[end] == b'\n' {
            end + 1
        } else if end + 1 < self.buf.len() {
            if self.buf[end + 1] == b'\n' {
                end + 2
            } else {
                end + 1
            }
        } else if self.eof {
            end + 1
        } else {
            // A `\r` at the end of what arrived: the `\n` may be in the next chunk.
            self.scanned = end;
            return None;
        };
        let mut from = self.start;
        if self.first_line {
            self.first_line = false;
            if self.buf[from..end].starts_with(b"\xEF\xBB\xBF") {
                from += 3;
            }
        }
        self.start = next;
        self.scanned = next;
        Some((from, end))
    }

    /// Reads more bytes; at the end of the stream sets `eof`.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.buf.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("server-sent-events line longer than {MAX_LINE} bytes"),
            ));
        }
        let mut chunk = [0u8; 8192];
        loop {
            match self.inner.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Applies one non-blank line.
    fn field(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        self.pending = true;
        match name {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }

    /// Ends the event being built: returns it if it had data, and starts a new one.
    fn dispatch(&mut self) -> Option<SseEvent> {
        self.pending = false;
        let event = self.event.take();
        let id = self.id.take();
        if !std::mem::take(&mut self.has_data) {
            self.data.clear();
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        Some(SseEvent { event, data, id })
    }
}

impl<R: Read> Iterator for SseReader<R> {
    type Item = io::Result<SseEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time (1, 2, 3, 1, 2, 3 …), like a slow network.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        turn: usize,
    }

    impl Trickle {
        fn new(text: &[u8]) -> Self {
            Self {
                bytes: text.to_vec(),
                at: 0,
                turn: 0,
            }
        }
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.turn += 1;
            let n = (self.turn % 3 + 1)
                .min(out.len())
                .min(self.bytes.len() - self.at);
            out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// Fails once after `fail_at` bytes, then goes on.
    struct Flaky {
        inner: Trickle,
        fail_at: usize,
        failed: bool,
    }

    impl Read for Flaky {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if !self.failed && self.inner.at >= self.fail_at {
                self.failed = true;
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
            }
            self.inner.read(out)
        }
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
            id: None,
        }
    }

    fn all(text: &[u8]) -> (Vec<SseEvent>, bool) {
        let mut whole = SseReader::new(text);
        let expected: Vec<SseEvent> = whole
            .by_ref()
            .collect::<io::Result<_>>()
            .expect("read from memory");
        let mut trickled = SseReader::new(Trickle::new(text));
        let got: Vec<SseEvent> = trickled
            .by_ref()
            .collect::<io::Result<_>>()
            .expect("read from memory");
        assert_eq!(got, expected, "chunking changed the events");
        assert_eq!(trickled.ended_cleanly(), whole.ended_cleanly());
        (got, whole.ended_cleanly())
    }

    #[test]
    fn plain_events_with_names_and_multi_line_data() {
        let text = b"event: message_start\ndata: {\"a\":1}\n\ndata: line one\ndata: line two\n\n";
        let (events, clean) = all(text);
        assert_eq!(
            events,
            vec![
                ev(Some("message_start"), "{\"a\":1}"),
                ev(None, "line one\nline two")
            ]
        );
        assert!(clean);
    }

    #[test]
    fn crlf_and_lone_cr_line_ends() {
        let (events, clean) = all(b"data: a\r\n\r\nevent: x\rdata: b\r\rdata: c\r\n\r\n");
        assert_eq!(
            events,
            vec![ev(None, "a"), ev(Some("x"), "b"), ev(None, "c")]
        );
        assert!(clean);
    }

    #[test]
    fn cr_then_lf_split_across_chunks_is_one_line_end() {
        // Trickle splits everywhere, including between every `\r` and `\n`: a wrong split
        // would add a blank line, dispatching `a` without `b`.
        let text = b"data: a\r\ndata: b\r\n\r\n";
        for skip in 0..text.len() {
            let parts: [&[u8]; 2] = [&text[..skip], &text[skip..]];
            let reader = parts[0].chain(parts[1]);
            let events: Vec<SseEvent> = SseReader::new(reader)
                .collect::<io::Result<_>>()
                .expect("read from memory");
            assert_eq!(events, vec![ev(None, "a\nb")], "split at {skip}");
        }
        let (events, _) = all(text);
        assert_eq!(events, vec![ev(None, "a\nb")]);
    }

    #[test]
    fn comments_ids_unknown_fields_and_spaces() {
        let text = b": keep-alive\n\nid: 7\nretry: 100\nfoo: bar\ndata:no-space\ndata:  two spaces\ndata\n\n";
        let (events, clean) = all(text);
        assert_eq!(
            events,
            vec![SseEvent {
                event: None,
                data: "no-space\n two spaces\n".to_owned(),
                id: Some("7".to_owned()),
            }]
        );
        assert!(clean);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let (events, clean) = all(b"event: ping\n\ndata: x\n\n");
        assert_eq!(events, vec![ev(None, "x")]);
        assert!(clean);
    }

    #[test]
    fn final_event_without_blank_line_is_yielded_but_not_clean() {
        let (events, clean) = all(b"data: one\n\ndata: two\n");
        assert_eq!(events, vec![ev(None, "one"), ev(None, "two")]);
        assert!(!clean);

        let (events, clean) = all(b"data: one\n\ndata: tw");
        assert_eq!(events, vec![ev(None, "one"), ev(None, "tw")]);
        assert!(!clean);

        let (events, clean) = all(b"data: one\n\n: a comment at the end");
        assert_eq!(events, vec![ev(None, "one")]);
        assert!(!clean, "a partial line is not a clean end");
    }

    #[test]
    fn empty_and_comment_only_streams() {
        let (events, clean) = all(b"");
        assert!(events.is_empty());
        assert!(clean);
        let (events, clean) = all(b": hi\n\n");
        assert!(events.is_empty());
        assert!(clean);
    }

    #[test]
    fn byte_order_mark_and_multibyte_text_across_chunks() {
        let text = "\u{feff}data: héllo — ✓\n\n".as_bytes();
        let (events, clean) = all(text);
        assert_eq!(events, vec![ev(None, "héllo — ✓")]);
        assert!(clean);
    }

    #[test]
    fn openai_like_stream_in_tiny_chunks() {
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!("data: {{\"i\":{i}}}\n\n"));
        }
        text.push_str("data: [DONE]\n\n");
        let (events, clean) = all(text.as_bytes());
        assert_eq!(events.len(), 51);
        assert_eq!(events[49].data, "{\"i\":49}");
        assert_eq!(events[50].data, "[DONE]");
        assert!(clean);
    }

    #[test]
    fn reader_errors_pass_through_and_reading_can_go_on() {
        let text = b"data: a\n\ndata: b\n\n";
        let mut reader = SseReader::new(Flaky {
            inner: Trickle::new(text),
            fail_at: 12,
            failed: false,
        });
        assert_eq!(reader.next_event().expect("first"), Some(ev(None, "a")));
        let err = reader.next_event().expect_err("the reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert!(!reader.ended_cleanly());
        assert_eq!(reader.next_event().expect("second"), Some(ev(None, "b")));
        assert_eq!(reader.next_event().expect("end"), None);
        assert!(reader.ended_cleanly());
        assert!(reader.is_finished());
    }

    #[test]
    fn a_line_that_never_ends_is_an_error() {
        let long = io::repeat(b'x').take((MAX_LINE + 20_000) as u64);
        let mut reader = SseReader::new(b"data: ".chain(long));
        let err = reader.next_event().expect_err("too long");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
