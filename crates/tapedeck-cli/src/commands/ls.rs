//! `tapedeck ls`: a table of runs, newest first.

use serde::Serialize;
use tapedeck_store::RunFilter;
use tapedeck_trace::Run;

use super::FilterArgs;
use crate::Exit;
use crate::json_output;
use crate::render;
use crate::settings::Settings;

/// List recorded runs, newest first
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck ls\n  tapedeck ls --stop-reason max_tool_calls --since 7d\n  tapedeck ls --label model=gpt-4.1 --json"
)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
    /// Show at most this many runs
    #[arg(long, short = 'n', default_value_t = 50)]
    limit: usize,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

/// `ls --json`'s content.
#[derive(Serialize)]
struct JsonRuns<'a> {
    runs: Vec<JsonRun<'a>>,
}

#[derive(Serialize)]
struct JsonRun<'a> {
    short_id: String,
    #[serde(flatten)]
    run: &'a Run,
}

/// Runs `tapedeck ls`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let mut filter = args.filter.to_filter();
    filter.limit = Some(args.limit);
    let store = settings.open_existing_store()?;
    let runs = match &store {
        Some(store) => store.runs(&filter)?,
        None => Vec::new(),
    };
    if args.json {
        let runs = runs
            .iter()
            .map(|run| JsonRun {
                short_id: run.id.short(),
                run,
            })
            .collect();
        json_output::RUNS.print(&JsonRuns { runs })?;
        return Ok(Exit::Ok);
    }
    if runs.is_empty() {
        let any = RunFilter {
            limit: Some(1),
            ..RunFilter::default()
        };
        match store.map(|store| store.runs(&any)).transpose()? {
            // The store has runs, just none that pass the filters.
            Some(all) if !all.is_empty() => {
                anstream::println!("no runs in {} match these filters", settings.store)
            }
            _ => anstream::println!(
                "no runs in {} (record some with `tapedeck demo`)",
                settings.store
            ),
        }
        return Ok(Exit::Ok);
    }
    let shared = match &store {
        Some(store) => store.shared_short_ids(&runs.iter().map(|r| r.id).collect::<Vec<_>>())?,
        None => Default::default(),
    };
    anstream::println!("{}", table(&runs, &shared).trim_fmt());
    Ok(Exit::Ok)
}

/// The runs table (`ls`, `demo`). When a run's short id is one of `shared` (another run of the
/// store has it too: [`Store::shared_short_ids`]), the column shows every run's last 12 hex
/// digits instead, which resolve where the short id would be ambiguous.
///
/// [`Store::shared_short_ids`]: tapedeck_store::Store::shared_short_ids
pub fn table(runs: &[Run], shared: &std::collections::HashSet<String>) -> comfy_table::Table {
    let wide = runs.iter().any(|run| shared.contains(&run.id.short()));
    let mut table = render::table(&[
        "ID",
        "STARTED (UTC)",
        "SOURCE",
        "TASK",
        "AGENT",
        "STATUS",
        "STOP REASON",
        "STEPS",
        "TOOLS",
        "TOKENS",
        "COST",
    ]);
    for run in runs {
        table.add_row(vec![
            if wide { run.id.tail() } else { run.id.short() },
            render::time(run.started_at),
            run.source.to_string(),
            run.task.clone().unwrap_or_else(|| "-".to_owned()),
            run.agent
                .as_ref()
                .map_or_else(|| "-".to_owned(), |a| a.name.clone()),
            run.status.to_string(),
            run.stop_reason
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string),
            render::thousands(run.totals.steps),
            render::thousands(run.totals.tool_calls_total()),
            render::count(run.totals.tokens_total()),
            render::usd(run.totals.cost_usd),
        ]);
    }
    for i in 7..=10 {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    table
}
