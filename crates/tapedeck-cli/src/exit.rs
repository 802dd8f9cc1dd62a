//! The exit-code contract, [`Exit`]: the one place it is defined (the README repeats it).

use std::process::ExitCode;

/// How a tapedeck command ended.
///
/// | code | meaning |
/// |------|---------|
/// | 0 | the run ended `ok`; no drift |
/// | 1 | a run ended with any other stop reason, or drift or a replay divergence was found |
/// | 2 | usage or input error: nothing ran (clap's own usage errors also exit 2) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything is fine.
    Ok = 0,
    /// The command worked and found something: a stopped run, drift, a divergence.
    Findings = 1,
    /// Bad input or usage; nothing ran.
    Error = 2,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}
