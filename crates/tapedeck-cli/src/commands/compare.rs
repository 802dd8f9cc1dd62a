//! `tapedeck compare --baseline SELECTOR --candidate SELECTOR`: two groups of stored runs
//! compared as distributions, paired by task where runs have one.

use anyhow::bail;
use tapedeck_diff::distribution::{Correction, compare_groups};
use tapedeck_diff::{DiffError, RunSummary, Tolerances};
use tapedeck_store::RunFilter;

use crate::Exit;
use crate::json_output;
use crate::render::{self, BAD, DIM, HEADING};
use crate::settings::Settings;

/// Multiple-testing corrections.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CorrectionArg {
    /// Holm-Bonferroni (family-wise error)
    Holm,
    /// Benjamini-Hochberg (false discovery rate)
    Bh,
}

/// Compare two groups of runs as distributions (e.g. 50 runs on model A against 50 on B)
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A selector is a comma-separated list of label:KEY=VALUE, agent:NAME-OR-FINGERPRINT-PREFIX,\ntask:ID, suite:NAME, source:runtime|proxy|mcp|import, stop_reason:REASON, since:WHEN, before:WHEN\n(WHEN: an age such as 7d or a date such as 2026-11-01). Counts and tokens are tested with\nMann-Whitney U, stop-reason shares with Fisher's exact test, corrected for the number of tests;\na change is drift only when it is significant AND beyond its tolerance. Exit codes: 0 no drift,\n1 drift, 2 bad input (including too few runs ever to reach the significance level).\n\nExamples:\n  tapedeck compare --baseline label:model=gpt-4.1 --candidate label:model=gpt-5-mini\n  tapedeck compare --baseline agent:3f9c2e,since:7d --candidate agent:a81b07 --alpha 0.01 --correction bh"
)]
pub struct Args {
    /// The runs to compare against
    #[arg(long, value_name = "SELECTOR")]
    baseline: String,
    /// The runs to check
    #[arg(long, value_name = "SELECTOR")]
    candidate: String,
    /// The significance level
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// The multiple-testing correction
    #[arg(long, value_enum, default_value = "holm")]
    correction: CorrectionArg,
    /// Override a tolerance (repeatable): KEY=VALUE
    #[arg(long = "tolerance", short = 't', value_name = "KEY=VALUE", value_parser = super::parse_label)]
    tolerances: Vec<(String, String)>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Turns a selector into a run filter.
pub fn parse_selector(text: &str) -> anyhow::Result<RunFilter> {
    let mut filter = RunFilter::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once(':') else {
            bail!("selector `{part}`: expected KEY:VALUE, e.g. label:model=gpt-4.1 or since:7d");
        };
        match key {
            "label" => filter
                .labels
                .push(super::parse_label(value).map_err(anyhow::Error::msg)?),
            "agent" => filter.agent = Some(value.to_owned()),
            "task" => filter.task = Some(value.to_owned()),
            "suite" => filter.suite = Some(value.to_owned()),
            "source" => filter.source = Some(value.to_owned()),
            "stop_reason" => filter.stop_reason = Some(value.to_owned()),
            "since" => {
                filter.since = Some(crate::when::parse_moment(value).map_err(anyhow::Error::msg)?)
            }
            "before" => {
                filter.before = Some(crate::when::parse_moment(value).map_err(anyhow::Error::msg)?)
            }
            other => bail!(
                "selector `{part}`: unknown key `{other}` (known: label, agent, task, suite, source, stop_reason, since, before)"
            ),
        }
    }
    Ok(filter)
}

/// Runs `tapedeck compare`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        bail!("--alpha must be between 0 and 1");
    }
    let mut tolerances = Tolerances::default();
    for (key, value) in &args.tolerances {
        tolerances.set(key, value)?;
    }
    let store = settings.open_required_store()?;
    let load = |selector: &str| -> anyhow::Result<Vec<RunSummary>> {
        store
            .runs(&parse_selector(selector)?)?
            .iter()
            .filter(|r| r.stop_reason.is_some())
            .map(|r| RunSummary::load(&store, &r.id).map_err(anyhow::Error::from))
            .collect()
    };
    let (baseline, candidate) = (load(&args.baseline)?, load(&args.candidate)?);
    let correction = match args.correction {
        CorrectionArg::Holm => Correction::Holm,
        CorrectionArg::Bh => Correction::BenjaminiHochberg,
    };
    let result = match compare_groups(&baseline, &candidate, &tolerances, args.alpha, correction) {
        // `compare` takes the runs it finds: more of them come from wider selectors or from
        // recording more (there is no --repeat here; `golden check` has one).
        Err(e @ DiffError::TooFewRuns { needed, .. }) => bail!(
            "{e}: select at least {needed} runs on each side (widen --baseline/--candidate, or record more runs)"
        ),
        other => other?,
    };
    if args.json {
        json_output::COMPARE.print(&result)?;
    } else {
        let (h, dim, bad) = (HEADING, DIM, BAD);
        anstream::println!(
            "{h}{}{h:#} {} baseline runs against {} candidate runs, {}, α = {} ({})",
            if result.drift { "DRIFT" } else { "no drift:" },
            baseline.len(),
            candidate.len(),
            if result.paired_by_task {
                "paired by task"
            } else {
                "pooled"
            },
            args.alpha,
            correction.name()
        );
        let mut table = render::table(&[
            "TASK",
            "METRIC",
            "N",
            "BASELINE",
            "CANDIDATE",
            "CHANGE",
            "EFFECT",
            "P",
            "P ADJ",
            "VERDICT",
        ]);
        for t in &result.tests {
            table.add_row(vec![
                t.task.clone().unwrap_or_else(|| "(all)".to_owned()),
                t.metric.clone(),
                format!("{}/{}", t.n.0, t.n.1),
                number(t.baseline_mean),
                number(t.candidate_mean),
                tapedeck_diff::report::change_text(t.change),
                format!("{:+.2}", t.effect),
                format!("{:.4}", t.p),
                format!("{:.4}", t.p_adjusted),
                tapedeck_diff::report::verdict_text(t.verdict).to_owned(),
            ]);
        }
        for line in table.trim_fmt().lines() {
            if line.ends_with("DRIFT") {
                anstream::println!("{bad}{line}{bad:#}");
            } else {
                anstream::println!("{line}");
            }
        }
        anstream::println!(
            "{dim}effect: Cliff's delta for counts (candidate against baseline), the share difference for stop reasons{dim:#}"
        );
    }
    Ok(if result.drift {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

/// A mean for the table: whole numbers for big values, four decimals for small ones (costs).
fn number(x: f64) -> String {
    match x.abs() {
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 1.0 => format!("{x:.2}"),
        _ => format!("{x:.4}"),
    }
}
