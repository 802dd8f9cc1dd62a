//! The exit-code contract, [`Exit`]: the one place it is defined (the README repeats it).

use std::process::ExitCode;

/// How a tapedeck command ended.
///
/// | code | meaning |
/// |------|---------|
/// | 0 | the run ended `ok`; no drift |
/// | 1 | a run ended with any other stop reason, drift or a replay divergence was found, or a task errored after a check had started |
/// | 2 | usage or input error, found before anything was written (clap's own usage errors also exit 2) |
/// | 130 / 143 | interrupted by SIGINT / SIGTERM; the run was ended `cancelled` |
///
/// Commands that run a client (`record -- CMD`, `replay RUN -- CMD`, `mcp record`) exit with
/// the client's own code when it is not 0; a client that exits 0 while its run missed,
/// diverged or stopped for another reason than `ok` gives 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything is fine.
    Ok,
    /// The command worked and found something: a stopped run, drift, a divergence.
    Findings,
    /// Bad input or usage; nothing ran.
    Error,
    /// A signal (its number) interrupted the command: 128 + the number.
    Interrupted(i32),
    /// A client's own non-zero exit code, passed through.
    Client(u8),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Findings => 1,
            Self::Error => 2,
            Self::Interrupted(signal) => u8::try_from(128 + signal.clamp(1, 127)).unwrap_or(255),
            Self::Client(code) => code,
        }
    }

    /// The exit of a command that ran a client: the client's own code when it failed (128+N
    /// for signal N where the caller knows N), else 0 when its run ended `ok` and 1 when it
    /// did not.
    pub fn of_client(client_code: Option<i32>, run_ok: bool) -> Self {
        match client_code {
            Some(0) if run_ok => Self::Ok,
            Some(0) => Self::Findings,
            Some(code) => Self::Client(u8::try_from(code.clamp(1, 255)).unwrap_or(255)),
            // No code: a signal ended it (an MCP server that lingered after its client left
            // and was stopped, say): not a clean exit.
            None => Self::Findings,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}
