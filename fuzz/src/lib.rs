//! What several fuzz targets share: cutting a byte stream into the pieces a network would hand
//! over, reading them back through [`std::io::Read`], and a stored run's tape as text.

use std::io::{self, Read};

use tapedeck_store::Store;
use tapedeck_trace::RunId;

/// The run's tape, as text so that a difference shows as one.
pub fn tape_text(store: &Store, id: &RunId) -> String {
    let mut out = Vec::new();
    store
        .export_tape(id, &mut out)
        .expect("an imported run exports");
    String::from_utf8(out).expect("a tape is UTF-8")
}

/// Splits fuzz input into (the stream, its pieces): the first byte chooses the lengths of the
/// pieces (so the fuzzer explores chunk boundaries as well as the bytes), the rest is the stream.
pub fn pieces(data: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let Some((&seed, stream)) = data.split_first() else {
        return (data, Vec::new());
    };
    let mut out = Vec::new();
    let mut rest = stream;
    let mut state = u32::from(seed);
    while !rest.is_empty() {
        // A small generator over the seed: lengths of 0 to 15 bytes (an empty piece is a read
        // that returned nothing yet) and, now and then, everything left.
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let choice = (state >> 16) % 17;
        let n = if choice == 16 {
            rest.len()
        } else {
            (choice as usize).min(rest.len())
        };
        let (piece, tail) = rest.split_at(n);
        out.push(piece);
        rest = tail;
    }
    (stream, out)
}

/// Hands out the bytes in the pieces given, one piece (or less) a read, skipping empty ones
/// (a `Read` returning 0 means the end).
pub struct Pieces<'a>(pub Vec<&'a [u8]>);

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while let Some(first) = self.0.first_mut() {
            if first.is_empty() {
                self.0.remove(0);
                continue;
            }
            let n = first.len().min(out.len());
            out[..n].copy_from_slice(&first[..n]);
            *first = &first[n..];
            return Ok(n);
        }
        Ok(0)
    }
}
