//! Comparing groups of runs as distributions ([`compare_groups`]): 50 production runs on model
//! A against 50 on model B, or N repetitions of each golden task.
//!
//! Runs are paired by task where every run has one, and pooled otherwise. Each count or token
//! metric is tested with Mann-Whitney U, each stop reason's share with Fisher's exact test, and
//! the p-values are corrected for the number of tests (tasks × metrics). A change is drift only
//! when it is statistically clear *and* beyond its tolerance, so sampling noise does not page
//! anyone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compare::{beyond, relative_change};
use crate::stats::{benjamini_hochberg, fisher_exact, holm, mann_whitney, smallest_n};
use crate::{DiffError, RunSummary, Tolerances, Verdict};

/// How a numeric metric is read off a run (`None`: unknown).
type MetricOf = fn(&RunSummary) -> Option<f64>;

/// The multiple-testing correction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Holm-Bonferroni: controls the chance of any false alarm.
    #[default]
    Holm,
    /// Benjamini-Hochberg: controls the share of false alarms among the alarms (`bh`).
    #[serde(alias = "bh", alias = "benjamini-hochberg")]
    BenjaminiHochberg,
}

impl Correction {
    /// Its name for people (`Holm`, `Benjamini-Hochberg`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Holm => "Holm",
            Self::BenjaminiHochberg => "Benjamini-Hochberg",
        }
    }
}

/// One metric of one group, baseline against candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricTest {
    /// The task, or `None` for pooled runs.
    pub task: Option<String>,
    /// `tool_calls`, `steps`, `tokens`, `cost_usd`, or `stop_reason=<reason>`.
    pub metric: String,
    /// Runs on each side.
    pub n: (usize, usize),
    /// The baseline's mean (for a stop reason: its share).
    pub baseline_mean: f64,
    /// The candidate's mean (share).
    pub candidate_mean: f64,
    /// The relative change of the mean.
    pub change: Option<f64>,
    /// The test's p-value.
    pub p: f64,
    /// The p-value after correction.
    pub p_adjusted: f64,
    /// The effect size: Cliff's delta (candidate against baseline) or the share difference.
    pub effect: f64,
    /// The verdict: drift only when significant and beyond tolerance.
    pub verdict: Verdict,
}

/// Two groups compared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupComparison {
    /// Whether runs were paired by task.
    pub paired_by_task: bool,
    /// The significance level.
    pub alpha: f64,
    /// The correction used.
    pub correction: Correction,
    /// Every test.
    pub tests: Vec<MetricTest>,
    /// Whether anything drifted.
    pub drift: bool,
}

/// Compares `candidate` runs with `baseline` runs.
pub fn compare_groups(
    baseline: &[RunSummary],
    candidate: &[RunSummary],
    tolerances: &Tolerances,
    alpha: f64,
    correction: Correction,
) -> Result<GroupComparison, DiffError> {
    compare_groups_with(
        baseline,
        candidate,
        |_| tolerances.clone(),
        alpha,
        correction,
    )
}

/// [`compare_groups`] with tolerances per task (`None`: pooled runs), as golden suites have.
pub fn compare_groups_with(
    baseline: &[RunSummary],
    candidate: &[RunSummary],
    tolerances_of: impl Fn(Option<&str>) -> Tolerances,
    alpha: f64,
    correction: Correction,
) -> Result<GroupComparison, DiffError> {
    if baseline.is_empty() || candidate.is_empty() {
        return Err(DiffError::Tolerance(format!(
            "nothing to compare: the baseline selects {} runs and the candidate {}",
            baseline.len(),
            candidate.len()
        )));
    }
    let paired = baseline.iter().chain(candidate).all(|r| r.task.is_some());
    let mut groups: BTreeMap<Option<String>, (Vec<&RunSummary>, Vec<&RunSummary>)> =
        BTreeMap::new();
    for r in baseline {
        let key = if paired { r.task.clone() } else { None };
        groups.entry(key).or_default().0.push(r);
    }
    for r in candidate {
        let key = if paired { r.task.clone() } else { None };
        groups.entry(key).or_default().1.push(r);
    }
    groups.retain(|_, (b, c)| !b.is_empty() && !c.is_empty());
    if groups.is_empty() {
        return Err(DiffError::Tolerance(
            "the two groups share no task: nothing can be paired".to_owned(),
        ));
    }
    let mut tests = Vec::new();
    let mut limits = Vec::new();
    for (task, (b, c)) in &groups {
        let tolerances = tolerances_of(task.as_deref());
        let numeric: [(&str, MetricOf, f64); 4] = [
            (
                "tool_calls",
                |r| Some(r.tool_calls_total() as f64),
                tolerances.tool_calls,
            ),
            ("steps", |r| Some(r.steps as f64), tolerances.steps),
            (
                "tokens",
                |r| r.tokens_total().map(|t| t as f64),
                tolerances.tokens,
            ),
            ("cost_usd", |r| r.cost_usd, tolerances.cost),
        ];
        for (metric, value, limit) in numeric {
            let (Some(bv), Some(cv)) = (
                b.iter().map(|r| value(r)).collect::<Option<Vec<f64>>>(),
                c.iter().map(|r| value(r)).collect::<Option<Vec<f64>>>(),
            ) else {
                continue; // unknown values: nothing can be said
            };
            let Some(mw) = mann_whitney(&cv, &bv) else {
                continue;
            };
            let (bm, cm) = (mean(&bv), mean(&cv));
            tests.push(MetricTest {
                task: task.clone(),
                metric: metric.to_owned(),
                n: (bv.len(), cv.len()),
                baseline_mean: bm,
                candidate_mean: cm,
                change: Some(relative_change(bm, cm)),
                p: mw.p,
                p_adjusted: mw.p,
                effect: mw.effect,
                verdict: Verdict::Ok,
            });
            limits.push(Some(limit));
        }
        let mut reasons: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for r in b {
            reasons.entry(r.stop_reason.as_str()).or_default().0 += 1;
        }
        for r in c {
            reasons.entry(r.stop_reason.as_str()).or_default().1 += 1;
        }
        if reasons.len() > 1 {
            let (nb, nc) = (b.len() as u64, c.len() as u64);
            for (reason, (in_b, in_c)) in reasons {
                let p = fisher_exact(in_b, nb - in_b, in_c, nc - in_c);
                let (sb, sc) = (in_b as f64 / nb as f64, in_c as f64 / nc as f64);
                tests.push(MetricTest {
                    task: task.clone(),
                    metric: format!("stop_reason={reason}"),
                    n: (b.len(), c.len()),
                    baseline_mean: sb,
                    candidate_mean: sc,
                    change: None,
                    p,
                    p_adjusted: p,
                    effect: sc - sb,
                    verdict: Verdict::Ok,
                });
                limits.push(tolerances.stop_reason_must_equal.then_some(0.0));
            }
        }
    }
    let smallest_side = groups
        .values()
        .map(|(b, c)| b.len().min(c.len()))
        .min()
        .unwrap_or(0);
    check_power(smallest_side, alpha, tests.len())?;
    let ps: Vec<f64> = tests.iter().map(|t| t.p).collect();
    let adjusted = match correction {
        Correction::Holm => holm(&ps),
        Correction::BenjaminiHochberg => benjamini_hochberg(&ps),
    };
    for ((test, p_adj), limit) in tests.iter_mut().zip(adjusted).zip(limits) {
        test.p_adjusted = p_adj;
        let significant = p_adj <= alpha;
        test.verdict = match limit {
            None => Verdict::Info,
            Some(limit) => {
                let beyond = if test.metric.starts_with("stop_reason=") {
                    // A stop reason's share moving at all is a change of behaviour.
                    (test.candidate_mean - test.baseline_mean).abs() > limit
                } else {
                    test.change.is_some_and(|c| beyond(c, limit))
                };
                if significant && beyond {
                    Verdict::Drift
                } else {
                    Verdict::Ok
                }
            }
        };
    }
    let drift = tests.iter().any(|t| t.verdict == Verdict::Drift);
    Ok(GroupComparison {
        paired_by_task: paired,
        alpha,
        correction,
        tests,
        drift,
    })
}

/// Refuses `n` runs per side when no test could ever reach `alpha` after correcting over
/// `tests` tests, naming the smallest N that can.
pub fn check_power(n: usize, alpha: f64, tests: usize) -> Result<(), DiffError> {
    let tests = tests.max(1);
    match smallest_n(alpha, tests) {
        Some(needed) if n < needed => Err(DiffError::TooFewRuns {
            per_side: n,
            alpha,
            tests,
            needed,
        }),
        _ => Ok(()),
    }
}

/// How many count tests [`compare_groups_with`] will make at least, seen from the baseline
/// alone: per task, each count metric every baseline run knows (a stop-reason test is only
/// added when the candidate's reasons differ). What a repeated golden check can be refused
/// with before it replays anything.
pub fn planned_tests(baseline: &[RunSummary]) -> usize {
    let mut groups: BTreeMap<Option<&str>, Vec<&RunSummary>> = BTreeMap::new();
    for r in baseline {
        groups.entry(r.task.as_deref()).or_default().push(r);
    }
    let known: [MetricOf; 4] = [
        |r| Some(r.tool_calls_total() as f64),
        |r| Some(r.steps as f64),
        |r| r.tokens_total().map(|t| t as f64),
        |r| r.cost_usd,
    ];
    groups
        .values()
        .map(|runs| {
            known
                .iter()
                .filter(|value| runs.iter().all(|r| value(r).is_some()))
                .count()
        })
        .sum()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_trace::RunId;

    fn run(task: &str, tool_calls: u64) -> RunSummary {
        RunSummary {
            id: RunId::new(),
            task: Some(task.to_owned()),
            stop_reason: "ok".to_owned(),
            steps: tool_calls + 1,
            tool_calls: BTreeMap::from([("kb.search".to_owned(), tool_calls)]),
            sequence: Vec::new(),
            tokens_in: None,
            tokens_out: None,
            cost_usd: None,
            latency_ms: None,
            step_latencies_ms: Vec::new(),
            answer: String::new(),
            agent: None,
        }
    }

    #[test]
    fn per_task_tolerances_decide_the_verdict_and_the_correction_spans_tasks() {
        let mut baseline = Vec::new();
        let mut candidate = Vec::new();
        for task in ["a", "b"] {
            baseline.extend((0..6).map(|_| run(task, 2)));
            candidate.extend((0..6).map(|_| run(task, 3)));
        }
        // Task `b` tolerates +100% tool calls and steps: significant, but within tolerance.
        let result = compare_groups_with(
            &baseline,
            &candidate,
            |task| {
                let mut t = Tolerances::default();
                if task == Some("b") {
                    t.set("tool_calls", "+100%").expect("valid");
                    t.set("steps", "+100%").expect("valid");
                }
                t
            },
            0.05,
            Correction::Holm,
        )
        .expect("compares");
        assert!(result.paired_by_task && result.drift);
        assert_eq!(result.tests.len(), 4, "two metrics known, two tasks");
        for t in &result.tests {
            // Two fully separated groups of six: p = 2/924; Holm over 4 tests.
            assert!((t.p - 2.0 / 924.0).abs() < 1e-9, "{t:?}");
            assert!((t.p_adjusted - 4.0 * 2.0 / 924.0).abs() < 1e-9, "{t:?}");
            let expected = if t.task.as_deref() == Some("a") {
                Verdict::Drift
            } else {
                Verdict::Ok
            };
            assert_eq!(t.verdict, expected, "{t:?}");
        }
    }

    #[test]
    fn too_few_runs_name_the_smallest_n() {
        let baseline: Vec<_> = (0..2).map(|_| run("a", 2)).collect();
        let candidate: Vec<_> = (0..2).map(|_| run("a", 3)).collect();
        let err = compare_groups(
            &baseline,
            &candidate,
            &Tolerances::default(),
            0.05,
            Correction::Holm,
        )
        .expect_err("too few")
        .to_string();
        assert!(err.contains("the smallest N that can is 5"), "{err}");
    }
}
