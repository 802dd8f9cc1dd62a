//! Behaviour snapshots: a run reduced to its stable fields ([`Behaviour`]: stop reason, tool
//! calls, tool sequence, token and cost buckets, answer), kept in insta's `.snap` file format
//! ([`Snapshot`]) so that insta-style tools and reviewers read them as they read any snapshot.
//!
//! A `.snap` file is a YAML metadata block between two `---` lines (`source`, `expression`,
//! and in a pending `.snap.new` an `info` map) followed by the contents — here a YAML document.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{DiffError, RunSummary};

/// What a run did, in the fields that stay the same from one run of a version to the next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Why the run ended.
    pub stop_reason: String,
    /// Tool calls per tool.
    pub tool_calls: BTreeMap<String, u64>,
    /// Every tool call, in order.
    pub tool_sequence: Vec<SnapCall>,
    /// Input plus output tokens, as a power-of-two range (`256-511`).
    pub tokens: String,
    /// Cost, as a decade range (`$0.01-$0.1`).
    pub cost: String,
    /// The final answer.
    pub answer: String,
}

/// One tool call of a [`Behaviour`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapCall {
    /// The tool.
    pub tool: String,
    /// Its arguments.
    pub args: Value,
}

impl Behaviour {
    /// The behaviour of a run.
    pub fn of(summary: &RunSummary) -> Self {
        Self {
            stop_reason: summary.stop_reason.clone(),
            tool_calls: summary.tool_calls.clone(),
            tool_sequence: summary
                .sequence
                .iter()
                .map(|c| SnapCall {
                    tool: c.tool.clone(),
                    args: serde_json::from_str(&c.args)
                        .unwrap_or_else(|_| Value::String(c.args.clone())),
                })
                .collect(),
            tokens: tokens_bucket(summary.tokens_total()),
            cost: cost_bucket(summary.cost_usd),
            answer: summary.answer.clone(),
        }
    }

    /// The snapshot's contents: YAML, ending in one newline.
    pub fn to_yaml(&self) -> String {
        let text = yaml_serde::to_string(self).unwrap_or_default();
        format!("{}\n", text.trim_end())
    }
}

/// A token count as its power-of-two range: `0`, `1`, `2-3`, …, `256-511`; `unknown`.
pub fn tokens_bucket(tokens: Option<u64>) -> String {
    match tokens {
        None => "unknown".to_owned(),
        Some(0) => "0".to_owned(),
        Some(1) => "1".to_owned(),
        Some(n) => {
            let low = 1u64 << (63 - n.leading_zeros());
            format!("{low}-{}", low.saturating_mul(2) - 1)
        }
    }
}

/// A cost as its decade range: `$0`, `under $0.001`, `$0.001-$0.01`, …, `$10-$100`;
/// `unknown`.
pub fn cost_bucket(cost: Option<f64>) -> String {
    let dollars = |v: f64| {
        let text = format!("{v:.6}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("${text}")
    };
    match cost {
        None => "unknown".to_owned(),
        Some(c) if c <= 0.0 => "$0".to_owned(),
        Some(c) if c < 0.001 => "under $0.001".to_owned(),
        Some(c) => {
            let k = (c.log10() + 1e-9).floor() as i32;
            format!("{}-{}", dollars(10f64.powi(k)), dollars(10f64.powi(k + 1)))
        }
    }
}

/// A `.snap` file: its metadata and its behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// `source:` — the suite file, `golden/<suite>/suite.yaml`.
    pub source: String,
    /// `expression:` — the task id.
    pub expression: String,
    /// `info:` — in a `.snap.new`, the candidate run and agent version it came from.
    pub info: Option<BTreeMap<String, String>>,
    /// The behaviour.
    pub behaviour: Behaviour,
}

/// The metadata block as read (insta may write fields we do not use).
#[derive(Deserialize)]
struct Meta {
    source: Option<String>,
    expression: Option<String>,
    #[serde(default)]
    info: Option<BTreeMap<String, String>>,
}

impl Snapshot {
    /// The file's text: insta's layout, `---`, metadata, `---`, contents.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "---\nsource: {}\nexpression: {}\n",
            yaml_scalar(&self.source),
            yaml_scalar(&self.expression)
        );
        if let Some(info) = &self.info {
            out.push_str("info:\n");
            for (k, v) in info {
                out.push_str(&format!("  {k}: {}\n", yaml_scalar(v)));
            }
        }
        out.push_str("---\n");
        out.push_str(&self.behaviour.to_yaml());
        out
    }

    /// Writes the file (and its folder).
    pub fn write(&self, path: &Path) -> Result<(), DiffError> {
        let fail = |e: std::io::Error| DiffError::Golden {
            path: path.to_path_buf(),
            message: format!("cannot write it: {e}"),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        std::fs::write(path, self.to_text()).map_err(fail)
    }

    /// Reads a `.snap` or `.snap.new` file; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<Self>, DiffError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(DiffError::Golden {
                    path: path.to_path_buf(),
                    message: format!("cannot read it: {e}"),
                });
            }
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|message| DiffError::Golden {
                path: path.to_path_buf(),
                message: format!(
                    "not a valid snapshot: {message}; restore it from version control or record it again with `tapedeck golden record`"
                ),
            })
    }

    /// Parses a snapshot file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("---\n")
            .ok_or("it must start with a `---` line (insta's .snap layout)")?;
        let (meta, body) = match rest.find("\n---\n") {
            Some(i) => (&rest[..i], &rest[i + 5..]),
            None => return Err("its metadata block is not closed by a `---` line".to_owned()),
        };
        // YAML errors count lines from the start of their block; say the file's line.
        let located = |e: yaml_serde::Error, first_line: usize| {
            super::yaml_error(&e, first_line, str::to_owned)
        };
        let body_line = 3 + meta.lines().count();
        let meta: Meta = yaml_serde::from_str(meta).map_err(|e| located(e, 2))?;
        let behaviour: Behaviour = yaml_serde::from_str(body).map_err(|e| located(e, body_line))?;
        Ok(Self {
            source: meta.source.ok_or("its metadata has no `source`")?,
            expression: meta.expression.ok_or("its metadata has no `expression`")?,
            info: meta.info,
            behaviour,
        })
    }
}

/// A YAML scalar: plain when that reads back as the same string, else double-quoted.
fn yaml_scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ' '))
        && !text.starts_with([' ', '-'])
        && !text.ends_with(' ')
        && yaml_serde::from_str::<String>(text).is_ok_and(|s| s == text);
    if plain {
        text.to_owned()
    } else {
        serde_json::to_string(text).unwrap_or_default()
    }
}

/// A unified diff of two snapshots' contents, `old` → `new`.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behaviour() -> Behaviour {
        Behaviour {
            stop_reason: "ok".to_owned(),
            tool_calls: BTreeMap::from([("kb.read".to_owned(), 1)]),
            tool_sequence: vec![SnapCall {
                tool: "kb.read".to_owned(),
                args: serde_json::json!({"article": "password-reset"}),
            }],
            tokens: tokens_bucket(Some(300)),
            cost: cost_bucket(Some(0.0002)),
            answer: "Open Settings: it works.\nSecond line".to_owned(),
        }
    }

    #[test]
    fn buckets() {
        assert_eq!(tokens_bucket(Some(300)), "256-511");
        assert_eq!(tokens_bucket(Some(256)), "256-511");
        assert_eq!(tokens_bucket(Some(255)), "128-255");
        assert_eq!(tokens_bucket(Some(2)), "2-3");
        assert_eq!(tokens_bucket(None), "unknown");
        assert_eq!(cost_bucket(Some(10.81)), "$10-$100");
        assert_eq!(cost_bucket(Some(0.01)), "$0.01-$0.1");
        assert_eq!(cost_bucket(Some(0.0002)), "under $0.001");
        assert_eq!(cost_bucket(Some(0.0)), "$0");
    }

    #[test]
    fn round_trips_in_insta_layout() {
        let snap = Snapshot {
            source: "golden/support/suite.yaml".to_owned(),
            expression: "password-reset".to_owned(),
            info: None,
            behaviour: behaviour(),
        };
        let text = snap.to_text();
        assert!(
            text.starts_with(
                "---\nsource: golden/support/suite.yaml\nexpression: password-reset\n---\nstop_reason: ok\n"
            ),
            "{text}"
        );
        assert_eq!(Snapshot::parse(&text), Ok(snap));
    }

    #[test]
    fn pending_snapshots_keep_their_info() {
        let snap = Snapshot {
            source: "golden/support/suite.yaml".to_owned(),
            expression: "a".to_owned(),
            info: Some(BTreeMap::from([(
                "candidate_run".to_owned(),
                "0193-abc".to_owned(),
            )])),
            behaviour: behaviour(),
        };
        assert_eq!(Snapshot::parse(&snap.to_text()), Ok(snap));
    }

    #[test]
    fn errors_name_the_line_of_the_file() {
        let text = "---\nsource: x\nexpression: a\n---\nstop_reason: ok\nbogus: 1\n";
        let err = Snapshot::parse(text).expect_err("unknown field");
        assert!(err.starts_with("line 6: unknown field `bogus`"), "{err}");
    }

    #[test]
    fn hand_edits_are_refused() {
        let text = "---\nsource: x\nexpression: a\n---\nstop_reason: ok\nbogus: 1\n";
        assert!(Snapshot::parse(text).is_err());
        assert!(Snapshot::parse("stop_reason: ok\n").is_err());
    }
}
