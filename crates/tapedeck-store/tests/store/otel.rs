//! OpenTelemetry: the fixture tapes export as OTLP/JSON GenAI spans (names, attributes, hex
//! ids, nanosecond strings, parent links) and import back into a fresh store as the same run;
//! a minimal trace of another producer imports as a best-effort run with unknown cost.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use tapedeck_testkit::on_both_stores;

use serde_json::{Value, json};
use tapedeck_store::{ImportOutcome, Store};
use tapedeck_trace::{AgentIdentity, EventData, RunId, RunStatus, Source, StopReason, Timestamp};

use crate::support::*;

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/tapes"));
    let mut tapes: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    tapes.sort();
    assert_eq!(tapes.len(), 4);
    tapes
}

/// A store holding one fixture tape, and the run's id.
fn store_with(tape: &PathBuf) -> (TempStore, Store, RunId) {
    let tmp = TempStore::new();
    let store = tmp.open();
    let bytes = std::fs::read(tape).unwrap();
    let ImportOutcome::Imported { id, .. } = store.import_tape(&mut bytes.as_slice()).unwrap()
    else {
        panic!("fixture already present")
    };
    (tmp, store, id)
}

fn attrs(item: &Value) -> HashMap<String, Value> {
    item["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap().to_owned(), kv["value"].clone()))
        .collect()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_nanos(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn fixture_tapes_export_as_genai_spans() {
    for tape in fixtures() {
        let (_tmp, store, id) = store_with(&tape);
        let run = store.run(&id).unwrap();
        let mut out = Vec::new();
        store.export_otel(&id, &mut out).unwrap();
        let doc: Value = serde_json::from_slice(&out).unwrap();
        let spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap();
        let trace_id = id.to_string().replace('-', "");
        let root = &spans[0];
        let root_attrs = attrs(root);
        let agent = run.agent.as_ref().unwrap().name.clone();
        assert_eq!(root["name"], format!("invoke_agent {agent}"));
        assert!(root.get("parentSpanId").is_none());
        assert_eq!(
            root_attrs["gen_ai.operation.name"]["stringValue"],
            "invoke_agent"
        );
        assert_eq!(root_attrs["gen_ai.agent.name"]["stringValue"], agent);
        assert_eq!(root_attrs["tapedeck.run.id"]["stringValue"], id.to_string());
        assert_eq!(
            root_attrs["tapedeck.stop_reason"]["stringValue"],
            run.stop_reason.as_ref().unwrap().to_string()
        );
        assert_eq!(
            root_attrs["tapedeck.cost_usd"]["doubleValue"].as_f64(),
            run.totals.cost_usd
        );
        assert_eq!(
            root_attrs["tapedeck.task"]["stringValue"],
            run.task.clone().unwrap()
        );
        assert!(root_attrs.contains_key("tapedeck.label.model"));
        let root_id = root["spanId"].as_str().unwrap();

        let mut chats = 0;
        let mut tools: HashMap<String, u64> = HashMap::new();
        let mut ids = BTreeSet::new();
        for span in spans {
            assert_eq!(span["traceId"], trace_id.as_str());
            assert!(is_hex(span["spanId"].as_str().unwrap(), 16), "{span}");
            assert!(ids.insert(span["spanId"].as_str().unwrap().to_owned()));
            assert!(is_nanos(&span["startTimeUnixNano"]), "{span}");
            assert!(is_nanos(&span["endTimeUnixNano"]), "{span}");
            let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
            let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
            assert!(start <= end);
            let a = attrs(span);
            let name = span["name"].as_str().unwrap();
            if span == root {
                continue;
            }
            assert_eq!(span["parentSpanId"], root_id);
            match a["gen_ai.operation.name"]["stringValue"].as_str().unwrap() {
                "chat" => {
                    chats += 1;
                    let model = a["gen_ai.request.model"]["stringValue"].as_str().unwrap();
                    assert_eq!(name, format!("chat {model}"));
                    assert_eq!(a["gen_ai.provider.name"]["stringValue"], "openai");
                    assert!(a["gen_ai.usage.input_tokens"]["intValue"].is_string());
                    assert!(a["gen_ai.usage.output_tokens"]["intValue"].is_string());
                    assert!(
                        a["gen_ai.response.finish_reasons"]["arrayValue"]["values"][0]
                            ["stringValue"]
                            .is_string()
                    );
                    let input: Value = serde_json::from_str(
                        a["gen_ai.input.messages"]["stringValue"].as_str().unwrap(),
                    )
                    .unwrap();
                    assert!(!input.as_array().unwrap().is_empty());
                    assert!(a.contains_key("gen_ai.output.messages"));
                    assert!(a["tapedeck.cost_usd"]["doubleValue"].is_number());
                }
                "execute_tool" => {
                    let tool = a["gen_ai.tool.name"]["stringValue"].as_str().unwrap();
                    assert_eq!(name, format!("execute_tool {tool}"));
                    assert!(a["gen_ai.tool.call.id"]["stringValue"].is_string());
                    let args = a["gen_ai.tool.call.arguments"]["stringValue"]
                        .as_str()
                        .unwrap();
                    serde_json::from_str::<Value>(args).unwrap();
                    *tools.entry(tool.to_owned()).or_default() += 1;
                    // Every tool call was decided about: the decision is a span event.
                    let events = span["events"].as_array().unwrap();
                    assert!(
                        events
                            .iter()
                            .any(|e| e["name"] == "tapedeck.policy_decision"
                                && is_nanos(&e["timeUnixNano"]))
                    );
                }
                other => panic!("unexpected span kind {other}"),
            }
        }
        assert_eq!(chats, run.totals.steps, "{}", tape.display());
        let tools: std::collections::BTreeMap<String, u64> = tools.into_iter().collect();
        assert_eq!(tools, run.totals.tool_calls, "{}", tape.display());
    }
}

#[test]
fn a_denied_tool_call_carries_error_type_and_budgets_are_root_events() {
    let tapes = fixtures();
    let denied = tapes
        .iter()
        .find(|p| p.ends_with("tool-denied.jsonl"))
        .unwrap();
    let (_tmp, store, id) = store_with(denied);
    let mut out = Vec::new();
    store.export_otel(&id, &mut out).unwrap();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    let spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap();
    let tool = spans
        .iter()
        .find(|s| s["name"] == "execute_tool http.post")
        .unwrap();
    assert_eq!(attrs(tool)["error.type"]["stringValue"], "denied");

    let incident = tapes
        .iter()
        .find(|p| p.ends_with("browser-retry-incident.jsonl"))
        .unwrap();
    let (_tmp, store, id) = store_with(incident);
    let mut out = Vec::new();
    store.export_otel(&id, &mut out).unwrap();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    let root = &doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    let budget = root["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "tapedeck.budget_exceeded")
        .unwrap();
    assert_eq!(
        attrs(budget)["tapedeck.budget"]["stringValue"],
        "max_tool_calls"
    );
}

#[test]
fn fixture_tapes_round_trip_through_otel() {
    for tape in fixtures() {
        let (_tmp, store, id) = store_with(&tape);
        let mut out = Vec::new();
        store.export_otel(&id, &mut out).unwrap();

        let other = TempStore::new();
        let fresh = other.open();
        let outcomes = fresh.import_otel(&mut out.as_slice()).unwrap();
        assert_eq!(outcomes.len(), 1);
        assert!(
            matches!(outcomes[0], ImportOutcome::Imported { id: got, .. } if got == id),
            "{outcomes:?}"
        );
        let (before, after) = (store.run(&id).unwrap(), fresh.run(&id).unwrap());
        assert_eq!(after.source, Source::Import);
        assert_eq!(after.stop_reason, before.stop_reason, "{}", tape.display());
        assert_eq!(after.status, before.status);
        assert_eq!(after.totals, before.totals, "{}", tape.display());
        assert_eq!(after.agent, before.agent);
        assert_eq!(after.task, before.task);
        assert_eq!(after.labels, before.labels);
        assert_eq!(after.answer, before.answer);
        assert_eq!(
            (after.started_at, after.ended_at),
            (before.started_at, before.ended_at)
        );
        // The events themselves come back: same kinds, seqs, times and blobs.
        assert_eq!(
            fresh.events(&id).unwrap(),
            store.events(&id).unwrap(),
            "{}",
            tape.display()
        );

        // Importing again changes nothing.
        let again = fresh.import_otel(&mut out.as_slice()).unwrap();
        assert_eq!(again, vec![ImportOutcome::AlreadyPresent(id)]);
    }
}

on_both_stores! {
    /// A proxy run's `agent_identity` goes out as a root span event with its fingerprint, models and
    /// tools readable, and comes back as the same event with its blobs.
    fn an_agent_identity_round_trips_through_otel(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let writer = store.writer().unwrap();
        let mut run = run_with(&fixed_id(0x1de7), 0);
        run.source = Source::Proxy;
        let mut rec = writer.start_run(run).unwrap();
        let id = rec.id();
        record_sample(&mut rec, "You are weather-bot.", "acme");
        let prompt = rec.blob(&json!("You are weather-bot.")).unwrap();
        let tool = rec
            .blob(&json!({"type": "function", "function": {"name": "get_weather"}}))
            .unwrap();
        let identity = AgentIdentity::new(
            vec!["gpt-4.1-mini".into()],
            vec![prompt],
            [("get_weather".to_owned(), tool)].into(),
            0,
        );
        let fingerprint = identity.fingerprint.clone();
        rec.append(EventData::AgentIdentity(identity)).unwrap();
        rec.finish(StopReason::Ok, None).unwrap();
        drop(writer);

        let mut out = Vec::new();
        store.export_otel(&id, &mut out).unwrap();
        let doc: Value = serde_json::from_slice(&out).unwrap();
        let root = &doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        let event = root["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "tapedeck.agent_identity")
            .unwrap();
        let a = attrs(event);
        assert_eq!(a["tapedeck.agent.fingerprint"]["stringValue"], fingerprint);
        assert_eq!(
            a["tapedeck.agent.tools"]["arrayValue"]["values"][0]["stringValue"],
            "get_weather"
        );

        let other = TempStore::new();
        let fresh = other.open();
        fresh.import_otel(&mut out.as_slice()).unwrap();
        assert_eq!(fresh.events(&id).unwrap(), store.events(&id).unwrap());
        assert_eq!(
            fresh.blob(&prompt, &id).unwrap(),
            json!("You are weather-bot.")
        );
    }
}

/// A trace as another GenAI instrumentation writes it: no `tapedeck.*` attribute, no cost.
const FOREIGN: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop-agent"}}]},"scopeSpans":[{"scope":{"name":"my.instrumentation"},"spans":[
 {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"invoke_agent support-bot","kind":1,
  "startTimeUnixNano":"1795651200000000000","endTimeUnixNano":"1795651203000000000",
  "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"invoke_agent"}},{"key":"gen_ai.agent.name","value":{"stringValue":"support-bot"}}]},
 {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"chat gpt-4.1-mini","kind":3,
  "startTimeUnixNano":"1795651200100000000","endTimeUnixNano":"1795651201000000000",
  "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.system","value":{"stringValue":"openai"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4.1-mini"}},
   {"key":"gen_ai.usage.input_tokens","value":{"intValue":"120"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"14"}},
   {"key":"gen_ai.response.finish_reasons","value":{"arrayValue":{"values":[{"stringValue":"tool_calls"}]}}}]},
 {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b176","parentSpanId":"eee19b7ec3c1b174","name":"execute_tool kb.read","kind":1,
  "startTimeUnixNano":"1795651201100000000","endTimeUnixNano":"1795651201300000000",
  "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"execute_tool"}},{"key":"gen_ai.tool.name","value":{"stringValue":"kb.read"}},{"key":"gen_ai.tool.call.id","value":{"stringValue":"call_1"}}]},
 {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b177","parentSpanId":"eee19b7ec3c1b174","name":"chat gpt-4.1-mini","kind":3,
  "startTimeUnixNano":"1795651201400000000","endTimeUnixNano":"1795651202900000000",
  "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4.1-mini"}},
   {"key":"gen_ai.usage.input_tokens","value":{"intValue":"200"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"30"}},
   {"key":"gen_ai.output.messages","value":{"stringValue":"[{\"role\":\"assistant\",\"content\":\"Reset it from the login page.\"}]"}}]}
]}]}]}"#;

on_both_stores! {
    fn a_foreign_genai_trace_imports_with_unknown_cost(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        let outcomes = store.import_otel(&mut FOREIGN.as_bytes()).unwrap();
        let [ImportOutcome::Imported { id, events }] = outcomes.as_slice() else {
            panic!("{outcomes:?}")
        };
        // run_started, 2 × (request, response), tool call and result, run_finished.
        assert_eq!(*events, 8);
        let run = store.run(id).unwrap();
        assert_eq!(run.source, Source::Import);
        assert_eq!(run.agent.as_ref().unwrap().name, "support-bot");
        assert_eq!(run.status, RunStatus::Ok);
        assert_eq!(run.stop_reason, Some(StopReason::Ok));
        assert_eq!(run.totals.steps, 2);
        assert_eq!(run.totals.tool_calls.get("kb.read"), Some(&1));
        assert_eq!(run.totals.tokens_in, Some(320));
        assert_eq!(run.totals.tokens_out, Some(44));
        assert_eq!(run.totals.cost_usd, None);
        assert_eq!(run.totals.latency_ms, Some(3000));
        assert_eq!(run.answer.as_deref(), Some("Reset it from the login page."));
        assert_eq!(run.started_at, at(0));

        // Same trace again: same derived id, nothing imported twice.
        let again = store.import_otel(&mut FOREIGN.as_bytes()).unwrap();
        assert_eq!(again, vec![ImportOutcome::AlreadyPresent(*id)]);
    }
}

/// Found by the `otlp_import` fuzz target: a negative time was imported as a time before the
/// epoch, which export (OTLP times are unsigned) writes as the epoch, so the run did not
/// survive its own export.
#[test]
fn a_negative_time_imports_as_the_epoch_and_round_trips() {
    let trace = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
         "name": "invoke_agent helper", "kind": 1,
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000002000000000",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}]},
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00f067aa0ba902b7",
         "parentSpanId": "b7ad6b7169203331", "name": "chat gpt-x", "kind": 3,
         "startTimeUnixNano": -5, "endTimeUnixNano": "-700000000900000000",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}
    ]}]}]})
    .to_string();
    let tmp = TempStore::new();
    let store = tmp.open();
    let outcomes = store.import_otel(&mut trace.as_bytes()).unwrap();
    let [ImportOutcome::Imported { id, .. }] = outcomes.as_slice() else {
        panic!("{outcomes:?}")
    };
    let events = store.events(id).unwrap();
    let chat: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.data, EventData::LlmRequest(_) | EventData::LlmResponse(_)))
        .collect();
    assert_eq!(chat.len(), 2, "{events:?}");
    let epoch = Timestamp::from_micros(0);
    assert!(chat.iter().all(|e| e.at == epoch), "{chat:?}");

    let mut out = Vec::new();
    store.export_otel(id, &mut out).unwrap();
    let other = TempStore::new();
    let fresh = other.open();
    fresh.import_otel(&mut out.as_slice()).unwrap();
    assert_eq!(fresh.events(id).unwrap(), events);
}

on_both_stores! {
    fn input_without_genai_spans_is_refused(backend) {
        let tmp = TempStore::on(backend);
        let store = tmp.open();
        for bad in ["", "{}", "not json", r#"{"resourceSpans":[]}"#] {
            let err = store.import_otel(&mut bad.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("OTLP"), "{bad}: {err}");
        }
        assert!(store.runs(&Default::default()).unwrap().is_empty());
    }
}

#[test]
fn each_trace_is_a_run_and_a_failed_agent_span_is_an_error() {
    // Two traces in one document; numeric timestamps and snake_case field names are accepted
    // too. The first has no agent span; the second's agent span failed.
    let doc = r#"{"resource_spans":[{"scope_spans":[{"spans":[
      {"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","name":"chat claude-sonnet",
       "start_time_unix_nano":1795651200000000000,"end_time_unix_nano":1795651201000000000,
       "attributes":[{"key":"gen_ai.provider.name","value":{"stringValue":"anthropic"}},
                     {"key":"gen_ai.usage.input_tokens","value":{"intValue":10}},
                     {"key":"gen_ai.output.messages","value":{"stringValue":"[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"Hi\"}],\"finish_reason\":\"stop\"}]"}}]},
      {"traceId":"1bf7651916cd43dd8448eb211c80319d","spanId":"c7ad6b7169203332","name":"invoke_agent triage",
       "startTimeUnixNano":"1795651300000000000","endTimeUnixNano":"1795651302000000000",
       "status":{"code":2,"message":"upstream 500"},"attributes":[]},
      {"traceId":"1bf7651916cd43dd8448eb211c80319d","spanId":"c7ad6b7169203333","parentSpanId":"c7ad6b7169203332",
       "name":"execute_tool http.get","startTimeUnixNano":"1795651300500000000","endTimeUnixNano":"1795651301000000000",
       "status":{"code":2,"message":"timeout"},
       "attributes":[{"key":"gen_ai.tool.call.arguments","value":{"stringValue":"{\"url\":\"https://x\"}"}}]}
    ]}]}]}"#;
    let tmp = TempStore::new();
    let store = tmp.open();
    let outcomes = store.import_otel(&mut doc.as_bytes()).unwrap();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    let ids: Vec<RunId> = outcomes
        .iter()
        .map(|o| match o {
            ImportOutcome::Imported { id, .. } => *id,
            other => panic!("{other:?}"),
        })
        .collect();

    let chat = store.run(&ids[0]).unwrap();
    assert_eq!(chat.agent, None);
    assert_eq!(chat.totals.steps, 1);
    // Output tokens were not reported: usage is unknown, not half-known.
    assert_eq!(
        (chat.totals.tokens_in, chat.totals.tokens_out),
        (None, None)
    );
    assert_eq!(chat.started_at, at(0));
    assert_eq!(chat.answer.as_deref(), Some("Hi"));

    let failed = store.run(&ids[1]).unwrap();
    assert_eq!(failed.agent.as_ref().unwrap().name, "triage");
    assert_eq!(failed.status, RunStatus::Error);
    assert_eq!(failed.stop_reason, Some(StopReason::ModelError));
    assert_eq!(failed.error.as_deref(), Some("upstream 500"));
    assert_eq!(failed.totals.steps, 0);
    assert_eq!(failed.totals.tool_calls.get("http.get"), Some(&1));
    let events = store.events(&ids[1]).unwrap();
    let result = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::ToolResult(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(result.error.as_deref(), Some("timeout"));
    assert_eq!(result.latency_ms, 500);
}
