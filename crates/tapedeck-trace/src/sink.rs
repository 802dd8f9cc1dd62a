//! Where a run's blobs and events go as they happen: an [`EventSink`] (a store's recorder, or
//! nothing: [`NullSink`]); a [`RunWriter`] starts runs, each recorded by a [`RunRecorder`] and
//! ended with an [`Ending`]. They live here, below the store, so that the agent loop records
//! runs without depending on SQLite.

use std::error::Error;
use std::fmt;

use serde_json::Value;

use crate::{ContentHash, EventData, Run, StopReason, TraceError, hash_value};

/// Receives a run's blobs and events in order.
pub trait EventSink {
    /// Keeps a blob; returns its hash.
    fn blob(&mut self, value: &Value) -> Result<ContentHash, SinkError>;
    /// Appends an event; returns its sequence number.
    fn append(&mut self, data: EventData) -> Result<u64, SinkError>;
}

/// Where runs are recorded: starts one, for its events to go to.
pub trait RunWriter {
    /// What one run records into.
    type Recorder: RunRecorder;
    /// Starts recording `run`.
    fn start_run(&self, run: Run) -> Result<Self::Recorder, SinkError>;
}

/// The sink of one run, which also ends it.
pub trait RunRecorder: EventSink {
    /// Records how the run ended; returns the run as finished.
    fn end(self, ending: Ending) -> Result<Run, SinkError>;
}

/// Why a sink could not keep what it was given: the sink's own error, kept whole, so that the
/// program on top (which knows the sink) can look inside with [`SinkError::downcast_ref`].
pub struct SinkError(Box<dyn Error + Send + Sync + 'static>);

impl SinkError {
    /// Wraps a sink's error.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }

    /// The sink's error, when it is a `T`.
    pub fn downcast_ref<T: Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

// Displayed as the sink's error, so its source is the sink error's source: a chain of causes
// does not say the same thing twice.
impl Error for SinkError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl From<TraceError> for SinkError {
    fn from(error: TraceError) -> Self {
        Self::new(error)
    }
}

/// A sink that keeps nothing (hashes are still computed, so a loop recording into it does the
/// same work as one recording into a store).
#[derive(Debug, Default)]
pub struct NullSink {
    seq: u64,
}

impl EventSink for NullSink {
    fn blob(&mut self, value: &Value) -> Result<ContentHash, SinkError> {
        Ok(hash_value(value)?.0)
    }

    fn append(&mut self, _data: EventData) -> Result<u64, SinkError> {
        self.seq += 1;
        Ok(self.seq)
    }
}

/// How a run ended: what its `run_finished` event records.
#[derive(Clone, Debug, PartialEq)]
pub struct Ending {
    /// Why it ended.
    pub stop_reason: StopReason,
    /// The final answer, or the partial output of a stopped run.
    pub answer: Option<String>,
    /// What went wrong, for a run that ended in an error.
    pub error: Option<String>,
}
