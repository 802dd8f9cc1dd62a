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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tapedeck_proxy::http::{
    self, Backend, Closing, OpenSession, OpenerError, Pricing, Proxy, SessionOpener, TapeMode,
    Upstreams,
};
use tapedeck_proxy::redact::Redactor;
use tapedeck_store::{ImportOutcome, Store, StoreError, Writer};
use tapedeck_trace::{Run, RunId, StopReason};

use crate::session::{CommandReplay, ModelSource, replay_proxy, session_divergence};
use crate::{MissPolicy, ReplayError};

/// Why a session could not open or close.
#[derive(Debug, thiserror::Error)]
pub enum TapeSessionError {
    /// The tape to replay is not there or cannot be opened.
    #[error("no tape to replay at `{}`: {error}; record it first", tape.display())]
    NoTape {
        /// The tape.
        tape: PathBuf,
        /// Why it cannot be opened.
        error: std::io::Error,
    },
    /// The tape is not a tape.
    #[error("cannot read the tape `{}`", tape.display())]
    BadTape {
        /// The tape.
        tape: PathBuf,
        /// What is wrong with it.
        #[source]
        error: StoreError,
    },
    /// The tape's run cannot be replayed.
    #[error("cannot replay the tape `{}`", tape.display())]
    Unreplayable {
        /// The tape.
        tape: PathBuf,
        /// Why.
        #[source]
        error: Box<ReplayError>,
    },
    /// The tape could not be written.
    #[error("cannot write the tape `{}`", tape.display())]
    Write {
        /// The tape.
        tape: PathBuf,
        /// Why.
        #[source]
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The proxy's HTTP client could not be set up.
    #[error("cannot set up the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

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
    /// Whether a model request outside every session is forwarded (unrecorded) or refused.
    forward_outside: bool,
}

impl TapeSessions {
    /// Sessions recording into (and replaying through) `store`: recordings forward to
    /// `upstreams`, redact `redact` (checked by the caller) and price with `pricing`; each
    /// recorded run starts as `template` and is of the agent `name` unless its session names
    /// another. With `forward_outside`, a model request while no session is open goes to the
    /// upstreams unrecorded; without, it is refused.
    pub fn new(
        store: Store,
        upstreams: Upstreams,
        redact: Vec<String>,
        pricing: Pricing,
        template: Run,
        name: String,
        forward_outside: bool,
    ) -> Result<Self, TapeSessionError> {
        let writer = store.writer()?;
        let client = http::client().map_err(TapeSessionError::HttpClient)?;
        Ok(Self {
            store: Mutex::new(store),
            writer,
            client,
            upstreams,
            redact,
            pricing,
            template,
            name,
            forward_outside,
        })
    }

    fn redactor(&self) -> Redactor {
        Redactor::new(&self.redact).unwrap_or_default()
    }

    fn record(&self, request: &OpenSession) -> Result<Arc<Proxy>, TapeSessionError> {
        let mut run = Run::new(self.template.source);
        run.task = request.task.clone().or_else(|| self.template.task.clone());
        run.labels.clone_from(&self.template.labels);
        let recorder = self.writer.start_run(run)?;
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

    fn replay(
        &self,
        request: &OpenSession,
        model: ModelSource,
    ) -> Result<Arc<Proxy>, TapeSessionError> {
        let tape = &request.tape;
        let file = std::fs::File::open(tape).map_err(|error| TapeSessionError::NoTape {
            tape: tape.clone(),
            error,
        })?;
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let id = match store
            .import_tape(&mut BufReader::new(file))
            .map_err(|error| TapeSessionError::BadTape {
                tape: tape.clone(),
                error,
            })? {
            ImportOutcome::Imported { id, .. } | ImportOutcome::AlreadyPresent(id) => id,
        };
        let parent = store.run(&id)?;
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
        replay_proxy(&store, &self.writer, &parent, options, input).map_err(|error| {
            TapeSessionError::Unreplayable {
                tape: tape.clone(),
                error: Box::new(error),
            }
        })
    }
}

/// Writes the tape of `id` to `path`: beside it first, then renamed over it.
fn write_tape(store: &Store, id: &RunId, path: &Path) -> Result<(), TapeSessionError> {
    let fail = |error: Box<dyn std::error::Error + Send + Sync>| TapeSessionError::Write {
        tape: path.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.into()))?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = std::fs::File::create(&partial).map_err(|e| fail(e.into()))?;
    store
        .export_tape(id, &mut file)
        .map_err(|e| fail(e.into()))?;
    file.flush().map_err(|e| fail(e.into()))?;
    drop(file);
    std::fs::rename(&partial, path).map_err(|e| fail(e.into()))
}

impl SessionOpener for TapeSessions {
    fn outside(&self) -> Option<Arc<Proxy>> {
        self.forward_outside.then(|| {
            Proxy::unrecorded(
                Backend::Live {
                    client: self.client.clone(),
                    upstreams: self.upstreams.clone(),
                },
                self.redactor(),
                self.pricing.clone(),
            )
        })
    }

    fn open(&self, request: &OpenSession) -> Result<Arc<Proxy>, OpenerError> {
        match request.mode {
            TapeMode::Record => self.record(request),
            TapeMode::Replay => self.replay(request, ModelSource::Recorded),
            TapeMode::NewEpisodes => {
                self.replay(request, ModelSource::Episodes(self.upstreams.clone()))
            }
            TapeMode::Check => self.replay(request, ModelSource::Live(self.upstreams.clone())),
        }
        .map_err(Into::into)
    }

    fn close(&self, request: &OpenSession, run: &Run) -> Result<Closing, OpenerError> {
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
                    Some(parent) => session_divergence(&store, &parent, &run.id)?
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
