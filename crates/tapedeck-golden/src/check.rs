//! Checking a candidate against a suite's baselines: every input is validated first
//! ([`Check::prepare`]), then each baseline is imported and run again by the candidate, `jobs`
//! at a time, and the runs judged ([`Check::run`]) into a [`SuiteJudgement`] the caller
//! renders.

use std::collections::BTreeMap;

use tapedeck_diff::RunSummary;
use tapedeck_diff::distribution;
use tapedeck_diff::golden::check::{self, Pair, SuiteJudgement, TaskRuns};
use tapedeck_diff::golden::{Behaviour, Snapshot, Suite, SuiteCommand, Task};
use tapedeck_proxy::http::InterruptSource;
use tapedeck_replay::Options;
use tapedeck_replay::session::ModelSource;
use tapedeck_store::{Store, Writer};
use tapedeck_trace::{RunId, Source};

use crate::command::{self, Runs};
use crate::{GoldenError, Observer, files};
use tapedeck_trace::one_line;

/// What the baselines are checked against.
pub enum Candidate {
    /// An agent version, replayed tools-only with these options (its own model; every tool
    /// call answered from the baseline).
    Agent(Box<Options>),
    /// A command suite's command (the suite's, or another), run again in a session: its model
    /// from `model`, every tool and MCP call answered from the baseline, a write tool never run.
    Command {
        /// The suite's command: its folder, environment and name.
        command: SuiteCommand,
        /// The command line that runs (`{input}` and `{task}` replaced per task).
        argv: Vec<String>,
        /// Where its model answers come from.
        model: ModelSource,
        /// What interrupts it while it runs.
        interrupts: InterruptSource,
    },
}

/// A check whose input is valid: every baseline tape is there and reads as a run, every
/// snapshot parses, and the repetitions can reach significance.
pub struct Check<'a> {
    suite: &'a Suite,
    tasks: Vec<&'a Task>,
    repeat: usize,
    candidate: Candidate,
    snapshots: Vec<Option<Behaviour>>,
    strict_snapshots: bool,
}

/// One baseline run of a task, ready to run again.
struct Prepared {
    /// The task's index in the checked tasks.
    task: usize,
    /// The repetition, from 0 (tape `rep + 1`).
    rep: usize,
    baseline: RunId,
}

impl<'a> Check<'a> {
    /// Validates a check of `tasks` of `suite` (`repeat` runs a side) against `candidate`
    /// without touching a store: an error here is in the input, and nothing was written.
    /// `strict_snapshots` fails a task on any snapshot change, even within tolerance.
    pub fn prepare(
        suite: &'a Suite,
        tasks: Vec<&'a Task>,
        repeat: usize,
        candidate: Candidate,
        strict_snapshots: bool,
        observer: &dyn Observer,
    ) -> Result<Self, GoldenError> {
        if let Candidate::Command { command, argv, .. } = &candidate {
            command::check(&SuiteCommand {
                argv: argv.clone(),
                ..command.clone()
            })?;
        }
        let baselines = validate_tapes(
            suite,
            &tasks,
            repeat,
            matches!(candidate, Candidate::Command { .. }),
            observer,
        )?;
        let mut snapshots = Vec::with_capacity(tasks.len());
        for task in &tasks {
            let snapshot = Snapshot::read(&suite.snapshot_path(&task.id)).map_err(|error| {
                GoldenError::Snapshot {
                    task: task.id.clone(),
                    error: Box::new(error),
                }
            })?;
            snapshots.push(snapshot.map(|s| s.behaviour));
        }
        if repeat > 1 {
            match distribution::check_power(
                repeat,
                suite.alpha(),
                distribution::planned_tests(&baselines),
            ) {
                Err(error @ tapedeck_diff::DiffError::TooFewRuns { needed, .. }) => {
                    return Err(GoldenError::TooFewRuns {
                        suite: suite.name.clone(),
                        repeat,
                        needed,
                        error: Box::new(error),
                    });
                }
                other => other?,
            }
        }
        Ok(Self {
            suite,
            tasks,
            repeat,
            candidate,
            snapshots,
            strict_snapshots,
        })
    }

    /// Imports every baseline into `store`, runs each again with the candidate, `jobs` at a
    /// time (each worker with its own connection to the store's file), and judges the runs. A
    /// baseline that cannot be imported or run makes its task an error in the judgement, not
    /// an error of the check: only a store that cannot be written to is.
    pub fn run(
        &self,
        store: &Store,
        jobs: usize,
        observer: &dyn Observer,
    ) -> Result<SuiteJudgement, GoldenError> {
        let writer = store.writer()?;
        let repeat = self.repeat;
        let mut broken: BTreeMap<usize, String> = BTreeMap::new();
        let mut prepared = Vec::with_capacity(self.tasks.len() * repeat);
        for (t, task) in self.tasks.iter().enumerate() {
            let mut runs = Vec::with_capacity(repeat);
            for rep in 0..repeat {
                let tape = self.suite.repeat_tape_path(&task.id, rep + 1);
                match files::import_tape(store, &tape, &task.id) {
                    Ok(baseline) => runs.push(Prepared {
                        task: t,
                        rep,
                        baseline,
                    }),
                    Err(e) => {
                        broken.insert(t, one_line(&e));
                        break;
                    }
                }
            }
            if !broken.contains_key(&t) {
                prepared.extend(runs);
            }
        }
        observer.runs_planned(prepared.len());
        let tick = || observer.run_done();
        let outcomes = tapedeck_store::on_workers(
            store.location(),
            prepared.len(),
            jobs,
            &tick,
            |worker_store, i| {
                let p = &prepared[i];
                match worker_store {
                    Ok(worker_store) => self.check_one(worker_store, &writer, p, observer),
                    Err(e) => Err(GoldenError::WorkerStore(e.to_string())),
                }
            },
        );
        let mut replayed: Vec<Vec<Pair>> = self.tasks.iter().map(|_| Vec::new()).collect();
        for (p, outcome) in prepared.iter().zip(outcomes) {
            if broken.contains_key(&p.task) {
                continue; // an earlier repetition failed: the task is an error already
            }
            match outcome {
                Ok(r) => replayed[p.task].push(r),
                Err(e) if repeat == 1 => {
                    broken.insert(p.task, one_line(&e));
                }
                Err(e) => {
                    broken.insert(
                        p.task,
                        format!("run {} of {repeat}: {}", p.rep + 1, one_line(&e)),
                    );
                }
            }
        }
        let runs: Vec<TaskRuns> = replayed
            .into_iter()
            .enumerate()
            .map(|(t, pairs)| match broken.remove(&t) {
                Some(message) => TaskRuns::Failed(message),
                None => TaskRuns::Ran(pairs),
            })
            .collect();
        Ok(check::judge(
            self.suite,
            &self.tasks,
            &self.snapshots,
            runs,
            repeat,
            self.strict_snapshots,
        ))
    }

    /// Runs one baseline of a task again with the candidate.
    fn check_one(
        &self,
        store: &Store,
        writer: &Writer,
        p: &Prepared,
        observer: &dyn Observer,
    ) -> Result<Pair, GoldenError> {
        let task = self.tasks[p.task];
        let replayed = match &self.candidate {
            Candidate::Agent(options) => {
                let report = tapedeck_replay::replay(store, writer, &p.baseline, options)?;
                for change in &report.stale {
                    observer.warning(&format!(
                        "task `{}`: {change}: its tape may need recording again",
                        task.id
                    ));
                }
                writer.flush()?;
                report.run.id
            }
            Candidate::Command {
                command,
                argv,
                model,
                interrupts,
            } => command::replay(
                Runs {
                    store,
                    writer,
                    command,
                    interrupts: *interrupts,
                    observer,
                },
                argv,
                task,
                p.rep,
                &p.baseline,
                model,
            )?,
        };
        Ok(Pair {
            baseline: RunSummary::load(store, &p.baseline)?,
            candidate: RunSummary::load(store, &replayed)?,
        })
    }
}

/// Reads every baseline tape the check needs into a scratch store in memory: a tape that is
/// missing, truncated or does not parse is an input error before the real store is touched.
/// Returns the baselines' summaries, for the repetitions' power check.
fn validate_tapes(
    suite: &Suite,
    tasks: &[&Task],
    repeat: usize,
    command_suite: bool,
    observer: &dyn Observer,
) -> Result<Vec<RunSummary>, GoldenError> {
    for task in tasks {
        let recorded = suite.recorded_repetitions(&task.id);
        if repeat == 1 && recorded == 0 {
            return Err(GoldenError::NoBaseline {
                tape: suite.tape_path(&task.id),
                task: task.id.clone(),
                suite_dir: suite.dir.clone(),
            });
        }
        if recorded < repeat {
            return Err(GoldenError::TooFewBaselines {
                tapes: suite.dir.join("tapes").join(&task.id),
                task: task.id.clone(),
                recorded,
                repeat,
                suite_dir: suite.dir.clone(),
            });
        }
    }
    let scratch = Store::open(":memory:")?;
    let mut summaries = Vec::with_capacity(tasks.len() * repeat);
    let mut unlabelled = None;
    for task in tasks {
        for rep in 0..repeat {
            let tape = suite.repeat_tape_path(&task.id, rep + 1);
            let id = files::import_tape(&scratch, &tape, &task.id)?;
            let run = scratch.run(&id)?;
            // A command suite reruns its command in a session: only a run of a command can be
            // its baseline. (A YAML suite's replay says itself which runs it cannot replay, as a
            // task error.)
            if command_suite && run.source != Source::Proxy {
                return Err(GoldenError::NotACommandBaseline {
                    tape,
                    task: task.id.clone(),
                    recorded_by: run.source,
                    suite: suite.name.clone(),
                    suite_dir: suite.dir.clone(),
                });
            }
            if rep > 0 && !run.labels.contains_key(tapedeck_agent::model::REPEAT_LABEL) {
                unlabelled.get_or_insert(tape);
            }
            summaries.push(RunSummary::load(&scratch, &id)?);
        }
    }
    if let Some(tape) = unlabelled {
        observer.warning(&format!(
            "{}: has no `repeat` label (recorded before tapedeck kept repetition seeds out of the agent version): a scripted model replays every repetition with its script's seed; record the suite again with `tapedeck golden record {} --repeat {repeat}`",
            tape.display(),
            suite.dir.display()
        ));
    }
    Ok(summaries)
}
