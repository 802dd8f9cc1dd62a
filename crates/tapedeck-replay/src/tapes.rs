//! Sessions each recorded to, or replayed from, a tape of its own on one long-lived proxy
//! (`tapedeck proxy --sessions`, which the pytest plugin starts once per test process): the
//! main type is [`TapeSessions`], the [`SessionOpener`] of that proxy's [`SessionHub`].
//!
//! A recording is a live proxy run, exported to its tape when the session closes (written
//! beside it first, then renamed over it, so a failed write never leaves half a tape). A
//! replay imports the tape into the store (a run already there is reused), replays it as
//! `tapedeck replay RUN -- CMD` does — the model and every tool from the recording, a write
//! tool never run, a miss ending the run `replay_miss:…` — and reports its first divergence.
//! New episodes replay what the tape holds and send the rest live (the model, and read tools),
//! then write the run over the tape. A check sends the model live and answers every tool from
//! the tape; the caller diffs its run against the tape's.
//!
//! [`SessionHub`]: tapedeck_proxy::http::SessionHub

use std::collections::HashSet;
use std::io::{BufReader, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use tapedeck_proxy::http::{
    self, Backend, Closing, OpenSession, Pricing, Proxy, SessionOpener, TapeMode, Upstreams,
};
use tapedeck_proxy::redact::Redactor;
use tapedeck_store::{ImportOutcome, Store, Writer};
use tapedeck_trace::{Run, RunId, StopReason};

use crate::MissPolicy;
use crate::session::{CommandReplay, ModelSource, replay_proxy, session_divergence};

/// What every session of a [`TapeSessions`] shares.
pub struct TapeSessions {
    store: Mutex<Store>,
    writer: Writer,
    client: reqwest::Client,
    upstreams: Upstreams,
    redact: Vec<String>,
    pricing: Pricing,
    /// The run every recording starts from (its task and labels).
    template: Run,
    /// The agent's name when a session names none.
    name: String,
}

impl TapeSessions {
    /// Sessions recording into (and replaying through) `store`: recordings forward to
    /// `upstreams`, redact `redact` (checked by the caller) and price with `pricing`; each
    /// recorded run starts as `template` and is of the agent `name` unless its session names
    /// another.
    pub fn new(
        store: Store,
        upstreams: Upstreams,
        redact: Vec<String>,
        pricing: Pricing,
        template: Run,
        name: String,
    ) -> Result<Self, String> {
        let writer = store.writer().map_err(|e| e.to_string())?;
        let client = http::client().map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Self {
            store: Mutex::new(store),
            writer,
            client,
            upstreams,
            redact,
            pricing,
            template,
            name,
        })
    }

    fn redactor(&self) -> Redactor {
        Redactor::new(&self.redact).unwrap_or_default()
    }

    fn record(&self, request: &OpenSession) -> Result<Arc<Proxy>, String> {
        let mut run = Run::new(self.template.source);
        run.task = request.task.clone().or_else(|| self.template.task.clone());
        run.labels.clone_from(&self.template.labels);
        let recorder = self.writer.start_run(run).map_err(|e| e.to_string())?;
        let proxy = Proxy::new(
            Backend::Live {
                client: self.client.clone(),
                upstreams: self.upstreams.clone(),
            },
            self.redactor(),
            self.pricing.clone(),
            recorder,
        );
        proxy.name_agent(request.name.as_deref().unwrap_or(&self.name));
        Ok(proxy)
    }

    fn replay(&self, request: &OpenSession, model: ModelSource) -> Result<Arc<Proxy>, String> {
        let tape = &request.tape;
        let file = std::fs::File::open(tape).map_err(|e| {
            format!(
                "no tape to replay at `{}`: {e}; record it first",
                tape.display()
            )
        })?;
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let id = match store
            .import_tape(&mut BufReader::new(file))
            .map_err(|e| format!("cannot read the tape `{}`: {e}", tape.display()))?
        {
            ImportOutcome::Imported { id, .. } | ImportOutcome::AlreadyPresent(id) => id,
        };
        let parent = store.run(&id).map_err(|e| e.to_string())?;
        let options = CommandReplay {
            model,
            on_miss: MissPolicy::Error,
            live_allow: HashSet::new(),
            match_position: false,
            ignore: Vec::new(),
            redactor: self.redactor(),
            pricing: self.pricing.clone(),
        };
        let input = parent.input.clone().unwrap_or_default();
        replay_proxy(&store, &self.writer, &parent, options, input)
            .map_err(|e| format!("cannot replay the tape `{}`: {e}", tape.display()))
    }
}

/// Writes the tape of `id` to `path`: beside it first, then renamed over it.
fn write_tape(store: &Store, id: &RunId, path: &Path) -> Result<(), String> {
    let fail =
        |e: &dyn std::fmt::Display| format!("cannot write the tape `{}`: {e}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut file = std::fs::File::create(&partial).map_err(|e| fail(&e))?;
    store.export_tape(id, &mut file).map_err(|e| fail(&e))?;
    file.flush().map_err(|e| fail(&e))?;
    drop(file);
    std::fs::rename(&partial, path).map_err(|e| fail(&e))
}

impl SessionOpener for TapeSessions {
    fn open(&self, request: &OpenSession) -> Result<Arc<Proxy>, String> {
        match request.mode {
            TapeMode::Record => self.record(request),
            TapeMode::Replay => self.replay(request, ModelSource::Recorded),
            TapeMode::NewEpisodes => {
                self.replay(request, ModelSource::Episodes(self.upstreams.clone()))
            }
            TapeMode::Check => self.replay(request, ModelSource::Live(self.upstreams.clone())),
        }
    }

    fn close(&self, request: &OpenSession, run: &Run) -> Result<Closing, String> {
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        match request.mode {
            TapeMode::Record => {
                write_tape(&store, &run.id, &request.tape)?;
                Ok(Closing {
                    tape_written: true,
                    divergence: None,
                })
            }
            TapeMode::NewEpisodes => {
                // The run holds what was served from the tape and what went live: the new
                // tape, unless the run missed (a write tool the tape does not hold).
                let missed = matches!(
                    run.stop_reason,
                    Some(StopReason::ReplayMissLlm | StopReason::ReplayMissTool(_))
                );
                if !missed {
                    write_tape(&store, &run.id, &request.tape)?;
                }
                Ok(Closing {
                    tape_written: !missed,
                    divergence: None,
                })
            }
            TapeMode::Replay | TapeMode::Check => {
                // The replay's parent is the tape's run.
                let divergence = match run.parent {
                    Some(parent) => session_divergence(&store, &parent, &run.id)
                        .map_err(|e| e.to_string())?
                        .and_then(|d| serde_json::to_value(d).ok()),
                    None => None,
                };
                Ok(Closing {
                    tape_written: false,
                    divergence,
                })
            }
        }
    }
}
