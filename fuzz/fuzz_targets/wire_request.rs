//! Request bodies on any bytes: the typed requests the agent sends (`ChatRequest`,
//! `MessagesRequest`) and the request-side helpers the proxy reads every client's body with
//! (`normalize`, `request_messages`, `request_params`, `tool_outputs`, `similarity`). A typed
//! request that reads writes JSON that reads back equal; no helper panics; the frame a proxy
//! run records of a request (`RequestFrame::split` by the API's message fields) joins with its
//! messages into the same matching form, and they are what `request_messages` reads.
//!
//! But for one case: a Chat Completions or Messages body whose `messages` is a string (which
//! those APIs refuse) is split as the Responses API's string `input` is, into one user
//! message, which `request_messages` does not read; its frame still rebuilds it exactly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tapedeck_trace::RequestFrame;
use tapedeck_wire::anthropic::MessagesRequest;
use tapedeck_wire::openai::ChatRequest;
use tapedeck_wire::{
    Provider, normalize, request_messages, request_params, similarity, tool_outputs,
};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(request) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let written = serde_json::to_vec(&request).expect("a request read writes");
    let again: T = serde_json::from_slice(&written).expect("a written request reads");
    assert_eq!(again, request);
}

fuzz_target!(|data: &[u8]| {
    round_trip::<ChatRequest>(data);
    round_trip::<MessagesRequest>(data);
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for (path, provider) in [
        ("/v1/chat/completions", Provider::OpenAi),
        ("/v1/messages", Provider::Anthropic),
        ("/v1/responses", Provider::Responses),
    ] {
        assert_eq!(Provider::of_path(path), Some(provider));
        let normal = normalize(path, &body);
        let (system, list) = provider.message_fields();
        if let Some((frame, messages)) = RequestFrame::split(&normal, system, Some(list)) {
            let string_list =
                provider != Provider::Responses && body.get(list).is_some_and(Value::is_string);
            if !string_list {
                assert_eq!(messages, request_messages(provider, &body));
            }
            assert_eq!(frame.join(&messages), Some(normal.clone()));
        }
        let _ = request_messages(provider, &body);
        let _ = tool_outputs(provider, &body);
        let _ = similarity(&normal, &normalize(path, &body));
    }
    let _ = request_params(&body);
});
