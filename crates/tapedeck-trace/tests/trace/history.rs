//! `HistoryCompactor` and `expand_messages`: a request that resends the previous request's
//! messages is stored as extending it, and expands back to exactly the messages sent.

use proptest::prelude::*;
use tapedeck_trace::{
    ContentHash, Event, EventData, HistoryCompactor, LlmRequest, LlmRetry, Timestamp,
    expand_messages, hash_bytes,
};

fn msg(i: usize) -> ContentHash {
    hash_bytes(format!("message {i}").as_bytes())
}

fn msgs(ids: &[usize]) -> Vec<ContentHash> {
    ids.iter().copied().map(msg).collect()
}

fn request(messages: Vec<ContentHash>) -> LlmRequest {
    LlmRequest {
        step: 1,
        provider: None,
        model: "m".into(),
        params: serde_json::Value::Null,
        extends: None,
        messages,
        tools: None,
        request_hash: hash_bytes(b"r"),
    }
}

fn event(seq: u64, data: EventData) -> Event {
    Event {
        seq,
        at: Timestamp::from_micros(0),
        data,
    }
}

fn filler(seq: u64) -> Event {
    event(
        seq,
        EventData::LlmRetry(LlmRetry {
            step: 1,
            attempt: 1,
            status: None,
            error: None,
            wait_ms: 0,
        }),
    )
}

/// Compacts `requests` recorded at `seqs`, returning the events and the compacted requests.
fn compact_all(requests: &[Vec<ContentHash>], seqs: &[u64]) -> (Vec<Event>, Vec<LlmRequest>) {
    let mut compactor = HistoryCompactor::default();
    let mut events = Vec::new();
    let mut compacted = Vec::new();
    let mut next = 1;
    for (messages, &seq) in requests.iter().zip(seqs) {
        while next < seq {
            events.push(filler(next));
            next += 1;
        }
        let mut r = request(messages.clone());
        compactor.compact(seq, &mut r);
        compacted.push(r.clone());
        events.push(event(seq, EventData::LlmRequest(r)));
        next = seq + 1;
    }
    (events, compacted)
}

#[test]
fn a_growing_conversation_lists_only_new_messages() {
    let requests = [msgs(&[0]), msgs(&[0, 1, 2]), msgs(&[0, 1, 2, 3, 4])];
    let (events, compacted) = compact_all(&requests, &[2, 4, 7]);
    assert_eq!(
        (compacted[0].extends, compacted[0].messages.clone()),
        (None, msgs(&[0]))
    );
    assert_eq!(
        (compacted[1].extends, compacted[1].messages.clone()),
        (Some(2), msgs(&[1, 2]))
    );
    assert_eq!(
        (compacted[2].extends, compacted[2].messages.clone()),
        (Some(4), msgs(&[3, 4]))
    );
    let full = expand_messages(&events);
    assert_eq!(full.keys().copied().collect::<Vec<_>>(), vec![2, 4, 7]);
    for (seq, original) in [2, 4, 7].iter().zip(&requests) {
        assert_eq!(&full[seq], original);
    }
}

#[test]
fn a_rewritten_history_is_stored_whole() {
    // The agent summarized its history: the new request does not start with the old one.
    let requests = [
        msgs(&[0, 1]),
        msgs(&[9, 2]),
        msgs(&[9, 2, 3]),
        msgs(&[9, 2, 3]),
    ];
    let (events, compacted) = compact_all(&requests, &[1, 2, 3, 4]);
    assert_eq!(
        (compacted[1].extends, compacted[1].messages.clone()),
        (None, msgs(&[9, 2]))
    );
    assert_eq!(
        (compacted[2].extends, compacted[2].messages.clone()),
        (Some(2), msgs(&[3]))
    );
    // Resending exactly the same messages extends with nothing new.
    assert_eq!(
        (compacted[3].extends, compacted[3].messages.clone()),
        (Some(3), vec![])
    );
    let full = expand_messages(&events);
    for (i, original) in requests.iter().enumerate() {
        assert_eq!(&full[&(i as u64 + 1)], original);
    }
}

#[test]
fn an_empty_request_is_never_extended_from() {
    let (_, compacted) = compact_all(&[vec![], msgs(&[0])], &[1, 2]);
    assert_eq!(compacted[1].extends, None);
    assert_eq!(compacted[1].messages, msgs(&[0]));
}

#[test]
fn requests_that_already_extend_are_kept() {
    let mut compactor = HistoryCompactor::default();
    let mut first = request(msgs(&[0, 1]));
    compactor.compact(1, &mut first);
    // Already compacted against the last request (an importer replaying a tape).
    let mut second = request(msgs(&[2]));
    second.extends = Some(1);
    compactor.compact(2, &mut second);
    assert_eq!(
        (second.extends, second.messages.clone()),
        (Some(1), msgs(&[2]))
    );
    // The compactor knows the full list of request 2 and extends it.
    let mut third = request(msgs(&[0, 1, 2, 3]));
    compactor.compact(3, &mut third);
    assert_eq!(
        (third.extends, third.messages.clone()),
        (Some(2), msgs(&[3]))
    );

    // Extending a request the compactor never saw: kept as is, and the next one is whole.
    let mut odd = request(msgs(&[7]));
    odd.extends = Some(99);
    compactor.compact(4, &mut odd);
    assert_eq!((odd.extends, odd.messages.clone()), (Some(99), msgs(&[7])));
    let mut after = request(msgs(&[0, 1, 2, 3, 7, 8]));
    compactor.compact(5, &mut after);
    assert_eq!((after.extends, after.messages.len()), (None, 6));
}

#[test]
fn expanding_a_truncated_list_gives_the_known_messages() {
    let mut r = request(msgs(&[5]));
    r.extends = Some(1);
    let full = expand_messages(&[event(3, EventData::LlmRequest(r))]);
    assert_eq!(full[&3], msgs(&[5]));
}

#[derive(Clone, Debug)]
enum Step {
    /// Resend everything and add this many new messages.
    Grow(usize),
    /// Start over with this many new messages.
    Restart(usize),
    /// Drop the oldest message (a sliding window) and add one.
    Slide,
}

proptest! {
    #[test]
    fn compacted_requests_expand_to_what_was_sent(
        steps in prop::collection::vec(
            prop_oneof![
                (0usize..4).prop_map(Step::Grow),
                (0usize..3).prop_map(Step::Restart),
                Just(Step::Slide),
            ],
            1..40,
        ),
        gaps in prop::collection::vec(0u64..3, 40),
    ) {
        let mut counter = 0;
        let mut current: Vec<usize> = Vec::new();
        let mut requests = Vec::new();
        for step in &steps {
            let mut add = |n: usize, list: &mut Vec<usize>| {
                for _ in 0..n {
                    list.push(counter);
                    counter += 1;
                }
            };
            match step {
                Step::Grow(n) => add(*n, &mut current),
                Step::Restart(n) => {
                    current.clear();
                    add(*n, &mut current);
                }
                Step::Slide => {
                    if !current.is_empty() {
                        current.remove(0);
                    }
                    add(1, &mut current);
                }
            }
            requests.push(msgs(&current));
        }
        let mut seqs = Vec::new();
        let mut seq = 0;
        for gap in gaps.iter().take(requests.len()) {
            seq += 1 + gap;
            seqs.push(seq);
        }
        let (events, compacted) = compact_all(&requests, &seqs);
        let full = expand_messages(&events);
        prop_assert_eq!(full.len(), requests.len());
        for ((seq, original), stored) in seqs.iter().zip(&requests).zip(&compacted) {
            prop_assert_eq!(&full[seq], original);
            prop_assert!(stored.messages.len() <= original.len());
        }
        // Growing conversations store each message hash once.
        if steps.iter().all(|s| matches!(s, Step::Grow(_))) {
            let stored: usize = compacted.iter().map(|r| r.messages.len()).sum();
            prop_assert_eq!(stored, requests.last().map_or(0, Vec::len));
        }
    }
}
