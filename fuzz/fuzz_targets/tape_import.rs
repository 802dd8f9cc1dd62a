//! A whole tape imported into a scratch store (`Store::import_tape` on `:memory:`), as `import`
//! and every command that checks tapes first do. A tape that imports exports, and the export
//! imports into another store and exports to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_fuzz::tape_text;
use tapedeck_store::{ImportOutcome, Store};

fuzz_target!(|data: &[u8]| {
    let store = Store::open(":memory:").expect("a scratch store");
    let Ok(ImportOutcome::Imported { id, events }) = store.import_tape(&mut &data[..]) else {
        return;
    };
    let tape = tape_text(&store, &id);
    let other = Store::open(":memory:").expect("a scratch store");
    match other.import_tape(&mut tape.as_bytes()) {
        Ok(ImportOutcome::Imported {
            id: again,
            events: n,
        }) => {
            assert_eq!((again, n), (id, events));
        }
        other => panic!("an exported tape does not import: {other:?}"),
    }
    assert_eq!(tape_text(&other, &id), tape);
});
