//! The agent version: [`AgentConfig`], read from YAML or JSON with every field's default, and
//! its [`fingerprint`](LoadedConfig::fingerprint).
//!
//! Paths in a config (prompt file, script, tool commands, approvals and kill-switch files) are
//! relative to the config file's folder, so a config works from any working directory.
//!
//! Every number is checked against its range (the [`Bounds`] constants, written once in `bounds.rs`)
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

mod bounds;
mod load;

use bounds::checked;
pub use bounds::*;
pub use load::*;

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
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "checked::pricing"
    )]
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

/// A model's price: the one `tapedeck-wire` defines (the proxy's `--pricing` file uses it
/// too); as `pricing` reads it, its numbers are checked against [`INPUT_PER_MTOK`] and
/// [`OUTPUT_PER_MTOK`].
pub use tapedeck_wire::Price;

/// Prices by model, read with the checks of an agent's `pricing` (for `record --pricing FILE`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct CheckedPricing(
    /// The prices.
    #[serde(deserialize_with = "checked::pricing")]
    pub BTreeMap<String, Price>,
);

/// Monitoring figures `track` may name.
pub const TRACKABLE: [&str; 6] = [
    "tool_calls_per_run",
    "tokens_per_request",
    "stop_reason",
    "latency_p50",
    "latency_p95",
    "cost",
];

#[cfg(test)]
mod tests {
    use super::load::with_suggestion;
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
