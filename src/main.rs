//! The `tapedeck` binary: parse arguments, run the command, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    // The one way out of the process besides returning: a second SIGINT / SIGTERM while a run
    // is blocked in a model or tool call ends it at once.
    tapedeck_cli::main(std::process::exit)
}
