//! `tapedeck stats`: the production monitoring set per agent version over a time window.

use tapedeck_store::{Distribution, MonitorReport};

use super::FilterArgs;
use crate::Exit;
use crate::json_output;
use crate::render::{self, DIM, HEADING};
use crate::settings::Settings;

/// Monitoring figures per agent version: tool calls per run, tokens per request, stop
/// reasons, latency, cost
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck stats                 the last 7 days\n  tapedeck stats --since 30d --agent support-bot\n  tapedeck stats --all --json"
)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
    /// Look at every run, not only those of the last 7 days
    #[arg(long, conflicts_with = "since")]
    all: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Runs `tapedeck stats`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let mut filter = args.filter.to_filter();
    let window = if args.all {
        "all runs".to_owned()
    } else if let Some(since) = filter.since {
        format!("runs since {} UTC", render::time(since))
    } else {
        filter.since = Some(crate::when::ago(7 * 24 * 3600 * 1_000_000));
        "runs of the last 7 days".to_owned()
    };
    let report = match settings.open_existing_store()? {
        Some(store) => store.monitor(&filter)?,
        None => MonitorReport { agents: Vec::new() },
    };
    if args.json {
        json_output::STATS.print(&report)?;
        return Ok(Exit::Ok);
    }
    if report.agents.is_empty() {
        // "no runs in …", not "no all runs in …".
        let none = if args.all { "runs" } else { window.as_str() };
        anstream::println!("no {none} in {}", settings.store);
        return Ok(Exit::Ok);
    }
    let h = HEADING;
    let dim = DIM;
    anstream::println!("{dim}{window}{dim:#}");
    for agent in &report.agents {
        let fp = agent.fingerprint.as_ref().map_or_else(String::new, |f| {
            // Characters, not bytes: a fingerprint comes from a tape anyone can write.
            format!(" (fingerprint {})", f.chars().take(8).collect::<String>())
        });
        anstream::println!();
        anstream::println!(
            "{h}{}{h:#}{fp} · {} run{}",
            agent.agent,
            agent.runs,
            render::plural(agent.runs as u64)
        );
        let line = |label: &str, value: String| {
            anstream::println!("  {dim}{label:<20}{dim:#} {value}");
        };
        line(
            "tool calls per run",
            dist(&agent.tool_calls_per_run, |v| {
                format!("{v:.1}").trim_end_matches(".0").to_owned()
            }),
        );
        line(
            "tokens per request",
            dist(&agent.tokens_per_request, |v| render::thousands(v as u64)),
        );
        line(
            "latency",
            dist(&agent.latency_ms, |v| render::millis(v as u64)),
        );
        let reasons = agent
            .stop_reasons
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect::<Vec<_>>()
            .join(" · ");
        line("stop reasons", reasons);
        line(
            "cost",
            cost_text(agent.cost_usd, agent.runs, agent.runs_cost_unknown),
        );
        if let Some(top) = &agent.top_tool {
            line(
                "top tool",
                format!("{} ({:.0}% of tool calls)", top.tool, top.share * 100.0),
            );
        }
    }
    Ok(Exit::Ok)
}

fn dist(d: &Option<Distribution>, fmt: impl Fn(f64) -> String) -> String {
    match d {
        None => "-".to_owned(),
        Some(d) => format!(
            "p50 {} · p95 {} · max {} · mean {}",
            fmt(d.p50),
            fmt(d.p95),
            fmt(d.max),
            fmt(d.mean)
        ),
    }
}

/// A group's cost: `$1.20`; with runs of unknown cost, the total over those it could price and
/// how many it could not (`$1.20 over 3 runs; 22 runs of unknown cost not counted`), or `?`
/// when it could price none (`? (22 of 22 runs of unknown cost)`) — never a made-up `$0.00`.
fn cost_text(total: Option<f64>, runs: usize, unknown: usize) -> String {
    let runs_of = |n: usize| format!("{n} run{}", render::plural(n as u64));
    match (total, unknown) {
        (_, 0) => render::usd(total),
        (Some(total), unknown) => format!(
            "{} over {}; {} of unknown cost not counted",
            render::usd(Some(total)),
            runs_of(runs - unknown),
            runs_of(unknown)
        ),
        (None, unknown) => format!("? ({unknown} of {} of unknown cost)", runs_of(runs)),
    }
}

#[cfg(test)]
mod tests {
    use super::cost_text;

    #[test]
    fn costs_of_runs_some_of_unknown_cost() {
        assert_eq!(cost_text(Some(10.83), 3, 0), "$10.83");
        assert_eq!(
            cost_text(Some(1.2), 25, 22),
            "$1.20 over 3 runs; 22 runs of unknown cost not counted"
        );
        assert_eq!(
            cost_text(Some(0.5), 2, 1),
            "$0.50 over 1 run; 1 run of unknown cost not counted"
        );
        assert_eq!(cost_text(None, 22, 22), "? (22 of 22 runs of unknown cost)");
        assert_eq!(cost_text(None, 1, 1), "? (1 of 1 run of unknown cost)");
    }
}
