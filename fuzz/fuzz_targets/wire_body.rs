//! Whole response bodies on any JSON: each API's reader (`read_completion`, `read_message`,
//! `read_response`) and the proxy's `answer` for each API. None panics; a reply holds at most
//! `MAX_TOOL_CALLS` calls; `answer` reads what its API's reader reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tapedeck_wire::{
    MAX_TOOL_CALLS, Provider, Reply, WireError, answer, anthropic, openai, responses,
};

/// A reader of one API's whole bodies.
type Read = fn(&Value) -> Result<Reply, WireError>;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let readers: [(Provider, Read); 3] = [
        (Provider::OpenAi, openai::read_completion),
        (Provider::Anthropic, anthropic::read_message),
        (Provider::Responses, responses::read_response),
    ];
    for (provider, read) in readers {
        let reply = read(&body);
        if let Ok(reply) = &reply {
            assert!(reply.tool_calls.len() <= MAX_TOOL_CALLS);
        }
        match (answer(provider, &body), reply) {
            (Some(Ok(answer)), Ok(reply)) => {
                assert_eq!(answer.text, reply.text);
                assert_eq!(answer.finish_reason, reply.finish_reason);
                assert_eq!(answer.usage, reply.usage);
                assert_eq!(answer.tool_calls.len(), reply.tool_calls.len());
            }
            (Some(Ok(_)), Err(e)) => panic!("{provider:?}: answered, yet the reader says {e}"),
            (Some(Err(over)), reply) => {
                assert_eq!(reply, Err(WireError::OverLimit(over)));
            }
            (None, _) => {}
        }
    }
});
