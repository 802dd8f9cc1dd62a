//! One tape line at a time (`tapedeck_trace::tape`): every line of the input is read as a
//! header and as an event. A line that reads writes back canonically, and what it writes reads
//! back equal and writes the same bytes again: the tape's promise that writing a tape that was
//! read gives back the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_trace::tape::{self, TapeEvent, TapeHeader};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Ok(header) = tape::parse_header(line) {
            let written = tape::to_line(&header).expect("a header read writes");
            let again: TapeHeader = tape::parse_header(&written).expect("a written header reads");
            assert_eq!(again, header);
            assert_eq!(tape::to_line(&again).expect("writes"), written);
        }
        if let Ok(event) = tape::parse_event(line, 2) {
            let written = tape::to_line(&event).expect("an event read writes");
            let again: TapeEvent = tape::parse_event(&written, 2).expect("a written event reads");
            assert_eq!(again, event);
            assert_eq!(tape::to_line(&again).expect("writes"), written);
        }
    }
});
