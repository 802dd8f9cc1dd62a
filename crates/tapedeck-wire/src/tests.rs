//! One table of recorded streams, read by both paths that meet them: the proxy's (its tee's
//! pieces through [`SseParser::feed`] into an [`Assembler`], then [`answer`]) and the agent
//! backends' ([`read_stream`] over the bytes into the API's assembler, then its `reply`). Each
//! stream is cut at every byte boundary, and fed one byte at a time.

use std::io::{self, Read};

use serde_json::{Value, json};

use crate::anthropic::MessagesStream;
use crate::openai::ChatStream;
use crate::sse::SseParser;
use crate::*;

/// What both paths must read from a stream.
#[derive(Debug)]
struct Expected {
    text: &'static str,
    calls: Vec<(&'static str, &'static str, Value)>,
    finish: Option<&'static str>,
    usage: Option<(u64, u64)>,
    /// Whether the stream said it was complete.
    done: bool,
    over: Option<OverLimit>,
}

impl Expected {
    fn text(text: &'static str) -> Self {
        Self {
            text,
            calls: Vec::new(),
            finish: None,
            usage: None,
            done: true,
            over: None,
        }
    }
}

struct Case {
    name: &'static str,
    provider: Provider,
    stream: String,
    expected: Expected,
}

fn sse(events: &[(Option<&str>, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| match name {
            Some(name) => format!("event: {name}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        })
        .collect()
}

fn chunk(delta: Value) -> (Option<&'static str>, Value) {
    (
        None,
        json!({"id": "c", "model": "gpt-x", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}),
    )
}

fn finish(reason: &str) -> (Option<&'static str>, Value) {
    (
        None,
        json!({"id": "c", "model": "gpt-x", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}),
    )
}

fn usage_chunk(i: u64, o: u64) -> (Option<&'static str>, Value) {
    (
        None,
        json!({"id": "c", "model": "gpt-x", "choices": [], "usage": {"prompt_tokens": i, "completion_tokens": o, "prompt_tokens_details": {"cached_tokens": 0}}}),
    )
}

fn ev(name: &'static str, data: Value) -> (Option<&'static str>, Value) {
    (Some(name), data)
}

fn openai_text() -> String {
    let mut s = sse(&[
        chunk(json!({"role": "assistant", "content": ""})),
        chunk(json!({"content": "Hel"})),
        chunk(json!({"content": "lo — ✓"})),
        finish("stop"),
        usage_chunk(5, 7),
    ]);
    s.push_str("data: [DONE]\n\n");
    s
}

fn anthropic_head() -> Vec<(Option<&'static str>, Value)> {
    vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        ),
        ev("ping", json!({"type": "ping"})),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "look."}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"q\": "}}),
        ),
    ]
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.push(Case {
        name: "openai text, usage in the last chunk",
        provider: Provider::OpenAi,
        stream: openai_text(),
        expected: Expected {
            finish: Some("stop"),
            usage: Some((5, 7)),
            ..Expected::text("Hello — ✓")
        },
    });
    let mut calls = sse(&[
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get", "arguments": ""}}]}),
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}]})),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "put", "arguments": "{}"}}]}),
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]})),
        finish("tool_calls"),
        usage_chunk(3, 4),
    ]);
    calls.push_str("data: [DONE]\n\n");
    cases.push(Case {
        name: "openai tool-call deltas, interleaved",
        provider: Provider::OpenAi,
        stream: calls,
        expected: Expected {
            calls: vec![
                ("call_a", "get", json!({"q": 1})),
                ("call_b", "put", json!({})),
            ],
            finish: Some("tool_calls"),
            usage: Some((3, 4)),
            ..Expected::text("")
        },
    });
    let text = openai_text();
    let cut = text.find("lo — ✓").expect("in the stream");
    cases.push(Case {
        name: "openai cut mid-stream, inside an event",
        provider: Provider::OpenAi,
        stream: text[..cut].to_owned(),
        expected: Expected {
            done: false,
            ..Expected::text("Hel")
        },
    });
    cases.push(Case {
        name: "openai empty stream",
        provider: Provider::OpenAi,
        stream: String::new(),
        expected: Expected {
            done: false,
            ..Expected::text("")
        },
    });
    cases.push(Case {
        name: "openai stalled stream: keep-alive comments only",
        provider: Provider::OpenAi,
        stream: ": keep-alive\n\n: keep-alive\n\n".to_owned(),
        expected: Expected {
            done: false,
            ..Expected::text("")
        },
    });
    cases.push(Case {
        name: "openai usage-only chunks",
        provider: Provider::OpenAi,
        stream: sse(&[usage_chunk(1, 0), usage_chunk(9, 2)]) + "data: [DONE]\n\n",
        expected: Expected {
            usage: Some((9, 2)),
            ..Expected::text("")
        },
    });
    cases.push(Case {
        name: "openai index bomb",
        provider: Provider::OpenAi,
        stream: sse(&[
            chunk(json!({"content": "x"})),
            chunk(
                json!({"tool_calls": [{"index": 1_000_000_000u64, "id": "c", "function": {"name": "f", "arguments": ""}}]}),
            ),
            finish("tool_calls"),
        ]) + "data: [DONE]\n\n",
        expected: Expected {
            over: Some(OverLimit::ToolCallIndex(1_000_000_000)),
            ..Expected::text("")
        },
    });
    let mut whole = anthropic_head();
    whole.extend([
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"tapes\"}"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 12}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]);
    cases.push(Case {
        name: "anthropic text and input_json_delta",
        provider: Provider::Anthropic,
        stream: sse(&whole),
        expected: Expected {
            calls: vec![("toolu_1", "search", json!({"q": "tapes"}))],
            finish: Some("tool_use"),
            usage: Some((10, 12)),
            ..Expected::text("Let me look.")
        },
    });
    cases.push(Case {
        name: "anthropic cut inside a tool call's input",
        provider: Provider::Anthropic,
        stream: sse(&anthropic_head()),
        expected: Expected {
            calls: vec![("toolu_1", "search", json!("{\"q\": "))],
            usage: Some((10, 1)),
            done: false,
            ..Expected::text("Let me look.")
        },
    });
    cases.push(Case {
        name: "anthropic empty stream",
        provider: Provider::Anthropic,
        stream: String::new(),
        expected: Expected {
            done: false,
            ..Expected::text("")
        },
    });
    cases.push(Case {
        name: "anthropic index bomb",
        provider: Provider::Anthropic,
        stream: sse(&[ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1_000_000_000u64, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
        )]),
        expected: Expected {
            over: Some(OverLimit::BlockIndex(1_000_000_000)),
            ..Expected::text("")
        },
    });
    let response = json!({"id": "resp_1", "model": "gpt-x", "status": "completed", "output": [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi there"}]},
        {"type": "function_call", "call_id": "fc_1", "name": "get", "arguments": "{\"a\":2}"},
    ], "usage": {"input_tokens": 8, "output_tokens": 3}});
    let responses = [
        ev(
            "response.created",
            json!({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}),
        ),
        ev(
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "delta": "Hi "}),
        ),
        ev(
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "delta": "there"}),
        ),
        ev(
            "response.completed",
            json!({"type": "response.completed", "response": response}),
        ),
    ];
    cases.push(Case {
        name: "responses events",
        provider: Provider::Responses,
        stream: sse(&responses),
        expected: Expected {
            calls: vec![("fc_1", "get", json!({"a": 2}))],
            finish: Some("tool_calls"),
            usage: Some((8, 3)),
            ..Expected::text("Hi there")
        },
    });
    cases.push(Case {
        name: "responses cut before completed",
        provider: Provider::Responses,
        stream: sse(&responses[..3]),
        expected: Expected {
            finish: Some("incomplete"),
            done: false,
            ..Expected::text("Hi there")
        },
    });
    // Found by the `stream` fuzz target: the proxy's assembler went on reading past the end the
    // agent's `read_stream` (and a client) stops at, and recorded usage the agent never read.
    let mut after_done = sse(&[chunk(json!({"content": "Hel"}))]);
    after_done.push_str("data: [DONE]\n\n");
    after_done.push_str(&sse(&[
        chunk(json!({"content": "lo"})),
        finish("stop"),
        usage_chunk(5, 7),
    ]));
    after_done.push_str("data: [DONE]\n\n");
    cases.push(Case {
        name: "openai events after [DONE]",
        provider: Provider::OpenAi,
        stream: after_done,
        expected: Expected::text("Hel"),
    });
    let mut after_stop = whole.clone();
    after_stop.extend([
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " More."}}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 99}}),
        ),
    ]);
    cases.push(Case {
        name: "anthropic events after message_stop",
        provider: Provider::Anthropic,
        stream: sse(&after_stop),
        expected: Expected {
            calls: vec![("toolu_1", "search", json!({"q": "tapes"}))],
            finish: Some("tool_use"),
            usage: Some((10, 12)),
            ..Expected::text("Let me look.")
        },
    });
    let mut after_completed = responses.to_vec();
    after_completed.extend([
        ev(
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "delta": "!"}),
        ),
        ev(
            "response.completed",
            json!({"type": "response.completed", "response": {"id": "resp_2", "status": "completed", "output": []}}),
        ),
    ]);
    cases.push(Case {
        name: "responses events after response.completed",
        provider: Provider::Responses,
        stream: sse(&after_completed),
        expected: Expected {
            calls: vec![("fc_1", "get", json!({"a": 2}))],
            finish: Some("tool_calls"),
            usage: Some((8, 3)),
            ..Expected::text("Hi there")
        },
    });
    cases
}

/// What a path read: an answer in the table's terms, or the bound it stopped at.
#[derive(Debug, PartialEq)]
struct Got {
    text: String,
    calls: Vec<(String, String, Value)>,
    finish: Option<String>,
    usage: Option<(u64, u64)>,
    done: bool,
}

fn expected(case: &Case) -> Result<Got, OverLimit> {
    let e = &case.expected;
    if let Some(over) = &e.over {
        return Err(over.clone());
    }
    Ok(Got {
        text: e.text.to_owned(),
        calls: e
            .calls
            .iter()
            .map(|(i, n, a)| ((*i).to_owned(), (*n).to_owned(), a.clone()))
            .collect(),
        finish: e.finish.map(str::to_owned),
        usage: e.usage,
        done: e.done,
    })
}

fn pair(u: Option<Usage>) -> Option<(u64, u64)> {
    u.map(|u| (u.input_tokens, u.output_tokens))
}

/// The proxy's path: the tee's pieces fed to the parser, the events to the assembler, the
/// body it amounts to read as an answer.
fn proxy_path(provider: Provider, pieces: &[&[u8]]) -> Result<Got, OverLimit> {
    let mut parser = SseParser::default();
    let mut asm = Assembler::new(provider);
    for piece in pieces {
        for event in parser.feed(piece) {
            asm.event(&event);
        }
    }
    if let Some(over) = asm.over_limit() {
        return Err(over.clone());
    }
    let answer = answer(provider, &asm.body())
        .expect("an answer")
        .expect("within the bounds");
    Ok(Got {
        text: answer.text,
        calls: answer.tool_calls,
        finish: answer.finish_reason,
        usage: pair(answer.usage),
        done: asm.done,
    })
}

/// Hands out the bytes in the pieces given.
struct Pieces<'a>(Vec<&'a [u8]>);

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

/// The agent backends' path: the bytes read as a stream into the API's assembler, its reply.
fn agent_path(provider: Provider, pieces: &[&[u8]]) -> Result<Got, OverLimit> {
    let input = Pieces(pieces.to_vec());
    let over = |e: ReadError| match e {
        ReadError::Wire(WireError::OverLimit(over)) => over,
        other => panic!("the stream failed: {other}"),
    };
    let (reply, done) = match provider {
        Provider::OpenAi => {
            let mut s = ChatStream::default();
            read_stream(input, &mut s).map_err(over)?;
            (s.reply(), s.is_done())
        }
        Provider::Anthropic => {
            let mut s = MessagesStream::default();
            read_stream(input, &mut s).map_err(over)?;
            (s.reply(), s.is_done())
        }
        Provider::Responses => unreachable!("the agent has no Responses backend"),
    };
    let reply = reply.expect("a reply");
    Ok(Got {
        text: reply.text,
        calls: reply
            .tool_calls
            .into_iter()
            .map(|c| (c.id, c.name, c.arguments))
            .collect(),
        finish: reply.finish_reason,
        usage: pair(reply.usage),
        done,
    })
}

#[test]
fn both_paths_read_every_recorded_stream_alike_at_every_chunking() {
    for case in cases() {
        let bytes = case.stream.as_bytes();
        let want = expected(&case);
        let mut chunkings: Vec<Vec<&[u8]>> = (0..=bytes.len())
            .map(|at| vec![&bytes[..at], &bytes[at..]])
            .collect();
        chunkings.push(bytes.chunks(1).collect());
        for pieces in &chunkings {
            let at = pieces.first().map_or(0, |p| p.len());
            assert_eq!(
                proxy_path(case.provider, pieces),
                want,
                "{}: proxy path, first piece {at} bytes",
                case.name
            );
            if case.provider != Provider::Responses {
                assert_eq!(
                    agent_path(case.provider, pieces),
                    want,
                    "{}: agent path, first piece {at} bytes",
                    case.name
                );
            }
        }
    }
}

#[test]
fn a_stream_over_the_size_bound_is_refused() {
    let event = format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"content": "x".repeat(1 << 20)}}]})
    );
    let big = io::repeat(0)
        .take(0)
        .chain(io::Cursor::new(event.repeat(33)));
    let mut s = ChatStream::default();
    let err = read_stream(big, &mut s).expect_err("over the bound");
    assert!(
        matches!(err, ReadError::Wire(WireError::OverLimit(OverLimit::Size))),
        "{err}"
    );
}

#[test]
fn an_error_event_is_reported_with_its_status() {
    let mut s = MessagesStream::default();
    let err = s
        .push(
            Some("error"),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .expect_err("an error event");
    assert_eq!(
        err,
        WireError::Reported {
            status: Some(529),
            message: "Overloaded".into()
        }
    );
    let mut s = ChatStream::default();
    let err = s
        .push(r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#)
        .expect_err("an error chunk");
    assert!(matches!(
        err,
        WireError::Reported {
            status: Some(429),
            ..
        }
    ));
}

// The assembler's tests, moved from the proxy.

fn feed(a: &mut Assembler, data: &str) {
    a.event(&sse::SseEvent {
        event: None,
        data: data.to_owned(),
        id: None,
    });
}

#[test]
fn openai_stream_assembles_tool_calls_and_usage() {
    let mut a = Assembler::new(Provider::OpenAi);
    for data in [
        r#"{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"get","arguments":""}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"q\":1}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#,
        "[DONE]",
    ] {
        feed(&mut a, data);
    }
    assert!(a.done);
    let ans = answer(Provider::OpenAi, &a.body())
        .expect("an answer")
        .expect("within the bounds");
    assert_eq!(
        ans.tool_calls,
        vec![("c1".into(), "get".into(), json!({"q": 1}))]
    );
    assert_eq!(
        ans.usage,
        Some(Usage {
            input_tokens: 5,
            output_tokens: 7
        })
    );
    assert_eq!(ans.finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn a_tool_call_index_over_the_limit_stops_the_assembly() {
    // A delta with `"index": 10000000000` once made the assembler push that many calls.
    let mut a = Assembler::new(Provider::OpenAi);
    feed(
        &mut a,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":10000000000,"id":"c","function":{"name":"f","arguments":""}}]}}]}"#,
    );
    assert_eq!(
        a.over_limit(),
        Some(&OverLimit::ToolCallIndex(10_000_000_000))
    );
    assert_eq!(
        a.over_limit().map(ToString::to_string).as_deref(),
        Some("tool-call index 10000000000 is over the limit of 1023")
    );
    feed(&mut a, "[DONE]");
    assert!(!a.done, "nothing is read after the bound");
}

#[test]
fn more_tool_calls_than_the_limit_stop_the_assembly() {
    let mut a = Assembler::new(Provider::OpenAi);
    for i in 0..=MAX_TOOL_CALLS {
        assert_eq!(a.over_limit(), None, "at call {i}");
        feed(
            &mut a,
            &json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": i, "id": format!("c{i}"), "function": {"name": "f", "arguments": "{}"}}
            ]}}]})
            .to_string(),
        );
    }
    assert_eq!(a.over_limit(), Some(&OverLimit::ToolCalls));
    // The same in a whole body.
    let calls: Vec<Value> = (0..=MAX_TOOL_CALLS)
        .map(|i| json!({"id": format!("c{i}"), "function": {"name": "f", "arguments": "{}"}}))
        .collect();
    let body = json!({"choices": [{"message": {"role": "assistant", "tool_calls": calls}}]});
    assert_eq!(
        answer(Provider::OpenAi, &body),
        Some(Err(OverLimit::ToolCalls))
    );
    assert_eq!(
        openai::read_completion(&body),
        Err(WireError::OverLimit(OverLimit::ToolCalls))
    );
}

#[test]
fn a_content_block_index_over_the_limit_stops_the_assembly() {
    let mut a = Assembler::new(Provider::Anthropic);
    feed(
        &mut a,
        r#"{"type":"content_block_start","index":100000,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
    );
    assert_eq!(a.over_limit(), Some(&OverLimit::BlockIndex(100_000)));
    // Sparse indexes under the limit are fine, and no empty blocks fill the gaps.
    let mut a = Assembler::new(Provider::Anthropic);
    feed(
        &mut a,
        r#"{"type":"content_block_start","index":1000,"content_block":{"type":"text","text":"hi"}}"#,
    );
    assert_eq!(a.over_limit(), None);
    assert_eq!(a.body()["content"], json!([{"type": "text", "text": "hi"}]));
}

#[test]
fn arguments() {
    assert_eq!(parse_arguments(r#"{"a":1}"#), json!({"a": 1}));
    assert_eq!(parse_arguments("{\"a\":"), Value::String("{\"a\":".into()));
    assert_eq!(parse_arguments(""), json!({}));
}

/// Whole bodies are read into their typed forms: a field of the wrong type is named in the
/// error, a token count that is not a whole number leaves the usage unknown, and the readers of
/// the three APIs agree on a body with text, a tool call and usage.
#[test]
fn whole_bodies() {
    let chat = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "kb.read", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7}
    });
    let messages = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "thinking", "thinking": "…"}, {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "kb.read", "input": {"a": 1}}],
        "stop_reason": "tool_calls", "usage": {"input_tokens": 5, "output_tokens": 7}
    });
    let responses = json!({
        "id": "resp_1", "object": "response", "status": "completed",
        "output": [{"type": "reasoning", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_1", "name": "kb.read", "arguments": "{\"a\":1}"}],
        "usage": {"input_tokens": 5, "output_tokens": 7}
    });
    let expected = Reply {
        text: "Checking.".into(),
        tool_calls: vec![ToolCall {
            id: "call_1".into(),
            name: "kb.read".into(),
            arguments: json!({"a": 1}),
        }],
        finish_reason: Some("tool_calls".into()),
        usage: Some(Usage {
            input_tokens: 5,
            output_tokens: 7,
        }),
    };
    assert_eq!(
        openai::read_completion(&chat).expect("a Chat Completions body"),
        expected
    );
    assert_eq!(
        anthropic::read_message(&messages).expect("a Messages body"),
        expected
    );
    assert_eq!(
        responses::read_response(&responses).expect("a Responses body"),
        expected
    );

    let mut floats = chat.clone();
    floats["usage"] = json!({"prompt_tokens": 5.5, "completion_tokens": "7"});
    assert_eq!(
        openai::read_completion(&floats)
            .expect("usage is not required")
            .usage,
        None
    );

    let mut wrong = chat.clone();
    wrong["choices"][0]["message"]["tool_calls"] = json!("kb.read");
    assert_eq!(
        openai::read_completion(&wrong).expect_err("tool_calls is not a list").to_string(),
        WireError::Malformed(
            "not a Chat Completions response: `choices[0].message.tool_calls`: invalid type: string \"kb.read\", expected a sequence".into()
        )
        .to_string()
    );
    let mut wrong = responses.clone();
    wrong["output"][2]["name"] = json!(7);
    let error = responses::read_response(&wrong)
        .expect_err("name is not text")
        .to_string();
    assert!(error.contains("`output[2].name`"), "{error}");
}

/// The request types write the APIs' JSON and read it back.
#[test]
fn requests() {
    use crate::anthropic::{MessagesRequest, MessagesTool, RequestBlock, RequestMessage, Role};
    use crate::openai::{
        ChatRequest, ChatRequestMessage, ChatRequestToolCall, FunctionCallText, FunctionKind,
        StreamOptions,
    };
    let chat = ChatRequest {
        model: "gpt-x".into(),
        messages: vec![
            ChatRequestMessage::User {
                content: "Hi".into(),
            },
            ChatRequestMessage::Assistant {
                content: None,
                tool_calls: vec![ChatRequestToolCall {
                    id: "call_1".into(),
                    kind: FunctionKind::Function,
                    function: FunctionCallText {
                        name: "kb_read".into(),
                        arguments: "{}".into(),
                    },
                }],
            },
            ChatRequestMessage::Tool {
                tool_call_id: "call_1".into(),
                content: "ok".into(),
            },
        ],
        tools: vec![],
        temperature: None,
        max_tokens: 64,
        stream: true,
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
    };
    let json = json!({"model": "gpt-x", "max_tokens": 64, "stream": true,
        "stream_options": {"include_usage": true}, "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "kb_read", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]});
    assert_eq!(serde_json::to_value(&chat).expect("JSON"), json);
    assert_eq!(
        serde_json::from_value::<ChatRequest>(json).expect("a Chat request"),
        chat
    );

    let messages = MessagesRequest {
        model: "claude-x".into(),
        max_tokens: 64,
        system: Some("Be brief.".into()),
        messages: vec![
            RequestMessage {
                role: Role::Assistant,
                content: vec![RequestBlock::ToolUse {
                    id: "toolu_1".into(),
                    name: "kb_read".into(),
                    input: json!({}),
                }],
            },
            RequestMessage {
                role: Role::User,
                content: vec![RequestBlock::ToolResult {
                    tool_use_id: "toolu_1".into(),
                    content: "ok".into(),
                    is_error: false,
                }],
            },
        ],
        tools: vec![MessagesTool {
            name: "kb_read".into(),
            description: "Reads.".into(),
            input_schema: json!({"type": "object"}),
        }],
        temperature: Some(0.0),
        stream: false,
    };
    let json = json!({"model": "claude-x", "max_tokens": 64, "system": "Be brief.", "temperature": 0.0,
        "tools": [{"name": "kb_read", "description": "Reads.", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "kb_read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok", "is_error": false}]}]});
    assert_eq!(serde_json::to_value(&messages).expect("JSON"), json);
    assert_eq!(
        serde_json::from_value::<MessagesRequest>(json).expect("a Messages request"),
        messages
    );
}
