//! Comparing two runs ([`diff_runs`]): per-metric deltas against [`Tolerances`], the tool-call
//! trajectories aligned (Myers, with a deadline so 100k-call runs stay fast) with their first
//! divergence, and a word-level answer diff with a similarity ratio.

use std::time::{Duration, Instant};

use serde::Serialize;
use similar::Algorithm;

use crate::DiffError;
use crate::agent::{AgentDiff, diff_agents};
use crate::summary::{CallKey, RunSummary};

/// How much a candidate may move before it is drift.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tolerances {
    /// Tool calls (in total and per tool) may grow by this fraction.
    pub tool_calls: f64,
    /// Steps may grow by this fraction.
    pub steps: f64,
    /// Tokens (input plus output) may grow by this fraction.
    pub tokens: f64,
    /// Cost may grow by this fraction.
    pub cost: f64,
    /// The p95 step latency may grow by this fraction (`None`: not checked; latency is noisy).
    pub latency_p95: Option<f64>,
    /// The answers' word-level similarity must be at least this.
    pub answer_similarity: f64,
    /// The stop reason must stay the same.
    pub stop_reason_must_equal: bool,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            tool_calls: 0.20,
            steps: 0.20,
            tokens: 0.15,
            cost: 0.10,
            latency_p95: None,
            answer_similarity: 0.9,
            stop_reason_must_equal: true,
        }
    }
}

/// The keys `Tolerances::set` accepts.
pub const TOLERANCE_KEYS: [&str; 7] = [
    "tool_calls",
    "steps",
    "tokens",
    "cost",
    "latency_p95",
    "answer_similarity",
    "stop_reason",
];

/// The tolerances in a line of words, the ones a drift report names:
/// `tool calls +20%, tokens +15%, cost +10%, same stop reason, answers ≥ 0.9 alike`.
impl std::fmt::Display for Tolerances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let percent = |fraction: f64| (fraction * 100.0).round();
        write!(
            f,
            "tool calls +{}%, tokens +{}%, cost +{}%",
            percent(self.tool_calls),
            percent(self.tokens),
            percent(self.cost)
        )?;
        if let Some(latency) = self.latency_p95 {
            write!(f, ", p95 latency +{}%", percent(latency))?;
        }
        if self.stop_reason_must_equal {
            write!(f, ", same stop reason")?;
        }
        write!(f, ", answers ≥ {} alike", self.answer_similarity)
    }
}

impl Tolerances {
    /// Sets one tolerance from text: `tool_calls=+20%`, `tokens=0.15`, `answer_similarity=0.8`,
    /// `stop_reason=equal|any`, `latency_p95=off`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), DiffError> {
        let bad = |message: String| DiffError::Tolerance(message);
        let fraction = |v: &str| -> Result<f64, DiffError> {
            let t = v.trim().trim_start_matches('+');
            let (number, scale) = match t.strip_suffix('%') {
                Some(n) => (n, 100.0),
                None => (t, 1.0),
            };
            number
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f / scale)
                .ok_or_else(|| {
                    bad(format!(
                        "`{key}={v}`: expected a growth such as +20% or 0.2"
                    ))
                })
        };
        match key {
            "tool_calls" => self.tool_calls = fraction(value)?,
            "steps" => self.steps = fraction(value)?,
            "tokens" => self.tokens = fraction(value)?,
            "cost" => self.cost = fraction(value)?,
            "latency_p95" if value == "off" => self.latency_p95 = None,
            "latency_p95" => self.latency_p95 = Some(fraction(value)?),
            "answer_similarity" => {
                self.answer_similarity = value
                    .parse::<f64>()
                    .ok()
                    .filter(|f| (0.0..=1.0).contains(f))
                    .ok_or_else(|| {
                        bad(format!(
                            "`{key}={value}`: expected a ratio from 0 to 1, e.g. 0.9"
                        ))
                    })?;
            }
            "stop_reason" => {
                self.stop_reason_must_equal = match value {
                    "equal" | "must_equal" => true,
                    "any" => false,
                    _ => return Err(bad(format!("`{key}={value}`: expected `equal` or `any`"))),
                };
            }
            _ => {
                let hint = crate::did_you_mean(key, TOLERANCE_KEYS.iter().copied());
                return Err(bad(format!(
                    "unknown tolerance `{key}`{hint} (known: {})",
                    TOLERANCE_KEYS.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// What a metric's comparison says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within tolerance.
    Ok,
    /// Beyond tolerance.
    Drift,
    /// One side is unknown: nothing can be said.
    Unknown,
    /// Reported, not checked.
    Info,
}

/// One metric, baseline against candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricDelta {
    /// `tool_calls`, `tool_calls[kb.read]`, `tokens`, `stop_reason`, …
    pub metric: String,
    /// The baseline's value, as text.
    pub baseline: String,
    /// The candidate's value, as text.
    pub candidate: String,
    /// The relative change, where it makes sense (`+0.25` is 25 % more).
    pub change: Option<f64>,
    /// The tolerance that applied, as text.
    pub tolerance: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// One row of the aligned trajectories.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Aligned {
    /// The same call in both.
    Same {
        /// The call.
        call: CallKey,
    },
    /// Only the baseline made it.
    Removed {
        /// The call.
        call: CallKey,
    },
    /// Only the candidate made it.
    Added {
        /// The call.
        call: CallKey,
    },
}

/// Where the tool-call trajectories first part.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FirstDivergence {
    /// The index of the call in the baseline's sequence (0-based).
    pub baseline_index: usize,
    /// The index in the candidate's sequence.
    pub candidate_index: usize,
    /// The baseline's call there, if any.
    pub expected: Option<CallKey>,
    /// The candidate's call there, if any.
    pub actual: Option<CallKey>,
}

/// The answers compared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnswerDiff {
    /// Word-level similarity, 0 to 1.
    pub similarity: f64,
    /// The diff: equal words as is, `[-removed-]`, `{+added+}`.
    pub diff: String,
}

/// Two runs compared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunDiff {
    /// The baseline.
    pub baseline: RunSummary,
    /// The candidate.
    pub candidate: RunSummary,
    /// Every metric with its verdict.
    pub metrics: Vec<MetricDelta>,
    /// The aligned tool-call trajectories.
    pub alignment: Vec<Aligned>,
    /// Whether the alignment gave up at its deadline (then it is coarse, still correct).
    pub alignment_truncated: bool,
    /// Where the trajectories first part.
    pub first_divergence: Option<FirstDivergence>,
    /// The answers compared.
    pub answer: AnswerDiff,
    /// The two runs' agent versions compared, when both record one (runs of the HTTP proxy);
    /// information, never drift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentDiff>,
    /// Whether any metric drifted.
    pub drift: bool,
}

/// How long alignment may search before it settles for a coarser diff.
pub(crate) const ALIGN_DEADLINE: Duration = Duration::from_millis(500);

/// Compares a candidate run with a baseline.
pub fn diff_runs(baseline: RunSummary, candidate: RunSummary, tol: &Tolerances) -> RunDiff {
    let mut metrics = Vec::new();
    let stop = Verdict::from_bool(
        !tol.stop_reason_must_equal || baseline.stop_reason == candidate.stop_reason,
    );
    metrics.push(MetricDelta {
        metric: "stop_reason".to_owned(),
        baseline: baseline.stop_reason.clone(),
        candidate: candidate.stop_reason.clone(),
        change: None,
        tolerance: if tol.stop_reason_must_equal {
            "must equal"
        } else {
            "any"
        }
        .to_owned(),
        verdict: if tol.stop_reason_must_equal {
            stop
        } else {
            Verdict::Info
        },
    });
    metrics.push(growth(
        "steps",
        Some(baseline.steps as f64),
        Some(candidate.steps as f64),
        Some(tol.steps),
        fmt_int,
    ));
    metrics.push(growth(
        "tool_calls",
        Some(baseline.tool_calls_total() as f64),
        Some(candidate.tool_calls_total() as f64),
        Some(tol.tool_calls),
        fmt_int,
    ));
    let tools: std::collections::BTreeSet<&String> = baseline
        .tool_calls
        .keys()
        .chain(candidate.tool_calls.keys())
        .collect();
    for tool in tools {
        let b = baseline.tool_calls.get(tool).copied().unwrap_or(0) as f64;
        let c = candidate.tool_calls.get(tool).copied().unwrap_or(0) as f64;
        metrics.push(growth(
            &format!("tool_calls[{tool}]"),
            Some(b),
            Some(c),
            Some(tol.tool_calls),
            fmt_int,
        ));
    }
    metrics.push(growth(
        "tokens",
        baseline.tokens_total().map(|t| t as f64),
        candidate.tokens_total().map(|t| t as f64),
        Some(tol.tokens),
        fmt_int,
    ));
    metrics.push(growth(
        "cost_usd",
        baseline.cost_usd,
        candidate.cost_usd,
        Some(tol.cost),
        fmt_usd,
    ));
    metrics.push(growth(
        "latency_p95_ms",
        baseline.step_latency_percentile(0.95).map(|v| v as f64),
        candidate.step_latency_percentile(0.95).map(|v| v as f64),
        tol.latency_p95,
        fmt_int,
    ));
    metrics.push(growth(
        "latency_p50_ms",
        baseline.step_latency_percentile(0.50).map(|v| v as f64),
        candidate.step_latency_percentile(0.50).map(|v| v as f64),
        None,
        fmt_int,
    ));
    let answer = answer_diff(&baseline.answer, &candidate.answer);
    metrics.push(MetricDelta {
        metric: "answer_similarity".to_owned(),
        baseline: "1.00".to_owned(),
        candidate: format!("{:.2}", answer.similarity),
        change: None,
        tolerance: format!("≥ {:.2}", tol.answer_similarity),
        verdict: Verdict::from_bool(answer.similarity + 1e-9 >= tol.answer_similarity),
    });
    let (alignment, alignment_truncated, first_divergence) =
        align(&baseline.sequence, &candidate.sequence);
    let drift = metrics.iter().any(|m| m.verdict == Verdict::Drift);
    let agent = match (&baseline.agent, &candidate.agent) {
        (Some(b), Some(c)) => Some(diff_agents(b, c)),
        _ => None,
    };
    RunDiff {
        baseline,
        candidate,
        metrics,
        alignment,
        alignment_truncated,
        first_divergence,
        answer,
        agent,
        drift,
    }
}

impl Verdict {
    fn from_bool(ok: bool) -> Self {
        if ok { Self::Ok } else { Self::Drift }
    }
}

fn fmt_int(v: f64) -> String {
    format!("{}", v.round() as i64)
}

fn fmt_usd(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// A metric that may grow by at most `limit` (a fraction); `None` limit: reported only.
fn growth(
    metric: &str,
    baseline: Option<f64>,
    candidate: Option<f64>,
    limit: Option<f64>,
    fmt: fn(f64) -> String,
) -> MetricDelta {
    let show = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), fmt);
    let (change, verdict) = match (baseline, candidate) {
        (Some(b), Some(c)) => {
            let change = relative_change(b, c);
            let verdict = match limit {
                None => Verdict::Info,
                Some(l) if beyond(change, l) => Verdict::Drift,
                Some(_) => Verdict::Ok,
            };
            (Some(change), verdict)
        }
        _ => (
            None,
            if limit.is_some() {
                Verdict::Unknown
            } else {
                Verdict::Info
            },
        ),
    };
    MetricDelta {
        metric: metric.to_owned(),
        baseline: show(baseline),
        candidate: show(candidate),
        change,
        tolerance: limit.map_or_else(
            || "not checked".to_owned(),
            |l| format!("+{:.0}%", l * 100.0),
        ),
        verdict,
    }
}

/// Aligns two call sequences; returns the rows, whether the deadline cut the search, and the
/// first divergence.
fn align(a: &[CallKey], b: &[CallKey]) -> (Vec<Aligned>, bool, Option<FirstDivergence>) {
    let started = Instant::now();
    let ops = similar::capture_diff_slices_deadline(
        Algorithm::Myers,
        a,
        b,
        Some(started + ALIGN_DEADLINE),
    );
    let truncated = started.elapsed() >= ALIGN_DEADLINE;
    let mut rows = Vec::with_capacity(a.len().max(b.len()));
    let mut first = None;
    for op in ops {
        // Every op is a run of baseline calls (`old`) against a run of candidate calls (`new`).
        let (old, new) = (op.old_range(), op.new_range());
        if op.tag() == similar::DiffTag::Equal {
            rows.extend(a[old].iter().map(|c| Aligned::Same { call: c.clone() }));
            continue;
        }
        first.get_or_insert_with(|| FirstDivergence {
            baseline_index: old.start,
            candidate_index: new.start,
            expected: a.get(old.start).cloned(),
            actual: b.get(new.start).cloned(),
        });
        rows.extend(a[old].iter().map(|c| Aligned::Removed { call: c.clone() }));
        rows.extend(b[new].iter().map(|c| Aligned::Added { call: c.clone() }));
    }
    (rows, truncated, first)
}

/// A word-level diff of two answers and their similarity.
pub fn answer_diff(baseline: &str, candidate: &str) -> AnswerDiff {
    let diff = similar::TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(ALIGN_DEADLINE)
        .diff_words(baseline, candidate);
    // Runs of removed or added words are marked once: `[-three removed words-]`.
    let mut text = String::new();
    let mut open: Option<similar::ChangeTag> = None;
    let close = |text: &mut String, tag: Option<similar::ChangeTag>| match tag {
        Some(similar::ChangeTag::Delete) => text.push_str("-]"),
        Some(similar::ChangeTag::Insert) => text.push_str("+}"),
        _ => {}
    };
    for change in diff.iter_all_changes() {
        let tag = change.tag();
        if open != Some(tag) {
            close(&mut text, open);
            match tag {
                similar::ChangeTag::Delete => text.push_str("[-"),
                similar::ChangeTag::Insert => text.push_str("{+"),
                similar::ChangeTag::Equal => {}
            }
            open = Some(tag);
        }
        text.push_str(change.value());
    }
    close(&mut text, open);
    let similarity = if baseline.is_empty() && candidate.is_empty() {
        1.0
    } else {
        f64::from(diff.ratio())
    };
    AnswerDiff {
        similarity,
        diff: text,
    }
}
/// How much `candidate` grew over `baseline`, relative to it (+0.25 is 25 % more); from 0,
/// any growth is infinite.
pub(crate) fn relative_change(baseline: f64, candidate: f64) -> f64 {
    if baseline > 0.0 {
        (candidate - baseline) / baseline
    } else if candidate > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// Whether a relative change is over its tolerance (with room for rounding).
pub(crate) fn beyond(change: f64, limit: f64) -> bool {
    change > limit + 1e-9
}
