//! tapedeck's command line: the clap definitions, the settings every command resolves before
//! it starts, and one module per subcommand in [`commands`]. Nothing else lives here: recording,
//! storage and analysis are in the library crates.

#![warn(missing_docs)]

mod commands;
mod exit;
mod interrupt;
mod json_output;
mod render;
mod settings;
mod terminal_approval;
mod when;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use exit::Exit;

/// Record, replay and diff LLM agent runs.
#[derive(Debug, Parser)]
#[command(
    name = "tapedeck",
    version,
    about = "Record, replay and diff LLM agent runs",
    long_about = "tapedeck records every model decision and tool observation of an agent run into one \
SQLite file, replays runs offline, and flags drift in tool calls, tokens, cost, stop reasons and \
answers before a model or prompt change ships.",
    after_help = "Examples:\n  tapedeck demo                 record the demo runs and show the browser-retry incident\n  tapedeck ls --stop-reason max_tool_calls\n  tapedeck show 3f9c2e1a --audit\n  tapedeck export 3f9c2e1a > incident.jsonl\n\nExit codes: 0 ok / no drift; 1 a run stopped for another reason, or drift was found; 2 usage or input error.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    global: settings::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Demo(commands::demo::Args),
    Run(commands::run::Args),
    Record(commands::record::Args),
    Proxy(commands::proxy::Args),
    Replay(commands::replay::Args),
    Diff(commands::diff::Args),
    Compare(commands::compare::Args),
    Config(commands::config::Args),
    Ls(commands::ls::Args),
    Show(commands::show::Args),
    Stats(commands::stats::Args),
    Export(commands::export::Args),
    Import(commands::import::Args),
    Merge(commands::merge::Args),
    Rm(commands::rm::Args),
    Gc(commands::gc::Args),
    Store(commands::store::Args),
    Bench(commands::bench::Args),
    Golden(commands::golden::Args),
    Mcp(commands::mcp::Args),
}

/// Parses the command line, runs the command and returns its exit code. `exit_now` ends the
/// process with a code at once, for a second interrupt while a run is blocked in a call.
pub fn main(exit_now: fn(i32) -> !) -> ExitCode {
    interrupt::on_second_signal(exit_now);
    let cli = Cli::parse();
    let settings = match settings::Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(err) => {
            render::error(&err);
            return Exit::Error.into();
        }
    };
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(&settings, args),
        Command::Run(args) => commands::run::run(&settings, args),
        Command::Record(args) => commands::record::run(&settings, args),
        Command::Proxy(args) => commands::proxy::run(&settings, args),
        Command::Replay(args) => commands::replay::run(&settings, args),
        Command::Diff(args) => commands::diff::run(&settings, args),
        Command::Compare(args) => commands::compare::run(&settings, args),
        Command::Config(args) => commands::config::run(&settings, args),
        Command::Ls(args) => commands::ls::run(&settings, args),
        Command::Show(args) => commands::show::run(&settings, args),
        Command::Stats(args) => commands::stats::run(&settings, args),
        Command::Export(args) => commands::export::run(&settings, args),
        Command::Import(args) => commands::import::run(&settings, args),
        Command::Merge(args) => commands::merge::run(&settings, args),
        Command::Rm(args) => commands::rm::run(&settings, args),
        Command::Gc(args) => commands::gc::run(&settings, args),
        Command::Store(args) => commands::store::run(&settings, args),
        Command::Bench(args) => commands::bench::run(&settings, args),
        Command::Golden(args) => commands::golden::run(&settings, args),
        Command::Mcp(args) => commands::mcp::run(&settings, args),
    };
    match result {
        Ok(exit) => exit.into(),
        // The reader went away (`tapedeck export RUN | head`): nothing is wrong, as in ripgrep.
        Err(err) if is_broken_pipe(&err) => Exit::Ok.into(),
        Err(err) => {
            render::error(&err);
            // Exit 2 promises nothing was written: a store that failed while recording
            // (a run already started) is a failure found after the command had started.
            if store_failed_while_writing(&err) {
                Exit::Findings.into()
            } else {
                Exit::Error.into()
            }
        }
    }
}

/// Whether `err` is (or wraps) a store failure that is not an input error.
fn store_failed_while_writing(err: &anyhow::Error) -> bool {
    // `#[error(transparent)]` wrappers hide the store error from the chain: look inside.
    fn store_error<'a>(
        cause: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a tapedeck_store::StoreError> {
        if let Some(e) = cause.downcast_ref::<tapedeck_store::StoreError>() {
            return Some(e);
        }
        if let Some(tapedeck_agent::AgentError::Record(e)) = cause.downcast_ref() {
            return e.downcast_ref();
        }
        if let Some(e) = cause.downcast_ref::<tapedeck_replay::ReplayError>() {
            return e.store_error();
        }
        if let Some(e) = cause.downcast_ref::<tapedeck_golden::GoldenError>() {
            return e.store_error();
        }
        if let Some(tapedeck_proxy::http::ClientError::Store(e)) = cause.downcast_ref() {
            return Some(e);
        }
        match cause.downcast_ref() {
            Some(tapedeck_proxy::mcp::McpError::Store(e)) => Some(e),
            _ => None,
        }
    }
    err.chain()
        .any(|cause| store_error(cause).is_some_and(|e| !e.is_input_error()))
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
