//! The server-sent-events parser (`tapedeck_wire::sse`) on any bytes, cut into any pieces. What
//! it yields does not depend on the cuts; its blocks cover the stream end to end; each block's
//! text read alone (`parse_block`) is its event; `SseReader` over the pieces yields the same
//! events.
//!
//! `parse_block` reads a block as a stream's first, dropping a byte-order mark it starts with;
//! in the middle of a stream that mark is part of the line's field name, so such a block is
//! left out of the comparison (the redaction that reads blocks alone then reads an event the
//! client ignored, and errs towards redacting more).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_fuzz::{Pieces, pieces};
use tapedeck_wire::sse::{Block, SseParser, SseReader, parse_block};

fn parse(pieces: &[&[u8]]) -> (Vec<Block>, bool) {
    let mut parser = SseParser::default();
    let mut blocks = Vec::new();
    for piece in pieces {
        blocks.extend(parser.push(piece));
    }
    blocks.extend(parser.finish());
    assert!(
        parser.finish().is_empty(),
        "a finished parser yields nothing more"
    );
    (blocks, parser.ended_cleanly())
}

fuzz_target!(|data: &[u8]| {
    let (stream, cut) = pieces(data);
    let whole = parse(&[stream]);
    assert_eq!(parse(&cut), whole, "the cuts changed what was read");
    let (blocks, _) = &whole;

    let mut at = 0;
    for block in blocks {
        assert_eq!(block.raw.start, at, "blocks are contiguous");
        assert!(block.raw.end > block.raw.start, "a block is not empty");
        at = block.raw.end;
    }
    assert_eq!(at, stream.len(), "the blocks cover the stream");

    if let Ok(text) = std::str::from_utf8(stream) {
        for block in blocks {
            let text = &text[block.raw.clone()];
            if block.raw.start > 0 && text.starts_with('\u{feff}') {
                continue;
            }
            assert_eq!(
                parse_block(text),
                block.event,
                "block {:?} read alone",
                block.raw
            );
        }
    }

    let events: Vec<_> = blocks.iter().filter_map(|b| b.event.clone()).collect();
    let read: Vec<_> = SseReader::new(Pieces(cut))
        .collect::<Result<_, _>>()
        .expect("reading from memory does not fail");
    assert_eq!(read, events, "SseReader reads what the parser yields");
});
