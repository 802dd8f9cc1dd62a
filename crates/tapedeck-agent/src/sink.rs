//! [`EventSink`]: where the runtime sends its events — a store [`Recorder`], or nothing (to
//! measure the loop without recording).

use serde_json::Value;
use tapedeck_store::{Recorder, StoreError};
use tapedeck_trace::{ContentHash, EventData, hash_value};

/// Receives a run's blobs and events in order.
pub trait EventSink {
    /// Stores a blob; returns its hash.
    fn blob(&mut self, value: &Value) -> Result<ContentHash, StoreError>;
    /// Appends an event; returns its sequence number.
    fn append(&mut self, data: EventData) -> Result<u64, StoreError>;
}

impl EventSink for Recorder {
    fn blob(&mut self, value: &Value) -> Result<ContentHash, StoreError> {
        Recorder::blob(self, value)
    }

    fn append(&mut self, data: EventData) -> Result<u64, StoreError> {
        Recorder::append(self, data)
    }
}

/// A sink that keeps nothing (hashes are still computed, so the loop does the same work).
#[derive(Debug, Default)]
pub struct NullSink {
    seq: u64,
}

impl EventSink for NullSink {
    fn blob(&mut self, value: &Value) -> Result<ContentHash, StoreError> {
        Ok(hash_value(value)?.0)
    }

    fn append(&mut self, _data: EventData) -> Result<u64, StoreError> {
        self.seq += 1;
        Ok(self.seq)
    }
}
