//! The result of checking one golden task ([`TaskResult`]: the run diff and the snapshot
//! comparison, with its verdict) and the reports of a whole check: JUnit XML for CI,
//! Markdown for a pull-request comment, one self-contained HTML page.
//!
//! The verdict follows the tolerances: a task drifts only when a metric is beyond its
//! tolerance (with repetitions: significantly so), its stop reason changed where it must stay
//! equal, or its answer's similarity fell below the threshold. A snapshot that changed while
//! all of that held (a token count crossing a bucket edge, say) is "changed within tolerance":
//! pending for review, not a failure, unless snapshots are strict. A task that could not run
//! or replay is an error in every report, never a pass.

use std::fmt::Write as _;

use serde::Serialize;

use crate::compare::{RunDiff, Verdict};
use crate::distribution::MetricTest;
use crate::golden::snapshot::{Behaviour, unified_diff};
use crate::report::{self, change_text, esc, md_escape, shorten};

/// A task's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskVerdict {
    /// Within tolerance, and the snapshot matches.
    Pass,
    /// Within tolerance, but the snapshot changed (or there was none): a pending snapshot to
    /// review, not a failure.
    Changed,
    /// A metric beyond tolerance, or (strict snapshots) a different snapshot.
    Drift,
    /// The task could not run or replay: nothing was compared.
    Error,
}

impl TaskVerdict {
    /// How reports name it: `pass`, `changed within tolerance`, `drift`, `error`.
    pub fn text(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Changed => "changed within tolerance",
            Self::Drift => "drift",
            Self::Error => "error",
        }
    }
}

/// How the new behaviour compares with the task's snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStatus {
    /// The same.
    Matches,
    /// Different.
    Differs,
    /// The task has no snapshot yet.
    Missing,
}

/// The snapshot comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SnapshotCheck {
    /// Its status.
    pub status: SnapshotStatus,
    /// The unified diff, `.snap` → `.snap.new`, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// One task checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskResult {
    /// The task id.
    pub task: String,
    /// The verdict.
    pub verdict: TaskVerdict,
    /// Why it did not pass, one line each (empty when it passed).
    pub reasons: Vec<String>,
    /// Why the task could not be checked (verdict `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The snapshot comparison (absent for an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotCheck>,
    /// Baseline run against the candidate run (with repetitions: those of repetition 1;
    /// absent for an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<RunDiff>,
    /// Runs per side of a repeated check (`--repeat N`, N ≥ 2); absent for one run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<usize>,
    /// The task's statistical tests of a repeated check (empty for one run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<MetricTest>,
}

impl TaskResult {
    /// The verdict of a task from its run diff and its behaviour, old (`None`: no snapshot
    /// yet) and new. With `strict_snapshots` any snapshot change is drift.
    pub fn new(
        task: &str,
        diff: RunDiff,
        old: Option<&Behaviour>,
        new: &Behaviour,
        strict_snapshots: bool,
    ) -> Self {
        let snapshot = snapshot_check(task, old, new);
        let reasons: Vec<String> = diff
            .metrics
            .iter()
            .filter(|m| m.verdict == Verdict::Drift)
            .map(|m| {
                let change = change_text(m.change);
                if change.is_empty() {
                    format!(
                        "{}: {} → {} (tolerance: {})",
                        m.metric, m.baseline, m.candidate, m.tolerance
                    )
                } else {
                    format!(
                        "{}: {} → {} ({change}, tolerance {})",
                        m.metric, m.baseline, m.candidate, m.tolerance
                    )
                }
            })
            .collect();
        let (verdict, reasons) = decide(reasons, snapshot.status, strict_snapshots);
        Self {
            task: task.to_owned(),
            verdict,
            reasons,
            error: None,
            snapshot: Some(snapshot),
            diff: Some(diff),
            repeat: None,
            tests: Vec::new(),
        }
    }

    /// A task that could not run or replay: an error, with its message.
    pub fn error(task: &str, message: String, repeat: Option<usize>) -> Self {
        Self {
            task: task.to_owned(),
            verdict: TaskVerdict::Error,
            reasons: vec![message.clone()],
            error: Some(message),
            snapshot: None,
            diff: None,
            repeat,
            tests: Vec::new(),
        }
    }

    /// The verdict of a task checked with `repeat` runs per side: it drifts when one of its
    /// `tests` drifts (significant after correction *and* beyond tolerance). `diff` and the
    /// behaviours are those of repetition 1; a snapshot change alone is "changed within
    /// tolerance" (drift with `strict_snapshots`), as for one run.
    pub fn repeated(
        task: &str,
        diff: RunDiff,
        old: Option<&Behaviour>,
        new: &Behaviour,
        repeat: usize,
        tests: Vec<MetricTest>,
        strict_snapshots: bool,
    ) -> Self {
        let snapshot = snapshot_check(task, old, new);
        let reasons: Vec<String> = tests
            .iter()
            .filter(|t| t.verdict == Verdict::Drift)
            .map(test_reason)
            .collect();
        let (verdict, reasons) = decide(reasons, snapshot.status, strict_snapshots);
        Self {
            task: task.to_owned(),
            verdict,
            reasons,
            error: None,
            snapshot: Some(snapshot),
            diff: Some(diff),
            repeat: Some(repeat),
            tests,
        }
    }

    /// The tests that drifted.
    pub fn drifting_tests(&self) -> impl Iterator<Item = &MetricTest> {
        self.tests.iter().filter(|t| t.verdict == Verdict::Drift)
    }
}

/// The verdict from the reasons a task drifted (metrics, tests) and its snapshot's status:
/// the snapshot decides only with `strict`; otherwise a change is a note.
fn decide(
    mut reasons: Vec<String>,
    snapshot: SnapshotStatus,
    strict: bool,
) -> (TaskVerdict, Vec<String>) {
    let drift = !reasons.is_empty();
    let note = match snapshot {
        SnapshotStatus::Matches => None,
        SnapshotStatus::Differs if drift => Some("the behaviour snapshot differs"),
        SnapshotStatus::Differs if strict => {
            Some("the behaviour snapshot differs (--strict-snapshots)")
        }
        SnapshotStatus::Differs => Some("the behaviour snapshot changed within tolerance"),
        SnapshotStatus::Missing if strict => {
            Some("the task has no snapshot yet (--strict-snapshots)")
        }
        SnapshotStatus::Missing => Some("the task has no snapshot yet"),
    };
    reasons.extend(note.map(str::to_owned));
    let verdict = if drift || (strict && note.is_some()) {
        TaskVerdict::Drift
    } else if note.is_some() {
        TaskVerdict::Changed
    } else {
        TaskVerdict::Pass
    };
    (verdict, reasons)
}

/// How the new behaviour compares with the snapshot.
fn snapshot_check(task: &str, old: Option<&Behaviour>, new: &Behaviour) -> SnapshotCheck {
    match old {
        None => SnapshotCheck {
            status: SnapshotStatus::Missing,
            diff: None,
        },
        Some(old) if old == new => SnapshotCheck {
            status: SnapshotStatus::Matches,
            diff: None,
        },
        Some(old) => SnapshotCheck {
            status: SnapshotStatus::Differs,
            diff: Some(unified_diff(
                &old.to_yaml(),
                &new.to_yaml(),
                &format!("{task}.snap"),
                &format!("{task}.snap.new"),
            )),
        },
    }
}

/// One reason line for a drifting test: metric, means, change, effect size, p-values.
pub fn test_reason(t: &MetricTest) -> String {
    let change = change_text(t.change);
    let change = if change.is_empty() {
        String::new()
    } else {
        format!(" ({change})")
    };
    format!(
        "{}: mean {} → {}{change}, effect {:+.2}, p {} adjusted ({} raw)",
        t.metric,
        mean_text(t.baseline_mean),
        mean_text(t.candidate_mean),
        t.effect,
        p_text(t.p_adjusted),
        p_text(t.p)
    )
}

/// A mean: whole numbers as such and for big values, two decimals, four for small ones
/// (shares), six below 0.01 (costs).
pub fn mean_text(x: f64) -> String {
    match x.abs() {
        a if a >= 100.0 || x.fract() == 0.0 => format!("{x:.0}"),
        a if a >= 1.0 => format!("{x:.2}"),
        a if a >= 0.01 => format!("{x:.4}"),
        _ => format!("{x:.6}"),
    }
}

/// A p-value with four decimals.
pub fn p_text(p: f64) -> String {
    format!("{p:.4}")
}

/// The column names of [`test_row`].
pub const TESTS_HEADER: [&str; 9] = [
    "TASK",
    "METRIC",
    "BASELINE MEAN",
    "CANDIDATE MEAN",
    "CHANGE",
    "EFFECT",
    "P ADJUSTED",
    "P RAW",
    "VERDICT",
];

/// One statistical test as a table row (see [`TESTS_HEADER`]).
pub fn test_row(t: &MetricTest) -> [String; 9] {
    [
        t.task.clone().unwrap_or_else(|| "(all)".to_owned()),
        t.metric.clone(),
        mean_text(t.baseline_mean),
        mean_text(t.candidate_mean),
        change_text(t.change),
        format!("{:+.2}", t.effect),
        p_text(t.p_adjusted),
        p_text(t.p),
        report::verdict_text(t.verdict).to_owned(),
    ]
}

impl TaskResult {
    /// Whether it drifted.
    pub fn drifted(&self) -> bool {
        self.verdict == TaskVerdict::Drift
    }

    /// Whether it could not be checked.
    pub fn errored(&self) -> bool {
        self.verdict == TaskVerdict::Error
    }

    /// Whether it fails the check: drift or an error.
    pub fn failed(&self) -> bool {
        self.drifted() || self.errored()
    }

    /// Whether its new behaviour should be kept as a pending snapshot (`.snap.new`): it
    /// drifted, or its snapshot changed within tolerance.
    pub fn has_pending_snapshot(&self) -> bool {
        matches!(self.verdict, TaskVerdict::Drift | TaskVerdict::Changed)
    }

    /// The CSS class of its rows and headings in the HTML report.
    fn class(&self) -> &'static str {
        match self.verdict {
            TaskVerdict::Pass => "ok",
            TaskVerdict::Changed => "changed",
            TaskVerdict::Drift => "drift",
            TaskVerdict::Error => "error",
        }
    }

    /// The overview row: task, verdict, stop reason, tool calls, tokens, cost, first
    /// divergence (see [`OVERVIEW_HEADER`]).
    pub fn overview(&self) -> [String; 7] {
        let verdict = match self.verdict {
            TaskVerdict::Pass => "pass",
            TaskVerdict::Changed => "changed",
            TaskVerdict::Drift => "DRIFT",
            TaskVerdict::Error => "ERROR",
        }
        .to_owned();
        let Some(diff) = &self.diff else {
            let none = || "-".to_owned();
            return [
                self.task.clone(),
                verdict,
                none(),
                none(),
                none(),
                none(),
                none(),
            ];
        };
        let (b, c) = (&diff.baseline, &diff.candidate);
        let pair = |x: String, y: String| if x == y { x } else { format!("{x} → {y}") };
        let count = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        let usd = |v: Option<f64>| match v {
            None => "?".to_owned(),
            Some(v) if v > 0.0 && v < 0.0001 => "<$0.0001".to_owned(),
            Some(v) if v != 0.0 && v.abs() < 0.01 => format!("${v:.4}"),
            Some(v) => format!("${v:.2}"),
        };
        let divergence = diff.first_divergence.as_ref().map_or_else(
            || "-".to_owned(),
            |d| {
                let name = |c: &Option<crate::CallKey>| {
                    c.as_ref().map_or("(none)", |c| c.tool.as_str()).to_owned()
                };
                format!(
                    "call {}: {} → {}",
                    d.baseline_index + 1,
                    name(&d.expected),
                    name(&d.actual)
                )
            },
        );
        if self.repeat.is_some() {
            // Means over the repetitions (`?` where a metric was not tested).
            let means = |metric: &str, show: &dyn Fn(f64) -> String| {
                self.tests.iter().find(|t| t.metric == metric).map_or_else(
                    || "?".to_owned(),
                    |t| pair(show(t.baseline_mean), show(t.candidate_mean)),
                )
            };
            return [
                self.task.clone(),
                verdict,
                pair(b.stop_reason.clone(), c.stop_reason.clone()),
                means("tool_calls", &mean_text),
                means("tokens", &mean_text),
                means("cost_usd", &|v| usd(Some(v))),
                divergence,
            ];
        }
        [
            self.task.clone(),
            verdict,
            pair(b.stop_reason.clone(), c.stop_reason.clone()),
            pair(
                b.tool_calls_total().to_string(),
                c.tool_calls_total().to_string(),
            ),
            pair(count(b.tokens_total()), count(c.tokens_total())),
            pair(usd(b.cost_usd), usd(c.cost_usd)),
            divergence,
        ]
    }
}

/// The column names of [`TaskResult::overview`].
pub const OVERVIEW_HEADER: [&str; 7] = [
    "TASK",
    "VERDICT",
    "STOP REASON",
    "TOOL CALLS",
    "TOKENS",
    "COST",
    "FIRST DIVERGENCE",
];

/// One line: how many tasks drifted.
pub fn summary_line(suite: &str, results: &[TaskResult]) -> String {
    let line = summary_counts(suite, results);
    match results.first().and_then(|r| r.repeat) {
        Some(n) => format!("{line}, {n} runs per task and side"),
        None => line,
    }
}

fn summary_counts(suite: &str, results: &[TaskResult]) -> String {
    let count = |v: TaskVerdict| results.iter().filter(|r| r.verdict == v).count();
    let (drifted, errors, changed) = (
        count(TaskVerdict::Drift),
        count(TaskVerdict::Error),
        count(TaskVerdict::Changed),
    );
    let n = results.len();
    let tasks = format!("{n} task{} of suite `{suite}`", plural(n));
    let mut line = match (drifted, errors) {
        (0, 0) => format!("no drift: {tasks} pass"),
        (d, 0) => format!("drift in {d} of {tasks}"),
        (0, e) => format!("error in {e} of {tasks}"),
        (d, e) => format!("drift in {d} and error in {e} of {tasks}"),
    };
    if changed > 0 {
        let _ = write!(line, ", {changed} changed within tolerance");
    }
    line
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// JUnit XML: one `testsuite` for the suite, one `testcase` per task, a `failure` for drift
/// with its reasons as the message and the text diff as the body, an `error` with its message
/// for a task that could not be checked, and the snapshot diff as `system-out` of a task whose
/// snapshot changed within tolerance.
pub fn junit(suite: &str, results: &[TaskResult]) -> String {
    let failures = results.iter().filter(|r| r.drifted()).count();
    let errors = results.iter().filter(|r| r.errored()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"tapedeck golden\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">",
        results.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\">",
        xml_escape(suite),
        results.len()
    );
    for r in results {
        let head = format!(
            "    <testcase classname=\"golden.{}\" name=\"{}\"",
            xml_escape(suite),
            xml_escape(&r.task)
        );
        if let Some(error) = &r.error {
            let _ = writeln!(
                out,
                "{head}>\n      <error type=\"error\" message=\"{}\">{}</error>\n    </testcase>",
                xml_escape(error),
                xml_escape(error)
            );
        } else if let (true, Some(diff)) = (r.drifted(), &r.diff) {
            let mut body = String::new();
            if r.repeat.is_some() {
                body.push_str("statistics (drifting tests)\n");
                for t in r.drifting_tests() {
                    body.push_str("  ");
                    body.push_str(&test_reason(t));
                    body.push('\n');
                }
                body.push_str("\nrepetition 1\n");
            }
            body.push_str(&report::text(diff));
            if let Some(diff) = r.snapshot.as_ref().and_then(|s| s.diff.as_ref()) {
                body.push_str("\nsnapshot\n");
                body.push_str(diff);
            }
            let _ = writeln!(
                out,
                "{head}>\n      <failure type=\"drift\" message=\"{}\">{}</failure>\n    </testcase>",
                xml_escape(&r.reasons.join("; ")),
                xml_escape(&body)
            );
        } else if r.verdict == TaskVerdict::Changed {
            let mut body = r.reasons.join("\n");
            if let Some(diff) = r.snapshot.as_ref().and_then(|s| s.diff.as_ref()) {
                body.push('\n');
                body.push_str(diff);
            }
            let _ = writeln!(
                out,
                "{head}>\n      <system-out>{}</system-out>\n    </testcase>",
                xml_escape(&body)
            );
        } else {
            let _ = writeln!(out, "{head}/>");
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Escapes text for XML attributes and content; drops the characters XML 1.0 cannot hold.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A pull-request comment: the overview of every task, then each failing or changed task:
/// an error's message, a drift's deltas ([`report::markdown`]), the snapshot diff.
pub fn markdown(suite: &str, results: &[TaskResult]) -> String {
    let icon = if results.iter().any(TaskResult::errored) {
        "❌"
    } else if results.iter().any(TaskResult::drifted) {
        "⚠️"
    } else {
        "✅"
    };
    let mut out = format!(
        "## {icon} tapedeck golden: {}\n\n",
        summary_line(suite, results)
    );
    out.push_str(
        "| task | verdict | stop reason | tool calls | tokens | cost | first divergence |\n",
    );
    out.push_str("|---|---|---|---:|---:|---:|---|\n");
    for r in results {
        let row = r.overview();
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| match (i, r.verdict) {
                (0, _) => format!("`{}`", md_escape(c)),
                (1, TaskVerdict::Drift | TaskVerdict::Error) => format!("**{}**", r.verdict.text()),
                (1, _) => r.verdict.text().to_owned(),
                _ => md_escape(c),
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    for r in results.iter().filter(|r| r.verdict != TaskVerdict::Pass) {
        let _ = writeln!(
            out,
            "\n---\n\n#### Task `{}`: {}\n",
            md_escape(&r.task),
            r.verdict.text()
        );
        if let Some(error) = &r.error {
            let _ = writeln!(
                out,
                "The task could not be checked:\n\n```\n{}\n```",
                error.replace("```", "`` `")
            );
            continue;
        }
        for reason in &r.reasons {
            let _ = writeln!(out, "- {}", md_escape(reason));
        }
        out.push('\n');
        if let (TaskVerdict::Drift, Some(diff)) = (r.verdict, &r.diff) {
            if let Some(n) = r.repeat {
                let _ = writeln!(
                    out,
                    "{n} runs per side. Every test of the task (p adjusted over tasks × metrics):\n"
                );
                let _ = writeln!(
                    out,
                    "| {} |\n|---|---:|---:|---:|---:|---:|---:|---|",
                    TESTS_HEADER[1..]
                        .iter()
                        .map(|h| h.to_lowercase())
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                for t in &r.tests {
                    let row = test_row(t);
                    let cells: Vec<String> = row[1..]
                        .iter()
                        .enumerate()
                        .map(|(i, c)| match (i, t.verdict == Verdict::Drift) {
                            (7, true) => "**drift**".to_owned(),
                            _ => md_escape(c),
                        })
                        .collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
                out.push_str("\nRepetition 1:\n\n");
            }
            out.push_str(&report::markdown(diff));
        }
        if let Some(diff) = r.snapshot.as_ref().and_then(|s| s.diff.as_ref()) {
            let _ = writeln!(
                out,
                "\n<details><summary>snapshot diff</summary>\n\n```diff\n{}```\n</details>",
                diff.replace("```", "`` `")
            );
        }
    }
    out
}

/// One self-contained HTML page: the overview table, then every task's diff (an error's
/// message for a task that could not be checked).
pub fn html(suite: &str, results: &[TaskResult]) -> String {
    let title_class = if results.iter().any(TaskResult::failed) {
        "drift"
    } else {
        "ok"
    };
    let mut rows = String::new();
    for r in results {
        let row = r.overview();
        let _ = write!(
            rows,
            "<tr class=\"{}\"><td><a href=\"#task-{id}\">{id}</a></td>",
            r.class(),
            id = esc(&row[0])
        );
        for cell in &row[1..] {
            let _ = write!(rows, "<td>{}</td>", esc(cell));
        }
        rows.push_str("</tr>");
    }
    let mut sections = String::new();
    for r in results {
        let _ = write!(
            sections,
            "<section id=\"task-{id}\"><h2 class=\"task\">Task <code>{id}</code>: <span class=\"{cls}\">{verdict}</span></h2>",
            id = esc(&r.task),
            cls = r.class(),
            verdict = r.verdict.text(),
        );
        if let Some(error) = &r.error {
            let _ = write!(
                sections,
                "<p>The task could not be checked:</p><pre class=\"error\">{}</pre></section>",
                esc(error)
            );
            continue;
        }
        if !r.reasons.is_empty() {
            sections.push_str("<ul>");
            for reason in &r.reasons {
                let _ = write!(sections, "<li>{}</li>", esc(reason));
            }
            sections.push_str("</ul>");
        }
        if let Some(n) = r.repeat {
            let _ = write!(
                sections,
                "<h2>Statistics</h2><p>{n} runs per side; p adjusted over tasks × metrics.</p><table><tr>"
            );
            for h in &TESTS_HEADER[1..] {
                let _ = write!(sections, "<th>{}</th>", esc(&h.to_lowercase()));
            }
            sections.push_str("</tr>");
            for t in &r.tests {
                let _ = write!(
                    sections,
                    "<tr class=\"{}\">",
                    if t.verdict == Verdict::Drift {
                        "drift"
                    } else {
                        "ok"
                    }
                );
                for cell in &test_row(t)[1..] {
                    let _ = write!(sections, "<td>{}</td>", esc(cell));
                }
                sections.push_str("</tr>");
            }
            sections.push_str("</table><h2>Repetition 1</h2>");
        }
        if let Some(diff) = &r.diff {
            sections.push_str(&report::html_body(diff));
        }
        if let Some(diff) = r.snapshot.as_ref().and_then(|s| s.diff.as_ref()) {
            let _ = write!(
                sections,
                "<h2>Snapshot diff</h2><pre>{}</pre>",
                esc(&shorten(diff, 20_000))
            );
        }
        sections.push_str("</section>");
    }
    let header: String = OVERVIEW_HEADER
        .iter()
        .map(|h| format!("<th>{}</th>", esc(&h.to_lowercase())))
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tapedeck golden {s}</title>\
<style>{style}section{{border-top:2px solid #ccc;margin-top:2em}}h2.task .drift,h2.task .error{{color:#b00}}h2.task .ok{{color:#070}}\
h2.task .changed{{color:#a60}}tr.error{{background:#fde2e1}}tr.changed{{background:#fff4d6}}\
pre{{background:#f6f6f6;padding:8px;overflow-x:auto}}</style></head>\
<body><h1><span class=\"{cls}\">{title}</span></h1><table><tr>{header}</tr>{rows}</table>{sections}</body></html>\n",
        s = esc(suite),
        style = report::HTML_STYLE,
        cls = title_class,
        title = esc(&summary_line(suite, results)),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{RunSummary, Tolerances, diff_runs};
    use tapedeck_trace::RunId;

    fn run(tokens: u64) -> RunSummary {
        RunSummary {
            id: RunId::new(),
            task: Some("a".to_owned()),
            stop_reason: "ok".to_owned(),
            steps: 1,
            tool_calls: BTreeMap::new(),
            sequence: Vec::new(),
            tokens_in: Some(tokens),
            tokens_out: Some(0),
            cost_usd: None,
            latency_ms: None,
            step_latencies_ms: Vec::new(),
            answer: "I can help.".to_owned(),
            agent: None,
        }
    }

    /// Baseline 60 tokens, candidate `tokens`, checked against the baseline's snapshot.
    fn check(tokens: u64, tolerance: &str, strict: bool) -> TaskResult {
        let (b, c) = (run(60), run(tokens));
        let old = Behaviour::of(&b);
        let new = Behaviour::of(&c);
        let mut tol = Tolerances::default();
        tol.set("tokens", tolerance).expect("a tolerance");
        TaskResult::new("a", diff_runs(b, c, &tol), Some(&old), &new, strict)
    }

    #[test]
    fn a_bucket_crossed_within_tolerance_is_a_change_not_drift() {
        let within = check(65, "+15%", false);
        assert_eq!(within.verdict, TaskVerdict::Changed);
        assert!(within.has_pending_snapshot() && !within.failed());
        assert_eq!(
            within.reasons,
            ["the behaviour snapshot changed within tolerance"]
        );
        assert_eq!(check(65, "+15%", true).verdict, TaskVerdict::Drift);
        let beyond = check(65, "+5%", false);
        assert_eq!(beyond.verdict, TaskVerdict::Drift);
        assert!(
            beyond.reasons[0].starts_with("tokens: 60 → 65"),
            "{beyond:?}"
        );
        let same = check(62, "+5%", true);
        assert_eq!(same.verdict, TaskVerdict::Pass);
        assert!(same.reasons.is_empty() && !same.has_pending_snapshot());
    }

    #[test]
    fn an_error_is_never_green() {
        let results = [
            check(60, "+15%", false),
            TaskResult::error("b", "run 1 of 1: no \"agent\" <here>".to_owned(), None),
        ];
        let xml = junit("s", &results);
        assert!(
            xml.contains("tests=\"2\" failures=\"0\" errors=\"1\"")
                && xml.contains("<error type=\"error\" message=\"run 1 of 1: no &quot;agent&quot; &lt;here&gt;\">"),
            "{xml}"
        );
        assert!(
            summary_line("s", &results).starts_with("error in 1 of 2 tasks"),
            "{}",
            summary_line("s", &results)
        );
        let md = markdown("s", &results);
        assert!(
            md.starts_with("## ❌") && md.contains("| `b` | **error** |"),
            "{md}"
        );
        let json = serde_json::to_value(&results[1]).expect("JSON");
        assert_eq!(json["verdict"], "error");
        assert!(json.get("diff").is_none(), "{json}");
    }

    #[test]
    fn means_print_as_counts_tokens_and_costs() {
        assert_eq!(mean_text(2.0), "2");
        assert_eq!(mean_text(2.5), "2.50");
        assert_eq!(mean_text(232.6), "233");
        assert_eq!(mean_text(0.25), "0.2500");
        assert_eq!(mean_text(0.000_15), "0.000150");
    }

    #[test]
    fn a_drifting_test_reads_as_one_line() {
        let t = MetricTest {
            task: Some("a".to_owned()),
            metric: "tool_calls".to_owned(),
            n: (5, 5),
            baseline_mean: 2.0,
            candidate_mean: 3.0,
            change: Some(0.5),
            p: 2.0 / 252.0,
            p_adjusted: 12.0 * 2.0 / 252.0,
            effect: 1.0,
            verdict: Verdict::Drift,
        };
        assert_eq!(
            test_reason(&t),
            "tool_calls: mean 2 → 3 (+50%), effect +1.00, p 0.0952 adjusted (0.0079 raw)"
        );
        assert_eq!(test_row(&t)[8], "DRIFT");
    }
}
