//! `tapedeck mcp`: the MCP stdio proxy — `tapedeck mcp -- SERVER…` joins the session of its
//! environment (`TAPEDECK_SESSION`) or records a run of its own; `record` records a client's
//! session with a stdio server as a run, `replay` answers a client from such a recording
//! without the server. The protocol handling lives in `tapedeck_proxy::mcp`; stdout belongs to
//! the MCP client, so everything this command says goes to stderr.

use std::collections::BTreeMap;

use anyhow::bail;
use tapedeck_proxy::mcp::{self, JoinOptions, JoinedOutcome, RecordOptions, SessionClient};
use tapedeck_proxy::session::{ENV_VAR, Mode, Welcome};

use crate::Exit;
use crate::render;
use crate::settings::Settings;

/// MCP stdio proxy: record a client's session with a server, or replay it without the server
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "tapedeck speaks MCP's stdio transport (newline-delimited JSON-RPC) to its client on its own\nstdin/stdout. Point the client's server command at tapedeck instead of the server.\n\n`tapedeck mcp -- SERVER…` is the one command for every mode. Under `tapedeck record -- CMD` or\n`tapedeck replay RUN -- CMD` (which set TAPEDECK_SESSION; the MCP client must pass it on to its\nserver command) it joins that session: in a recording it starts the server and its messages\nbecome events of the session's run, each tools/call a tool call (kind read, unless --write);\nin a replay it answers from the run being replayed and does not start the server. Outside a\nsession, or when the session cannot be reached (one warning), it records a run of its own as\n`mcp record` does.\n\nThe server's name in the session (--name) defaults to the module of `python… -m MODULE`, the\nscript of `python…`/`node`/`bun`/`ruby`/`perl`/`php SCRIPT` or of any argument that names a\nscript by its extension (`uv run server.py`; its file name without extension), the package of `npx`/`uvx`/`bunx`/`pnpx PACKAGE`, else the program's file name.\n\nExit codes: 0 ok; 1 a replay missed or the session failed; 2 usage or input error (no\nserver command, a server that cannot start, a session that refused to talk); a server's own\nnon-zero code passes through.\n\nExamples:\n  tapedeck mcp -- python3 -m mcp_server_time\n  tapedeck mcp --name tickets --write create_ticket -- node tickets.js\n  tapedeck mcp record --task tz -- python3 -m mcp_server_time\n  tapedeck mcp replay 3f9c2e1a"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    server: ServerArgs,
}

/// `tapedeck mcp -- SERVER…`.
#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// The server's name in the session [default: from the command, see below]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// A tool that changes something (repeatable): it never runs in a replay
    #[arg(long = "write", value_name = "TOOL")]
    write: Vec<String>,
    /// The MCP server command
    #[arg(last = true, value_name = "SERVER", required = true)]
    command: Vec<String>,
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
        Some(Command::Record(args)) => record(settings, args),
        Some(Command::Replay(args)) => replay(settings, args),
        None => join(settings, args.server),
    }
}

/// `tapedeck mcp -- SERVER…`: in the session of the environment, or else a run of its own.
fn join(settings: &Settings, args: ServerArgs) -> anyhow::Result<Exit> {
    let name = match args.name {
        Some(name) if name.trim().is_empty() => bail!("--name is empty: give the server a name"),
        Some(name) => name,
        None => mcp::default_server_name(&args.command)
            .ok_or_else(|| anyhow::anyhow!("no MCP server command: pass it after `--`"))?,
    };
    let joined = match std::env::var(ENV_VAR) {
        Ok(url) if !url.is_empty() => match hello(&url) {
            Ok(joined) => Some(joined),
            Err(e) if e.is_unreachable() => {
                render::warning(&format!(
                    "{e}; recording a run of its own, as outside a session"
                ));
                None
            }
            Err(e) => return Err(e.into()),
        },
        _ => None,
    };
    let Some((session, hello)) = joined else {
        return record(
            settings,
            RecordArgs {
                task: None,
                labels: Vec::new(),
                command: args.command,
            },
        );
    };
    let options = JoinOptions {
        name,
        write_tools: args.write.into_iter().collect(),
    };
    match hello.mode {
        Mode::Record => {
            tapedeck_proxy::command_line::check_program(&args.command, "start the MCP server")?;
            let outcome = mcp::record_in_session(
                session,
                &options,
                &args.command,
                std::io::stdin(),
                std::io::stdout(),
            )?;
            let calls = outcome.tool_calls;
            eprintln!(
                "tapedeck: MCP server `{}` recorded in session run {} ({calls} tool call{})",
                options.name,
                hello.run,
                render::plural(calls)
            );
            let ok = session_ok(&outcome);
            Ok(Exit::of_client(outcome.exit_code, ok))
        }
        Mode::Replay => {
            let outcome = mcp::replay_in_session(
                session,
                &options,
                &args.command,
                std::io::stdin(),
                std::io::stdout(),
            )?;
            if outcome.recorded_messages == 0 {
                render::warning(&format!(
                    "the recording session run {} replays has no messages of an MCP server `{}`: was it recorded under another --name?",
                    hello.run, options.name
                ));
            }
            eprintln!(
                "tapedeck: MCP server `{}` replayed in session run {} without starting it",
                options.name, hello.run
            );
            if !outcome.misses.is_empty() {
                eprintln!(
                    "tapedeck: no recorded answer for: {}",
                    outcome.misses.join(", ")
                );
            }
            if let Some(e) = &outcome.client_gone {
                eprintln!("tapedeck: the client went away: {e}");
            }
            let ok =
                session_ok(&outcome) && outcome.misses.is_empty() && outcome.client_gone.is_none();
            Ok(if ok { Exit::Ok } else { Exit::Findings })
        }
    }
}

/// Connects to the session at `url` and says `hello`.
fn hello(url: &str) -> Result<(SessionClient, Welcome), mcp::SessionError> {
    let mut session = SessionClient::connect(url)?;
    let hello = session.hello(concat!("tapedeck-mcp/", env!("CARGO_PKG_VERSION")))?;
    Ok((session, hello))
}

/// Whether the session took every message; says why not.
fn session_ok(outcome: &JoinedOutcome) -> bool {
    match &outcome.session_error {
        Some(e) => {
            eprintln!("tapedeck: {e}; what followed was not recorded in the session");
            false
        }
        None => true,
    }
}

fn record(settings: &Settings, args: RecordArgs) -> anyhow::Result<Exit> {
    if args.command.is_empty() {
        bail!("no MCP server command: pass it after `--`");
    }
    tapedeck_proxy::command_line::check_program(&args.command, "start the MCP server")?;
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
        render::plural(calls)
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
