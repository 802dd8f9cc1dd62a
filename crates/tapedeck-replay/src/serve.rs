//! What a replay serves from a [`Recording`]: the model's responses ([`RecordedModel`]), the
//! tools' outputs ([`RecordedTools`], with its matchers and miss policy) and the approvals
//! ([`RecordedApprover`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde_json::Value;
use tapedeck_agent::approvals::{ApprovalAnswer, Approver};
use tapedeck_agent::config::ToolKind;
use tapedeck_agent::{
    Intercepted, MatchingForm, ModelBackend, ModelError, ModelRequest, ModelResponse,
    ToolCallRequest, ToolFailure, ToolInterceptor,
};
use tapedeck_trace::{ContentHash, Origin, hash_value};

use crate::recording::{RecordedApproval, RecordedCall, RecordedStep};

/// Serves recorded model responses.
///
/// In an exact replay every request must be the recorded one (same hash): the first that is
/// not ends the run `replay_miss:llm`. In a fork, steps up to `through_step` are served
/// whatever the request, and later steps go to `live`.
pub struct RecordedModel {
    steps: BTreeMap<u64, RecordedStep>,
    check_requests: bool,
    through_step: u64,
    live: Option<Box<dyn ModelBackend>>,
    retries_served: HashMap<u64, usize>,
    /// The requests' matching form, kept up to date from step to step.
    form: MatchingForm,
}

impl RecordedModel {
    /// Serves every step, checking each request against the recording.
    pub fn exact(steps: BTreeMap<u64, RecordedStep>) -> Self {
        Self {
            steps,
            check_requests: true,
            through_step: u64::MAX,
            live: None,
            retries_served: HashMap::new(),
            form: MatchingForm::default(),
        }
    }

    /// Serves steps `1..=k` as recorded, then asks `live`.
    pub fn fork(steps: BTreeMap<u64, RecordedStep>, k: u64, live: Box<dyn ModelBackend>) -> Self {
        Self {
            steps,
            check_requests: false,
            through_step: k,
            live: Some(live),
            retries_served: HashMap::new(),
            form: MatchingForm::default(),
        }
    }
}

impl ModelBackend for RecordedModel {
    fn provider(&self) -> &'static str {
        "replay"
    }

    fn complete(
        &mut self,
        request: &ModelRequest,
        deadline: Instant,
    ) -> Result<ModelResponse, ModelError> {
        if request.step > self.through_step {
            return match &mut self.live {
                Some(live) => live.complete(request, deadline),
                None => Err(ModelError::Unrecorded(format!(
                    "step {} is past the recording",
                    request.step
                ))),
            };
        }
        let Some(recorded) = self.steps.get(&request.step) else {
            return Err(ModelError::Unrecorded(format!(
                "the recording has no step {} (it made {} model calls)",
                request.step,
                self.steps.len()
            )));
        };
        if self.check_requests {
            let hash = self.form.update(request);
            if hash != recorded.request_hash {
                return Err(ModelError::Unrecorded(format!(
                    "step {}: the request differs from the recorded one (hash {} ≠ {})",
                    request.step,
                    hash.short(12),
                    recorded.request_hash.short(12)
                )));
            }
        }
        let served = self.retries_served.entry(request.step).or_insert(0);
        if let Some(error) = recorded.retries.get(*served) {
            *served += 1;
            return Err(error.clone());
        }
        match (&recorded.response, &recorded.error) {
            (Some(response), _) => Ok(response.clone()),
            (None, Some(error)) => Err(error.clone()),
            (None, None) => Err(ModelError::Unrecorded(format!(
                "step {}: the recording ends before the model answered",
                request.step
            ))),
        }
    }
}

/// What to do with a tool call the recording has no answer for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissPolicy {
    /// Stop the run `replay_miss:<tool>`, naming the closest recorded call.
    #[default]
    Error,
    /// Run the tool for real — only read tools listed as allowed live.
    Live,
    /// Serve the closest recorded call of the same tool, with its score.
    Closest,
}

/// Serves recorded tool outputs.
///
/// Matching, in order: the same tool with the same canonical arguments, by occurrence (the
/// third identical call gets the third recorded answer); an identical call made more often than
/// recorded reuses the last answer (origin `reused`); with `match_position`, the recorded call
/// of the same tool at the same position; then the miss policy.
pub struct RecordedTools {
    calls: Vec<RecordedCall>,
    served: HashMap<(String, ContentHash), usize>,
    per_tool: HashMap<String, usize>,
    match_position: bool,
    on_miss: MissPolicy,
    live_allow: HashSet<String>,
    through_step: u64,
}

impl RecordedTools {
    /// Serves `calls` with the given policy.
    pub fn new(
        calls: Vec<RecordedCall>,
        on_miss: MissPolicy,
        live_allow: HashSet<String>,
        match_position: bool,
    ) -> Self {
        Self {
            calls,
            served: HashMap::new(),
            per_tool: HashMap::new(),
            match_position,
            on_miss,
            live_allow,
            through_step: u64::MAX,
        }
    }

    /// Serves only calls made in steps `1..=k`; later calls run live (a fork).
    pub fn through_step(mut self, k: u64) -> Self {
        self.through_step = k;
        self
    }

    fn answer(call: &RecordedCall, origin: Origin) -> Intercepted {
        let result = match &call.result {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(error)) => Err(ToolFailure::Failed(error.clone())),
            None => Err(ToolFailure::Failed(
                "the recorded call has no result (the run ended first)".to_owned(),
            )),
        };
        Intercepted::Answer { result, origin }
    }

    /// The recorded call of `tool` most like `args`, with its similarity (0 to 1).
    fn closest(&self, tool: &str, args: &Value) -> Option<(&RecordedCall, f64)> {
        let text = serde_json::to_string(args).unwrap_or_default();
        self.calls
            .iter()
            .filter(|c| c.tool == tool)
            .map(|c| {
                let recorded = serde_json::to_string(&c.args).unwrap_or_default();
                let score = similar::TextDiff::from_chars(recorded.as_str(), text.as_str()).ratio();
                (c, f64::from(score))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

impl ToolInterceptor for RecordedTools {
    fn intercept(
        &mut self,
        step: u64,
        call: &ToolCallRequest,
        kind: ToolKind,
    ) -> Option<Intercepted> {
        if step > self.through_step {
            return None;
        }
        let tool = call.name.as_str();
        let args_hash = hash_value(&call.arguments).map(|(h, _)| h).ok()?;
        let position = {
            let n = self.per_tool.entry(tool.to_owned()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let same: Vec<&RecordedCall> = self
            .calls
            .iter()
            .filter(|c| c.tool == tool && c.args_hash == args_hash)
            .collect();
        if !same.is_empty() {
            let served = self.served.entry((tool.to_owned(), args_hash)).or_insert(0);
            *served += 1;
            return Some(match same.get(*served - 1) {
                Some(recorded) => Self::answer(recorded, Origin::Recorded),
                None => Self::answer(same[same.len() - 1], Origin::Reused),
            });
        }
        if self.match_position
            && let Some(recorded) = self.calls.iter().filter(|c| c.tool == tool).nth(position)
        {
            return Some(Self::answer(recorded, Origin::Recorded));
        }
        match self.on_miss {
            MissPolicy::Live if kind == ToolKind::Read && self.live_allow.contains(tool) => None,
            MissPolicy::Closest => match self.closest(tool, &call.arguments) {
                Some((recorded, _)) => Some(Self::answer(recorded, Origin::Reused)),
                None => Some(Intercepted::Miss(format!(
                    "the recording has no call of `{tool}` at all"
                ))),
            },
            policy => {
                let why_not_live = match policy {
                    MissPolicy::Live if kind != ToolKind::Read => {
                        format!(" (`--on-miss live` never runs {} tool)", a_kind(kind))
                    }
                    MissPolicy::Live => format!(" (`{tool}` is not in --live-allow)"),
                    _ => String::new(),
                };
                Some(Intercepted::Miss(format!(
                    "no recorded call of `{tool}` with arguments {}{why_not_live}; {}",
                    serde_json::to_string(&call.arguments).unwrap_or_default(),
                    match self.closest(tool, &call.arguments) {
                        Some((recorded, score)) => format!(
                            "closest recorded: {} (similarity {score:.2}){}",
                            serde_json::to_string(&recorded.args).unwrap_or_default(),
                            differing_keys(&recorded.args, &call.arguments)
                        ),
                        None => format!("the recording never called `{tool}`"),
                    }
                )))
            }
        }
    }
}

/// "a write", "an expensive": a tool kind with its article.
pub(crate) fn a_kind(kind: ToolKind) -> &'static str {
    match kind {
        ToolKind::Read => "a read",
        ToolKind::Write => "a write",
        ToolKind::Expensive => "an expensive",
    }
}

/// ", differs in `a`, `b`" for two argument objects.
fn differing_keys(recorded: &Value, actual: &Value) -> String {
    let (Value::Object(a), Value::Object(b)) = (recorded, actual) else {
        return String::new();
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("`{k}`"))
        .collect();
    if differ.is_empty() {
        String::new()
    } else {
        format!(", which differs in {}", differ.join(", "))
    }
}

/// Answers approval requests as they were answered in the recording, so a replay never waits
/// on a person.
///
/// Only the recorded answer to the same call — the same tool with the same arguments — is
/// replayed: an approval given for one write never approves another. A call the recording has
/// no answer for goes to the fallback approver when there is one (a fork's live steps, which
/// may run tools for real), and is rejected otherwise.
pub struct RecordedApprover {
    approvals: Vec<RecordedApproval>,
    otherwise: Option<Box<dyn Approver>>,
}

impl RecordedApprover {
    /// Serves `approvals`; rejects any other call.
    pub fn new(approvals: Vec<RecordedApproval>) -> Self {
        Self {
            approvals,
            otherwise: None,
        }
    }

    /// Asks `approver` about the calls the recording has no answer for.
    pub fn otherwise(mut self, approver: Box<dyn Approver>) -> Self {
        self.otherwise = Some(approver);
        self
    }
}

impl Approver for RecordedApprover {
    fn ask(&mut self, tool: &str, args: &Value, key: Option<&str>) -> ApprovalAnswer {
        let args_hash = hash_value(args).map(|(h, _)| h).ok();
        let found = self
            .approvals
            .iter()
            .find(|a| a.tool == tool && a.args_hash.is_some() && a.args_hash == args_hash);
        match (found, &mut self.otherwise) {
            (Some(a), _) => ApprovalAnswer {
                approved: a.approved,
                rule: format!("replay: recorded {}", a.rule),
                by: a.by.clone(),
            },
            (None, Some(approver)) => approver.ask(tool, args, key),
            (None, None) => ApprovalAnswer {
                approved: false,
                rule: "replay: no recorded approval for this call".to_owned(),
                by: None,
            },
        }
    }
}
