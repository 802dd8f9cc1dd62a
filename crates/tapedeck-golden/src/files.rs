//! A suite's files as runs: a baseline tape read into the store or written from it, a run's
//! behaviour written as the task's snapshot.

use std::path::Path;

use tapedeck_diff::RunSummary;
use tapedeck_diff::golden::{Behaviour, Snapshot, Suite};
use tapedeck_store::{ImportOutcome, Store};
use tapedeck_trace::RunId;

use crate::GoldenError;

/// Writes run `id` as a task's baseline tape.
pub fn export_tape(store: &Store, id: &RunId, path: &Path) -> Result<(), GoldenError> {
    let write_error = |error| GoldenError::Write {
        path: path.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|error| GoldenError::Write {
            path: dir.to_path_buf(),
            error,
        })?;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(write_error)?);
    store
        .export_tape(id, &mut out)
        .map_err(|error| GoldenError::Export {
            path: path.to_path_buf(),
            error: Box::new(error),
        })?;
    std::io::Write::flush(&mut out).map_err(write_error)?;
    Ok(())
}

/// Reads a task's baseline tape into the store (a tape already there is found, not copied).
pub fn import_tape(store: &Store, path: &Path, task: &str) -> Result<RunId, GoldenError> {
    let file = std::fs::File::open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            GoldenError::TapeNotFound {
                tape: path.to_path_buf(),
                task: task.to_owned(),
            }
        } else {
            GoldenError::UnreadableTape {
                tape: path.to_path_buf(),
                task: task.to_owned(),
                error,
            }
        }
    })?;
    let outcome = store
        .import_tape(&mut std::io::BufReader::new(file))
        .map_err(|error| GoldenError::BadTape {
            tape: path.to_path_buf(),
            task: task.to_owned(),
            error: Box::new(error),
        })?;
    Ok(match outcome {
        ImportOutcome::Imported { id, .. } | ImportOutcome::AlreadyPresent(id) => id,
    })
}

/// Writes the behaviour of run `id` as the task's snapshot and drops a pending one.
pub fn write_snapshot(
    store: &Store,
    suite: &Suite,
    task: &str,
    id: &RunId,
) -> Result<Behaviour, GoldenError> {
    let behaviour = Behaviour::of(&RunSummary::load(store, id)?);
    Snapshot {
        source: suite.source(),
        expression: task.to_owned(),
        info: None,
        behaviour: behaviour.clone(),
    }
    .write(&suite.snapshot_path(task))?;
    tapedeck_diff::golden::remove_if_present(&suite.pending_path(task))?;
    Ok(behaviour)
}
