//! `tapedeck golden check SUITE`: replay every task's baseline tape tools-only with an agent
//! version, diff baseline against replay within the task's tolerances, compare the behaviour
//! with the task's snapshot, and report: a table, `.snap.new` files for drift, and JUnit,
//! JSON, Markdown or HTML for CI.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tapedeck_diff::golden::check::Statistics;
use tapedeck_diff::golden::{self, Suite, Task, TaskResult, TaskVerdict};
use tapedeck_golden::{Candidate, Check};
use tapedeck_proxy::command_line;
use tapedeck_replay::Options;
use tapedeck_replay::session::ModelSource;

use crate::Exit;
use crate::json_output;
use crate::render::{self, BAD, DIM, GOOD, WARN};
use crate::settings::Settings;

/// Check an agent version against a suite's baselines and snapshots
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each task's baseline tape is replayed tools-only with the agent version (its own model; every\ntool call answered from the tape) — for a suite of a command (`command:` in suite.yaml, an agent\nwritten as code), the candidate command (--command, else the suite's) runs again in a session,\nits model live through --upstream-openai / --upstream-anthropic (or from the tape with --exact)\nand every tool and MCP call answered from the tape, a write tool never run — then diffed against the baseline within the task's\ntolerances, and its behaviour compared with snapshots/<task>.snap. A task drifts only when a\nmetric is beyond its tolerance, its stop reason changed (`stop_reason: equal`) or its answer is\nless similar than `answer_similarity`; a snapshot that changed while all of that held (a token\nbucket crossed, say) is \"changed within tolerance\": it passes, with a <task>.snap.new to review\n(`tapedeck golden review`), unless --strict-snapshots. A task that cannot replay is an error in\nevery report. Exit codes: 0 no drift, 1 drift or a task error, 2 bad input found before\nanything was written (a missing or unreadable tape, an invalid suite.yaml, agent or snapshot).\n\nWith --repeat N (N >= 2) each of a task's N baseline tapes is replayed (run i with the scripted\nmodel's seed its baseline had, from its `repeat=i` label), and the N baselines and N replays\nof every task are compared as distributions: Mann-Whitney for counts, tokens and cost, Fisher\nfor stop reasons, corrected over tasks × metrics (suite.yaml `alpha`, `correction: holm|bh`). A task\ndrifts when a test is significant and beyond tolerance; an N too small to ever reach alpha is\nrefused with the smallest N that can.\n\nExamples:\n  tapedeck golden check golden/support\n  tapedeck golden check golden/support --agent agents/support-v2.yaml -j 4\n  tapedeck golden check golden/support --shard 1/2 --junit junit.xml --markdown comment.md\n  tapedeck golden check golden/noisy --repeat 5 --agent fixtures/agents/noisy-bot-extra-call.yaml\n  tapedeck golden check golden/weather-py --command \"python3 agent.py --model gpt-5 {input}\"\n  tapedeck golden check golden/weather-py --exact"
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
    /// Fail on any snapshot change, even one within every tolerance
    #[arg(long)]
    strict_snapshots: bool,
    /// A command suite's candidate command, instead of the suite's (one line, quoted as in a
    /// shell; `{input}` and `{task}` replaced), e.g. with another `--model`
    #[arg(long, value_name = "COMMAND")]
    command: Option<String>,
    /// A command suite: serve the model from the baselines too (for a change of the agent's
    /// own code: any request that changed is a named miss)
    #[arg(long)]
    exact: bool,
    /// A command suite's upstream OpenAI base URL, `/v1` included, for the live model
    /// [default: $OPENAI_BASE_URL, else https://api.openai.com/v1]
    #[arg(long, value_name = "URL")]
    upstream_openai: Option<String>,
    /// A command suite's upstream Anthropic base URL, for the live model [default:
    /// $ANTHROPIC_BASE_URL, else https://api.anthropic.com]
    #[arg(long, value_name = "URL")]
    upstream_anthropic: Option<String>,
}

/// What the summary names as the candidate.
fn candidate_label(candidate: &Candidate, agent_path: Option<&Path>) -> String {
    match (candidate, agent_path) {
        (Candidate::Command { argv, .. }, _) => command_line::quote(argv),
        (Candidate::Agent(_), Some(path)) => path.display().to_string(),
        (Candidate::Agent(_), None) => "-".to_owned(),
    }
}

/// The candidate of a check: the agent version of a YAML suite, the command of a command suite;
/// a flag that does not apply to the suite's kind is refused.
fn candidate(suite: &Suite, args: &Args) -> anyhow::Result<(Candidate, Option<PathBuf>)> {
    let Some(command) = suite.command() else {
        for (flag, given) in [
            ("--command", args.command.is_some()),
            ("--exact", args.exact),
            ("--upstream-openai", args.upstream_openai.is_some()),
            ("--upstream-anthropic", args.upstream_anthropic.is_some()),
        ] {
            if given {
                bail!(
                    "{flag} applies to a suite that runs a command; suite `{}` runs an agent version (check another with --agent)",
                    suite.name
                );
            }
        }
        let (config, agent_path) = super::load_agent(suite, args.agent.as_deref())?;
        // The agent's model must be buildable (its script read, its API key there) before
        // anything is written: each replay builds it again.
        tapedeck_agent::model::from_config(&config)?;
        // Run i of a repeated task gets the seed its baseline was recorded with: the replay
        // reads it from the baseline's `repeat` label.
        let options = Options::tools_only(config);
        return Ok((Candidate::Agent(Box::new(options)), Some(agent_path)));
    };
    if args.agent.is_some() {
        bail!(
            "--agent does not apply to suite `{}`: it runs a command (`command:` in suite.yaml); check another with --command \"…\"",
            suite.name
        );
    }
    if args.exact {
        for (flag, given) in [
            ("--upstream-openai", args.upstream_openai.is_some()),
            ("--upstream-anthropic", args.upstream_anthropic.is_some()),
        ] {
            if given {
                bail!("{flag} does not apply with --exact: the model is served from the baselines");
            }
        }
    }
    let argv = match &args.command {
        Some(line) => {
            let argv = command_line::split(line).map_err(|e| anyhow::anyhow!("--command {e}"))?;
            if argv.is_empty() {
                bail!("--command is empty: give the candidate's command line");
            }
            argv
        }
        None => command.argv.clone(),
    };
    let model = if args.exact {
        ModelSource::Recorded
    } else {
        let upstreams = tapedeck_proxy::http::Upstreams::given_or_env(
            args.upstream_openai.as_deref(),
            args.upstream_anthropic.as_deref(),
        );
        // The model is live: say where it is, so a check that meant --exact or a local
        // upstream is seen to call the public APIs.
        let dim = DIM;
        anstream::eprintln!(
            "{dim}the candidate's model calls go to {} and {} (--upstream-openai, --upstream-anthropic; --exact serves them from the baselines){dim:#}",
            upstreams.openai,
            upstreams.anthropic
        );
        ModelSource::Live(upstreams)
    };
    Ok((
        Candidate::Command {
            command,
            argv,
            model,
            interrupts: crate::interrupt::forward,
        },
        None,
    ))
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

/// Runs `tapedeck golden check`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let suite = Suite::load(&args.suite)?;
    let (candidate, agent_path) = candidate(&suite, &args)?;
    let label = candidate_label(&candidate, agent_path.as_deref());
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
    // Everything that can be wrong with the input is found before anything is written (exit
    // 2 means nothing was): the tapes are there and parse, the snapshots parse, the
    // repetitions can reach significance (the library's part), the reports have a folder, the
    // store opens.
    let terminal = super::Terminal::default();
    let check = Check::prepare(
        &suite,
        tasks,
        repeat,
        candidate,
        args.strict_snapshots,
        &terminal,
    )?;
    for path in [&args.junit, &args.json, &args.markdown, &args.html]
        .into_iter()
        .flatten()
    {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            bail!(
                "{}: cannot write the report: the folder `{}` does not exist",
                path.display(),
                dir.display()
            );
        }
    }
    let store = settings.open_store()?;
    // From here on the store is written: a task that fails is an error of that task, in every
    // report, and the check fails with 1.
    let judgement = check.run(&store, args.jobs as usize, &terminal);
    terminal.done();
    let judgement = judgement?;
    // Writing the pending snapshots and the reports can still fail: say so, and fail with 1
    // (runs are recorded).
    // Both are written before the summary is printed, so it can say they failed.
    let pending_written = judgement
        .write_pending(&suite, &label)
        .map_err(|e| render::error(&anyhow::Error::from(e)))
        .is_ok();
    let results = judgement.results();
    let reports_written = write_reports(&args, &suite.name, &results)
        .map_err(|e| render::error(&e))
        .is_ok();
    let failed_to_write = !(pending_written && reports_written);
    print_summary(
        &suite,
        &results,
        &label,
        judgement.statistics.as_ref(),
        Written {
            pending: pending_written,
            all: !failed_to_write,
        },
    );
    Ok(
        if failed_to_write || results.iter().any(TaskResult::failed) {
            Exit::Findings
        } else {
            Exit::Ok
        },
    )
}

/// What of the check's files could be written.
struct Written {
    /// The pending snapshots (`.snap.new`).
    pending: bool,
    /// Those and every report asked for.
    all: bool,
}

fn print_summary(
    suite: &Suite,
    results: &[TaskResult],
    agent: &str,
    statistics: Option<&Statistics>,
    written: Written,
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
            results.iter().find_map(|r| r.repeat).unwrap_or(1),
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
    // With repetitions the table of drifting tests above says why a task drifted.
    let listed: Vec<&TaskResult> = results
        .iter()
        .filter(|r| r.verdict != TaskVerdict::Pass && !(r.drifted() && r.repeat.is_some()))
        .collect();
    if !listed.is_empty() {
        anstream::println!();
    }
    for r in listed {
        let style = if r.verdict == TaskVerdict::Changed {
            WARN
        } else {
            BAD
        };
        anstream::println!("{style}{}{style:#}: {}", r.task, r.verdict.text());
        for reason in &r.reasons {
            anstream::println!("  {reason}");
        }
    }
    let (good, bad, dim) = (GOOD, BAD, DIM);
    let line = golden::report::summary_line(&suite.name, results);
    let style = if results.iter().any(TaskResult::failed) || !written.all {
        bad
    } else {
        good
    };
    let unwritten = if written.all {
        ""
    } else {
        " — but not every file could be written (see above)"
    };
    anstream::println!("\n{style}{line}{unwritten}{style:#} {dim}(agent {agent}){dim:#}");
    if written.pending && results.iter().any(TaskResult::has_pending_snapshot) {
        anstream::println!(
            "review the new snapshots with `tapedeck golden review {}`, or take them with `tapedeck golden accept {}`",
            suite.dir.display(),
            suite.dir.display()
        );
    }
}

/// `golden check --json`'s content.
#[derive(serde::Serialize)]
struct JsonCheck<'a> {
    suite: &'a str,
    tasks: &'a [TaskResult],
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
        json_output::GOLDEN_CHECK.to_text(&JsonCheck {
            suite,
            tasks: results,
        })
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
