//! The tool gateway: default-deny. [`Gateway::check`] decides whether a tool call may run —
//! kill switch, allowlist, degrade mode, argument schema, idempotency, approval, read dedupe —
//! and says which rule decided, so every decision becomes a `policy_decision` event.
//!
//! The gateway keeps a run's policy state (errors per tool, disabled tools, earlier results
//! for dedupe and idempotency) but records nothing itself: the runtime does.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tapedeck_trace::{ContentHash, Decision};

use crate::approvals::Approver;
use crate::config::{KillSwitchMode, LoadedConfig, ToolDef, ToolKind};

/// One gateway decision, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Ruling {
    /// The decision.
    pub decision: Decision,
    /// The rule that made it.
    pub rule: String,
    /// A human-readable explanation.
    pub detail: Option<String>,
}

impl Ruling {
    fn new(decision: Decision, rule: impl Into<String>, detail: Option<String>) -> Self {
        Self {
            decision,
            rule: rule.into(),
            detail,
        }
    }
}

/// What the gateway says about a tool call.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Run the tool. `rulings` are the decisions that led here (approval steps included).
    Run {
        /// Decisions to record, the last one `allowed`.
        rulings: Vec<Ruling>,
        /// The idempotency key of a write call.
        key: Option<String>,
    },
    /// Answer with an earlier result of an identical call (dedupe or idempotency).
    Reuse {
        /// The decision to record.
        ruling: Ruling,
        /// The earlier result.
        result: Result<Value, String>,
        /// The blob of the earlier output, when it succeeded.
        output: Option<ContentHash>,
        /// For a write, the idempotency key that matched: the call still carries it, so the
        /// trace shows which write it repeated.
        key: Option<String>,
    },
    /// Do not run it; tell the model why and go on.
    Refuse {
        /// The decision to record.
        ruling: Ruling,
        /// The error the model sees.
        message: String,
    },
    /// Do not run it; the run stops.
    Stop {
        /// Decisions to record.
        rulings: Vec<Ruling>,
        /// Why the run stops.
        reason: tapedeck_trace::StopReason,
    },
}

/// An earlier call's result (and its output blob), served again by dedupe and idempotency.
type Earlier = (Result<Value, String>, Option<ContentHash>);

/// A run's gateway.
pub struct Gateway {
    allow: HashSet<String>,
    kill_switch_enabled: bool,
    kill_switch_mode: KillSwitchMode,
    kill_switch_file: Option<PathBuf>,
    require_approval: bool,
    after_errors: u64,
    read_window: Duration,
    errors: HashMap<String, u64>,
    disabled: HashMap<String, String>,
    reads: HashMap<(String, ContentHash), (Instant, Earlier)>,
    writes: HashMap<String, Earlier>,
    approver: Box<dyn Approver>,
    /// Each tool's schemas, compiled at their first use (not at every call).
    validators: HashMap<(String, SchemaOf), Result<jsonschema::Validator, String>>,
}

/// Which of a tool's schemas.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SchemaOf {
    /// `input_schema`: its arguments.
    Input,
    /// `output_schema`: its output.
    Output,
}

impl Gateway {
    /// The gateway of one run of `config`.
    pub fn new(config: &LoadedConfig, approver: Box<dyn Approver>) -> Self {
        let c = &config.config;
        Self {
            allow: c.tools.allow.iter().cloned().collect(),
            kill_switch_enabled: c.kill_switch.enabled,
            kill_switch_mode: c.kill_switch.mode_when_enabled,
            kill_switch_file: c.kill_switch.file.as_ref().map(|f| config.resolve_path(f)),
            require_approval: c.writes.require_approval,
            after_errors: c.degrade.after_errors,
            read_window: c.dedupe.read_window(),
            errors: HashMap::new(),
            disabled: c
                .degrade
                .disable
                .iter()
                .map(|t| (t.clone(), "degrade.disable".to_owned()))
                .collect(),
            reads: HashMap::new(),
            writes: HashMap::new(),
            approver,
            validators: HashMap::new(),
        }
    }

    /// Validates `value` against `tool`'s schema `which` (`schema`, compiled once a run).
    pub fn validate(
        &mut self,
        tool: &str,
        which: SchemaOf,
        schema: &Value,
        value: &Value,
    ) -> Result<(), String> {
        let key = (tool.to_owned(), which);
        let validator = self
            .validators
            .entry(key)
            .or_insert_with(|| compile(schema));
        match validator {
            Ok(validator) => problems(validator, value),
            Err(e) => Err(e.clone()),
        }
    }

    /// Gives back the approver (the gateway is per run; the approver may serve the next).
    pub fn into_approver(self) -> Box<dyn Approver> {
        self.approver
    }

    /// Whether the kill switch is on now, and which rule turned it on. The file is looked at
    /// on every call, so creating it stops tools while an agent runs.
    fn kill_switch(&self) -> Option<&'static str> {
        if self.kill_switch_enabled {
            return Some("kill_switch.enabled");
        }
        match &self.kill_switch_file {
            Some(file) if file.exists() => Some("kill_switch.file"),
            _ => None,
        }
    }

    /// Decides about a call of `tool` (defined by `def`, if defined) with `args`.
    /// `has_backend` says whether anything can run the tool.
    pub fn check(
        &mut self,
        tool: &str,
        def: Option<&ToolDef>,
        has_backend: bool,
        args: &Value,
        args_hash: ContentHash,
    ) -> Verdict {
        let kind = def.map_or(ToolKind::Read, |d| d.kind);
        if let Some(rule) = self.kill_switch() {
            let blocked = match self.kill_switch_mode {
                KillSwitchMode::Stop => {
                    return Verdict::Stop {
                        rulings: vec![Ruling::new(
                            Decision::KillSwitch,
                            rule,
                            Some("the kill switch is on: mode stop".to_owned()),
                        )],
                        reason: tapedeck_trace::StopReason::KillSwitch,
                    };
                }
                KillSwitchMode::DisableWrites => kind == ToolKind::Write,
                KillSwitchMode::DisableExpensive => kind == ToolKind::Expensive,
            };
            if blocked {
                let message = format!(
                    "tool `{tool}` is disabled: the kill switch is on for {} tools",
                    kind.as_str()
                );
                return Verdict::Refuse {
                    ruling: Ruling::new(Decision::KillSwitch, rule, Some(message.clone())),
                    message,
                };
            }
        }
        let deny = |rule: &str, detail: String| Verdict::Stop {
            rulings: vec![Ruling::new(Decision::Denied, rule, Some(detail))],
            reason: tapedeck_trace::StopReason::ToolDenied(tool.to_owned()),
        };
        if !self.allow.contains(tool) {
            return deny("tools.allow", format!("`{tool}` is not in tools.allow"));
        }
        let Some(def) = def else {
            return deny(
                "tools.defs",
                format!("`{tool}` is allowed but has no definition under tools.defs"),
            );
        };
        if !has_backend {
            return deny(
                "tools.defs",
                format!("`{tool}` has no command, builtin or in-process backend"),
            );
        }
        if let Some(rule) = self.disabled.get(tool) {
            let message = format!(
                "tool `{tool}` is disabled for the rest of this run ({})",
                if rule == "degrade.disable" {
                    "listed under degrade.disable".to_owned()
                } else {
                    format!("it failed {} times", self.after_errors)
                }
            );
            return Verdict::Refuse {
                ruling: Ruling::new(Decision::Degraded, rule.clone(), Some(message.clone())),
                message,
            };
        }
        if let Err(problems) = self.validate(tool, SchemaOf::Input, &def.input_schema, args) {
            let message = format!("invalid arguments for `{tool}`: {problems}");
            return Verdict::Refuse {
                ruling: Ruling::new(Decision::Denied, "input_schema", Some(message.clone())),
                message,
            };
        }
        let mut rulings = Vec::new();
        let mut key = None;
        match kind {
            ToolKind::Write => {
                let k = idempotency_key(tool, args, args_hash);
                if let Some((result, output)) = self.writes.get(&k) {
                    return Verdict::Reuse {
                        ruling: Ruling::new(
                            Decision::Deduped,
                            "idempotency_key",
                            Some(format!("a write with key `{k}` already ran in this run")),
                        ),
                        result: result.clone(),
                        output: *output,
                        key: Some(k),
                    };
                }
                if self.require_approval {
                    rulings.push(Ruling::new(
                        Decision::NeedsApproval,
                        "writes.require_approval",
                        None,
                    ));
                    let answer = self.approver.ask(tool, args, Some(&k));
                    let detail = answer.by.as_ref().map(|by| format!("by {by}"));
                    if !answer.approved {
                        rulings.push(Ruling::new(Decision::Rejected, answer.rule, detail));
                        return Verdict::Stop {
                            rulings,
                            reason: tapedeck_trace::StopReason::ApprovalDenied(tool.to_owned()),
                        };
                    }
                    rulings.push(Ruling::new(Decision::Approved, answer.rule, detail));
                }
                key = Some(k);
            }
            ToolKind::Read if !self.read_window.is_zero() => {
                if let Some((at, (result, output))) = self.reads.get(&(tool.to_owned(), args_hash))
                    && at.elapsed() <= self.read_window
                {
                    return Verdict::Reuse {
                        ruling: Ruling::new(
                            Decision::Deduped,
                            "dedupe.read_window_s",
                            Some(format!(
                                "identical call {:.1}s ago",
                                at.elapsed().as_secs_f64()
                            )),
                        ),
                        result: result.clone(),
                        output: *output,
                        key: None,
                    };
                }
            }
            _ => {}
        }
        rulings.push(Ruling::new(Decision::Allowed, "tools.allow", None));
        Verdict::Run { rulings, key }
    }

    /// Notes the result of a call that ran, for dedupe, idempotency and degrade mode. Returns
    /// `true` when this failure disabled the tool.
    pub fn observe(
        &mut self,
        tool: &str,
        kind: ToolKind,
        args_hash: ContentHash,
        key: Option<&str>,
        result: &Result<Value, String>,
        output: Option<ContentHash>,
    ) -> bool {
        match kind {
            ToolKind::Write => {
                if let Some(key) = key
                    && result.is_ok()
                {
                    self.writes.insert(key.to_owned(), (result.clone(), output));
                }
            }
            ToolKind::Read => {
                if result.is_ok() {
                    self.reads.insert(
                        (tool.to_owned(), args_hash),
                        (Instant::now(), (result.clone(), output)),
                    );
                }
            }
            ToolKind::Expensive => {}
        }
        if result.is_err() {
            let errors = self.errors.entry(tool.to_owned()).or_insert(0);
            *errors += 1;
            if *errors >= self.after_errors && self.after_errors > 0 {
                return self
                    .disabled
                    .insert(tool.to_owned(), "degrade.after_errors".to_owned())
                    .is_none();
            }
        }
        false
    }
}

/// The idempotency key of a write call: its `idempotency_key` argument, or one derived from
/// the tool and its canonical arguments (so an identical write runs once per run).
pub fn idempotency_key(tool: &str, args: &Value, args_hash: ContentHash) -> String {
    match args.get("idempotency_key").and_then(Value::as_str) {
        Some(key) => key.to_owned(),
        None => format!("{tool}:{}", args_hash.short(16)),
    }
}

/// Validates `value` against a JSON Schema; the error lists what is wrong, where.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    problems(&compile(schema)?, value)
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| format!("bad schema: {e}"))
}

/// What is wrong with `value`, where (the first five problems).
fn problems(validator: &jsonschema::Validator, value: &Value) -> Result<(), String> {
    let problems: Vec<String> = validator
        .iter_errors(value)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
