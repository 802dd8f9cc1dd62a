//! OTLP/JSON traces imported into a scratch store (`Store::import_otel` on `:memory:`), ours or
//! another producer's. Each run imported exports as OTLP that imports into another store as
//! the same run: the same tape.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_fuzz::tape_text;
use tapedeck_store::{ImportOutcome, Store};

fuzz_target!(|data: &[u8]| {
    let store = Store::open(":memory:").expect("a scratch store");
    let Ok(outcomes) = store.import_otel(&mut &data[..]) else {
        return;
    };
    for outcome in outcomes {
        let ImportOutcome::Imported { id, .. } = outcome else {
            continue;
        };
        let mut otlp = Vec::new();
        store
            .export_otel(&id, &mut otlp)
            .expect("an imported run exports as OTLP");
        let other = Store::open(":memory:").expect("a scratch store");
        match other.import_otel(&mut otlp.as_slice()).as_deref() {
            Ok([ImportOutcome::Imported { id: again, .. }]) => assert_eq!(*again, id),
            other => panic!("our own OTLP export does not import as one run: {other:?}"),
        }
        assert_eq!(tape_text(&other, &id), tape_text(&store, &id));
    }
});
