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
    /// The raw response (`status`, `content_type`, and `body` or `sse`).
    pub response: Value,
    /// The cost recorded for it, served again with it.
    pub cost_usd: Option<f64>,
    used: bool,
}

/// A recorded pass-through exchange, as replay serves it.
#[derive(Clone, Debug)]
struct RecordedExchange {
    method: String,
    path: String,
    response: Value,
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
}

/// A run's recorded responses, for replay.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    calls: Vec<RecordedCall>,
    exchanges: Vec<RecordedExchange>,
    ignore: Vec<Regex>,
}

impl Recording {
    /// Reads the recorded calls from a proxy run's events; `blob` fetches a blob.
    pub fn from_events(
        events: &[Event],
        mut blob: impl FnMut(&ContentHash) -> Result<Value, StoreError>,
        ignore: Vec<Regex>,
    ) -> Result<Self, StoreError> {
        let mut out = Self {
            ignore,
            ..Self::default()
        };
        // A modelled call's exchange holds the request's matching form, whose hash is the
        // request's `request_hash`: that pairs them even when calls overlapped.
        let mut pending: HashMap<ContentHash, Vec<u64>> = HashMap::new();
        let mut costs: HashMap<u64, Option<f64>> = HashMap::new();
        for event in events {
            match &event.data {
                EventData::LlmResponse(r) => {
                    costs.insert(r.step, r.cost_usd);
                }
                EventData::LlmRequest(r) => pending.entry(r.request_hash).or_default().push(r.step),
                EventData::HttpExchange(x) => {
                    let (Some(req), Some(resp)) = (x.request, x.response) else {
                        continue;
                    };
                    let response = blob(&resp)?;
                    let step = pending
                        .get_mut(&req)
                        .filter(|steps| !steps.is_empty())
                        .map(|steps| steps.remove(0));
                    match step {
                        Some(step) => out.calls.push(RecordedCall {
                            step,
                            cost_usd: costs.get(&step).copied().flatten(),
                            request: blob(&req)?,
                            response,
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
        Ok(out)
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
    pub(super) fn take(&mut self, request: &Value) -> Result<(Value, Option<f64>), String> {
        let wanted = self.scrub(request);
        let found = self
            .calls
            .iter()
            .position(|c| !c.used && self.scrub(&c.request) == wanted);
        if let Some(i) = found {
            self.calls[i].used = true;
            return Ok((self.calls[i].response.clone(), self.calls[i].cost_usd));
        }
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

    pub(super) fn take_step(&mut self, step: u64) -> Option<(Value, Option<f64>)> {
        let call = self.calls.iter_mut().find(|c| !c.used && c.step == step)?;
        call.used = true;
        Some((call.response.clone(), call.cost_usd))
    }

    pub(super) fn take_exchange(&mut self, method: &str, path: &str) -> Option<Value> {
        let x = self
            .exchanges
            .iter_mut()
            .find(|x| !x.used && x.method == method && x.path == path)?;
        x.used = true;
        Some(x.response.clone())
    }
}
