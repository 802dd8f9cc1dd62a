//! The agent version: [`AgentConfig`], read from YAML or JSON with every field's default, and
//! its [`fingerprint`](LoadedConfig::fingerprint).
//!
//! Paths in a config (prompt file, script, tool commands, approvals and kill-switch files) are
//! relative to the config file's folder, so a config works from any working directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The most tokens one answer may have.
    #[serde(default = "default_max_output_tokens")]
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
    /// How long the call pretends to take, in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
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
    /// How long one call may take.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// What one call costs, counted against `max_usd`.
    #[serde(default)]
    pub cost_usd: f64,
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
    /// Model calls.
    #[serde(default = "default_max_steps")]
    pub max_steps: Option<u64>,
    /// Wall-clock seconds, also the deadline of every model and tool call.
    #[serde(default = "default_max_seconds")]
    pub max_seconds: Option<f64>,
    /// Tool calls.
    #[serde(default = "default_max_tool_calls")]
    pub max_tool_calls: Option<u64>,
    /// US dollars: model tokens at `pricing`, plus tools' `cost_usd`.
    #[serde(default)]
    pub max_usd: Option<f64>,
    /// Input plus output tokens over the run.
    #[serde(default)]
    pub max_tokens: Option<u64>,
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
    /// An identical read call inside this many seconds reuses the first result.
    #[serde(default = "default_read_window_s")]
    pub read_window_s: f64,
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
    /// US dollars per million input tokens.
    pub input_per_mtok: f64,
    /// US dollars per million output tokens.
    pub output_per_mtok: f64,
}

impl Price {
    /// The cost of one call.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok)
            / 1e6
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
            if def.timeout_s.is_nan() || def.timeout_s <= 0.0 {
                return Err(invalid(format!(
                    "tool `{}`: timeout_s must be above 0",
                    def.name
                )));
            }
            if def.cost_usd < 0.0 {
                return Err(invalid(format!(
                    "tool `{}`: cost_usd must not be negative",
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
                Some(parse_document::<Value>(&text, &file)?)
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
        message: with_suggestion(&message),
    })
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

    #[test]
    fn suggestion_names_the_nearest_field() {
        let m =
            with_suggestion("unknown field `budgts`, expected one of `name`, `budgets`, `tools`");
        assert!(m.contains("did you mean `budgets`?"), "{m}");
        let m = with_suggestion("unknown field `zzzzzzzz`, expected one of `name`, `budgets`");
        assert!(!m.contains("did you mean"), "{m}");
    }
}
