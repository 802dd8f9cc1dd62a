//! [`Recorder`]: one run recorded through the process's writer.

use super::*;

/// Records one run. Events get consecutive sequence numbers from 1.
///
/// Dropping a recorder without [`finish`](Recorder::finish) commits what it has and leaves
/// the run `running`, its lease renewed while the process's writer lives; once the process is
/// gone (seen at once on its own host) or its lease lapsed, the run shows as `incomplete`.
pub struct Recorder {
    pub(super) writer: Writer,
    /// The run, its totals up to the last appended event.
    pub(super) run: Run,
    pub(super) next_seq: u64,
    pub(super) committed: Arc<AtomicU64>,
    pub(super) sent_blobs: HashSet<ContentHash>,
    pub(super) history: HistoryCompactor,
    pub(super) finished: bool,
}

impl Recorder {
    /// The run's id.
    pub fn id(&self) -> RunId {
        self.run.id
    }

    /// The run as it stands (totals up to the last appended event).
    pub fn run(&self) -> Run {
        self.run.clone()
    }

    /// Totals over the events appended so far.
    pub fn totals(&self) -> &Totals {
        &self.run.totals
    }

    /// The store file the run is recorded into.
    pub fn path(&self) -> &Path {
        &self.writer.inner.path
    }

    /// Sets the agent version of the run, stored with its ending. A run recorded from outside
    /// tapedeck's runtime (by the HTTP proxy) learns its agent's fingerprint only from what the
    /// agent sent, so only at its end; until then `ls --agent` does not find it.
    pub fn set_agent(&mut self, agent: AgentInfo) {
        self.run.agent = Some(agent);
    }

    /// The error for a write that failed: a failed writer thread loses every event of this run
    /// since its last commit (and the `attempted` one, not yet counted), and says so with the
    /// run and the count — not as the writer's failure alone.
    fn not_written(&self, error: StoreError, attempted: u64) -> StoreError {
        let StoreError::WriterFailed { path, detail } = error else {
            return error;
        };
        let appended = self.next_seq.saturating_sub(1);
        let count = appended.saturating_sub(self.committed_seq()) + attempted;
        if count == 0 {
            return StoreError::WriterFailed { path, detail };
        }
        StoreError::EventsNotWritten {
            run: self.run.id.to_string(),
            count,
            path,
            detail,
        }
    }

    /// Stores a JSON value as a blob (once per run, whatever the number of calls) and
    /// returns the hash events refer to it by.
    pub fn blob(&mut self, value: &Value) -> Result<ContentHash, StoreError> {
        let (hash, canonical) = hash_value(value)?;
        if self.sent_blobs.insert(hash) {
            let blob = codec::encode_blob(hash, canonical);
            self.writer
                .send(Op::Blob {
                    run: self.run.id,
                    blob,
                })
                .map_err(|e| self.not_written(e, 0))?;
        }
        Ok(hash)
    }

    /// Appends an event that happens now; returns its sequence number.
    pub fn append(&mut self, data: EventData) -> Result<u64, StoreError> {
        self.append_at(data, Timestamp::now())
    }

    /// Appends an event with an explicit time (importers, fixtures).
    ///
    /// An `llm_request` that resends the previous request's messages is stored as extending
    /// it (see [`HistoryCompactor`]), so a run's size stays linear in its length.
    pub fn append_at(&mut self, mut data: EventData, at: Timestamp) -> Result<u64, StoreError> {
        if self.finished {
            return Err(StoreError::RunFinished(self.run.id.to_string()));
        }
        if let EventData::LlmRequest(request) = &mut data {
            self.history.compact(self.next_seq, request);
        }
        let payload = StoredPayload::encode(payload_json(&data)?);
        let totals = self
            .run
            .totals
            .observe(&data)
            .then(|| Box::new(self.run.totals.clone()));
        let seq = self.next_seq;
        self.writer
            .send(Op::Event {
                run: self.run.id,
                seq,
                at: at.as_micros(),
                kind: data.kind(),
                payload,
                totals,
            })
            .map_err(|e| self.not_written(e, 1))?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// The highest sequence number known to be committed: it survives the process dying.
    pub fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Waits until every appended event is committed; returns the committed sequence number.
    pub fn flush(&self) -> Result<u64, StoreError> {
        self.writer.flush().map_err(|e| self.not_written(e, 0))?;
        Ok(self.committed_seq())
    }

    /// Ends the run: appends `run_finished`, stores the outcome and waits for it to commit.
    pub fn finish(
        mut self,
        stop_reason: StopReason,
        answer: Option<String>,
    ) -> Result<Run, StoreError> {
        self.finish_at(stop_reason, answer, Timestamp::now())
    }

    /// [`finish`](Recorder::finish) at an explicit time (importers, fixtures).
    pub fn finish_at(
        &mut self,
        stop_reason: StopReason,
        answer: Option<String>,
        at: Timestamp,
    ) -> Result<Run, StoreError> {
        self.end_at(
            Ending {
                stop_reason,
                answer,
                error: None,
            },
            at,
        )
    }

    /// Ends the run with a full [`Ending`] (an error message included).
    pub fn end(mut self, ending: Ending) -> Result<Run, StoreError> {
        self.end_at(ending, Timestamp::now())
    }

    /// [`end`](Recorder::end) at an explicit time.
    pub fn end_at(&mut self, ending: Ending, at: Timestamp) -> Result<Run, StoreError> {
        let Ending {
            stop_reason,
            answer,
            error,
        } = ending;
        let status = RunStatus::for_stop_reason(&stop_reason);
        self.append_at(
            EventData::RunFinished(RunFinished {
                status,
                stop_reason: stop_reason.clone(),
                answer: answer.clone(),
                error: error.clone(),
            }),
            at,
        )?;
        let mut run = self.run();
        run.status = status;
        run.stop_reason = Some(stop_reason);
        run.answer = answer;
        run.error = error;
        run.ended_at = Some(at);
        run.totals.latency_ms = Some(run.started_at.millis_until(at));
        let (reply, wait) = mpsc::sync_channel(1);
        self.writer
            .send(Op::Finish {
                run: Box::new(run.clone()),
                reply,
            })
            .and_then(|()| self.writer.wait(wait))
            .map_err(|e| self.not_written(e, 0))?;
        self.finished = true;
        Ok(run)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.writer.flush();
        }
    }
}

impl RunRecorder for Recorder {
    fn end(self, ending: Ending) -> Result<Run, SinkError> {
        Recorder::end(self, ending).map_err(SinkError::new)
    }
}

impl EventSink for Recorder {
    fn blob(&mut self, value: &Value) -> Result<ContentHash, SinkError> {
        Recorder::blob(self, value).map_err(SinkError::new)
    }

    fn append(&mut self, data: EventData) -> Result<u64, SinkError> {
        Recorder::append(self, data).map_err(SinkError::new)
    }
}
/// The canonical text of an event's payload, as the `events.data` column holds it.
pub(crate) fn payload_json(data: &EventData) -> Result<String, StoreError> {
    let mut out = String::with_capacity(128);
    write_canonical(&data.payload(), &mut out)?;
    Ok(out)
}
