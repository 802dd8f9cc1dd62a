//! The scripted model: answers from a script instead of a network, deterministically, so that
//! tests and the demo run the real agent loop with no API.
//!
//! The script is a JSON value (the config loader reads it from YAML or JSON). It has one of two
//! shapes. **Responses**, served in order, one per step (step 1 gets the first); a bare list is
//! short for `responses:`:
//!
//! ```yaml
//! responses:
//!   - tool_calls: [{name: kb.read, arguments: {article: password-reset}}]
//!   - content: "Go to Settings > Security …"
//! repeat_last: true   # optional: steps past the end get the last response (else a Script error)
//! ```
//!
//! **Rules**, evaluated on each request in order; the first that matches answers:
//!
//! ```yaml
//! rules:
//!   - when: {step: 1}                                   # the request's step
//!     respond: {tool_calls: [{name: browser.open, arguments: {url: "https://status.example.com"}}]}
//!   - when: {last_tool: browser.open, last_result_contains: "503"}
//!     respond: {content: "The status page is down."}
//!   - when: {last_result_error: true}
//!     one_of: [{content: a}, {content: b}]              # seeded choice
//!   - respond: {content: "fallback"}                    # no `when`: always matches
//! seed: 42                                              # for one_of; default 0
//! ```
//!
//! `when` keys, all of which must hold: `step` (equals the request's step), `input_contains`
//! (the first user message, the run's input, contains the text), `last_tool` (the
//! name of the conversation's last tool message), `last_result_contains` (that message's
//! content contains the text), `last_result_error` (that message is / is not an error). The
//! `last_*` keys never match a conversation without a tool message. `one_of` picks one
//! response with a splitmix64 generator seeded by `seed`, the step and the rule's index: the
//! same script, seed and step always pick the same one. A run labelled `repeat=N` (repetition
//! N of a golden task) has its seed moved to `seed + N - 1` ([`super::seed_offset`]).
//!
//! A **response** may set:
//! - `content`: the text.
//! - `tool_calls`: `[{name, arguments, id}]`; `arguments` defaults to `{}`, `id` to
//!   `call_<step>_<n>` (`n` from 1 within the response).
//! - `usage: {input_tokens, output_tokens}`; either one left out is estimated: input = the
//!   characters of every message of the request / 4 + 1, output = the characters of the
//!   content and of the tool calls / 4 + 1 (a message's characters are its content's plus, for
//!   each tool call, its name's and its arguments' compact JSON's).
//! - `finish_reason`: `stop`, `tool_calls`, `length` or `other`; default `tool_calls` when
//!   there are tool calls, else `stop`.
//! - `error: {status, message, retry_after_ms}`: the attempt fails with
//!   [`ModelError::Status`] (429 and 5xx are retried by the runtime), or `malformed: "text"`:
//!   it fails with [`ModelError::Malformed`]. Neither goes with `content`, `tool_calls`,
//!   `usage` or `finish_reason`.
//! - `times: N` (with `error` or `malformed`): only the first N attempts at a step fail. After
//!   that the entry's `then:` response answers; a rule without `then` stops matching for that
//!   step, so the rules below it answer. In `responses`, `times` needs `then`. Without `times`
//!   the failure repeats on every attempt. `then` is a plain response (no `times`/`then`).
//!
//! The script is checked when its agent version is loaded ([`check_script`], so `config check`
//! refuses a bad one with its file:line:column) and again when the backend is built from it
//! ([`Scripted::new`]): unknown keys and impossible combinations are refused with the entry
//! named (`responses[2]`, `rules[0].when`, `rules[1].one_of[0]`).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value};
use tapedeck_trace::Usage;

use crate::config::{parse_document, yaml_message};
use crate::model::{ModelBackend, ModelError};
use crate::{AgentError, FinishReason, Message, ModelRequest, ModelResponse, ToolCallRequest};

/// A model that answers from a script.
#[derive(Debug)]
pub struct Scripted {
    mode: Mode,
    seed: u64,
    /// Failures served per (step, entry index, option index): what `times` counts.
    failures: HashMap<(u64, usize, usize), u32>,
}

/// Reads the text of a script file and checks it as [`Scripted::new`] would; returns the
/// script as the value the agent version holds (and its fingerprint covers). Errors name
/// `path`, with line:column when the parser finds the mistake (a syntax error, an unknown key,
/// a value of the wrong type), else the entry (`responses[0]: …`).
pub fn check_script(text: &str, path: &Path) -> Result<Value, AgentError> {
    let script: Value = parse_document(text, path)?;
    // The text is read a second time into the script's own types so that the parser, which
    // knows where every value is, reports what does not fit them.
    let raw = match &script {
        Value::Array(_) => RawScript::list(parse_document(text, path).map_err(|mut e| {
            if let AgentError::ParseConfig { message, .. } = &mut e {
                *message = as_responses(message);
            }
            e
        })?),
        Value::Object(_) => parse_document(text, path)?,
        _ => RawScript::default(),
    };
    build(raw, &script).map_err(|message| AgentError::InvalidConfig {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(script)
}

impl Scripted {
    /// The model of `script`, checked.
    pub fn new(script: &Value) -> Result<Self, AgentError> {
        parse(script).map_err(|e| AgentError::Model(format!("script: {e}")))
    }

    /// The same model with its `seed` moved by `offset`: repetition `i` (from 1) of a task
    /// gets `seed + i - 1`, so its `one_of` rules vary from run to run as a real model's
    /// answers do, while the script (and the agent version's fingerprint) stays as written.
    #[must_use]
    pub fn with_seed_offset(mut self, offset: u64) -> Self {
        self.seed = self.seed.wrapping_add(offset);
        self
    }

    /// Answers for a request: the response, or the failure it is scripted to be.
    fn answer(&mut self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let step = request.step;
        match &self.mode {
            Mode::Responses { list, repeat_last } => {
                let index = usize::try_from(step.max(1) - 1).unwrap_or(usize::MAX);
                let (index, reply) = match list.get(index) {
                    Some(reply) => (index, reply),
                    None if *repeat_last => (list.len() - 1, &list[list.len() - 1]),
                    None => {
                        return Err(ModelError::Script(format!(
                            "the script has {} responses and this is step {step}; add \
                             responses or set `repeat_last: true`",
                            list.len()
                        )));
                    }
                };
                serve(reply, (step, index, 0), &mut self.failures, request).unwrap_or_else(|| {
                    Err(ModelError::Script(format!(
                        "responses[{index}] has no `then` after its `times`"
                    )))
                })
            }
            Mode::Rules(rules) => {
                for (index, rule) in rules.iter().enumerate() {
                    if !rule.when.matches(request) {
                        continue;
                    }
                    let (option, reply) = match &rule.choice {
                        Choice::One(reply) => (0, reply),
                        Choice::OneOf(options) => {
                            let n = pick(self.seed, step, index, options.len());
                            (n, &options[n])
                        }
                    };
                    if let Some(result) =
                        serve(reply, (step, index, option), &mut self.failures, request)
                    {
                        return result;
                    }
                }
                Err(ModelError::Script(format!(
                    "no rule matches step {step}{}",
                    match last_tool(&request.messages) {
                        Some(tool) => format!(" (last tool: {})", tool.0),
                        None => String::new(),
                    }
                )))
            }
        }
    }
}

impl ModelBackend for Scripted {
    fn provider(&self) -> &'static str {
        "scripted"
    }

    fn complete(
        &mut self,
        request: &ModelRequest,
        _deadline: Instant,
    ) -> Result<ModelResponse, ModelError> {
        self.answer(request)
    }
}

/// The response or failure of `reply` at this attempt; `None` when its `times` failures are
/// used up and it has no `then`.
fn serve(
    reply: &Reply,
    key: (u64, usize, usize),
    failures: &mut HashMap<(u64, usize, usize), u32>,
    request: &ModelRequest,
) -> Option<Result<ModelResponse, ModelError>> {
    if let Outcome::Fail(error) = &reply.outcome
        && let Some(times) = reply.times
    {
        let served = failures.entry(key).or_insert(0);
        if *served < times {
            *served += 1;
            return Some(Err(error.clone()));
        }
        return reply.then.as_deref().map(|then| outcome(then, request));
    }
    Some(outcome(reply, request))
}

fn outcome(reply: &Reply, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
    match &reply.outcome {
        Outcome::Fail(error) => Err(error.clone()),
        Outcome::Answer(answer) => Ok(answer.response(request)),
    }
}

/// A number in `0..n` from (seed, step, rule): splitmix64, chained.
fn pick(seed: u64, step: u64, rule: usize, n: usize) -> usize {
    let mixed = splitmix64(splitmix64(splitmix64(seed) ^ step) ^ rule as u64);
    usize::try_from(mixed % n as u64).unwrap_or(0)
}

/// One step of splitmix64 (Steele, Lea and Flood): a well-mixed 64-bit value from any input.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The name, content and error flag of the conversation's last tool message.
fn last_tool(messages: &[Message]) -> Option<(&str, &str, bool)> {
    messages.iter().rev().find_map(|m| match m {
        Message::Tool {
            name,
            content,
            is_error,
            ..
        } => Some((name.as_str(), content.as_str(), *is_error)),
        _ => None,
    })
}

#[derive(Debug)]
enum Mode {
    Responses { list: Vec<Reply>, repeat_last: bool },
    Rules(Vec<Rule>),
}

#[derive(Debug)]
struct Rule {
    when: When,
    choice: Choice,
}

#[derive(Debug)]
enum Choice {
    One(Reply),
    OneOf(Vec<Reply>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct When {
    step: Option<u64>,
    input_contains: Option<String>,
    last_tool: Option<String>,
    last_result_contains: Option<String>,
    last_result_error: Option<bool>,
}

impl When {
    fn matches(&self, request: &ModelRequest) -> bool {
        if self.step.is_some_and(|s| s != request.step) {
            return false;
        }
        if let Some(text) = &self.input_contains {
            let input = request.messages.iter().find_map(|m| match m {
                Message::User { content } => Some(content.as_str()),
                _ => None,
            });
            if !input.is_some_and(|i| i.contains(text.as_str())) {
                return false;
            }
        }
        if self.last_tool.is_none()
            && self.last_result_contains.is_none()
            && self.last_result_error.is_none()
        {
            return true;
        }
        let Some((name, content, is_error)) = last_tool(&request.messages) else {
            return false;
        };
        self.last_tool.as_deref().is_none_or(|t| t == name)
            && self
                .last_result_contains
                .as_deref()
                .is_none_or(|t| content.contains(t))
            && self.last_result_error.is_none_or(|e| e == is_error)
    }
}

#[derive(Debug)]
struct Reply {
    outcome: Outcome,
    times: Option<u32>,
    then: Option<Box<Reply>>,
}

#[derive(Debug)]
enum Outcome {
    Answer(Answer),
    Fail(ModelError),
}

#[derive(Debug)]
struct Answer {
    content: Option<String>,
    tool_calls: Vec<CallSpec>,
    usage: UsageSpec,
    finish: Option<FinishReason>,
}

impl Answer {
    fn response(&self, request: &ModelRequest) -> ModelResponse {
        let tool_calls: Vec<ToolCallRequest> = self
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| ToolCallRequest {
                id: c
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("call_{}_{}", request.step, i + 1)),
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            })
            .collect();
        let finish = self.finish.unwrap_or(if tool_calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        });
        let input_chars: usize = request.messages.iter().map(message_chars).sum();
        let output_chars = self.content.as_deref().map_or(0, |c| c.chars().count())
            + tool_calls.iter().map(call_chars).sum::<usize>();
        let usage = Usage {
            input_tokens: self
                .usage
                .input_tokens
                .unwrap_or(input_chars as u64 / 4 + 1),
            output_tokens: self
                .usage
                .output_tokens
                .unwrap_or(output_chars as u64 / 4 + 1),
        };
        ModelResponse {
            message: Message::Assistant {
                content: self.content.clone(),
                tool_calls,
            },
            finish,
            raw_finish_reason: Some(finish_str(finish).to_owned()),
            usage: Some(usage),
            streamed: false,
            truncated: false,
        }
    }
}

fn finish_str(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Stop => "stop",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::Length => "length",
        FinishReason::Other => "other",
    }
}

fn message_chars(message: &Message) -> usize {
    match message {
        Message::System { content } | Message::User { content } => content.chars().count(),
        Message::Tool { content, .. } => content.chars().count(),
        Message::Assistant {
            content,
            tool_calls,
        } => {
            content.as_deref().map_or(0, |c| c.chars().count())
                + tool_calls.iter().map(call_chars).sum::<usize>()
        }
    }
}

fn call_chars(call: &ToolCallRequest) -> usize {
    call.name.chars().count() + call.arguments.to_string().chars().count()
}

// ---- the script as written ----

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScript {
    responses: Option<Vec<RawReply>>,
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    repeat_last: bool,
    #[serde(default)]
    seed: u64,
}

impl RawScript {
    /// A bare list: short for `responses:`.
    fn list(responses: Vec<RawReply>) -> Self {
        Self {
            responses: Some(responses),
            ..Self::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    when: Option<When>,
    respond: Option<RawReply>,
    one_of: Option<Vec<RawReply>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReply {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<CallSpec>,
    usage: Option<UsageSpec>,
    finish_reason: Option<FinishReason>,
    error: Option<ErrorSpec>,
    malformed: Option<String>,
    times: Option<u32>,
    then: Option<Box<RawReply>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallSpec {
    name: String,
    #[serde(default = "empty_object")]
    arguments: Value,
    id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageSpec {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorSpec {
    status: u16,
    message: Option<String>,
    retry_after_ms: Option<u64>,
}

/// The script's own types read from `script`. The value goes through YAML text so that an
/// error names the entry it is in (`responses[1]: unknown field …`), as it does when the
/// script is read from its file; a `serde_json::Value` would not say where.
fn parse(script: &Value) -> Result<Scripted, String> {
    let raw = match script {
        Value::Array(_) | Value::Object(_) => {
            let text = yaml_serde::to_string(script).map_err(|e| e.to_string())?;
            // The line and column are those of the text made here, of no use to anyone.
            if script.is_array() {
                yaml_serde::from_str(&text)
                    .map(RawScript::list)
                    .map_err(|e| as_responses(&yaml_message(&e)))?
            } else {
                yaml_serde::from_str(&text).map_err(|e| yaml_message(&e))?
            }
        }
        _ => RawScript::default(),
    };
    build(raw, script)
}

/// An error in a bare list names its entry as the `responses:` it is short for: the parser's
/// `.[2]: …` becomes `responses[2]: …`.
fn as_responses(message: &str) -> String {
    match message.strip_prefix(".[") {
        Some(rest) => format!("responses[{rest}"),
        None => message.to_owned(),
    }
}

/// The model of a script read into its own types; `script` is the value it was read from.
fn build(raw: RawScript, script: &Value) -> Result<Scripted, String> {
    if !(script.is_array() || script.is_object()) {
        return Err("the script must be a map (`responses:` or `rules:`) or a list".into());
    }
    let mode = match (raw.responses, raw.rules) {
        (Some(_), Some(_)) => {
            return Err("give `responses` or `rules`, not both".into());
        }
        (None, None) => return Err("the script needs `responses` or `rules`".into()),
        (Some(list), None) => {
            if list.is_empty() {
                return Err("`responses` is empty".into());
            }
            let list = list
                .into_iter()
                .enumerate()
                .map(|(i, raw)| {
                    let at = format!("responses[{i}]");
                    let reply = parse_reply(raw, &at, true)?;
                    if reply.times.is_some() && reply.then.is_none() {
                        return Err(format!(
                            "{at}: `times` needs `then` here (the response served after the \
                             failures); only rules fall through to the next entry"
                        ));
                    }
                    Ok(reply)
                })
                .collect::<Result<_, String>>()?;
            Mode::Responses {
                list,
                repeat_last: raw.repeat_last,
            }
        }
        (None, Some(rules)) => {
            if rules.is_empty() {
                return Err("`rules` is empty".into());
            }
            if raw.repeat_last {
                return Err("`repeat_last` goes with `responses`, not `rules`".into());
            }
            let rules = rules
                .into_iter()
                .enumerate()
                .map(|(i, raw)| parse_rule(raw, i))
                .collect::<Result<_, String>>()?;
            Mode::Rules(rules)
        }
    };
    Ok(Scripted {
        mode,
        seed: raw.seed,
        failures: HashMap::new(),
    })
}

fn parse_rule(raw: RawRule, i: usize) -> Result<Rule, String> {
    let at = format!("rules[{i}]");
    let when = raw.when.unwrap_or_default();
    let choice = match (raw.respond, raw.one_of) {
        (Some(r), None) => Choice::One(parse_reply(r, &format!("{at}.respond"), true)?),
        (None, Some(options)) => {
            if options.is_empty() {
                return Err(format!("{at}.one_of is empty"));
            }
            Choice::OneOf(
                options
                    .into_iter()
                    .enumerate()
                    .map(|(j, o)| parse_reply(o, &format!("{at}.one_of[{j}]"), true))
                    .collect::<Result<_, _>>()?,
            )
        }
        (Some(_), Some(_)) => return Err(format!("{at}: give `respond` or `one_of`, not both")),
        (None, None) => return Err(format!("{at}: needs `respond` or `one_of`")),
    };
    Ok(Rule { when, choice })
}

fn parse_reply(raw: RawReply, at: &str, may_repeat: bool) -> Result<Reply, String> {
    let answers = raw.content.is_some()
        || !raw.tool_calls.is_empty()
        || raw.usage.is_some()
        || raw.finish_reason.is_some();
    let fail = match (raw.error, raw.malformed) {
        (Some(_), Some(_)) => return Err(format!("{at}: give `error` or `malformed`, not both")),
        (Some(e), None) => {
            if !(100..=599).contains(&e.status) {
                return Err(format!(
                    "{at}.error.status: {} is not an HTTP status",
                    e.status
                ));
            }
            Some(ModelError::Status {
                status: e.status,
                message: e
                    .message
                    .unwrap_or_else(|| format!("scripted error {}", e.status)),
                retry_after: e.retry_after_ms.map(Duration::from_millis),
            })
        }
        (None, Some(text)) => Some(ModelError::Malformed(text)),
        (None, None) => None,
    };
    if let Some((i, _)) = raw
        .tool_calls
        .iter()
        .enumerate()
        .find(|(_, c)| c.name.trim().is_empty())
    {
        return Err(format!("{at}.tool_calls[{i}]: `name` is empty"));
    }
    let outcome = match fail {
        Some(_) if answers => {
            return Err(format!(
                "{at}: `error`/`malformed` do not go with `content`, `tool_calls`, `usage` or \
                 `finish_reason` (put the answer in `then`)"
            ));
        }
        Some(error) => Outcome::Fail(error),
        None if !answers => {
            return Err(format!(
                "{at}: a response needs `content`, `tool_calls`, `error` or `malformed`"
            ));
        }
        None => Outcome::Answer(Answer {
            content: raw.content,
            tool_calls: raw.tool_calls,
            usage: raw.usage.unwrap_or_default(),
            finish: raw.finish_reason,
        }),
    };
    let failing = matches!(outcome, Outcome::Fail(_));
    let repeats = raw.times.is_some() || raw.then.is_some();
    if repeats && !may_repeat {
        return Err(format!(
            "{at}: `times` and `then` cannot be nested inside `then`"
        ));
    }
    if repeats && !failing {
        return Err(format!(
            "{at}: `times` and `then` go with `error` or `malformed`"
        ));
    }
    if raw.then.is_some() && raw.times.is_none() {
        return Err(format!(
            "{at}: `then` needs `times` (without it the failure repeats on every attempt)"
        ));
    }
    if raw.times == Some(0) {
        return Err(format!("{at}.times: must be at least 1"));
    }
    let then = match raw.then {
        Some(then) => Some(Box::new(parse_reply(*then, &format!("{at}.then"), false)?)),
        None => None,
    };
    Ok(Reply {
        outcome,
        times: raw.times,
        then,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference() {
        // First outputs of the reference generator seeded with 0 (state advanced each call).
        let mut state = 0u64;
        let mut next = || {
            let out = splitmix64(state);
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            out
        };
        assert_eq!(next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(next(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn pick_spreads_over_the_options() {
        let mut seen = [0usize; 3];
        for step in 1..=300 {
            seen[pick(7, step, 2, 3)] += 1;
        }
        assert!(seen.iter().all(|n| *n > 60), "{seen:?}");
    }
}
