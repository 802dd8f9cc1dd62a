//! Judging a golden check: each task's baseline and candidate runs — one pair, or N of each
//! compared as distributions — diffed within the task's tolerances and held against its
//! snapshot, into one [`TaskResult`] a task ([`judge`]); and the pending snapshots a reviewer
//! accepts ([`SuiteJudgement::write_pending`]). Running the candidate is the caller's part.

use std::collections::BTreeMap;

use crate::distribution::{Correction, compare_groups_with};
use crate::golden::{Behaviour, Snapshot, Suite, Task, TaskResult, TaskVerdict, remove_if_present};
use crate::{DiffError, RunSummary, Tolerances, diff_runs};

/// One baseline run and the candidate's run of it, both summarised.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The baseline.
    pub baseline: RunSummary,
    /// The candidate's run.
    pub candidate: RunSummary,
}

/// What a task's runs came to: its pairs (one per repetition), or why it could not be run.
#[derive(Clone, Debug)]
pub enum TaskRuns {
    /// Every repetition ran.
    Ran(Vec<Pair>),
    /// A repetition could not run: the message is the task's error in every report.
    Failed(String),
}

/// One task judged.
#[derive(Clone, Debug)]
pub struct Judged {
    /// The verdict, the diff and the snapshot check.
    pub result: TaskResult,
    /// The candidate's behaviour, for a pending snapshot (none for a task in error).
    pub behaviour: Option<Behaviour>,
}

/// The statistics of a repeated check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Statistics {
    /// The significance level.
    pub alpha: f64,
    /// The correction for many tests.
    pub correction: Correction,
    /// How many tests the correction was over.
    pub tests: usize,
}

/// A suite's check judged: one entry a task, in the order given.
#[derive(Clone, Debug)]
pub struct SuiteJudgement {
    /// The tasks.
    pub tasks: Vec<Judged>,
    /// With repetitions, the statistics the verdicts rest on.
    pub statistics: Option<Statistics>,
}

impl SuiteJudgement {
    /// The task results, in order.
    pub fn results(&self) -> Vec<TaskResult> {
        self.tasks.iter().map(|t| t.result.clone()).collect()
    }

    /// Writes `<task>.snap.new` for every task that drifted or whose snapshot changed, naming
    /// the candidate run and `agent`; removes a stale one of a task that passed (a task in
    /// error leaves it as it is).
    pub fn write_pending(&self, suite: &Suite, agent: &str) -> Result<(), DiffError> {
        for judged in &self.tasks {
            let result = &judged.result;
            let pending = suite.pending_path(&result.task);
            match (&judged.behaviour, &result.diff) {
                (Some(behaviour), Some(diff)) if result.has_pending_snapshot() => {
                    Snapshot {
                        source: suite.source(),
                        expression: result.task.clone(),
                        info: Some(BTreeMap::from([
                            ("candidate_run".to_owned(), diff.candidate.id.to_string()),
                            ("agent".to_owned(), agent.to_owned()),
                        ])),
                        behaviour: behaviour.clone(),
                    }
                    .write(&pending)?;
                }
                _ if result.verdict == TaskVerdict::Pass => remove_if_present(&pending)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Judges every task of a check: `tasks[i]` ran as `runs[i]`, against the snapshot behaviour
/// `snapshots[i]` (none: the task has no snapshot yet); `repeat` runs a side. With one run a
/// side, the pair is diffed within the task's tolerances; with more, the suite's baselines and
/// candidates are compared as distributions (the suite's `alpha` and correction, over every
/// task that ran) and each task is judged by its tests. `strict` fails a task on any snapshot
/// change, even within tolerance.
pub fn judge(
    suite: &Suite,
    tasks: &[&Task],
    snapshots: &[Option<Behaviour>],
    runs: Vec<TaskRuns>,
    repeat: usize,
    strict: bool,
) -> SuiteJudgement {
    let mut failed: BTreeMap<usize, String> = BTreeMap::new();
    let mut pairs: Vec<Vec<Pair>> = Vec::with_capacity(runs.len());
    for (t, ran) in runs.into_iter().enumerate() {
        match ran {
            TaskRuns::Ran(p) => pairs.push(p),
            TaskRuns::Failed(message) => {
                failed.insert(t, message);
                pairs.push(Vec::new());
            }
        }
    }
    let mut judged: Vec<Option<Judged>> = tasks.iter().map(|_| None).collect();
    let mut statistics = None;
    let snapshot = |t: usize| snapshots.get(t).and_then(Option::as_ref);
    if repeat <= 1 {
        for (t, task) in tasks.iter().enumerate() {
            if failed.contains_key(&t) {
                continue;
            }
            if let Some(pair) = pairs[t].pop() {
                let behaviour = Behaviour::of(&pair.candidate);
                let diff = diff_runs(pair.baseline, pair.candidate, &task.tolerances);
                judged[t] = Some(Judged {
                    result: TaskResult::new(&task.id, diff, snapshot(t), &behaviour, strict),
                    behaviour: Some(behaviour),
                });
            }
        }
    } else {
        let ran: Vec<usize> = (0..tasks.len())
            .filter(|t| !failed.contains_key(t))
            .collect();
        if !ran.is_empty() {
            let side = |pick: fn(&Pair) -> &RunSummary| -> Vec<RunSummary> {
                ran.iter()
                    .flat_map(|t| pairs[*t].iter().map(|p| pick(p).clone()))
                    .collect()
            };
            let tolerances_of = |task: Option<&str>| -> Tolerances {
                task.and_then(|t| suite.task(t))
                    .map_or_else(Tolerances::default, |t| t.tolerances.clone())
            };
            match compare_groups_with(
                &side(|p| &p.baseline),
                &side(|p| &p.candidate),
                tolerances_of,
                suite.alpha(),
                suite.correction(),
            ) {
                Ok(comparison) => {
                    statistics = Some(Statistics {
                        alpha: comparison.alpha,
                        correction: comparison.correction,
                        tests: comparison.tests.len(),
                    });
                    for t in ran {
                        let task = tasks[t];
                        let tests: Vec<_> = comparison
                            .tests
                            .iter()
                            .filter(|x| x.task.as_deref() == Some(task.id.as_str()))
                            .cloned()
                            .collect();
                        // The first repetition stands for the task in the diff and snapshot.
                        let Some(first) = std::mem::take(&mut pairs[t]).into_iter().next() else {
                            continue;
                        };
                        let behaviour = Behaviour::of(&first.candidate);
                        let diff = diff_runs(first.baseline, first.candidate, &task.tolerances);
                        judged[t] = Some(Judged {
                            result: TaskResult::repeated(
                                &task.id,
                                diff,
                                snapshot(t),
                                &behaviour,
                                repeat,
                                tests,
                                strict,
                            ),
                            behaviour: Some(behaviour),
                        });
                    }
                }
                Err(e) => {
                    // The runs are recorded: the comparison's failure is every compared task's.
                    let message = format!("suite `{}`, {repeat} runs per task: {e}", suite.name);
                    for t in ran {
                        failed.insert(t, message.clone());
                    }
                }
            }
        }
    }
    let tasks = judged
        .into_iter()
        .enumerate()
        .map(|(t, j)| match (failed.remove(&t), j) {
            (None, Some(j)) => j,
            (message, _) => Judged {
                result: TaskResult::error(
                    &tasks[t].id,
                    message.unwrap_or_else(|| "the task was not replayed".to_owned()),
                    (repeat > 1).then_some(repeat),
                ),
                behaviour: None,
            },
        })
        .collect();
    SuiteJudgement { tasks, statistics }
}
