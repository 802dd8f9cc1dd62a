//! What an `http_exchange` refers to: a `RecordedResponse` reads every form the proxy has written
//! and refuses others; a `RequestFrame` and its messages rebuild a matching form exactly.

use serde_json::{Value, json};
use tapedeck_trace::{RecordedResponse, RequestFrame, ResponseBody};

#[test]
fn recorded_responses_of_every_form_read_and_write_back_the_same() {
    for raw in [
        json!({"status": 200, "content_type": "application/json", "body": "{\"id\":\"x\"}"}),
        json!({"status": 200, "content_type": "text/event-stream", "sse": ["data: 1\n\n", "data: [DONE]\n\n"]}),
        json!({"status": 200, "content_type": "text/event-stream", "sse": ["data: 1\n"], "truncated": true}),
        json!({"status": 200, "content_type": "application/json", "body": "{\"a\":", "truncated": true, "over_limit": "the response is over the limit"}),
        json!({"status": 502, "content_type": "application/json", "error": "tapedeck: the upstream could not be reached"}),
        json!({"status": 404, "error": "tapedeck replay: no recorded exchange for GET /v1/models"}),
    ] {
        let response: RecordedResponse = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(serde_json::to_value(&response).unwrap(), raw);
    }
}

#[test]
fn a_recorded_response_serves_its_pieces() {
    let sse: RecordedResponse = serde_json::from_value(
        json!({"status": 200, "content_type": "text/event-stream", "sse": ["a", "b"]}),
    )
    .unwrap();
    assert!(sse.is_sse());
    assert_eq!(sse.into_pieces(), ["a", "b"]);
    let failed = RecordedResponse {
        status: 502,
        content_type: None,
        body: ResponseBody::Failed("down".to_owned()),
        truncated: false,
        over_limit: None,
    };
    let served: Value = serde_json::from_str(&failed.into_pieces()[0]).unwrap();
    assert_eq!(
        served,
        json!({"error": {"type": "upstream_unreachable", "message": "down"}})
    );
}

#[test]
fn a_recorded_response_with_other_than_one_body_or_unknown_fields_is_refused() {
    for raw in [
        json!({"status": 200}),
        json!({"status": 200, "body": "x", "sse": ["x"]}),
        json!({"status": 200, "body": "x", "error": "y"}),
        json!({"status": 200, "body": "x", "surprise": 1}),
        json!({"body": "x"}),
    ] {
        assert!(
            serde_json::from_value::<RecordedResponse>(raw.clone()).is_err(),
            "{raw}"
        );
    }
}

/// Splits `matching` with the fields, checks the messages, and that frame and messages
/// rebuild it; returns the frame.
fn round_trip(
    matching: &Value,
    system: Option<&str>,
    list: Option<&str>,
    messages: &[Value],
) -> RequestFrame {
    let (frame, got) = RequestFrame::split(matching, system, list).unwrap();
    assert_eq!(got, messages);
    assert_eq!(frame.join(&got).as_ref(), Some(matching));
    let text = serde_json::to_string(&frame).unwrap();
    assert_eq!(serde_json::from_str::<RequestFrame>(&text).unwrap(), frame);
    frame
}

#[test]
fn frames_of_each_api_rebuild_their_matching_form() {
    let user = json!({"role": "user", "content": "Weather in Paris?"});
    let chat = json!({"endpoint": "/v1/chat/completions", "body": {
        "model": "gpt-test", "messages": [user], "temperature": 0}});
    let frame = round_trip(&chat, None, Some("messages"), std::slice::from_ref(&user));
    assert_eq!(
        frame.body,
        *json!({"model": "gpt-test", "temperature": 0})
            .as_object()
            .unwrap()
    );

    let anthropic = json!({"endpoint": "/v1/messages", "body": {
        "model": "claude", "system": [{"type": "text", "text": "Be brief."}], "messages": [user]}});
    round_trip(
        &anthropic,
        Some("system"),
        Some("messages"),
        &[
            json!({"role": "system", "content": [{"type": "text", "text": "Be brief."}]}),
            user.clone(),
        ],
    );

    let responses_text = json!({"endpoint": "/v1/responses", "body": {
        "model": "gpt-test", "instructions": "Be brief.", "input": "Weather in Paris?"}});
    round_trip(
        &responses_text,
        Some("instructions"),
        Some("input"),
        &[
            json!({"role": "system", "content": "Be brief."}),
            user.clone(),
        ],
    );

    let responses_list = json!({"endpoint": "/v1/responses", "body": {
        "model": "gpt-test", "input": [user, {"type": "function_call_output", "call_id": "c1", "output": "21"}]}});
    round_trip(
        &responses_list,
        Some("instructions"),
        Some("input"),
        &[
            user.clone(),
            json!({"type": "function_call_output", "call_id": "c1", "output": "21"}),
        ],
    );

    // Without the fields, or with a list that is not a list, everything stays in the frame.
    let bare =
        json!({"endpoint": "/v1/responses", "body": {"model": "m", "previous_response_id": "r"}});
    round_trip(&bare, Some("instructions"), Some("input"), &[]);
    let odd = json!({"endpoint": "/v1/chat/completions", "body": {"model": "m", "messages": 7}});
    let frame = round_trip(&odd, None, Some("messages"), &[]);
    assert_eq!(frame.body["messages"], 7);
}

#[test]
fn the_turns_of_one_conversation_share_one_frame() {
    let turn = |messages: Value| {
        let matching = json!({"endpoint": "/v1/chat/completions", "body": {"model": "m", "messages": messages}});
        RequestFrame::split(&matching, None, Some("messages"))
            .unwrap()
            .0
    };
    let first = turn(json!([{"role": "user", "content": "a"}]));
    let second =
        turn(json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]));
    assert_eq!(first, second);
}

#[test]
fn messages_that_do_not_fit_a_frame_rebuild_nothing() {
    let matching = json!({"endpoint": "/v1/responses", "body": {"model": "m", "instructions": "s", "input": "q"}});
    let (frame, messages) =
        RequestFrame::split(&matching, Some("instructions"), Some("input")).unwrap();
    assert_eq!(frame.join(&[]), None, "no system message");
    assert_eq!(frame.join(&messages[..1]), None, "no text message");
    assert_eq!(
        frame.join(&[
            messages[0].clone(),
            messages[1].clone(),
            messages[1].clone()
        ]),
        None,
        "one text message too many"
    );
    let chat = json!({"endpoint": "/v1/chat/completions", "body": {"model": "m"}});
    let (frame, _) = RequestFrame::split(&chat, None, Some("messages")).unwrap();
    assert_eq!(
        frame.join(&[json!({"role": "user"})]),
        None,
        "a message with nowhere to go"
    );
    assert!(RequestFrame::split(&json!({"endpoint": "/x", "body": 3}), None, None).is_none());
}
