//! A proxy run read back for replay: [`Recording`], its modelled calls ([`RecordedCall`]) and
//! the [`Backend`] a proxy serves from.

use super::*;

/// A recorded modelled call, as replay serves it.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    /// The step of its `llm_request`.
    pub step: u64,
    /// The request's matching form.
    pub request: Value,
    /// The response as it was recorded.
    pub response: RecordedResponse,
    /// The cost recorded for it, served again with it.
    pub cost_usd: Option<f64>,
    /// The hash of the request with the ignored patterns replaced: what a request must hash
    /// to, after the same replacing, to be served this call.
    key: Option<ContentHash>,
    used: bool,
}

/// A recorded pass-through exchange, as replay serves it.
#[derive(Clone, Debug)]
struct RecordedExchange {
    method: String,
    path: String,
    response: RecordedResponse,
    used: bool,
}

/// What the proxy answers from.
pub enum Backend {
    /// The real upstreams (record mode).
    Live {
        /// The HTTP client.
        client: reqwest::Client,
        /// Where to forward.
        upstreams: Upstreams,
    },
    /// A recording (replay mode).
    Replay(Mutex<Recording>),
    /// The recording's first model calls, then the real upstreams (a fork).
    Fork {
        /// The recording.
        recording: Mutex<Recording>,
        /// The last step served from it: model call `through_step + 1` goes upstream.
        through_step: u64,
        /// The HTTP client.
        client: reqwest::Client,
        /// Where later calls go.
        upstreams: Upstreams,
    },
    /// The recording for every request it holds, the real upstreams for the others (new
    /// episodes: a test's tape extended with what it does not hold yet).
    Episodes {
        /// The recording.
        recording: Mutex<Recording>,
        /// The HTTP client.
        client: reqwest::Client,
        /// Where the requests the recording does not hold go.
        upstreams: Upstreams,
    },
}

/// A run's recorded responses, for replay.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    calls: Vec<RecordedCall>,
    exchanges: Vec<RecordedExchange>,
    ignore: Vec<Regex>,
}

/// Why a run's recording cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The store could not give a blob.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blob is not what its event says it is.
    #[error("the recorded {what} of event #{seq} is malformed: {detail}")]
    Malformed {
        /// What the blob should hold.
        what: &'static str,
        /// The event referring to it.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
}

/// Blobs read once each: a run's requests share most of their messages.
struct Blobs<F> {
    fetch: F,
    read: HashMap<ContentHash, Value>,
}

impl<F: FnMut(&ContentHash) -> Result<Value, StoreError>> Blobs<F> {
    fn get(&mut self, hash: &ContentHash) -> Result<Value, StoreError> {
        if let Some(value) = self.read.get(hash) {
            return Ok(value.clone());
        }
        let value = (self.fetch)(hash)?;
        self.read.insert(*hash, value.clone());
        Ok(value)
    }

    fn typed<T: serde::de::DeserializeOwned>(
        &mut self,
        hash: &ContentHash,
        what: &'static str,
        seq: u64,
    ) -> Result<T, RecordingError> {
        serde_json::from_value(self.get(hash)?).map_err(|e| RecordingError::Malformed {
            what,
            seq,
            detail: e.to_string(),
        })
    }
}

impl Recording {
    /// Reads the recorded calls from a proxy run's events; `blob` fetches a blob.
    ///
    /// A model call's exchange names its step, and its request is rebuilt from the frame it
    /// holds and the messages of that step's `llm_request`. An exchange recorded before tape
    /// version 3 has no step: it holds the whole matching form, whose hash is the request's
    /// `request_hash`, which pairs them.
    pub fn from_events(
        events: &[Event],
        blob: impl FnMut(&ContentHash) -> Result<Value, StoreError>,
        ignore: Vec<Regex>,
    ) -> Result<Self, RecordingError> {
        let mut out = Self {
            ignore,
            ..Self::default()
        };
        let mut blobs = Blobs {
            fetch: blob,
            read: HashMap::new(),
        };
        let messages = tapedeck_trace::expand_messages(events);
        let mut requests: HashMap<u64, (u64, ContentHash)> = HashMap::new();
        let mut by_hash: HashMap<ContentHash, Vec<u64>> = HashMap::new();
        let mut costs: HashMap<u64, Option<f64>> = HashMap::new();
        for event in events {
            match &event.data {
                EventData::LlmResponse(r) => {
                    costs.insert(r.step, r.cost_usd);
                }
                EventData::LlmRequest(r) => {
                    requests.insert(r.step, (event.seq, r.request_hash));
                    by_hash.entry(r.request_hash).or_default().push(r.step);
                }
                EventData::HttpExchange(x) => {
                    let (Some(req), Some(resp)) = (x.request, x.response) else {
                        continue;
                    };
                    let response = blobs.typed(&resp, "response", event.seq)?;
                    let call = match x.step {
                        Some(step) => {
                            let frame: RequestFrame = blobs.typed(&req, "request", event.seq)?;
                            let (seq, hash) = requests.get(&step).copied().ok_or_else(|| {
                                RecordingError::Malformed {
                                    what: "request",
                                    seq: event.seq,
                                    detail: format!("no llm_request of step {step} before it"),
                                }
                            })?;
                            let mut listed = Vec::new();
                            for m in messages.get(&seq).into_iter().flatten() {
                                listed.push(blobs.get(m)?);
                            }
                            let rebuilt = frame.join(&listed).filter(|r| {
                                tapedeck_trace::hash_value(r).ok().map(|(h, _)| h) == Some(hash)
                            });
                            let request = rebuilt.ok_or_else(|| RecordingError::Malformed {
                                what: "request",
                                seq: event.seq,
                                detail: format!(
                                    "its frame and the messages of step {step} do not rebuild the request that was sent"
                                ),
                            })?;
                            Some((step, request, hash))
                        }
                        // The blob's hash is the whole request's.
                        None => match by_hash.get_mut(&req).filter(|s| !s.is_empty()) {
                            Some(steps) => Some((steps.remove(0), blobs.get(&req)?, req)),
                            None => None,
                        },
                    };
                    match call {
                        Some((step, request, hash)) => out.calls.push(RecordedCall {
                            step,
                            cost_usd: costs.get(&step).copied().flatten(),
                            request,
                            response,
                            // With nothing ignored, the key is the request's own hash.
                            key: Some(hash),
                            used: false,
                        }),
                        None => out.exchanges.push(RecordedExchange {
                            method: x.method.clone(),
                            path: x.path.clone(),
                            response,
                            used: false,
                        }),
                    }
                }
                _ => {}
            }
        }
        if !out.ignore.is_empty() {
            for i in 0..out.calls.len() {
                out.calls[i].key = out.key(&out.calls[i].request);
            }
        }
        Ok(out)
    }

    /// A request's matching key: the hash of its canonical form once the ignored patterns are
    /// replaced. Two requests match when their keys are equal; hashing each recorded request
    /// once keeps a replay's matching linear in the recording's length.
    fn key(&self, request: &Value) -> Option<ContentHash> {
        let hashed = if self.ignore.is_empty() {
            tapedeck_trace::hash_value(request)
        } else {
            tapedeck_trace::hash_value(&self.scrub(request))
        };
        hashed.ok().map(|(hash, _)| hash)
    }

    /// How many modelled calls the recording holds.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    fn scrub(&self, value: &Value) -> Value {
        if self.ignore.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.ignore.iter().fold(s.clone(), |s, r| {
                r.replace_all(&s, "<ignored>").into_owned()
            })),
            Value::Array(items) => items.iter().map(|v| self.scrub(v)).collect(),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), self.scrub(v)))
                .collect(),
            other => other.clone(),
        }
    }

    /// The recorded response for a request's matching form (the first unused equal one), or
    /// an explanation naming the closest recorded request and where it differs.
    pub(super) fn take(
        &mut self,
        request: &Value,
    ) -> Result<(RecordedResponse, Option<f64>), String> {
        let key = self.key(request);
        let found = self
            .calls
            .iter()
            .position(|c| !c.used && key.is_some() && c.key == key);
        if let Some(i) = found {
            self.calls[i].used = true;
            return Ok((self.calls[i].response.clone(), self.calls[i].cost_usd));
        }
        // A miss: compared field by field, for the explanation.
        let wanted = self.scrub(request);
        let closest = self
            .calls
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| {
                (
                    wire::similarity(&self.scrub(&c.request), &wanted),
                    !c.used,
                    std::cmp::Reverse(*i),
                )
            })
            .map(|(i, c)| (i, c.step, self.scrub(&c.request), c.used));
        Err(match closest {
            None => "no recorded request matches: the recording has no model calls".to_owned(),
            Some((i, step, recorded, used)) => {
                let difference = miss::first_difference(&recorded, &wanted, "").map_or_else(
                    || "which is the same request, already served".to_owned(),
                    |d| format!("which {}", d.explain()),
                );
                format!(
                    "no recorded request matches; the closest is recorded request #{} (step {step}{}), {difference}",
                    i + 1,
                    if used { ", already served" } else { "" }
                )
            }
        })
    }

    pub(super) fn take_step(&mut self, step: u64) -> Option<(RecordedResponse, Option<f64>)> {
        let call = self.calls.iter_mut().find(|c| !c.used && c.step == step)?;
        call.used = true;
        Some((call.response.clone(), call.cost_usd))
    }

    pub(super) fn take_exchange(&mut self, method: &str, path: &str) -> Option<RecordedResponse> {
        let x = self
            .exchanges
            .iter_mut()
            .find(|x| !x.used && x.method == method && x.path == path)?;
        x.used = true;
        Some(x.response.clone())
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

    use tapedeck_store::{ImportOutcome, Store};
    use tapedeck_trace::hash_value;

    use super::*;

    /// The same proxy run (the weather-py agent asking for the Paris weather: two model calls)
    /// as tapedeck wrote it at tape version 2 (requests whole) and 3 (frames).
    const TAPES: [(&str, &str); 2] = [
        ("v2", include_str!("../../tests/data/weather-v2.jsonl")),
        ("v3", include_str!("../../tests/data/weather-v3.jsonl")),
    ];

    /// A store file holding `tape`'s run (the folder goes with it), and the run's id.
    fn store_of(tape: &str) -> (tempfile::TempDir, Store, tapedeck_trace::RunId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db")).unwrap();
        let ImportOutcome::Imported { id, .. } = store.import_tape(&mut tape.as_bytes()).unwrap()
        else {
            panic!("a fresh store already had the run");
        };
        (dir, store, id)
    }

    fn recording_of(tape: &str) -> (Recording, Vec<Event>) {
        let (_dir, store, id) = store_of(tape);
        let events = store.events(&id).unwrap();
        let recording =
            Recording::from_events(&events, |h| store.blob(h, &id), Vec::new()).unwrap();
        (recording, events)
    }

    #[test]
    fn proxy_tapes_of_every_version_give_back_each_request_as_it_was_sent() {
        for (version, tape) in TAPES {
            let (recording, events) = recording_of(tape);
            let hashes: HashMap<u64, ContentHash> = events
                .iter()
                .filter_map(|e| match &e.data {
                    EventData::LlmRequest(r) => Some((r.step, r.request_hash)),
                    _ => None,
                })
                .collect();
            assert_eq!(recording.len(), 2, "{version}");
            for call in &recording.calls {
                let (hash, _) = hash_value(&call.request).unwrap();
                assert_eq!(
                    Some(&hash),
                    hashes.get(&call.step),
                    "{version} step {}",
                    call.step
                );
                assert_eq!(call.request["endpoint"], "/v1/chat/completions");
                assert_eq!(call.response.status, 200, "{version}");
            }
        }
    }

    #[test]
    fn a_version_3_run_keeps_one_frame_for_its_conversation() {
        let (_, events) = recording_of(TAPES[1].1);
        let frames: HashSet<_> = events
            .iter()
            .filter_map(|e| match &e.data {
                EventData::HttpExchange(x) if x.step.is_some() => x.request,
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 1, "the two calls share their frame");
    }

    #[test]
    fn a_frame_that_does_not_rebuild_its_request_is_refused() {
        let (_dir, store, id) = store_of(TAPES[1].1);
        let events = store.events(&id).unwrap();
        // A frame that says another model was asked.
        let edited = |h: &ContentHash| {
            let mut value = store.blob(h, &id)?;
            if value.get("endpoint").is_some() {
                value["body"]["model"] = Value::from("another-model");
            }
            Ok(value)
        };
        let err = Recording::from_events(&events, edited, Vec::new()).unwrap_err();
        assert!(
            err.to_string()
                .contains("do not rebuild the request that was sent"),
            "{err}"
        );
        // An exchange of a step that has no request.
        let events: Vec<Event> = events
            .into_iter()
            .map(|mut e| {
                if let EventData::HttpExchange(x) = &mut e.data
                    && x.step.is_some()
                {
                    x.step = Some(9);
                }
                e
            })
            .collect();
        let err = Recording::from_events(&events, |h| store.blob(h, &id), Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("no llm_request of step 9"),
            "{err}"
        );
    }
}
