//! `tapedeck mcp`: the MCP stdio proxy — record a client's session with a stdio server
//! (`record`), or answer a client from such a recording without the server (`replay`). The
//! protocol handling lives in `tapedeck_proxy::mcp`; stdout belongs to the MCP client, so
//! everything this command says goes to stderr.

use std::collections::BTreeMap;

use anyhow::bail;
use tapedeck_proxy::mcp::{self, RecordOptions};

use crate::Exit;
use crate::settings::Settings;

/// MCP stdio proxy: record a client's session with a server, or replay it without the server
#[derive(Debug, clap::Args)]
#[command(
    after_help = "tapedeck speaks MCP's stdio transport (newline-delimited JSON-RPC) to its client on its own\nstdin/stdout. Point the client's server command at tapedeck instead of the server.\n\nExamples:\n  tapedeck mcp record --task tz -- python3 -m mcp_server_time\n  tapedeck mcp replay 3f9c2e1a"
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Record(RecordArgs),
    Replay(ReplayArgs),
}

/// Run a stdio MCP server behind tapedeck and record the session (exits with the server's code)
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every JSON-RPC message passes through unchanged; `tools/call` becomes tool_call/tool_result\nevents, every other message an mcp_message event. The run ends when the server exits.\n\nExamples:\n  tapedeck mcp record -- python3 -m mcp_server_time\n  tapedeck mcp record --task tz --label client=desktop -- ./my-server --stdio"
)]
pub struct RecordArgs {
    /// The task the run belongs to
    #[arg(long, value_name = "ID")]
    task: Option<String>,
    /// A label for the run (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = super::parse_label)]
    labels: Vec<(String, String)>,
    /// The MCP server command
    #[arg(last = true, value_name = "SERVER_CMD", required = true)]
    command: Vec<String>,
}

/// Answer an MCP client from a recorded session, without starting the server
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Answers every request method that was recorded (initialize or server/discover, tools/list,\ntools/call, …) matched by method and params (without `_meta`), with the client's ids.\nMessages the server sent on its own (logs, progress, sampling/createMessage, roots/list, …)\nare sent again where they came; a request of the server's waits for the client's answer. An\nunrecorded tools/call gets a JSON-RPC error naming the closest recorded call. The replay is\nrecorded as a run (parent RUN, mode mcp); a client that goes away mid-answer ends it\n`cancelled`. Exit codes: 0 every request was answered; 1 some were not, or the client went\naway.\n\nExamples:\n  tapedeck mcp replay 3f9c2e1a"
)]
pub struct ReplayArgs {
    /// The run to replay: its short id or a unique prefix of its full id
    #[arg(value_name = "RUN")]
    run: String,
}

/// Runs `tapedeck mcp`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    match args.command {
        Command::Record(args) => record(settings, args),
        Command::Replay(args) => replay(settings, args),
    }
}

fn record(settings: &Settings, args: RecordArgs) -> anyhow::Result<Exit> {
    if args.command.is_empty() {
        bail!("no MCP server command: pass it after `--`");
    }
    super::check_program(&args.command, "start the MCP server")?;
    let store = settings.open_store()?;
    let writer = store.writer()?;
    let options = RecordOptions {
        task: args.task,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
    };
    let outcome = mcp::record(
        &writer,
        &args.command,
        &options,
        std::io::stdin(),
        std::io::stdout(),
    )?;
    let calls = outcome.run.totals.tool_calls_total();
    let ending = match (&outcome.run.stop_reason, &outcome.run.error) {
        (Some(stop), _) if stop.is_ok() => String::new(),
        (Some(stop), Some(error)) => format!(": {} {stop} — {error}", outcome.run.status),
        (Some(stop), None) => format!(": {} {stop}", outcome.run.status),
        (None, _) => format!(": {}", outcome.run.status),
    };
    eprintln!(
        "tapedeck: recorded MCP run {} ({calls} tool call{}){ending}",
        outcome.run.id.short(),
        crate::render::plural(calls)
    );
    drop(writer);
    drop(store);
    let run_ok = outcome
        .run
        .stop_reason
        .as_ref()
        .is_some_and(tapedeck_trace::StopReason::is_ok);
    Ok(Exit::of_client(outcome.exit_code, run_ok))
}

fn replay(settings: &Settings, args: ReplayArgs) -> anyhow::Result<Exit> {
    let store = settings.open_required_store()?;
    let id = store.resolve_run(&args.run)?;
    let writer = store.writer()?;
    let outcome = mcp::replay(&store, &writer, &id, std::io::stdin(), std::io::stdout())?;
    eprintln!(
        "tapedeck: replayed MCP run {} as {}",
        id.short(),
        outcome.run.id.short()
    );
    let ok = outcome
        .run
        .stop_reason
        .as_ref()
        .is_some_and(tapedeck_trace::StopReason::is_ok);
    if ok {
        Ok(Exit::Ok)
    } else {
        if let Some(error) = &outcome.run.error {
            eprintln!("tapedeck: {error}");
        }
        Ok(Exit::Findings)
    }
}
