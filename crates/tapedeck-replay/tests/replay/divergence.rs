//! [`first_divergence`] over hand-made trajectories, and the moves [`moves_with`] reads from
//! events.

use serde_json::{Value, json};
use tapedeck_replay::divergence::{first_divergence, moves_with};
use tapedeck_replay::{Move, ReplayError};
use tapedeck_trace::{
    ContentHash, Decision, Event, EventData, LlmRequest, PolicyDecision, RunFinished, RunStatus,
    StopReason, Timestamp, ToolCall, hash_json,
};

fn mv(seq: u64, step: u64, kind: &str, summary: &str) -> Move {
    Move {
        seq,
        step,
        kind: kind.to_owned(),
        summary: summary.to_owned(),
        args: None,
    }
}

fn call(seq: u64, step: u64, tool: &str, args: Value) -> Move {
    Move {
        seq,
        step,
        kind: "tool_call".to_owned(),
        summary: format!("{tool} {args}"),
        args: Some(args),
    }
}

/// A recorded trajectory: a call of kb.read, its result, the answer.
fn recorded() -> Vec<Move> {
    vec![
        mv(3, 1, "llm_response", "calls kb.read"),
        call(4, 1, "kb.read", json!({"article": "password-reset"})),
        mv(5, 1, "policy_decision", "kb.read allowed tools.allow"),
        mv(6, 1, "tool_result", "kb.read output sha256:aaaa"),
        mv(8, 2, "llm_response", "answer \"Reset it in Settings.\""),
        mv(9, 2, "run_finished", "ok"),
    ]
}

#[test]
fn equal_trajectories_do_not_diverge() {
    assert_eq!(first_divergence(&recorded(), &recorded()), None);
    assert_eq!(first_divergence(&[], &[]), None);
}

#[test]
fn seqs_and_steps_are_not_compared() {
    // A replay may number its events differently (a retry more, say): only moves count.
    let shifted: Vec<Move> = recorded()
        .into_iter()
        .map(|mut m| {
            m.seq += 10;
            m.step += 1;
            m
        })
        .collect();
    assert_eq!(first_divergence(&recorded(), &shifted), None);
}

#[test]
fn a_differing_call_is_reported_with_its_argument_diff() {
    let mut actual = recorded();
    actual[1] = call(4, 1, "kb.read", json!({"article": "password-recovery"}));
    actual[3] = mv(6, 1, "tool_result", "kb.read error \"404\"");
    let d = first_divergence(&recorded(), &actual).expect("a divergence");
    assert_eq!(d.step, 1);
    assert_eq!(d.kind, "tool_call");
    assert_eq!(d.expected.as_ref().map(|m| m.seq), Some(4));
    assert_eq!(
        d.actual.as_ref().map(|m| m.summary.as_str()),
        Some(r#"kb.read {"article":"password-recovery"}"#)
    );
    assert_eq!(d.before, Some(recorded()[0].clone()));
    let diff = d.argument_diff.expect("an argument diff");
    assert_eq!(
        diff,
        " {\n-  \"article\": \"password-reset\"\n+  \"article\": \"password-recovery\"\n }\n"
    );
}

#[test]
fn a_differing_move_that_is_no_call_has_no_argument_diff() {
    let mut actual = recorded();
    actual[4] = mv(8, 2, "llm_response", "calls kb.read");
    let d = first_divergence(&recorded(), &actual).expect("a divergence");
    assert_eq!((d.step, d.kind.as_str()), (2, "llm_response"));
    assert_eq!(d.argument_diff, None);
    assert_eq!(d.before.map(|m| m.seq), Some(6));
}

#[test]
fn the_first_move_differing_has_nothing_before_it() {
    let mut actual = recorded();
    actual[0] = mv(3, 1, "llm_response", "answer \"I don't know.\"");
    let d = first_divergence(&recorded(), &actual).expect("a divergence");
    assert_eq!(d.before, None);
    assert_eq!(d.step, 1);
}

#[test]
fn a_replay_that_goes_on_past_the_recording() {
    let mut actual = recorded();
    actual.pop();
    actual.push(call(10, 2, "kb.read", json!({"article": "account-locked"})));
    actual.push(mv(13, 3, "run_finished", "ok"));
    let expected = &recorded()[..5];
    let d = first_divergence(expected, &actual).expect("a divergence");
    assert_eq!(d.expected, None);
    assert_eq!(d.actual.as_ref().map(|m| m.seq), Some(10));
    // The recording has ended: the kind and step are the replay's.
    assert_eq!((d.step, d.kind.as_str()), (2, "tool_call"));
    assert_eq!(d.argument_diff, None);
    assert_eq!(d.before.map(|m| m.seq), Some(8));
}

#[test]
fn a_replay_that_stops_before_the_recording_ends() {
    let actual = &recorded()[..3];
    let d = first_divergence(&recorded(), actual).expect("a divergence");
    assert_eq!(d.actual, None);
    assert_eq!(d.expected.as_ref().map(|m| m.seq), Some(6));
    assert_eq!((d.step, d.kind.as_str()), (1, "tool_result"));
}

fn event(seq: u64, data: EventData) -> Event {
    Event {
        seq,
        at: Timestamp::from_micros(1_800_000_000_000_000 + seq as i64),
        data,
    }
}

fn hash(value: &Value) -> ContentHash {
    hash_json(value).expect("hashable").0
}

/// Events to moves: requests set the step and are left out; a replayed approval's rule
/// reads as the recorded one; arguments come from their blob.
#[test]
fn moves_of_events() {
    let args = json!({"order": "A-1234"});
    let events = vec![
        event(
            1,
            EventData::LlmRequest(LlmRequest {
                step: 4,
                provider: Some("replay".to_owned()),
                model: "m".to_owned(),
                params: Value::Null,
                extends: None,
                messages: Vec::new(),
                tools: None,
                request_hash: hash(&json!("request")),
            }),
        ),
        event(
            2,
            EventData::ToolCall(ToolCall {
                step: 4,
                call_id: "call_4_1".to_owned(),
                tool: "orders.refund".to_owned(),
                args: hash(&args),
                args_hash: hash(&args),
                idempotency_key: None,
            }),
        ),
        event(
            3,
            EventData::PolicyDecision(PolicyDecision {
                call_id: Some("call_4_1".to_owned()),
                tool: Some("orders.refund".to_owned()),
                decision: Decision::Approved,
                rule: "replay: recorded approvals_file:1".to_owned(),
                detail: Some("by alice".to_owned()),
            }),
        ),
        event(
            4,
            EventData::RunFinished(RunFinished {
                status: RunStatus::Stopped,
                stop_reason: StopReason::ReplayMissTool("orders.refund".to_owned()),
                answer: None,
                error: None,
            }),
        ),
    ];
    let blobs = |h: &ContentHash| -> Result<Value, ReplayError> {
        assert_eq!(*h, hash(&args), "only the arguments are read");
        Ok(args.clone())
    };
    let moves = moves_with(&events, blobs).expect("moves");
    let summaries: Vec<(u64, u64, &str, &str)> = moves
        .iter()
        .map(|m| (m.seq, m.step, m.kind.as_str(), m.summary.as_str()))
        .collect();
    assert_eq!(
        summaries,
        [
            (2, 4, "tool_call", r#"orders.refund {"order":"A-1234"}"#),
            (
                3,
                4,
                "policy_decision",
                "orders.refund approved approvals_file:1"
            ),
            (4, 4, "run_finished", "replay_miss:orders.refund"),
        ]
    );
    assert_eq!(moves[0].args, Some(args));
}
