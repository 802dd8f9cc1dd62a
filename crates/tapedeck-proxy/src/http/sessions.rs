//! One session at a time on a long-lived proxy (`tapedeck proxy --sessions`): a test harness
//! (the pytest plugin of `clients/python`) points its clients at the proxy once, then opens a
//! session per test, each a run of its own recorded to, or replayed from, its own tape. The
//! main type is [`SessionHub`]; what a session is made of is its [`SessionOpener`]'s choice.
//!
//! The control endpoints, on the proxy's port beside the session protocol's:
//!
//! - `POST /tapedeck/control/v1/open` `{"mode": "record"|"replay"|"new_episodes"|"check",
//!   "tape": PATH, "task"?, "name"?}` → `{"run", "id", "mode"}`; 409 while another session
//!   is open.
//! - `POST /tapedeck/control/v1/close` `{"exit_code"?}` → `{"run", "id", "status",
//!   "stop_reason", "error", "parent", "tape_written", "divergence"}` (`parent`: the tape's
//!   run, which a replay, new episodes or a check replayed); 409 when none is open.
//!
//! While a session is open, every model request and every session-protocol message
//! (`TAPEDECK_SESSION=http://ADDR/tapedeck/session/v1`) goes to it. With none open, a model
//! request goes to the opener's [`SessionOpener::outside`] proxy — forwarded unrecorded, so a
//! test the harness does not handle works as without it — or, without one, is answered 409;
//! a session-protocol message is always answered 409.

use std::path::PathBuf;

use serde::Serialize;

use super::*;

/// How a session uses its tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TapeMode {
    /// The model live; the tape written at `close`.
    Record,
    /// The model and every tool from the tape.
    Replay,
    /// The tape for what it holds, the model (and read tools) live for the rest; the tape
    /// rewritten at `close` with both, unless the run missed.
    NewEpisodes,
    /// The model live, every tool from the tape (a drift check: the caller diffs the run
    /// against the tape's at `close`).
    Check,
}

/// Where the control endpoints are served.
pub const CONTROL_PATH: &str = "/tapedeck/control/v1";

/// `open`: a session to start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSession {
    /// Record, replay or new episodes.
    pub mode: TapeMode,
    /// The tape: read in a replay, written at `close` in a recording.
    pub tape: PathBuf,
    /// The run's task (the pytest plugin gives the test's node id).
    #[serde(default)]
    pub task: Option<String>,
    /// The agent's name (default: the proxy's `--name`).
    #[serde(default)]
    pub name: Option<String>,
}

/// `close`: how the test that held the session ended.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseSession {
    /// Taken as the client's exit code (0 by default): a run with no final answer ends `ok`
    /// with 0, `model_error` otherwise.
    #[serde(default)]
    pub exit_code: i32,
}

/// What a [`SessionOpener`] did at the end of a session.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Closing {
    /// Whether the tape was written (a recording).
    pub tape_written: bool,
    /// Where a replay first left the recorded trajectory, if it did.
    pub divergence: Option<Value>,
}

/// Why a [`SessionOpener`] could not open or close a session: its own error, whose message
/// the control endpoint answers with.
pub type OpenerError = Box<dyn std::error::Error + Send + Sync>;

/// Makes the proxy of each session and finishes its tape.
pub trait SessionOpener: Send + Sync {
    /// The proxy (its run started) of a new session, or why not (a missing or unreadable tape).
    fn open(&self, request: &OpenSession) -> Result<Arc<Proxy>, OpenerError>;
    /// After the session's `run` ended: writes the tape of a recording, or checks a replay.
    fn close(&self, request: &OpenSession, run: &Run) -> Result<Closing, OpenerError>;
    /// What serves a model request while no session is open: a proxy that forwards without
    /// recording (a test the harness does not handle reaches its upstream as without it), or
    /// none, which refuses it (409).
    fn outside(&self) -> Option<Arc<Proxy>> {
        None
    }
}

/// The long-lived proxy of `tapedeck proxy --sessions`: at most one session open at a time.
pub struct SessionHub {
    opener: Box<dyn SessionOpener>,
    open: Mutex<Option<(Arc<Proxy>, OpenSession)>>,
    /// What serves model requests while no session is open ([`SessionOpener::outside`]).
    outside: Option<Arc<Proxy>>,
}

fn conflict(message: &str) -> Response {
    json_error(409, "tapedeck_session", message)
}

impl SessionHub {
    /// A hub whose sessions `opener` makes.
    pub fn new(opener: Box<dyn SessionOpener>) -> Arc<Self> {
        let outside = opener.outside();
        Arc::new(Self {
            opener,
            open: Mutex::new(None),
            outside,
        })
    }

    fn current(&self) -> Option<Arc<Proxy>> {
        lock(&self.open)
            .as_ref()
            .map(|(proxy, _)| Arc::clone(proxy))
    }

    fn open(&self, body: &[u8]) -> Response {
        let request: OpenSession = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return json_error(400, "bad_request", &format!("tapedeck control: {e}")),
        };
        let mut open = lock(&self.open);
        if let Some((_, other)) = open.as_ref() {
            return conflict(&format!(
                "tapedeck control: the session of `{}` is still open; close it first",
                other.tape.display()
            ));
        }
        let proxy = match self.opener.open(&request) {
            Ok(proxy) => proxy,
            Err(why) => {
                return json_error(
                    400,
                    "tapedeck_tape",
                    &tapedeck_trace::one_line(why.as_ref()),
                );
            }
        };
        let id = lock(&proxy.session).recorder.as_ref().map(|r| r.id());
        let mode = request.mode;
        *open = Some((proxy, request));
        json_response(
            200,
            json!({
                "run": id.map(|id| id.short()),
                "id": id.map(|id| id.to_string()),
                "mode": mode,
            })
            .to_string(),
        )
    }

    async fn close(&self, body: &[u8]) -> Response {
        let request: CloseSession = if body.is_empty() {
            CloseSession::default()
        } else {
            match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => {
                    return json_error(400, "bad_request", &format!("tapedeck control: {e}"));
                }
            }
        };
        let Some((proxy, opened)) = lock(&self.open).take() else {
            return conflict("tapedeck control: no session is open");
        };
        // Responses still streaming are recorded before the run ends.
        let tasks = std::mem::take(&mut *lock(&proxy.tasks));
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        let run = match proxy.finish(Some(request.exit_code)) {
            Ok(run) => run,
            Err(e) => return json_error(500, "tapedeck_store_error", &e.to_string()),
        };
        let closing = match self.opener.close(&opened, &run) {
            Ok(closing) => closing,
            Err(why) => {
                return json_error(
                    500,
                    "tapedeck_tape",
                    &tapedeck_trace::one_line(why.as_ref()),
                );
            }
        };
        json_response(
            200,
            json!({
                "run": run.id.short(),
                "id": run.id.to_string(),
                "status": run.status,
                "stop_reason": run.stop_reason.as_ref().map(ToString::to_string),
                "error": run.error,
                "parent": run.parent.map(|id| id.to_string()),
                "tape_written": closing.tape_written,
                "divergence": closing.divergence,
            })
            .to_string(),
        )
    }

    async fn handle(self: Arc<Self>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let started = Instant::now();
        let path = parts.uri.path().to_owned();
        let body = read_body(&parts, body, DEFAULT_BODY_LIMIT).await;
        if let Some(endpoint) = path.strip_prefix(CONTROL_PATH) {
            let Ok(bytes) = body else {
                return json_error(400, "bad_request", "tapedeck control: unreadable body");
            };
            return match (parts.method == Method::POST, endpoint) {
                (true, "/open") => self.open(&bytes),
                (true, "/close") => self.close(&bytes).await,
                _ => json_error(
                    404,
                    "not_found",
                    &format!("tapedeck control: no endpoint `{endpoint}` (POST /open, /close)"),
                ),
            };
        }
        let session_protocol = path.starts_with(crate::session::PATH);
        let Some(proxy) = self
            .current()
            .or_else(|| self.outside.clone().filter(|_| !session_protocol))
        else {
            return conflict(&format!(
                "tapedeck: no session is open on this proxy, so `{path}` is not forwarded (open one with POST {CONTROL_PATH}/open; under pytest, mark the test `@pytest.mark.tapedeck`)"
            ));
        };
        if let Some(endpoint) = path
            .strip_prefix(crate::session::PATH)
            .and_then(|e| e.strip_prefix('/'))
        {
            let Ok(bytes) = body else {
                return json_error(400, "bad_request", "tapedeck session: unreadable body");
            };
            return session::endpoint(
                State(proxy),
                axum::extract::Path(endpoint.to_owned()),
                bytes,
            )
            .await;
        }
        proxy.serve(parts, body, started).await
    }

    /// Serves on `listener` until `shutdown` resolves, then ends the open session (as
    /// interrupted by SIGTERM, its tape not written) and returns its run, if one was open.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Option<Result<Run, StoreError>>> {
        let app = Router::new()
            .fallback(|State(hub): State<Arc<SessionHub>>, request: Request| hub.handle(request))
            .with_state(Arc::clone(&self));
        axum::serve(listener.tap_io(no_delay), app)
            .with_graceful_shutdown(shutdown)
            .await?;
        let open = lock(&self.open).take();
        let Some((proxy, _)) = open else {
            return Ok(None);
        };
        let tasks = std::mem::take(&mut *lock(&proxy.tasks));
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        Ok(Some(proxy.finish_interrupted(Some(0), Interrupt::Term)))
    }
}
