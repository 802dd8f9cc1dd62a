//! The one server-sent-events parser: fed raw bytes in whatever pieces the network gives
//! ([`SseParser::push`]), it yields each event with the byte range of its block in the stream,
//! so the proxy can keep (and redact, and re-serve) the raw blocks while the agent reads the
//! events; [`SseReader`] runs it over any [`std::io::Read`]; [`blocks`] and [`parse_block`]
//! are the same split of a whole text.
//!
//! It follows the parsing rules of the HTML standard's `text/event-stream`: lines end with
//! `\r\n`, `\n` or `\r` (also when a chunk boundary falls between the `\r` and the `\n`), a
//! leading byte-order mark is dropped, lines starting with `:` are comments, `data:` lines of
//! one event are joined with `\n`, one space after the colon is dropped, and an event without
//! `data` is not dispatched. Unlike a browser it also yields a final event that the stream ended
//! before its blank line ([`SseParser::finish`]), and it says whether the stream ended cleanly
//! so a caller can tell a cut stream from a finished one.
//!
//! It is hand-written rather than `eventsource-stream` because that crate is async-only and
//! drops the raw bytes that tapedeck's proxy keeps (see `DEPENDENCIES.md`).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::ops::Range;

/// The longest line [`SseReader`] accepts (16 MiB): a stream that never ends its line is an
/// error, not an unbounded buffer.
pub const MAX_LINE: usize = 16 << 20;

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

/// One block of the stream: the bytes up to and including the blank line that ends it (or the
/// end of the stream), and the event it dispatched, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Where the block's bytes are in the whole stream.
    pub raw: Range<usize>,
    /// Its event (`None` for comments, an event without data, or extra blank lines).
    pub event: Option<SseEvent>,
}

/// The incremental parser: push bytes, get the blocks (and events) they complete.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes not yet consumed as lines.
    buf: Vec<u8>,
    /// Where the search for the next line end resumes in `buf`: a long line arriving in many
    /// pieces is searched once, not once per piece.
    scanned: usize,
    /// How many bytes of the stream came before `buf[0]`.
    consumed: usize,
    /// Where the block being read began in the stream.
    block_start: usize,
    first_line: bool,
    /// Fields of the event being built.
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    /// A field line arrived since the last blank line.
    pending: bool,
    /// Set by [`SseParser::finish`]: whether the stream ended cleanly.
    ended: Option<bool>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            consumed: 0,
            block_start: 0,
            first_line: true,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            pending: false,
            ended: None,
        }
    }
}

impl SseParser {
    /// Feeds bytes; returns the blocks they complete, each with its raw range and event.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Block> {
        self.buf.extend_from_slice(bytes);
        self.lines(false)
    }

    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.push(bytes)
            .into_iter()
            .filter_map(|b| b.event)
            .collect()
    }

    /// Ends the stream: the blocks still held, the last one possibly unfinished (its event is
    /// yielded all the same; [`SseParser::ended_cleanly`] then says `false`).
    pub fn finish(&mut self) -> Vec<Block> {
        if self.ended.is_some() {
            return Vec::new();
        }
        let mut out = self.lines(true);
        let partial_line = !self.buf.is_empty();
        if partial_line {
            let mut line = std::mem::take(&mut self.buf);
            self.consumed += line.len();
            if std::mem::take(&mut self.first_line) && line.starts_with(b"\xEF\xBB\xBF") {
                line.drain(..3);
            }
            self.scanned = 0;
            self.field(&line);
        }
        self.ended = Some(!partial_line && !self.pending);
        let end = self.consumed + self.buf.len();
        if end > self.block_start || self.pending {
            out.push(self.end_block(end));
        }
        out
    }

    /// Whether the stream ended after a complete event (its blank line) and not inside one;
    /// `false` until [`SseParser::finish`].
    pub fn ended_cleanly(&self) -> bool {
        self.ended == Some(true)
    }

    /// Whether bytes of an unfinished event are left over.
    pub fn has_partial(&self) -> bool {
        self.pending || self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }

    /// The length of the line being read (bytes with no line end yet).
    pub fn partial_line_len(&self) -> usize {
        self.buf.len()
    }

    /// Consumes the complete lines in `buf` (at the end of the stream a last `\r` is a line
    /// end too) and returns the blocks they end.
    fn lines(&mut self, eof: bool) -> Vec<Block> {
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let from_scan = self.scanned.max(start);
            let Some(offset) = self.buf[from_scan..]
                .iter()
                .position(|b| *b == b'\n' || *b == b'\r')
            else {
                self.scanned = self.buf.len();
                break;
            };
            let end = from_scan + offset;
            let next = if self.buf[end] == b'\n' {
                end + 1
            } else if end + 1 < self.buf.len() {
                if self.buf[end + 1] == b'\n' {
                    end + 2
                } else {
                    end + 1
                }
            } else if eof {
                end + 1
            } else {
                // A `\r` at the end of what arrived: the `\n` may be in the next piece.
                self.scanned = end;
                break;
            };
            let mut from = start;
            if std::mem::take(&mut self.first_line)
                && self.buf[from..end].starts_with(b"\xEF\xBB\xBF")
            {
                from += 3;
            }
            start = next;
            self.scanned = next;
            if from == end {
                out.push(self.end_block(self.consumed + next));
            } else {
                let line = self.buf[from..end].to_vec();
                self.field(&line);
            }
        }
        self.buf.drain(..start);
        self.consumed += start;
        self.scanned -= start;
        out
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

    /// Ends the block being read at `end`: its event if it had data; a new block starts.
    fn end_block(&mut self, end: usize) -> Block {
        let raw = self.block_start..end;
        self.block_start = end;
        self.pending = false;
        let event = self.event.take();
        let id = self.id.take();
        if !std::mem::take(&mut self.has_data) {
            self.data.clear();
            return Block { raw, event: None };
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        Block {
            raw,
            event: Some(SseEvent { event, data, id }),
        }
    }
}

/// The event blocks of a whole text: each block with the blank line that ends it, the last
/// one possibly unfinished; together they cover the text.
pub fn blocks(text: &str) -> Vec<Range<usize>> {
    let mut parser = SseParser::default();
    let mut out: Vec<Range<usize>> = parser
        .push(text.as_bytes())
        .into_iter()
        .map(|b| b.raw)
        .collect();
    out.extend(parser.finish().into_iter().map(|b| b.raw));
    out
}

/// The event of one block (its text, with or without the blank line after it), `None` when
/// it has no `data`.
pub fn parse_block(block: &str) -> Option<SseEvent> {
    let mut parser = SseParser::default();
    let mut blocks = parser.push(block.as_bytes());
    blocks.extend(parser.finish());
    blocks.into_iter().find_map(|b| b.event)
}

/// Reads events from a byte stream with [`SseParser`], reading only when the events read so
/// far are used up.
#[derive(Debug)]
pub struct SseReader<R> {
    inner: R,
    parser: SseParser,
    queue: VecDeque<SseEvent>,
    /// Set when the stream has ended: whether it ended cleanly.
    ended: Option<bool>,
}

impl<R: Read> SseReader<R> {
    /// A parser over `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            parser: SseParser::default(),
            queue: VecDeque::new(),
            ended: None,
        }
    }

    /// The next event, or `None` when the stream has ended. Errors of the underlying reader
    /// are passed on (and the parser can be asked again; the bytes read so far are kept); a
    /// line longer than [`MAX_LINE`] is an [`io::ErrorKind::InvalidData`] error.
    pub fn next_event(&mut self) -> io::Result<Option<SseEvent>> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(Some(event));
            }
            if self.ended.is_some() {
                return Ok(None);
            }
            match self.inner.read(&mut chunk) {
                Ok(0) => {
                    let blocks = self.parser.finish();
                    self.queue
                        .extend(blocks.into_iter().filter_map(|b| b.event));
                    self.ended = Some(self.parser.ended_cleanly());
                }
                Ok(n) => {
                    let blocks = self.parser.push(&chunk[..n]);
                    self.queue
                        .extend(blocks.into_iter().filter_map(|b| b.event));
                    if self.parser.partial_line_len() > MAX_LINE {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("server-sent-events line longer than {MAX_LINE} bytes"),
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
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

    // The push API the proxy feeds (moved from its own parser).

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

    #[test]
    fn raw_blocks_rebuild_the_stream_at_every_chunk_boundary() {
        let text: &[u8] =
            b"\xEF\xBB\xBFdata: a\r\n\r\n: ping\n\nevent: x\rdata: b\r\rdata: c\n\ndata: d";
        let whole: Vec<Block> = {
            let mut p = SseParser::default();
            let mut b = p.push(text);
            b.extend(p.finish());
            b
        };
        let rebuilt: Vec<u8> = whole
            .iter()
            .flat_map(|b| text[b.raw.clone()].to_vec())
            .collect();
        assert_eq!(rebuilt, text, "the blocks cover the stream in order");
        for cut in 0..=text.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&text[..cut]);
            got.extend(p.push(&text[cut..]));
            got.extend(p.finish());
            assert_eq!(got, whole, "split at {cut}");
            assert!(!p.ended_cleanly(), "the last event had no blank line");
        }
    }

    mod chunking {
        use proptest::prelude::*;

        use super::super::*;

        /// Streams made of the pieces that matter to the parser: fields, comments, every line
        /// end, a byte-order mark, multibyte text.
        fn stream() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(&b"data: "[..]),
                Just(&b"data:"[..]),
                Just(&b"event: x"[..]),
                Just(&b"id: 1"[..]),
                Just(&b": c"[..]),
                Just(&b"\r"[..]),
                Just(&b"\n"[..]),
                Just(&b"\r\n"[..]),
                Just(&b"{\"a\":1}"[..]),
                Just("é✓".as_bytes()),
                Just(&b"\xEF\xBB\xBF"[..]),
            ];
            proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
        }

        fn whole(bytes: &[u8]) -> (Vec<Block>, bool) {
            let mut p = SseParser::default();
            let mut blocks = p.push(bytes);
            blocks.extend(p.finish());
            (blocks, p.ended_cleanly())
        }

        proptest! {
            #[test]
            fn any_chunking_gives_the_same_blocks_and_they_cover_the_stream(
                bytes in stream(),
                cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
            ) {
                let (expected, clean) = whole(&bytes);
                let mut at = 0;
                for block in &expected {
                    prop_assert_eq!(block.raw.start, at);
                    at = block.raw.end;
                }
                prop_assert_eq!(at, bytes.len());
                let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
                cuts.sort_unstable();
                let mut p = SseParser::default();
                let mut got = Vec::new();
                let mut from = 0;
                for cut in cuts.into_iter().chain([bytes.len()]) {
                    got.extend(p.push(&bytes[from..cut]));
                    from = cut;
                }
                got.extend(p.finish());
                prop_assert_eq!(got, expected);
                prop_assert_eq!(p.ended_cleanly(), clean);
            }
        }
    }
}
