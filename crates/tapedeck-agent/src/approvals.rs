//! Approval of write tools: answers from an approvals file ([`Approvals`]), a y/N prompt over
//! any reader and writer ([`Prompt`]), or nobody to ask (every write rejected). A run's
//! approver is its config's approvals file when it names one, else whoever an [`Ask`] gives:
//! the program on top decides whether there is a person to ask (the CLI asks on the terminal).
//!
//! The approvals file (YAML, or JSON for a `.json` file); the first matching entry decides:
//!
//! ```yaml
//! approvals:
//!   - tool: crm.update          # required
//!     decision: approve         # approve | reject
//!     args: {customer: 42}      # optional: only calls whose arguments contain these
//!     key: "refund-123"         # optional: only the call with this idempotency key
//!     by: alice                 # optional: who, recorded in the audit log
//! ```

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::AgentError;
use crate::config::parse_document;

/// The rule of a rejection when there is nobody to ask.
pub const RULE_NOBODY: &str = "writes.require_approval: nobody to approve";
/// The rule of a rejection when the approvals file has no entry for the call.
pub const RULE_NO_ENTRY: &str = "approvals_file: no entry";
/// The rule of an answer typed on the terminal.
pub const RULE_TERMINAL: &str = "terminal";

/// The most characters of arguments the terminal prompt shows.
const PROMPT_ARGS_CHARS: usize = 4000;

/// The answer to one approval request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalAnswer {
    /// Whether the call may go ahead.
    pub approved: bool,
    /// What decided: `approvals_file:N` (the 1-based entry), `terminal`, or why nobody did.
    pub rule: String,
    /// Who approved or rejected, when known.
    pub by: Option<String>,
}

impl ApprovalAnswer {
    fn rejected(rule: &str) -> Self {
        Self {
            approved: false,
            rule: rule.to_owned(),
            by: None,
        }
    }
}

/// An entry's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Decision {
    #[serde(alias = "approved")]
    Approve,
    #[serde(alias = "rejected", alias = "deny", alias = "denied")]
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    approvals: Vec<Entry>,
}

/// One entry of the approvals file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    tool: String,
    decision: Decision,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

impl Entry {
    fn matches(&self, tool: &str, args: &Value, key: Option<&str>) -> bool {
        self.tool == tool
            && self.key.as_deref().is_none_or(|want| key == Some(want))
            && self.args.as_ref().is_none_or(|want| contains(args, want))
    }
}

/// Whether `actual` contains `want`: every key of an object in `want` is in `actual` with a
/// matching value (recursively); numbers compare by value (`42` matches `42.0`); anything else
/// must be equal.
fn contains(actual: &Value, want: &Value) -> bool {
    match (actual, want) {
        (Value::Object(actual), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| actual.get(k).is_some_and(|a| contains(a, w))),
        (Value::Number(a), Value::Number(w)) => a == w || a.as_f64() == w.as_f64(),
        (Value::Array(a), Value::Array(w)) => {
            a.len() == w.len() && a.iter().zip(w).all(|(a, w)| equal(a, w))
        }
        _ => actual == want,
    }
}

/// Equality with numbers compared by value.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| equal(v, w))
        }
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The answers of an approvals file.
#[derive(Clone, Debug)]
pub struct Approvals {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl Approvals {
    /// Reads and checks an approvals file.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::InvalidConfig {
            path: path.to_path_buf(),
            message: format!("cannot read the approvals file: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses an approvals file's text; `path` names it in errors and picks YAML or JSON.
    pub fn parse(text: &str, path: &Path) -> Result<Self, AgentError> {
        let doc: FileDoc = parse_document(text, path)?;
        for (i, entry) in doc.approvals.iter().enumerate() {
            let invalid = |message: String| AgentError::InvalidConfig {
                path: path.to_path_buf(),
                message: format!(
                    "approvals entry {} (tool `{}`): {message}",
                    i + 1,
                    entry.tool
                ),
            };
            if entry.tool.trim().is_empty() {
                return Err(invalid("`tool` is empty".to_owned()));
            }
            if entry.args.as_ref().is_some_and(|a| !a.is_object()) {
                return Err(invalid(
                    "`args` must be a mapping of argument names to values".to_owned(),
                ));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries: doc.approvals,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many entries the file has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file has no entries (then every write is rejected).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The answer of the first entry matching the call, if any.
    pub fn decide(&self, tool: &str, args: &Value, key: Option<&str>) -> Option<ApprovalAnswer> {
        self.entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.matches(tool, args, key))
            .map(|(i, e)| ApprovalAnswer {
                approved: e.decision == Decision::Approve,
                rule: format!("approvals_file:{}", i + 1),
                by: e.by.clone(),
            })
    }
}

/// Something that answers approval requests for write tools.
pub trait Approver: Send {
    /// Asks whether `tool` may run with `args` (and idempotency `key`).
    fn ask(&mut self, tool: &str, args: &Value, key: Option<&str>) -> ApprovalAnswer;
}

/// Where a run's approvals come from.
#[derive(Clone, Debug)]
pub enum ApprovalSource {
    /// An approvals file; a call it has no entry for is rejected.
    File(Approvals),
    /// No one to ask: every write is rejected.
    Nobody,
}

impl Approver for ApprovalSource {
    fn ask(&mut self, tool: &str, args: &Value, key: Option<&str>) -> ApprovalAnswer {
        match self {
            Self::File(approvals) => approvals
                .decide(tool, args, key)
                .unwrap_or_else(|| ApprovalAnswer::rejected(RULE_NO_ENTRY)),
            Self::Nobody => ApprovalAnswer::rejected(RULE_NOBODY),
        }
    }
}

/// Who answers a run's writes when its config names no approvals file.
pub type Ask = fn() -> Box<dyn Approver>;

/// The [`Ask`] of a program with no one to ask: every write is rejected.
pub fn nobody() -> Box<dyn Approver> {
    Box::new(ApprovalSource::Nobody)
}

/// The approver of a run: the approvals file if given (already resolved against the config's
/// folder), else whoever `ask` gives.
pub fn source(approvals_file: Option<PathBuf>, ask: Ask) -> Result<Box<dyn Approver>, AgentError> {
    Ok(match approvals_file {
        Some(path) => Box::new(ApprovalSource::File(Approvals::load(&path)?)),
        None => ask(),
    })
}

/// A y/N prompt over any reader and writer (the terminal is stdin and stderr). Only `y` or
/// `yes` (any case) approves; anything else, end of input or an error rejects.
#[derive(Debug)]
pub struct Prompt<R, W> {
    input: R,
    output: W,
    by: Option<String>,
}

impl<R: BufRead, W: Write> Prompt<R, W> {
    /// A prompt reading answers from `input` and writing requests to `output`.
    pub fn new(input: R, output: W) -> Self {
        Self {
            input,
            output,
            by: None,
        }
    }

    /// Who answers, recorded with each answer.
    pub fn by(mut self, by: Option<String>) -> Self {
        self.by = by;
        self
    }

    /// What was written so far, e.g. to check the prompt in a test.
    pub fn output(&self) -> &W {
        &self.output
    }
}

impl<R: BufRead + Send, W: Write + Send> Approver for Prompt<R, W> {
    fn ask(&mut self, tool: &str, args: &Value, key: Option<&str>) -> ApprovalAnswer {
        self.prompt(tool, args, key)
    }
}

impl<R: BufRead, W: Write> Prompt<R, W> {
    /// Shows the request and reads the answer.
    pub fn prompt(&mut self, tool: &str, args: &Value, key: Option<&str>) -> ApprovalAnswer {
        // JSON escapes control characters, so arguments chosen by the model cannot smuggle
        // terminal escape sequences into the prompt.
        let shown = serde_json::to_string_pretty(args).unwrap_or_else(|_| args.to_string());
        let shown = match shown.char_indices().nth(PROMPT_ARGS_CHARS) {
            Some((at, _)) => format!(
                "{}\n  … ({} more characters)",
                &shown[..at],
                shown[at..].chars().count()
            ),
            None => shown,
        };
        let tool_shown = Value::String(tool.to_owned());
        let mut text = format!("\ntapedeck: the agent wants to call the write tool {tool_shown}\n");
        if let Some(key) = key {
            text.push_str(&format!(
                "  idempotency key: {}\n",
                Value::String(key.to_owned())
            ));
        }
        text.push_str("  arguments:\n");
        for line in shown.lines() {
            text.push_str("    ");
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("approve? [y/N] ");
        let _ = self.output.write_all(text.as_bytes());
        let _ = self.output.flush();

        let mut line = String::new();
        let approved = match self.input.read_line(&mut line) {
            Ok(0) | Err(_) => {
                let _ = writeln!(self.output, "\n(no answer: rejected)");
                false
            }
            Ok(_) => matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
        };
        let _ = self.output.flush();
        ApprovalAnswer {
            approved,
            rule: RULE_TERMINAL.to_owned(),
            by: self.by.clone(),
        }
    }
}
