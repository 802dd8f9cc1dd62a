//! OpenTelemetry: a run as OTLP/JSON trace spans that follow the GenAI semantic conventions,
//! and such spans (ours or another producer's) back into runs.
//!
//! Export writes one trace per run. Its id is the run's UUID; span ids are event seqs. The root
//! span `invoke_agent <agent>` covers the run; each model call is a `chat <model>` span (request
//! to response), each tool call an `execute_tool <tool>` span (call to result). Everything else
//! (policy decisions, budgets, retries, the start and end of the run) is a span event named
//! `tapedeck.<kind>`. The `gen_ai.*` attributes carry what the conventions define (model,
//! usage, finish reasons, messages, tool arguments and results); `tapedeck.*` attributes carry
//! the rest (stop reason, cost, seqs, payloads), so a trace we wrote imports back to the same
//! events and blobs.
//!
//! Import groups spans by trace id, one run a trace. A trace of ours is rebuilt exactly; spans
//! of another producer become a best-effort run: chat spans are steps, tool spans tool calls,
//! and what the spans do not say (cost, usage) stays unknown. Each run then goes through
//! [`Store::import_tape`], so it is inserted all or nothing, and a run already present (same
//! id: ours keep theirs, others get one derived from the trace id) is skipped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};

use serde_json::{Map, Value, json};
use tapedeck_trace::tape::{self, TapeEvent, TapeHeader};
use tapedeck_trace::{
    AgentInfo, ContentHash, Event, EventData, HistoryCompactor, LlmRequest, LlmResponse, Origin,
    Run, RunFinished, RunId, RunStarted, RunStatus, Source, StopReason, Timestamp, ToolCall,
    ToolCallSummary, ToolResult, Totals, Usage, Validation, expand_messages, hash_json, hash_value,
};

use crate::{ImportOutcome, Store, StoreError};

mod export;
mod import;

use export::to_otlp;
use import::otlp_to_tapes;

/// Span kind `INTERNAL` in OTLP.
const KIND_INTERNAL: u64 = 1;
/// Span kind `CLIENT` in OTLP.
const KIND_CLIENT: u64 = 3;
/// Status code `ERROR` in OTLP.
const STATUS_ERROR: u64 = 2;

impl Store {
    /// Writes a run as OTLP/JSON (one `TracesData` object on one line). Read in one
    /// transaction, like [`Store::export_tape`].
    pub fn export_otel(&self, id: &RunId, out: &mut dyn Write) -> Result<(), StoreError> {
        let doc = match self.pg() {
            Some(pg) => pg.snapshot(|| self.otel_snapshot(id))?,
            None => {
                self.conn()?
                    .execute_batch("BEGIN")
                    .map_err(|e| self.err(e))?;
                let result = self.otel_snapshot(id);
                let _ = self.conn()?.execute_batch("COMMIT");
                result?
            }
        };
        serde_json::to_writer(&mut *out, &doc).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(())
    }

    fn otel_snapshot(&self, id: &RunId) -> Result<Value, StoreError> {
        let run = self.run(id)?;
        let events = self.events(id)?;
        let blobs = self.blobs(events.iter().flat_map(|e| e.data.blob_refs()), id)?;
        Ok(to_otlp(&run, &events, &blobs))
    }

    /// The tapes OTLP/JSON traces convert to (one a trace), for a caller that checks them all
    /// before importing any.
    pub fn otel_tapes(input: &mut dyn Read) -> Result<Vec<String>, StoreError> {
        otlp_to_tapes(input)
    }

    /// Reads OTLP/JSON traces (one document, or several one after another as an OTLP file
    /// exporter writes them) into the store: one run per trace, each all or nothing. Every
    /// trace is converted before any is inserted, so a malformed file imports nothing.
    pub fn import_otel(&self, input: &mut dyn Read) -> Result<Vec<ImportOutcome>, StoreError> {
        let tapes = otlp_to_tapes(input)?;
        let mut outcomes = Vec::with_capacity(tapes.len());
        for text in tapes {
            outcomes.push(self.import_tape(&mut text.as_bytes())?);
        }
        Ok(outcomes)
    }
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("not importable OTLP/JSON: {}", message.into()),
    ))
}
