//! A streamed response on any bytes, cut into any pieces, read by both paths that meet one: the
//! proxy's (`SseParser::feed` into an `Assembler`, the body it amounts to read by `answer`) and
//! the agent's (`read_stream` into the API's assembler, then its reply). The first byte picks
//! the API. Neither panics, what is assembled stays within the bounds, and where both paths read
//! a complete, well-formed answer they read the same one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapedeck_fuzz::{Pieces, pieces};
use tapedeck_wire::anthropic::MessagesStream;
use tapedeck_wire::openai::ChatStream;
use tapedeck_wire::responses::ResponsesStream;
use tapedeck_wire::sse::SseParser;
use tapedeck_wire::{Assembler, MAX_TOOL_CALLS, Provider, Reply, ReplyStream, answer, read_stream};

/// The agent's path: the reply, when the stream read whole and said it was complete.
fn agent<S: ReplyStream>(cut: &[&[u8]]) -> Option<Reply> {
    let mut stream = S::default();
    let read = read_stream(Pieces(cut.to_vec()), &mut stream);
    let reply = stream.reply();
    if let Ok(reply) = &reply {
        assert!(reply.tool_calls.len() <= MAX_TOOL_CALLS);
    }
    (read.is_ok() && stream.is_done())
        .then_some(reply.ok())
        .flatten()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let provider = match which % 3 {
        0 => Provider::OpenAi,
        1 => Provider::Anthropic,
        _ => Provider::Responses,
    };
    let (stream, cut) = pieces(rest);

    let mut parser = SseParser::default();
    let mut assembler = Assembler::new(provider);
    for piece in &cut {
        for event in parser.feed(piece) {
            assembler.event(&event);
        }
    }
    let body = assembler.body();
    // Bounded memory: what the proxy keeps of a stream grows with the stream, not with the
    // numbers in it.
    let size = serde_json::to_vec(&body).expect("JSON").len();
    assert!(
        size <= 8 * stream.len() + 4096,
        "{} bytes of stream assembled into {size} bytes",
        stream.len()
    );
    let proxy = answer(provider, &body);
    if let Some(Ok(answer)) = &proxy {
        assert!(answer.tool_calls.len() <= MAX_TOOL_CALLS);
    }

    // The agent has no Responses backend, but the assembler is the same one: read it all the
    // same.
    let mut responses = ResponsesStream::default();
    let _ = read_stream(Pieces(cut.clone()), &mut responses);
    let _ = responses.body();
    let reply = match provider {
        Provider::OpenAi => agent::<ChatStream>(&cut),
        Provider::Anthropic => agent::<MessagesStream>(&cut),
        Provider::Responses => None,
    };

    let clean = assembler.done && !assembler.malformed && assembler.over_limit().is_none();
    if let (true, Some(Ok(answer)), Some(reply)) = (clean, proxy, reply) {
        assert_eq!(answer.text, reply.text);
        assert_eq!(answer.finish_reason, reply.finish_reason);
        assert_eq!(answer.usage, reply.usage);
        let calls: Vec<_> = reply
            .tool_calls
            .into_iter()
            .map(|c| (c.id, c.name, c.arguments))
            .collect();
        assert_eq!(answer.tool_calls, calls);
    }
});
