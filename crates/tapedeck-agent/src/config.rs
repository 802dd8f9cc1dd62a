//! The agent version: [`AgentConfig`], read from YAML or JSON with every field's default, and
//! its [`fingerprint`](LoadedConfig::fingerprint).
//!
//! Paths in a config (prompt file, script, tool commands, approvals and kill-switch files) are
//! relative to the config file's folder, so a config works from any working directory.
//!
//! Every number is checked against its range (the [`Bounds`] constants, written once here)
//! while it is parsed, so whatever reads an agent version — `config check`, `run`, `golden`,
//! `replay --agent`, a recorded run's config — refuses the same values, with the value's
//! file:line:column; and the durations made from them ([`Budgets::max_duration`],
//! [`ToolDef::timeout`], [`DedupeConfig::read_window`]) cannot panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tapedeck_trace::hash_json;

use crate::AgentError;

/// One agent version, as written in its YAML (or JSON) file, defaults filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's name.
    #[serde(default = "default_name")]
    pub name: String,
    /// The model it talks to; `run` needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelConfig>,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// A file holding the system prompt (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt_file: Option<PathBuf>,
    /// The tools: which are allowed and how each is defined.
    #[serde(default)]
    pub tools: ToolsConfig,
    /// Limits that stop the run.
    #[serde(default)]
    pub budgets: Budgets,
    /// Approval of write tools.
    #[serde(default)]
    pub writes: WritesConfig,
    /// The kill switch.
    #[serde(default)]
    pub kill_switch: KillSwitchConfig,
    /// Disabling tools that keep failing.
    #[serde(default)]
    pub degrade: DegradeConfig,
    /// Reusing identical read calls.
    #[serde(default)]
    pub dedupe: DedupeConfig,
    /// What a tool error does.
    #[serde(default)]
    pub on_tool_error: OnToolError,
    /// What an output that fails its schema does.
    #[serde(default)]
    pub on_invalid_output: OnInvalidOutput,
    /// Which figures `stats` tracks.
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// Prices per model, in US dollars per million tokens.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pricing: BTreeMap<String, Price>,
}

impl AgentConfig {
    /// A config as a run recorded it (in `run_started`), read back for a replay: as it was,
    /// without the range checks a config file gets, so a run recorded before a range existed
    /// still replays.
    pub fn from_recorded(value: Value) -> Result<Self, serde_json::Error> {
        checked::unchecked(|| serde_json::from_value(value))
    }
}

fn default_name() -> String {
    "agent".to_owned()
}

/// Which model backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI-compatible Chat Completions.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Responses from a script file: deterministic, no network.
    Scripted,
}

impl Provider {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Scripted => "scripted",
        }
    }
}

/// The model an agent talks to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `openai`, `anthropic` or `scripted`.
    pub provider: Provider,
    /// The model name (the key of its price in `pricing`).
    pub name: String,
    /// The API's base URL; default: the provider's public one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable holding the API key (the key itself is never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Sampling temperature ([`TEMPERATURE`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "checked::temperature"
    )]
    pub temperature: Option<f64>,
    /// The most tokens one answer may have ([`MAX_OUTPUT_TOKENS`]).
    #[serde(
        default = "default_max_output_tokens",
        deserialize_with = "checked::max_output_tokens"
    )]
    pub max_output_tokens: u64,
    /// Ask for the answer as a stream (server-sent events) instead of one body.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// The script of a `scripted` model (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<PathBuf>,
}

fn default_max_output_tokens() -> u64 {
    1024
}

impl ModelConfig {
    /// The base URL, or the provider's public default.
    ///
    /// Without `base_url`, the variable the provider's own SDKs read (`OPENAI_BASE_URL`,
    /// `ANTHROPIC_BASE_URL`) if set, so `tapedeck record -- tapedeck run …` records through the
    /// proxy like any other client; else the provider's public URL.
    pub fn base_url(&self) -> String {
        let from_env = |var: &str, default: &str| {
            std::env::var(var)
                .ok()
                .filter(|url| !url.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let url = match (&self.base_url, self.provider) {
            (Some(url), _) => url.clone(),
            (None, Provider::Openai) => from_env("OPENAI_BASE_URL", "https://api.openai.com/v1"),
            (None, Provider::Anthropic) => {
                from_env("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
            }
            (None, Provider::Scripted) => String::new(),
        };
        url.trim_end_matches('/').to_owned()
    }

    /// The environment variable of the API key, or the provider's usual one.
    pub fn api_key_env(&self) -> Option<String> {
        match (&self.api_key_env, self.provider) {
            (Some(var), _) => Some(var.clone()),
            (None, Provider::Openai) => Some("OPENAI_API_KEY".to_owned()),
            (None, Provider::Anthropic) => Some("ANTHROPIC_API_KEY".to_owned()),
            (None, Provider::Scripted) => None,
        }
    }
}

/// The tool section: the allowlist and the definitions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// Tools the agent may call; everything else is denied.
    #[serde(default)]
    pub allow: Vec<String>,
    /// How each tool is defined.
    #[serde(default)]
    pub defs: Vec<ToolDef>,
}

/// What a tool does to the world, which decides the guardrails it goes through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// Reads only; identical calls may be deduplicated.
    #[default]
    Read,
    /// Changes something; needs approval and an idempotency key.
    Write,
    /// Costs money or load; the kill switch can disable it.
    Expensive,
}

impl ToolKind {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Expensive => "expensive",
        }
    }
}

/// Tools built into tapedeck.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Builtin {
    /// HTTP GET, limited to `allow_hosts`.
    #[serde(rename = "http.get")]
    HttpGet,
    /// Canned answers from the config's `mock` list: deterministic tools for demos, golden
    /// suites and tests, with no process and no network.
    #[serde(rename = "mock")]
    Mock,
}

/// One canned answer of a `builtin: mock` tool; the first whose `args` match wins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockAnswer {
    /// Answer only calls whose arguments contain these keys and values (all calls if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// The output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Or an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the call pretends to take, in milliseconds ([`LATENCY_MS`]).
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "checked::latency_ms"
    )]
    pub latency_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One tool definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDef {
    /// The name the model calls it by.
    pub name: String,
    /// read, write or expensive.
    #[serde(default)]
    pub kind: ToolKind,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// JSON Schema of its arguments, checked before the call.
    #[serde(default = "any_object", skip_serializing_if = "is_any_object")]
    pub input_schema: Value,
    /// JSON Schema of its output, checked after the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// A subprocess: JSON arguments on stdin, a JSON result on stdout (run in the config's
    /// folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A tool built into tapedeck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Builtin>,
    /// Hosts `http.get` may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_hosts: Vec<String>,
    /// The answers of a `builtin: mock` tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mock: Vec<MockAnswer>,
    /// How long one call may take, in seconds ([`TIMEOUT_S`]).
    #[serde(default = "default_timeout_s", deserialize_with = "checked::timeout_s")]
    pub timeout_s: f64,
    /// What one call costs, counted against `max_usd` ([`COST_USD`]).
    #[serde(default, deserialize_with = "checked::cost_usd")]
    pub cost_usd: f64,
}

impl ToolDef {
    /// `timeout_s` as a duration. Parsing keeps it in [`TIMEOUT_S`]; a value set in code
    /// outside that range is brought into it rather than panicking.
    pub fn timeout(&self) -> Duration {
        TIMEOUT_S.duration(self.timeout_s)
    }
}

fn any_object() -> Value {
    serde_json::json!({"type": "object"})
}

fn is_any_object(v: &Value) -> bool {
    *v == any_object()
}

fn default_timeout_s() -> f64 {
    10.0
}

/// Limits that stop a run, fail closed. `null` means no limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Model calls ([`MAX_STEPS`]).
    #[serde(default = "default_max_steps", deserialize_with = "checked::max_steps")]
    pub max_steps: Option<u64>,
    /// Wall-clock seconds, also the deadline of every model and tool call ([`MAX_SECONDS`]).
    #[serde(
        default = "default_max_seconds",
        deserialize_with = "checked::max_seconds"
    )]
    pub max_seconds: Option<f64>,
    /// Tool calls ([`MAX_TOOL_CALLS`]).
    #[serde(
        default = "default_max_tool_calls",
        deserialize_with = "checked::max_tool_calls"
    )]
    pub max_tool_calls: Option<u64>,
    /// US dollars: model tokens at `pricing`, plus tools' `cost_usd` ([`MAX_USD`]).
    #[serde(default, deserialize_with = "checked::max_usd")]
    pub max_usd: Option<f64>,
    /// Input plus output tokens over the run ([`MAX_TOKENS`]).
    #[serde(default, deserialize_with = "checked::max_tokens")]
    pub max_tokens: Option<u64>,
}

impl Budgets {
    /// `max_seconds` as a duration (`None`: no limit). Parsing keeps it in [`MAX_SECONDS`]; a
    /// value set in code outside that range is brought into it rather than panicking.
    pub fn max_duration(&self) -> Option<Duration> {
        self.max_seconds.map(|s| MAX_SECONDS.duration(s))
    }
}

fn default_max_steps() -> Option<u64> {
    Some(30)
}
fn default_max_seconds() -> Option<f64> {
    Some(90.0)
}
fn default_max_tool_calls() -> Option<u64> {
    Some(15)
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            max_steps: default_max_steps(),
            max_seconds: default_max_seconds(),
            max_tool_calls: default_max_tool_calls(),
            max_usd: None,
            max_tokens: None,
        }
    }
}

/// Approval of write tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritesConfig {
    /// Whether a write tool needs approval before it runs.
    #[serde(default = "yes")]
    pub require_approval: bool,
    /// Answers to approval requests (relative to the config file). Without one, and with no
    /// terminal to ask on, every write is denied.
    #[serde(default)]
    pub approvals_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl Default for WritesConfig {
    fn default() -> Self {
        Self {
            require_approval: true,
            approvals_file: None,
        }
    }
}

/// What the kill switch does when on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillSwitchMode {
    /// Write tools are refused.
    #[default]
    DisableWrites,
    /// Expensive tools are refused.
    DisableExpensive,
    /// The run stops.
    Stop,
}

/// The kill switch: on when `enabled`, or while `file` exists (checked before every tool call,
/// so it can be flipped while an agent runs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchConfig {
    /// On from the start.
    #[serde(default)]
    pub enabled: bool,
    /// What it does when on.
    #[serde(default)]
    pub mode_when_enabled: KillSwitchMode,
    /// While this file exists, the switch is on.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// Degrade mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradeConfig {
    /// A tool that failed this many times in a run is disabled for the rest of it (0: never).
    #[serde(default = "default_after_errors")]
    pub after_errors: u64,
    /// Tools disabled from the start.
    #[serde(default)]
    pub disable: Vec<String>,
}

fn default_after_errors() -> u64 {
    3
}

impl Default for DegradeConfig {
    fn default() -> Self {
        Self {
            after_errors: default_after_errors(),
            disable: Vec::new(),
        }
    }
}

/// Reuse of identical read calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// An identical read call inside this many seconds reuses the first result (0: never;
    /// [`READ_WINDOW_S`]).
    #[serde(
        default = "default_read_window_s",
        deserialize_with = "checked::read_window_s"
    )]
    pub read_window_s: f64,
}

impl DedupeConfig {
    /// `read_window_s` as a duration. Parsing keeps it in [`READ_WINDOW_S`]; a value set in
    /// code outside that range is brought into it rather than panicking.
    pub fn read_window(&self) -> Duration {
        READ_WINDOW_S.duration(self.read_window_s)
    }
}

fn default_read_window_s() -> f64 {
    60.0
}

impl Default for DedupeConfig {
    fn default() -> Self {
        Self {
            read_window_s: default_read_window_s(),
        }
    }
}

/// What a failed tool call does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnToolError {
    /// The error goes back to the model as the observation.
    #[default]
    FeedBack,
    /// The run stops with `tool_error:<tool>`.
    Stop,
}

/// What an output failing its schema does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalidOutput {
    /// The run stops with `invalid_tool_output:<tool>`.
    #[default]
    Stop,
    /// The validation error goes back to the model.
    FeedBack,
}

/// Which monitoring figures are tracked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Figure names.
    #[serde(default = "default_track")]
    pub track: Vec<String>,
}

fn default_track() -> Vec<String> {
    [
        "tool_calls_per_run",
        "tokens_per_request",
        "stop_reason",
        "latency_p95",
    ]
    .map(str::to_owned)
    .to_vec()
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            track: default_track(),
        }
    }
}

/// A model's price.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// US dollars per million input tokens ([`INPUT_PER_MTOK`]).
    #[serde(deserialize_with = "checked::input_per_mtok")]
    pub input_per_mtok: f64,
    /// US dollars per million output tokens ([`OUTPUT_PER_MTOK`]).
    #[serde(deserialize_with = "checked::output_per_mtok")]
    pub output_per_mtok: f64,
}

impl Price {
    /// The cost of one call.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok)
            / 1e6
    }
}

// ---- the ranges of numbers ----

/// One year, in seconds: the longest `budgets.max_seconds` and `dedupe.read_window_s`.
pub const ONE_YEAR_S: f64 = 31_536_000.0;

/// One day, in seconds: the longest tool `timeout_s`.
pub const ONE_DAY_S: f64 = 86_400.0;

/// Where one number of an agent version may lie. Every bound is written once, below; the
/// parser checks it as it reads the value (so `config check`, `run`, `golden` and
/// `replay --agent` refuse the same values, with file:line:column), and the error quotes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// The field, as the error names it (the YAML parser puts the path before it).
    pub field: &'static str,
    /// What the value must be: `a finite number of seconds`, `a whole number`.
    pub what: &'static str,
    /// The range in words, after `what`: `in 0 < x <= 31536000 (one year)`.
    pub range: &'static str,
    /// The smallest value.
    pub min: f64,
    /// Whether `min` itself is allowed.
    pub min_inclusive: bool,
    /// The largest value allowed (`f64::MAX` for no limit but finiteness).
    pub max: f64,
    /// Whole numbers only (a `u64` field).
    pub whole: bool,
}

impl Bounds {
    /// A finite number in `min..=max` (`min` excluded unless `min_inclusive`).
    const fn real(
        field: &'static str,
        what: &'static str,
        range: &'static str,
        (min, min_inclusive): (f64, bool),
        max: f64,
    ) -> Self {
        Self {
            field,
            what,
            range,
            min,
            min_inclusive,
            max,
            whole: false,
        }
    }

    /// A whole number of at least `min`.
    const fn whole(field: &'static str, min: u64, range: &'static str) -> Self {
        Self {
            field,
            what: "a whole number",
            range,
            min: min as f64,
            min_inclusive: true,
            max: f64::MAX,
            whole: true,
        }
    }

    /// Whether `x` is allowed.
    pub fn contains(&self, x: f64) -> bool {
        let above_min = if self.min_inclusive {
            x >= self.min
        } else {
            x > self.min
        };
        // A whole number must also fit a u64 (2^64 and above would saturate).
        let whole = x.fract() == 0.0 && x < 18_446_744_073_709_551_616.0;
        x.is_finite() && above_min && x <= self.max && (!self.whole || whole)
    }

    /// The error for a value out of range: `max_seconds must be … in 0 < x <= …, got 1e300`.
    fn refusal(&self, got: &str) -> String {
        format!(
            "{} must be {} {}, got {got}",
            self.field, self.what, self.range
        )
    }

    /// Seconds as a duration that cannot panic: a value outside the range (possible only in
    /// a config built in code) is brought into it first.
    fn duration(&self, seconds: f64) -> Duration {
        let seconds = if seconds.is_nan() {
            self.min
        } else {
            seconds.clamp(self.min, self.max)
        };
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO)
    }
}

/// `budgets.max_steps`: 0 would stop every run before its first step.
pub const MAX_STEPS: Bounds = Bounds::whole("max_steps", 1, ">= 1");
/// `budgets.max_tool_calls`: 0 is allowed, an agent that may answer but call no tool.
pub const MAX_TOOL_CALLS: Bounds = Bounds::whole("max_tool_calls", 0, ">= 0");
/// `budgets.max_tokens`: 0 would stop every run before its first step.
pub const MAX_TOKENS: Bounds = Bounds::whole("max_tokens", 1, ">= 1");
/// `budgets.max_seconds`: the run's deadline, at most a year away.
pub const MAX_SECONDS: Bounds = Bounds::real(
    "max_seconds",
    "a finite number of seconds",
    "in 0 < x <= 31536000 (one year)",
    (0.0, false),
    ONE_YEAR_S,
);
/// `budgets.max_usd`: 0 would stop every run before its first step (the budget is spent when
/// the cost so far reaches it).
pub const MAX_USD: Bounds = Bounds::real(
    "max_usd",
    "a finite number of US dollars",
    "> 0",
    (0.0, false),
    f64::MAX,
);
/// A tool's `timeout_s`: at most a day.
pub const TIMEOUT_S: Bounds = Bounds::real(
    "timeout_s",
    "a finite number of seconds",
    "in 0 < x <= 86400 (one day)",
    (0.0, false),
    ONE_DAY_S,
);
/// A tool's `cost_usd`: at most a million dollars a call (larger is a typo, and would make
/// run totals overflow to infinity, which JSON cannot hold).
pub const COST_USD: Bounds = Bounds::real(
    "cost_usd",
    "a finite number of US dollars",
    "in 0 <= x <= 1000000",
    (0.0, true),
    1_000_000.0,
);
/// A mock answer's `latency_ms`: at most a day.
pub const LATENCY_MS: Bounds = Bounds {
    max: ONE_DAY_S * 1000.0,
    ..Bounds::whole("latency_ms", 0, "in 0 <= x <= 86400000 (one day)")
};
/// `dedupe.read_window_s`: 0 turns deduplication off; at most a year.
pub const READ_WINDOW_S: Bounds = Bounds::real(
    "read_window_s",
    "a finite number of seconds",
    "in 0 <= x <= 31536000 (one year)",
    (0.0, true),
    ONE_YEAR_S,
);
/// A price's `input_per_mtok` (the agent's `pricing`, and `record --pricing FILE`): at most a
/// million dollars per million tokens, for the same reason.
pub const INPUT_PER_MTOK: Bounds = Bounds::real(
    "input_per_mtok",
    "a finite number of US dollars per million tokens",
    "in 0 <= x <= 1000000",
    (0.0, true),
    1_000_000.0,
);
/// A price's `output_per_mtok`.
pub const OUTPUT_PER_MTOK: Bounds = Bounds {
    field: "output_per_mtok",
    ..INPUT_PER_MTOK
};
/// `model.temperature`: the widest range a provider accepts (OpenAI 0 to 2; Anthropic 0 to 1,
/// which its API enforces itself).
pub const TEMPERATURE: Bounds = Bounds::real(
    "temperature",
    "a finite number",
    "in 0 <= x <= 2",
    (0.0, true),
    2.0,
);
/// `model.max_output_tokens`.
pub const MAX_OUTPUT_TOKENS: Bounds = Bounds::whole("max_output_tokens", 1, ">= 1");

/// The deserializers of the numbers above: each checks its value where the parser reads it,
/// so the error carries the value's own file:line:column (and, in YAML, its path).
mod checked {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::Deserializer;
    use serde::de::{self, Visitor};

    use super::*;

    /// What a checked value becomes: `f64` or `u64`.
    trait FromChecked: Sized {
        fn from_checked(x: f64, whole: Option<u64>) -> Self;
    }

    impl FromChecked for f64 {
        fn from_checked(x: f64, _: Option<u64>) -> Self {
            x
        }
    }

    impl FromChecked for u64 {
        fn from_checked(x: f64, whole: Option<u64>) -> Self {
            // A whole value is checked to be a whole number >= 0 and below 2^64 first.
            whole.unwrap_or(x as u64)
        }
    }

    std::thread_local! {
        /// Set while a config recorded in a run is read back ([`AgentConfig::from_recorded`]):
        /// a run recorded before a range existed must still replay, so its numbers are taken
        /// as they are (every use of them is safe for any value: durations are clamped).
        static RECORDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Reads a recorded config with the range checks off (see [`RECORDED`]).
    pub(super) fn unchecked<T>(read: impl FnOnce() -> T) -> T {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                RECORDED.with(|r| r.set(false));
            }
        }
        RECORDED.with(|r| r.set(true));
        let _reset = Reset;
        read()
    }

    fn checking() -> bool {
        !RECORDED.with(std::cell::Cell::get)
    }

    /// Reads one number and checks it against `bounds`.
    struct Checked<T>(&'static Bounds, PhantomData<T>);

    impl<T: FromChecked> Checked<T> {
        fn check<E: de::Error>(&self, x: f64, shown: &dyn fmt::Display) -> Result<T, E> {
            if self.0.contains(x) || !checking() {
                Ok(T::from_checked(x, None))
            } else {
                Err(E::custom(self.0.refusal(&shown.to_string())))
            }
        }
    }

    impl<'de, T: FromChecked> Visitor<'de> for Checked<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "{} {}", self.0.what, self.0.range)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            // A u64 keeps every digit; its f64 is only for the range check.
            let x = v as f64;
            if self.0.contains(x) || !checking() {
                Ok(T::from_checked(x, Some(v)))
            } else {
                Err(E::custom(self.0.refusal(&v.to_string())))
            }
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => self.check(v as f64, &v),
            }
        }

        fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(self.0.refusal(&v.to_string()))),
            }
        }

        fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
            match i64::try_from(v) {
                Ok(v) => self.visit_i64(v),
                Err(_) => Err(E::custom(self.0.refusal(&v.to_string()))),
            }
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            // 3.0 for a whole field is 3; 2^64 and above do not fit.
            if self.0.whole && v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v)
            {
                return self.visit_u64(v as u64);
            }
            self.check(v, &Shown(v))
        }
    }

    /// An optional number: `null` (or nothing) is `None`.
    struct Optional<T>(&'static Bounds, PhantomData<T>);

    impl<'de, T: FromChecked> Visitor<'de> for Optional<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "null or {} {}", self.0.what, self.0.range)
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            d.deserialize_any(Checked(self.0, PhantomData)).map(Some)
        }
    }

    fn one<'de, D: Deserializer<'de>, T: FromChecked>(
        d: D,
        bounds: &'static Bounds,
    ) -> Result<T, D::Error> {
        d.deserialize_any(Checked(bounds, PhantomData))
    }

    fn optional<'de, D: Deserializer<'de>, T: FromChecked>(
        d: D,
        bounds: &'static Bounds,
    ) -> Result<Option<T>, D::Error> {
        d.deserialize_option(Optional(bounds, PhantomData))
    }

    /// A float as YAML would write it: `1e300`, `-5`, `0.5`, `.nan`, `.inf`.
    struct Shown(f64);

    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            let x = self.0;
            if x.is_nan() {
                f.write_str(".nan")
            } else if x.is_infinite() {
                f.write_str(if x > 0.0 { ".inf" } else { "-.inf" })
            } else if x.fract() == 0.0 && x.abs() < 1e16 {
                write!(f, "{x:.0}")
            } else {
                write!(f, "{x:?}")
            }
        }
    }

    pub(super) fn max_steps<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        optional(d, &MAX_STEPS)
    }
    pub(super) fn max_tool_calls<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        optional(d, &MAX_TOOL_CALLS)
    }
    pub(super) fn max_tokens<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        optional(d, &MAX_TOKENS)
    }
    pub(super) fn max_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        optional(d, &MAX_SECONDS)
    }
    pub(super) fn max_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        optional(d, &MAX_USD)
    }
    pub(super) fn timeout_s<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &TIMEOUT_S)
    }
    pub(super) fn cost_usd<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &COST_USD)
    }
    pub(super) fn latency_ms<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        one(d, &LATENCY_MS)
    }
    pub(super) fn read_window_s<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &READ_WINDOW_S)
    }
    pub(super) fn input_per_mtok<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &INPUT_PER_MTOK)
    }
    pub(super) fn output_per_mtok<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        one(d, &OUTPUT_PER_MTOK)
    }
    pub(super) fn temperature<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        optional(d, &TEMPERATURE)
    }
    pub(super) fn max_output_tokens<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        one(d, &MAX_OUTPUT_TOKENS)
    }
}

/// Monitoring figures `track` may name.
pub const TRACKABLE: [&str; 6] = [
    "tool_calls_per_run",
    "tokens_per_request",
    "stop_reason",
    "latency_p50",
    "latency_p95",
    "cost",
];

/// A config read from a file, with what its fingerprint covers resolved.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// The config as written, defaults filled in.
    pub config: AgentConfig,
    /// The file it came from.
    pub path: PathBuf,
    /// The system prompt (inline or from its file).
    pub system_prompt: Option<String>,
    /// The script of a scripted model, parsed.
    pub script: Option<Value>,
    /// Things that are allowed but probably wrong.
    pub warnings: Vec<String>,
}

impl LoadedConfig {
    /// Reads, checks and resolves a config file.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let config = parse_config(&text, path)?;
        Self::resolve(config, path)
    }

    fn resolve(config: AgentConfig, path: &Path) -> Result<Self, AgentError> {
        let invalid = |message: String| AgentError::InvalidConfig {
            path: path.to_path_buf(),
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let system_prompt = match (&config.system_prompt, &config.system_prompt_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "set `system_prompt` or `system_prompt_file`, not both".to_owned(),
                ));
            }
            (Some(prompt), None) => Some(prompt.clone()),
            (None, Some(file)) => {
                let file = base.join(file);
                Some(std::fs::read_to_string(&file).map_err(|e| {
                    invalid(format!(
                        "cannot read system_prompt_file `{}`: {e}",
                        file.display()
                    ))
                })?)
            }
            (None, None) => None,
        };
        let mut warnings = Vec::new();
        let mut names = std::collections::HashSet::new();
        for def in &config.tools.defs {
            if !names.insert(def.name.as_str()) {
                return Err(invalid(format!("tool `{}` is defined twice", def.name)));
            }
            match (&def.command, &def.builtin) {
                (Some(_), Some(_)) => {
                    return Err(invalid(format!(
                        "tool `{}` has both `command` and `builtin`; give one",
                        def.name
                    )));
                }
                (Some(cmd), None) if cmd.is_empty() => {
                    return Err(invalid(format!("tool `{}` has an empty `command`", def.name)));
                }
                (None, None) => warnings.push(format!(
                    "tool `{}` has neither `command` nor `builtin`: only an in-process tool registered under that name can serve it",
                    def.name
                )),
                _ => {}
            }
            if def.builtin == Some(Builtin::Mock) {
                if def.mock.is_empty() {
                    return Err(invalid(format!(
                        "tool `{}` is a mock with no `mock` answers",
                        def.name
                    )));
                }
                for (i, answer) in def.mock.iter().enumerate() {
                    if answer.output.is_some() == answer.error.is_some() {
                        return Err(invalid(format!(
                            "tool `{}`: mock answer {} needs exactly one of `output` and `error`",
                            def.name,
                            i + 1
                        )));
                    }
                }
            } else if !def.mock.is_empty() {
                return Err(invalid(format!(
                    "tool `{}` has `mock` answers but is not `builtin: mock`",
                    def.name
                )));
            }
            for (which, schema) in [
                ("input_schema", Some(&def.input_schema)),
                ("output_schema", def.output_schema.as_ref()),
            ] {
                if let Some(schema) = schema {
                    jsonschema::validator_for(schema).map_err(|e| {
                        invalid(format!(
                            "tool `{}`: {which} is not a valid JSON Schema: {e}",
                            def.name
                        ))
                    })?;
                }
            }
        }
        for tool in &config.tools.allow {
            if !names.contains(tool.as_str()) {
                warnings.push(format!(
                    "tool `{tool}` is allowed but not defined under tools.defs: calls to it will be denied"
                ));
            }
        }
        for track in &config.monitoring.track {
            if !TRACKABLE.contains(&track.as_str()) {
                return Err(invalid(format!(
                    "monitoring.track: unknown figure `{track}` (known: {})",
                    TRACKABLE.join(", ")
                )));
            }
        }
        let script = match &config.model {
            Some(model) if model.provider == Provider::Scripted => {
                let Some(script) = &model.script else {
                    return Err(invalid(
                        "a scripted model needs `model.script`, the file of its responses"
                            .to_owned(),
                    ));
                };
                let file = base.join(script);
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    invalid(format!(
                        "cannot read model.script `{}`: {e}",
                        file.display()
                    ))
                })?;
                Some(crate::model::scripted::check_script(&text, &file)?)
            }
            _ => None,
        };

        if let Some(model) = &config.model
            && model.provider != Provider::Scripted
            && !config.pricing.contains_key(&model.name)
        {
            warnings.push(format!(
                "no price for model `{}` under `pricing`: its cost will be unknown and `max_usd` cannot count it",
                model.name
            ));
        }
        Ok(Self {
            config,
            path: path.to_path_buf(),
            system_prompt,
            script,
            warnings,
        })
    }

    /// The approvals file `writes.approvals_file` names, read and checked (`None` without
    /// one). Not part of the agent version: a replay answers from the recording and needs no
    /// file, so loading a config does not read it; `config check` and `run` do, so that a
    /// missing or malformed file is found before anything runs.
    pub fn approvals(&self) -> Result<Option<crate::approvals::Approvals>, AgentError> {
        self.config
            .writes
            .approvals_file
            .as_ref()
            .map(|file| crate::approvals::Approvals::load(&self.resolve_path(file)))
            .transpose()
    }

    /// The folder relative paths in the config are resolved from.
    pub fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// A path from the config, resolved against its folder.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        self.base_dir().join(path)
    }

    /// The model, or an error saying `run` needs one.
    pub fn model(&self) -> Result<&ModelConfig, AgentError> {
        self.config.model.as_ref().ok_or_else(|| AgentError::InvalidConfig {
            path: self.path.clone(),
            message: "no `model`: a run needs one (provider openai, anthropic or scripted, and a name)".to_owned(),
        })
    }

    /// The definition of a tool.
    pub fn tool(&self, name: &str) -> Option<&ToolDef> {
        self.config.tools.defs.iter().find(|d| d.name == name)
    }

    /// What the fingerprint hashes: the config with the prompt file and the script inlined,
    /// and no path that would make one version look like two.
    pub fn effective(&self) -> Value {
        let mut config = self.config.clone();
        config.system_prompt = self.system_prompt.clone();
        config.system_prompt_file = None;
        let mut value = serde_json::to_value(&config).unwrap_or(Value::Null);
        if let (Some(script), Some(model)) = (&self.script, value.get_mut("model")) {
            model["script"] = script.clone();
        }
        value
    }

    /// The agent version's fingerprint: sha256 of the canonical effective config, in hex.
    pub fn fingerprint(&self) -> String {
        match hash_json(&self.effective()) {
            Ok((hash, _)) => hash.to_string().trim_start_matches("sha256:").to_owned(),
            Err(_) => String::new(),
        }
    }
}

/// Parses a config from text (YAML, or JSON for a `.json` file).
pub fn parse_config(text: &str, path: &Path) -> Result<AgentConfig, AgentError> {
    parse_document(text, path)
}

/// Parses YAML or JSON (by extension) into `T`, with file:line:column and a suggestion for a
/// misspelled field in the error.
pub fn parse_document<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, AgentError> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let (message, line, column) = if is_json {
        match serde_json::from_str(text) {
            Ok(v) => return Ok(v),
            Err(e) => (
                without_location(&e.to_string(), e.line(), e.column()),
                e.line(),
                e.column(),
            ),
        }
    } else {
        match yaml_serde::from_str(text) {
            Ok(v) => return Ok(v),
            Err(e) => {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                (without_location(&e.to_string(), line, column), line, column)
            }
        }
    };
    Err(AgentError::ParseConfig {
        path: path.to_path_buf(),
        line,
        column,
        message: with_suggestion(&with_path(&message)),
    })
}

/// A YAML error's message as tapedeck shows it: without the parser's own location, with the
/// field path joined to a range refusal, and with a suggestion for a misspelled field.
pub(crate) fn yaml_message(e: &yaml_serde::Error) -> String {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    with_suggestion(&with_path(&without_location(&e.to_string(), line, column)))
}

/// Joins the path yaml_serde puts first to the field a range refusal names:
/// "budgets.max_seconds: max_seconds must be …" becomes "budgets.max_seconds must be …".
fn with_path(message: &str) -> String {
    if let Some((path, rest)) = message.split_once(": ")
        && let Some((field, _)) = rest.split_once(" must be ")
        && (path == field || path.ends_with(&format!(".{field}")))
    {
        return format!("{path}{}", &rest[field.len()..]);
    }
    message.to_owned()
}

/// The parser's message without its own " at line L column C" (the error already starts with
/// file:line:column). Only that location goes: another one, such as where the flow mapping an
/// error is inside of was opened, is what points at the real mistake and stays.
fn without_location(message: &str, line: usize, column: usize) -> String {
    let own = format!(" at line {line} column {column}");
    match message.find(&own) {
        Some(at) => format!("{}{}", &message[..at], &message[at + own.len()..]),
        None => message.to_owned(),
    }
}

/// Adds "did you mean `x`?" to serde's "unknown field `y`, expected one of …".
fn with_suggestion(message: &str) -> String {
    // yaml_serde puts the path first: "budgets: unknown field `x`, expected …".
    let Some((path, rest)) = message.split_once("unknown field `") else {
        return message.to_owned();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| (strsim::levenshtein(field, c), *c))
        .min();
    match best {
        Some((d, c)) if d <= field.len().max(3) / 2 + 1 => {
            format!(
                "{path}unknown field `{field}`: did you mean `{c}`? (valid here: {})",
                candidates.join(", ")
            )
        }
        _ => format!(
            "{path}unknown field `{field}` (valid here: {})",
            candidates.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_keep_the_location_of_what_was_left_open() {
        // Only the error's own location was repeated; the last " at line" was cut instead,
        // which dropped where the unclosed `{` was opened.
        let text = "name: bot\nwrites: {approvals_file: a.yaml\nbudgets: {max_steps: 3}\n";
        let err = parse_config(text, Path::new("agent.yaml")).expect_err("invalid YAML");
        let err = err.to_string();
        assert!(err.starts_with("agent.yaml:3:8: "), "{err}");
        assert!(!err.contains("line 3 column 8"), "{err}");
        assert!(err.contains("flow mapping at line 2 column 9"), "{err}");
        let err = parse_config("budgets: {max_steps: x}\n", Path::new("a.yaml"))
            .expect_err("a string is no number")
            .to_string();
        assert!(!err.contains(" at line "), "{err}");
        let err = parse_config("{\"name\": 1}", Path::new("a.json"))
            .expect_err("a number is no name")
            .to_string();
        assert!(err.starts_with("a.json:1:"), "{err}");
        assert!(!err.contains(" at line "), "{err}");
    }

    const ALL_BOUNDS: [&Bounds; 13] = [
        &MAX_STEPS,
        &MAX_TOOL_CALLS,
        &MAX_TOKENS,
        &MAX_SECONDS,
        &MAX_USD,
        &TIMEOUT_S,
        &COST_USD,
        &LATENCY_MS,
        &READ_WINDOW_S,
        &INPUT_PER_MTOK,
        &OUTPUT_PER_MTOK,
        &TEMPERATURE,
        &MAX_OUTPUT_TOKENS,
    ];

    #[test]
    fn every_range_says_what_it_checks() {
        // The words of a range are written by hand next to its numbers: they must agree.
        for b in ALL_BOUNDS {
            let min = if b.min_inclusive {
                format!("{} <= x", b.min)
            } else {
                format!("{} < x", b.min)
            };
            let (min_words, max_words) = if b.max == f64::MAX {
                (
                    format!("{}{}", if b.min_inclusive { ">= " } else { "> " }, b.min),
                    None,
                )
            } else {
                (format!("in {min}"), Some(format!("x <= {}", b.max)))
            };
            assert!(b.range.starts_with(&min_words), "{}: {}", b.field, b.range);
            if let Some(max_words) = max_words {
                assert!(b.range.contains(&max_words), "{}: {}", b.field, b.range);
            }
            assert_eq!(b.contains(b.min), b.min_inclusive, "{}", b.field);
            assert!(b.contains(b.max) || b.max == f64::MAX, "{}", b.field);
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
                assert!(!b.contains(bad), "{}: {bad}", b.field);
            }
        }
    }

    #[test]
    fn durations_built_in_code_never_panic() {
        // Parsing refuses these; a config built in code can still hold them.
        for seconds in [1e300, f64::INFINITY, f64::NAN, -5.0, 1e19] {
            let budgets = Budgets {
                max_seconds: Some(seconds),
                ..Budgets::default()
            };
            assert!(budgets.max_duration().expect("a limit") <= Duration::from_secs(31_536_000));
            let dedupe = DedupeConfig {
                read_window_s: seconds,
            };
            assert!(dedupe.read_window() <= Duration::from_secs(31_536_000));
        }
    }

    #[test]
    fn numbers_are_checked_in_json_and_in_recorded_configs_too() {
        let err = parse_config(
            "{\"budgets\": {\"max_seconds\": 1e300}}",
            Path::new("a.json"),
        )
        .expect_err("out of range")
        .to_string();
        assert!(
            err.starts_with("a.json:1:")
                && err.contains("max_seconds must be a finite number of seconds"),
            "{err}"
        );
        // Whole numbers too large for a u64 are refused, not saturated.
        let err = parse_config("budgets: {max_steps: 1e300}\n", Path::new("a.yaml"))
            .expect_err("too large")
            .to_string();
        assert!(err.contains("max_steps must be"), "{err}");
        // A config read back from a recorded run is read as it was recorded, so a run recorded
        // before a range existed still replays; the check is back on afterwards.
        let recorded = serde_json::json!({
            "tools": {"defs": [{"name": "t", "timeout_s": 172800}]},
            "budgets": {"max_usd": 0}
        });
        let config = AgentConfig::from_recorded(recorded.clone()).expect("read as recorded");
        assert!(config.tools.defs[0].timeout() <= Duration::from_secs(86_400));
        let err = serde_json::from_value::<AgentConfig>(recorded)
            .expect_err("out of range")
            .to_string();
        assert!(err.contains("must be"), "{err}");
        // Whole numbers written as floats are whole numbers; null is no limit.
        let config = parse_config(
            "budgets: {max_steps: 3.0, max_seconds: null, max_tokens: 10000000000000000000}\n",
            Path::new("a.yaml"),
        )
        .expect("valid");
        assert_eq!(config.budgets.max_steps, Some(3));
        assert_eq!(config.budgets.max_seconds, None);
        assert_eq!(config.budgets.max_tokens, Some(10_000_000_000_000_000_000));
    }

    #[test]
    fn suggestion_names_the_nearest_field() {
        let m =
            with_suggestion("unknown field `budgts`, expected one of `name`, `budgets`, `tools`");
        assert!(m.contains("did you mean `budgets`?"), "{m}");
        let m = with_suggestion("unknown field `zzzzzzzz`, expected one of `name`, `budgets`");
        assert!(!m.contains("did you mean"), "{m}");
    }
}
