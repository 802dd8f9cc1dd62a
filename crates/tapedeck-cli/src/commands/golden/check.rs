//! `tapedeck golden check SUITE`: replay every task's baseline tape tools-only with an agent
//! version, diff baseline against replay within the task's tolerances, compare the behaviour
//! with the task's snapshot, and report: a table, `.snap.new` files for drift, and JUnit,
//! JSON, Markdown or HTML for CI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tapedeck_diff::distribution::{Correction, compare_groups_with};
use tapedeck_diff::golden::{self, Behaviour, Snapshot, Suite, Task, TaskResult};
use tapedeck_diff::{RunSummary, Tolerances, diff_runs};
use tapedeck_replay::{MissPolicy, Mode, Options};
use tapedeck_store::{Store, Writer};
use tapedeck_trace::RunId;

use crate::Exit;
use crate::render::{self, BAD, DIM, GOOD};
use crate::settings::Settings;

/// Check an agent version against a suite's baselines and snapshots
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each task's baseline tape is replayed tools-only with the agent version (its own model; every\ntool call answered from the tape), then diffed against the baseline within the task's\ntolerances, and its behaviour compared with snapshots/<task>.snap. A drifting task gets a\n<task>.snap.new to review (`tapedeck golden review`). Exit codes: 0 no drift, 1 drift, 2 bad\ninput (a missing tape, an invalid suite.yaml or snapshot).\n\nWith --repeat N (N >= 2) each of a task's N baseline tapes is replayed (run i with the scripted\nmodel's seed moved as `golden record --repeat` did), and the N baselines and N replays of every\ntask are compared as distributions: Mann-Whitney for counts, tokens and cost, Fisher for stop\nreasons, corrected over tasks × metrics (suite.yaml `alpha`, `correction: holm|bh`). A task\ndrifts when a test is significant and beyond tolerance; an N too small to ever reach alpha is\nrefused with the smallest N that can.\n\nExamples:\n  tapedeck golden check golden/support\n  tapedeck golden check golden/support --agent agents/support-v2.yaml -j 4\n  tapedeck golden check golden/support --shard 1/2 --junit junit.xml --markdown comment.md\n  tapedeck golden check golden/noisy --repeat 5 --agent fixtures/agents/noisy-bot-extra-call.yaml"
)]
pub struct Args {
    /// The suite's folder
    #[arg(value_name = "SUITE")]
    suite: PathBuf,
    /// The agent version to check (default: the one suite.yaml names)
    #[arg(long, value_name = "AGENT.yaml")]
    agent: Option<PathBuf>,
    /// Tasks to check at once
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Check only shard K of N (tasks i with i % N == K-1, counting from 0 in file order)
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the results as JSON here
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a Markdown report (a pull-request comment) here
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Write one self-contained HTML page here
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Runs per task and side (default: `repeat` in suite.yaml, else 1); with N >= 2 the N
    /// baselines and N replays of each task are compared as distributions
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: Option<u32>,
}

/// `K/N` with `1 <= K <= N`.
fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{text}` is not a shard: use K/N with 1 <= K <= N, e.g. 1/2");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// One baseline run of a task, ready to replay.
struct Prepared<'a> {
    task: &'a Task,
    /// The repetition, from 0 (tape `rep + 1`).
    rep: usize,
    baseline: RunId,
    snapshot: Option<Behaviour>,
}

/// One baseline replayed: both runs summarised.
struct Replayed {
    baseline: RunSummary,
    candidate: RunSummary,
}

/// One task checked: its result and the candidate's behaviour.
struct Checked {
    result: TaskResult,
    behaviour: Behaviour,
}

/// The statistics of a repeated check, for the summary.
struct Statistics {
    alpha: f64,
    correction: Correction,
    tests: usize,
}

/// Runs `tapedeck golden check`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let suite = Suite::load(&args.suite)?;
    let (config, agent_path) = super::load_agent(&suite, args.agent.as_deref())?;
    let tasks: Vec<&Task> = suite
        .tasks
        .iter()
        .enumerate()
        .filter(|(i, _)| args.shard.is_none_or(|(k, n)| i % n == k - 1))
        .map(|(_, t)| t)
        .collect();
    if tasks.is_empty() {
        bail!(
            "{}: no tasks to check{}",
            suite.suite_path().display(),
            if args.shard.is_some() {
                " in this shard"
            } else {
                ""
            }
        );
    }
    let repeat = super::repeat_of(&suite, args.repeat);
    // Everything that can be wrong with the input is found before anything runs.
    for task in &tasks {
        if repeat == 1 {
            let tape = suite.tape_path(&task.id);
            if !tape.is_file() {
                bail!(
                    "{}: no baseline tape for task `{}`: record it with `tapedeck golden record {}`",
                    tape.display(),
                    task.id,
                    suite.dir.display()
                );
            }
        } else {
            let recorded = suite.recorded_repetitions(&task.id);
            if recorded < repeat {
                bail!(
                    "{}: task `{}` has {recorded} baseline run{} but the check needs {repeat}: record them with `tapedeck golden record {} --repeat {repeat}`",
                    suite.dir.join("tapes").join(&task.id).display(),
                    task.id,
                    render::plural(recorded as u64),
                    suite.dir.display()
                );
            }
        }
    }
    let store = settings.open_store()?;
    let mut prepared = Vec::with_capacity(tasks.len() * repeat);
    for task in &tasks {
        let snapshot = Snapshot::read(&suite.snapshot_path(&task.id))
            .with_context(|| format!("the snapshot of task `{}`", task.id))?
            .map(|s| s.behaviour);
        for rep in 0..repeat {
            let tape = suite.repeat_tape_path(&task.id, rep + 1);
            let baseline = super::import_tape(&store, &tape, &task.id)?;
            prepared.push(Prepared {
                task,
                rep,
                baseline,
                snapshot: snapshot.clone(),
            });
        }
    }
    let options: Vec<Options> = (0..repeat)
        .map(|rep| {
            let config = super::for_repetition(&config, rep);
            Options {
                base_dir: config.base_dir(),
                mode: Mode::ToolsOnly(config),
                on_miss: MissPolicy::Error,
                live_allow: Vec::new(),
                match_position: false,
                strict: false,
            }
        })
        .collect();
    let writer = store.writer()?;
    let outcomes = run_all(settings, &writer, &prepared, &options, args.jobs);
    let mut checked = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    let mut statistics = None;
    if repeat == 1 {
        for (p, outcome) in prepared.iter().zip(outcomes) {
            match outcome {
                Ok(r) => {
                    let behaviour = Behaviour::of(&r.candidate);
                    let diff = diff_runs(r.baseline, r.candidate, &p.task.tolerances);
                    let result = TaskResult::new(&p.task.id, diff, p.snapshot.as_ref(), &behaviour);
                    checked.push(Checked { result, behaviour });
                }
                Err(e) => {
                    failed += 1;
                    render::error(&e.context(format!("task `{}`", p.task.id)));
                }
            }
        }
    } else {
        // Group the runs by task; a task with a failed replay is left out of the comparison.
        let mut runs: Vec<(&Prepared<'_>, Vec<Replayed>)> = Vec::new();
        let mut broken = false;
        for (p, outcome) in prepared.iter().zip(outcomes) {
            if p.rep == 0 {
                runs.push((p, Vec::new()));
                broken = false;
            }
            match outcome {
                Ok(r) if !broken => {
                    if let Some(last) = runs.last_mut() {
                        last.1.push(r);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if !broken {
                        failed += 1;
                        broken = true;
                    }
                    runs.pop_if(|(q, _)| q.task.id == p.task.id);
                    render::error(&e.context(format!(
                        "task `{}`, run {} of {repeat}",
                        p.task.id,
                        p.rep + 1
                    )));
                }
            }
        }
        if !runs.is_empty() {
            let baseline: Vec<RunSummary> = runs
                .iter()
                .flat_map(|(_, rs)| rs.iter().map(|r| r.baseline.clone()))
                .collect();
            let candidate: Vec<RunSummary> = runs
                .iter()
                .flat_map(|(_, rs)| rs.iter().map(|r| r.candidate.clone()))
                .collect();
            let tolerances_of = |task: Option<&str>| -> Tolerances {
                task.and_then(|t| suite.task(t))
                    .map_or_else(Tolerances::default, |t| t.tolerances.clone())
            };
            let comparison = compare_groups_with(
                &baseline,
                &candidate,
                tolerances_of,
                suite.alpha(),
                suite.correction(),
            )
            .with_context(|| format!("suite `{}`, {repeat} runs per task", suite.name))?;
            statistics = Some(Statistics {
                alpha: comparison.alpha,
                correction: comparison.correction,
                tests: comparison.tests.len(),
            });
            for (p, rs) in runs {
                let tests: Vec<_> = comparison
                    .tests
                    .iter()
                    .filter(|t| t.task.as_deref() == Some(p.task.id.as_str()))
                    .cloned()
                    .collect();
                let Some(first) = rs.into_iter().next() else {
                    continue;
                };
                let behaviour = Behaviour::of(&first.candidate);
                let diff = diff_runs(first.baseline, first.candidate, &p.task.tolerances);
                let result = TaskResult::repeated(
                    &p.task.id,
                    diff,
                    p.snapshot.as_ref(),
                    &behaviour,
                    repeat,
                    tests,
                );
                checked.push(Checked { result, behaviour });
            }
        }
    }
    for c in &checked {
        let pending = suite.pending_path(&c.result.task);
        if c.result.drifted() {
            Snapshot {
                source: suite.source(),
                expression: c.result.task.clone(),
                info: Some(BTreeMap::from([
                    (
                        "candidate_run".to_owned(),
                        c.result.diff.candidate.id.to_string(),
                    ),
                    ("agent".to_owned(), agent_path.display().to_string()),
                ])),
                behaviour: c.behaviour.clone(),
            }
            .write(&pending)?;
        } else {
            super::remove_if_present(&pending)?;
        }
    }
    let results: Vec<TaskResult> = checked.into_iter().map(|c| c.result).collect();
    print_summary(&suite, &results, &agent_path, statistics.as_ref());
    write_reports(&args, &suite.name, &results)?;
    Ok(if failed > 0 {
        Exit::Error
    } else if results.iter().any(TaskResult::drifted) {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

/// Checks every prepared task, `jobs` at a time; results in task order.
fn run_all(
    settings: &Settings,
    writer: &Writer,
    prepared: &[Prepared<'_>],
    options: &[Options],
    jobs: u32,
) -> Vec<anyhow::Result<Replayed>> {
    let bar = render::progress_bar(prepared.len() as u64, "task runs checked");
    super::super::on_workers(&settings.store, prepared.len(), jobs, &bar, |store, i| {
        let p = &prepared[i];
        match store {
            Ok(store) => check_one(store, writer, p, &options[p.rep]),
            Err(e) => Err(anyhow::anyhow!("cannot open the store: {e}")),
        }
    })
}

/// Replays one baseline of a task with the agent.
fn check_one(
    store: &Store,
    writer: &Writer,
    p: &Prepared<'_>,
    options: &Options,
) -> anyhow::Result<Replayed> {
    let report = tapedeck_replay::replay(store, writer, &p.baseline, options)?;
    for change in &report.stale {
        render::warning(&format!(
            "task `{}`: {change}: its tape may need recording again",
            p.task.id
        ));
    }
    writer.flush()?;
    Ok(Replayed {
        baseline: RunSummary::load(store, &p.baseline)?,
        candidate: RunSummary::load(store, &report.run.id)?,
    })
}

fn print_summary(
    suite: &Suite,
    results: &[TaskResult],
    agent: &Path,
    statistics: Option<&Statistics>,
) {
    let mut table = render::table(&golden::report::OVERVIEW_HEADER);
    for r in results {
        table.add_row(r.overview().to_vec());
    }
    anstream::println!("{}", table.trim_fmt());
    let drifted: Vec<&TaskResult> = results.iter().filter(|r| r.drifted()).collect();
    if let Some(s) = statistics {
        let dim = DIM;
        anstream::println!(
            "\n{dim}{} runs per task and side, α = {}, {} correction over {} tests (tasks × metrics){dim:#}",
            results.first().and_then(|r| r.repeat).unwrap_or(1),
            s.alpha,
            s.correction.name(),
            s.tests
        );
        if !drifted.is_empty() {
            let mut tests = render::table(&golden::report::TESTS_HEADER[..8]);
            for t in drifted.iter().flat_map(|r| r.drifting_tests()) {
                tests.add_row(golden::report::test_row(t)[..8].to_vec());
            }
            anstream::println!("\n{}", tests.trim_fmt());
        }
    }
    if !drifted.is_empty() && statistics.is_none() {
        anstream::println!();
    }
    // With repetitions the table of drifting tests above says why.
    for r in drifted.iter().filter(|r| r.repeat.is_none()) {
        let bad = BAD;
        anstream::println!("{bad}{}{bad:#}", r.task);
        for reason in &r.reasons {
            anstream::println!("  {reason}");
        }
    }
    let (good, bad, dim) = (GOOD, BAD, DIM);
    let line = golden::report::summary_line(&suite.name, results);
    if drifted.is_empty() {
        anstream::println!(
            "\n{good}{line}{good:#} {dim}(agent {}){dim:#}",
            agent.display()
        );
    } else {
        anstream::println!(
            "\n{bad}{line}{bad:#} {dim}(agent {}){dim:#}",
            agent.display()
        );
        anstream::println!(
            "review the new snapshots with `tapedeck golden review {}`, or take them with `tapedeck golden accept {}`",
            suite.dir.display(),
            suite.dir.display()
        );
    }
}

fn write_reports(args: &Args, suite: &str, results: &[TaskResult]) -> anyhow::Result<()> {
    // Each report is rendered only when its file was asked for.
    let write = |path: &Option<PathBuf>,
                 render: &dyn Fn() -> anyhow::Result<String>|
     -> anyhow::Result<()> {
        if let Some(path) = path {
            std::fs::write(path, render()?)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
        }
        Ok(())
    };
    write(&args.junit, &|| Ok(golden::report::junit(suite, results)))?;
    write(&args.json, &|| {
        Ok(serde_json::to_string_pretty(results)? + "\n")
    })?;
    write(&args.markdown, &|| {
        Ok(golden::report::markdown(suite, results))
    })?;
    write(&args.html, &|| Ok(golden::report::html(suite, results)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_shard;

    #[test]
    fn shards() {
        assert_eq!(parse_shard("1/2"), Ok((1, 2)));
        assert!(parse_shard("0/2").is_err());
        assert!(parse_shard("3/2").is_err());
        assert!(parse_shard("x").is_err());
    }
}
