//! The HTTP record/replay proxy for the OpenAI Chat Completions and Responses APIs and the
//! Anthropic Messages API.
//!
//! [`Proxy`] is the shared state of one recorded run (this module: what is recorded of each
//! request); [`start`] serves it on 127.0.0.1 (an ephemeral port) and [`run_child`] runs a
//! client command against it (`serve`). [`Hub`] is the long-lived form: one [`Proxy`] (one run)
//! per `x-tapedeck-run` header value; [`SessionHub`] (`sessions`) is the long-lived form a test
//! harness drives, one session at a time opened and closed on its control endpoints. A
//! request's body is taken whole up to a limit (`body`); `forward` sends it on and tees the
//! answer back. In record mode
//! ([`Backend::Live`]) requests go to the real upstream and responses stream back to the client
//! as they arrive while a tee keeps the raw bytes; in replay mode ([`Backend::Replay`]) the
//! recorded responses are served again, streams re-emitted with their recorded chunking.
//!
//! Each modelled call is recorded as `llm_request`, `llm_response`, then one `http_exchange`
//! holding the request's frame (its matching form without the messages, which the
//! `llm_request` holds once each, so a run grows linearly) and the [`RecordedResponse`] (status,
//! content type, and the body or the list of SSE chunks as they arrived): that exchange is what
//! replay serves. Tool calls
//! in a response become `tool_call` events, and the tool results the next request carries
//! become `tool_result` events. Anything else is passed through and recorded as
//! `http_exchange`. At the end of the run, `agent_identity` records the models, system prompts
//! and tools the client sent (`identity`), just before `run_finished`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, request::Parts};
use axum::response::Response;
use axum::serve::ListenerExt as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};
use tapedeck_store::{Ending, Recorder, StoreError};
use tapedeck_trace::{
    ContentHash, Event, EventData, HttpExchange, LlmRequest, LlmResponse, Origin, RecordedResponse,
    RequestFrame, ResponseBody, Run, StopReason, ToolCall, ToolCallSummary, ToolResult, Usage,
    Validation,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::redact::Redactor;
use tapedeck_wire::sse::SseParser;
use tapedeck_wire::{self as wire, Answer, Assembler, OverLimit, Provider};

mod body;
mod forward;
mod identity;
pub mod miss;
mod recording;
mod serve;
mod session;
mod sessions;
mod settings;

pub use body::BodyError;
use body::{path_of, read_body};
use forward::Teed;
pub use forward::client;
use identity::Identity;
pub use recording::*;
pub use serve::*;
use session::Asked;
pub use session::ToolSession;
pub use sessions::*;
pub use settings::*;

/// The largest request body the proxy accepts (413 above it): the same 32 MiB as the largest
/// response it records.
pub const DEFAULT_BODY_LIMIT: usize = wire::MAX_RESPONSE_BYTES;

/// The public API base URLs (OpenAI's includes `/v1`, Anthropic's does not).
pub const OPENAI_DEFAULT: &str = "https://api.openai.com/v1";
/// Anthropic's public API base URL.
pub const ANTHROPIC_DEFAULT: &str = "https://api.anthropic.com";

/// How the last model call of the run went.
#[derive(Clone, Debug)]
enum Last {
    Answer {
        finish: Option<String>,
        text: String,
    },
    Error(String),
}

struct Session {
    recorder: Option<Recorder>,
    step: u64,
    pending: HashMap<String, (String, Instant)>,
    last: Option<Last>,
    miss: Option<String>,
    /// How many events could not be recorded, and why the first could not.
    write_error: Option<(u64, String)>,
    /// The ids of the responses given, so a Responses API request continuing one
    /// (`previous_response_id`) finds its run.
    response_ids: HashSet<String>,
    /// The model's tool calls no session call has answered yet, oldest first.
    asked: Vec<Asked>,
    /// How many tool calls the session reported that no model response asked for.
    session_calls: u64,
    /// The models, system prompts and tools sent so far: the run's agent version.
    identity: Identity,
}

/// The state of one recorded run behind the proxy.
pub struct Proxy {
    backend: Backend,
    redactor: Redactor,
    pricing: Pricing,
    body_limit: usize,
    session: Mutex<Session>,
    /// What the session (`crate::session`) answers tool calls with.
    tools: Mutex<ToolSession>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The JSON body of an error the proxy answers itself.
fn error_body(kind: &str, message: &str) -> String {
    json!({"error": {"type": kind, "message": message}}).to_string()
}

fn json_response(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn json_error(status: u16, kind: &str, message: &str) -> Response {
    json_response(status, error_body(kind, message))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Proxy {
    /// A proxy recording into `recorder` (already started).
    pub fn new(
        backend: Backend,
        redactor: Redactor,
        pricing: Pricing,
        recorder: Recorder,
    ) -> Arc<Self> {
        Self::with_recorder(backend, redactor, pricing, Some(recorder))
    }

    /// A proxy that forwards and records nothing.
    pub fn unrecorded(backend: Backend, redactor: Redactor, pricing: Pricing) -> Arc<Self> {
        Self::with_recorder(backend, redactor, pricing, None)
    }

    fn with_recorder(
        backend: Backend,
        redactor: Redactor,
        pricing: Pricing,
        recorder: Option<Recorder>,
    ) -> Arc<Self> {
        Arc::new(Self {
            backend,
            redactor,
            pricing,
            body_limit: DEFAULT_BODY_LIMIT,
            session: Mutex::new(Session {
                recorder,
                step: 0,
                pending: HashMap::new(),
                last: None,
                miss: None,
                write_error: None,
                response_ids: HashSet::new(),
                asked: Vec::new(),
                session_calls: 0,
                identity: Identity::default(),
            }),
            tools: Mutex::new(ToolSession::new(crate::session::Tools::Record)),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Sets the request body limit.
    pub fn with_body_limit(mut self: Arc<Self>, limit: usize) -> Arc<Self> {
        if let Some(p) = Arc::get_mut(&mut self) {
            p.body_limit = limit;
        }
        self
    }

    /// Names the agent whose run this is: at the end of the run its agent is this name with the
    /// fingerprint of what it sent.
    pub fn name_agent(&self, name: &str) {
        lock(&self.session).identity.set_name(name);
    }

    /// Runs `f` with the recorder, keeping the first write error for the end of the run.
    fn record<T>(&self, f: impl FnOnce(&mut Recorder) -> Result<T, StoreError>) -> Option<T> {
        let mut session = lock(&self.session);
        let recorder = session.recorder.as_mut()?;
        match f(recorder) {
            Ok(v) => Some(v),
            Err(e) => {
                session
                    .write_error
                    .get_or_insert_with(|| (0, e.to_string()))
                    .0 += 1;
                None
            }
        }
    }

    fn blob(&self, value: &Value) -> Option<ContentHash> {
        let mut value = value.clone();
        self.redactor.value(&mut value);
        self.record(|r| r.blob(&value))
    }

    /// Ends the run from how its last model call went and the client's exit code, and
    /// returns it.
    ///
    /// The stop reason: `replay_miss:llm` after an unmatched request in replay; otherwise
    /// from the last finish reason (`stop`/`end_turn`/`stop_sequence` → `ok` with its text as
    /// the answer, `length`/`max_tokens` → `model_length`); a last call that failed (an
    /// upstream error or status) → `model_error`; a client that exits 0 without a final
    /// answer → `ok`; one that exits non-zero without a final answer → `model_error`.
    pub fn finish(&self, exit_code: Option<i32>) -> Result<Run, StoreError> {
        self.end(exit_code, None)
    }

    /// Ends the run `cancelled`: `signal` interrupted tapedeck while the client ran, and the
    /// client exited with `exit_code`.
    pub fn finish_interrupted(
        &self,
        exit_code: Option<i32>,
        signal: Interrupt,
    ) -> Result<Run, StoreError> {
        self.end(exit_code, Some(signal))
    }

    fn end(
        &self,
        exit_code: Option<i32>,
        interrupted_by: Option<Interrupt>,
    ) -> Result<Run, StoreError> {
        // The answer and error are redacted like everything else.
        let mut session = lock(&self.session);
        let Some(mut recorder) = session.recorder.take() else {
            return Err(StoreError::RunFinished("proxy run".to_owned()));
        };
        let path = recorder.path().to_path_buf();
        let exit = match exit_code {
            Some(code) => format!("exited with code {code}"),
            None => "was killed by a signal".to_owned(),
        };
        let ending = if let Some(signal) = interrupted_by {
            Ending {
                stop_reason: StopReason::Cancelled,
                answer: None,
                error: Some(format!(
                    "interrupted by {}; the client {exit}",
                    signal.name()
                )),
            }
        } else if let Some(miss) = &session.miss {
            Ending {
                stop_reason: StopReason::ReplayMissLlm,
                answer: None,
                error: Some(miss.clone()),
            }
        } else {
            match &session.last {
                Some(Last::Answer { finish, text })
                    if matches!(
                        finish.as_deref(),
                        Some("stop" | "end_turn" | "stop_sequence")
                    ) =>
                {
                    Ending {
                        stop_reason: StopReason::Ok,
                        answer: Some(text.clone()),
                        error: None,
                    }
                }
                Some(Last::Answer { finish, text })
                    if matches!(finish.as_deref(), Some("length" | "max_tokens")) =>
                {
                    Ending {
                        stop_reason: StopReason::ModelLength,
                        answer: Some(text.clone()).filter(|t| !t.is_empty()),
                        error: None,
                    }
                }
                Some(Last::Error(e)) => Ending {
                    stop_reason: StopReason::ModelError,
                    answer: None,
                    error: Some(format!("{e} (the client {exit})")),
                },
                _ if exit_code == Some(0) => Ending {
                    stop_reason: StopReason::Ok,
                    answer: None,
                    error: None,
                },
                _ => Ending {
                    stop_reason: StopReason::ModelError,
                    answer: None,
                    error: Some(format!("the client {exit} before a final answer")),
                },
            }
        };
        // A tool call a replay had no answer for ends the run as the runtime's replay does,
        // unless the model already missed.
        let ending = match lock(&self.tools).miss.take() {
            Some((tool, why)) if interrupted_by.is_none() && session.miss.is_none() => Ending {
                stop_reason: StopReason::ReplayMissTool(tool),
                answer: None,
                error: Some(why),
            },
            _ => ending,
        };
        let mut write_error = session.write_error.take();
        let identity = std::mem::take(&mut session.identity);
        drop(session);
        // Recorded last, before `run_finished`: what the agent sent is known only now.
        if let Err(e) = identity.record(&mut recorder, &self.redactor) {
            write_error.get_or_insert_with(|| (0, e.to_string())).0 += 1;
        }
        let ending = Ending {
            answer: ending.answer.map(|a| self.redactor.text(&a)),
            error: ending.error.map(|e| self.redactor.text(&e)),
            ..ending
        };
        let run = recorder.end(ending)?;
        if let Some((count, detail)) = write_error {
            return Err(StoreError::EventsNotWritten {
                run: run.id.to_string(),
                count,
                path,
                detail,
            });
        }
        Ok(run)
    }

    async fn handle(self: Arc<Self>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let started = Instant::now();
        let body = read_body(&parts, body, self.body_limit).await;
        self.serve(parts, body, started).await
    }

    /// Whether this run gave the response with this id.
    pub fn answered(&self, response_id: &str) -> bool {
        lock(&self.session).response_ids.contains(response_id)
    }

    /// Answers a request whose body has been read (or could not be).
    async fn serve(
        self: Arc<Self>,
        parts: Parts,
        body: Result<Bytes, BodyError>,
        started: Instant,
    ) -> Response {
        // Learn the secrets first, so they are scrubbed from everything recorded after.
        for (name, value) in &parts.headers {
            if Redactor::is_secret_name(name.as_str())
                && let Ok(v) = value.to_str()
            {
                self.redactor.learn(v);
            }
        }
        for pair in parts.uri.query().unwrap_or_default().split('&') {
            if let Some((name, value)) = pair.split_once('=')
                && Redactor::is_secret_name(name)
            {
                self.redactor.learn(value);
            }
        }
        let bytes = match body {
            Ok(bytes) => bytes,
            Err(e) => return self.refuse(&parts, &e, started),
        };
        let path = path_of(&parts);
        let provider = (parts.method == Method::POST)
            .then(|| Provider::of_path(parts.uri.path()))
            .flatten();
        let parsed = provider.and_then(|_| {
            serde_json::from_slice::<Value>(&bytes)
                .ok()
                .filter(Value::is_object)
        });
        match (provider, parsed) {
            (Some(provider), Some(body)) => {
                self.modelled(provider, parts, &path, body, bytes, started)
                    .await
            }
            _ => self.passthrough(parts, &path, bytes, started).await,
        }
    }

    /// Answers (and records) a request whose body was too large or could not be read. For a
    /// modelled endpoint it counts as a failed model call.
    fn refuse(&self, parts: &Parts, error: &BodyError, started: Instant) -> Response {
        let (status, kind) = match error {
            BodyError::TooLarge { .. } => (413, "request_too_large"),
            BodyError::Read(_) => (400, "request_unreadable"),
        };
        let message = format!("tapedeck: {error}");
        let path = path_of(parts);
        let mut request = self.raw_request(parts, &path);
        request["body_error"] = Value::String(error.to_string());
        let body = error_body(kind, &message);
        let response = RecordedResponse {
            status,
            content_type: Some("application/json".to_owned()),
            body: ResponseBody::Whole(body.clone()),
            truncated: false,
            over_limit: None,
        };
        let request = self.blob(&request);
        self.record_exchange(
            parts.method.as_str(),
            &path,
            Some(status),
            RequestRef {
                step: None,
                blob: request,
            },
            &response,
            started.elapsed().as_millis() as u64,
        );
        if parts.method == Method::POST && Provider::of_path(parts.uri.path()).is_some() {
            lock(&self.session).last = Some(Last::Error(message));
        }
        json_response(status, body)
    }

    /// A request as a pass-through exchange records it: method, redacted path and headers (the
    /// caller adds the body).
    fn raw_request(&self, parts: &Parts, path: &str) -> Value {
        let headers = self.redactor.headers(
            parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
        );
        json!({
            "method": parts.method.as_str(),
            "path": self.redactor.path(path),
            "headers": headers,
        })
    }

    /// Records the tool results and the request of a modelled call (`matching` is its redacted
    /// matching form); returns its step and what its exchange is to hold of the request.
    fn record_request(
        &self,
        provider: Provider,
        body: &Value,
        matching: &Value,
    ) -> (u64, RequestRef) {
        lock(&self.session).identity.observe(provider, body);
        // Tool results the client sends back for calls still open.
        for output in wire::tool_outputs(provider, body) {
            let mut session = lock(&self.session);
            session.asked.retain(|a| a.call_id != output.call_id);
            let open = session.pending.remove(&output.call_id);
            drop(session);
            let Some((tool, at)) = open else { continue };
            let (content, error) = if output.is_error {
                (None, Some(self.redactor.text(&stringify(&output.content))))
            } else {
                (self.blob(&output.content), None)
            };
            self.record(|r| {
                r.append(EventData::ToolResult(ToolResult {
                    call_id: self.redactor.text(&output.call_id),
                    tool: self.redactor.text(&tool),
                    output: content,
                    error,
                    latency_ms: at.elapsed().as_millis() as u64,
                    validation: Validation::NotChecked,
                    origin: Origin::Live,
                    cost_usd: None,
                }))
            });
        }
        // The messages are recorded once each (the `llm_request` extends the previous one);
        // the exchange keeps the rest of the matching form, its frame, which rebuilds the form
        // exactly with them. A form that would not is kept whole.
        let (system, list) = provider.message_fields();
        let split = RequestFrame::split(matching, system, Some(list))
            .filter(|(frame, messages)| frame.join(messages).as_ref() == Some(matching));
        let (messages, request_blob, framed) = match split {
            Some((frame, messages)) => (
                messages
                    .iter()
                    .filter_map(|m| self.record(|r| r.blob(m)))
                    .collect::<Vec<_>>(),
                serde_json::to_value(&frame)
                    .ok()
                    .and_then(|f| self.record(|r| r.blob(&f))),
                true,
            ),
            None => (
                wire::request_messages(provider, body)
                    .iter()
                    .filter_map(|m| self.blob(m))
                    .collect(),
                self.record(|r| r.blob(matching)),
                false,
            ),
        };
        let tools = body.get("tools").and_then(|t| self.blob(t));
        let request_hash = tapedeck_trace::hash_value(matching).ok().map(|(h, _)| h);
        let mut params = wire::request_params(body);
        self.redactor.value(&mut params);
        let step = {
            let mut session = lock(&self.session);
            session.step += 1;
            session.step
        };
        let recorded = request_hash.and_then(|request_hash| {
            self.record(|r| {
                r.append(EventData::LlmRequest(LlmRequest {
                    step,
                    provider: Some(provider.name().to_owned()),
                    model: body
                        .get("model")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    params,
                    extends: None,
                    messages,
                    tools,
                    request_hash,
                }))
            })
        });
        let request = RequestRef {
            step: (framed && recorded.is_some()).then_some(step),
            blob: request_blob,
        };
        (step, request)
    }

    /// Records the exchange that carries a call's response (what replay serves).
    fn record_exchange(
        &self,
        method: &str,
        path: &str,
        status: Option<u16>,
        request: RequestRef,
        response: &RecordedResponse,
        latency_ms: u64,
    ) {
        let response = serde_json::to_value(response)
            .ok()
            .and_then(|r| self.blob(&r));
        self.record(|r| {
            r.append(EventData::HttpExchange(HttpExchange {
                method: method.to_owned(),
                path: self.redactor.path(path),
                status,
                step: request.step,
                request: request.blob,
                response,
                latency_ms,
            }))
        });
    }

    fn record_answer(
        &self,
        step: u64,
        cost_usd: Option<f64>,
        answer: &Answer,
        latency_ms: u64,
        streamed: bool,
        truncated: bool,
    ) {
        let Some(message) = self.blob(&answer.message) else {
            return;
        };
        let usage = answer.usage;
        self.record(|r| {
            r.append(EventData::LlmResponse(LlmResponse {
                step,
                message,
                tool_calls: answer
                    .tool_calls
                    .iter()
                    .map(|(id, name, _)| ToolCallSummary {
                        id: self.redactor.text(id),
                        name: self.redactor.text(name),
                    })
                    .collect(),
                finish_reason: answer
                    .finish_reason
                    .as_deref()
                    .map(|f| self.redactor.text(f)),
                usage,
                cost_usd,
                latency_ms,
                streamed,
                truncated,
            }))
        });
        for (id, name, args) in &answer.tool_calls {
            if let Some(args) = self.blob(args) {
                self.record(|r| {
                    r.append(EventData::ToolCall(ToolCall {
                        step,
                        call_id: self.redactor.text(id),
                        tool: self.redactor.text(name),
                        args,
                        args_hash: args,
                        idempotency_key: None,
                    }))
                });
            }
            let mut session = lock(&self.session);
            session
                .pending
                .insert(id.clone(), (name.clone(), Instant::now()));
            session.asked.push(Asked {
                call_id: id.clone(),
                tool: name.clone(),
                args_hash: tapedeck_trace::hash_value(args).ok().map(|(h, _)| h),
            });
        }
        let mut session = lock(&self.session);
        if let Some(id) = &answer.id {
            session.response_ids.insert(id.clone());
        }
        session.last = Some(Last::Answer {
            finish: if truncated && answer.finish_reason.is_none() {
                None
            } else {
                answer.finish_reason.clone()
            },
            text: answer.text.clone(),
        });
    }

    async fn modelled(
        self: Arc<Self>,
        provider: Provider,
        parts: Parts,
        path: &str,
        body: Value,
        bytes: Bytes,
        started: Instant,
    ) -> Response {
        // The matching form, redacted once: recorded, and in replay matched against the recording.
        let mut matching = wire::normalize(parts.uri.path(), &body);
        self.redactor.value(&mut matching);
        let (step, request) = self.record_request(provider, &body, &matching);
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let upstream = match self
            .fetch(&parts, path, bytes, Some(&matching), Some(step))
            .await
        {
            Ok(u) => u,
            Err(error) => {
                let message = error.to_string();
                let response = RecordedResponse {
                    status: error.status(),
                    content_type: Some("application/json".to_owned()),
                    body: ResponseBody::Failed(message.clone()),
                    truncated: false,
                    over_limit: None,
                };
                self.record_exchange(
                    parts.method.as_str(),
                    path,
                    None,
                    request,
                    &response,
                    started.elapsed().as_millis() as u64,
                );
                let mut session = lock(&self.session);
                if error.is_replay_miss() {
                    session.miss.get_or_insert_with(|| message.clone());
                }
                session.last = Some(Last::Error(message.clone()));
                drop(session);
                return json_error(error.status(), error.kind(), &message);
            }
        };
        let status = upstream.status;
        let recorded_cost = upstream.recorded_cost;
        let ok = (200..300).contains(&status);
        let method = parts.method.as_str().to_owned();
        let path = path.to_owned();
        let streamed = upstream.is_sse();
        let content_type = upstream.content_type().to_owned();
        let this = Arc::clone(&self);
        let on_done = move |teed: Teed| {
            let latency = started.elapsed().as_millis() as u64;
            let answer = if teed.over {
                Err(OverLimit::Size)
            } else if streamed {
                let mut parser = SseParser::default();
                let mut asm = Assembler::new(provider);
                for c in &teed.chunks {
                    for ev in parser.feed(c.as_bytes()) {
                        asm.event(&ev);
                    }
                }
                match asm.over_limit() {
                    Some(over) => Err(over.clone()),
                    None => {
                        let truncated = teed.cut || !asm.done;
                        (!asm.malformed || asm.done)
                            .then(|| wire::answer(provider, &asm.body()))
                            .flatten()
                            .transpose()
                            .map(|a| a.map(|a| (a, truncated)))
                    }
                }
            } else {
                serde_json::from_str::<Value>(&teed.chunks.concat())
                    .ok()
                    .and_then(|v| wire::answer(provider, &v))
                    .transpose()
                    .map(|a| a.map(|a| (a, teed.cut)))
            };
            let response = this.recorded_response(status, &content_type, streamed, &teed);
            match answer {
                Ok(Some((answer, truncated))) if ok => {
                    let usage = answer.usage;
                    let mut models = vec![model.as_str()];
                    if let Some(m) = &answer.model {
                        models.push(m);
                    }
                    // In replay, the recorded cost; else from the prices (unknown stays unknown).
                    let cost = recorded_cost.or_else(|| this.pricing.cost(&models, usage));
                    this.record_answer(step, cost, &answer, latency, streamed, truncated);
                }
                failed => {
                    let why = match failed {
                        // The client got the answer as it came; the recording says why it
                        // holds no model response.
                        Err(over) => format!("the upstream's answer is past a bound: {over}"),
                        _ if ok => format!(
                            "the upstream answered HTTP {status} with a body tapedeck could not read"
                        ),
                        _ => format!("the upstream answered HTTP {status}"),
                    };
                    lock(&this.session).last = Some(Last::Error(why));
                }
            }
            this.record_exchange(&method, &path, Some(status), request, &response, latency);
        };
        self.respond(upstream, on_done).await
    }

    /// A response as its exchange records it: status, content type, and the body or the SSE
    /// pieces with secrets removed (also those split across pieces or encoded); a body the
    /// tee stopped keeping is marked `truncated` with the bound it went over.
    fn recorded_response(
        &self,
        status: u16,
        content_type: &str,
        streamed: bool,
        teed: &Teed,
    ) -> RecordedResponse {
        let cut = teed.cut || teed.over;
        let body = if streamed {
            let mut sse = self.redactor.sse(&teed.chunks);
            if let Some(last) = sse.last_mut().filter(|_| cut) {
                *last = self.redactor.cut_end(last);
            }
            ResponseBody::Sse(sse)
        } else {
            let body = self.redactor.body(&teed.chunks.concat());
            ResponseBody::Whole(if cut {
                self.redactor.cut_end(&body)
            } else {
                body
            })
        };
        RecordedResponse {
            status,
            content_type: (!content_type.is_empty()).then(|| content_type.to_owned()),
            body,
            truncated: cut,
            over_limit: teed.over.then(|| OverLimit::Size.to_string()),
        }
    }

    async fn passthrough(
        self: Arc<Self>,
        parts: Parts,
        path: &str,
        bytes: Bytes,
        started: Instant,
    ) -> Response {
        let mut request = self.raw_request(&parts, path);
        request["body"] = Value::String(text(&bytes));
        let request = RequestRef {
            step: None,
            blob: self.blob(&request),
        };
        let method = parts.method.as_str().to_owned();
        let path = path.to_owned();
        let upstream = match self.fetch(&parts, &path, bytes, None, None).await {
            Ok(u) => u,
            Err(error) => {
                let message = error.to_string();
                let response = RecordedResponse {
                    status: error.status(),
                    content_type: None,
                    body: ResponseBody::Failed(message.clone()),
                    truncated: false,
                    over_limit: None,
                };
                self.record_exchange(
                    &method,
                    &path,
                    None,
                    request,
                    &response,
                    started.elapsed().as_millis() as u64,
                );
                return json_error(error.status(), error.kind(), &message);
            }
        };
        let status = upstream.status;
        let content_type = upstream.content_type().to_owned();
        let streamed = upstream.is_sse();
        let this = Arc::clone(&self);
        let on_done = move |teed: Teed| {
            let response = this.recorded_response(status, &content_type, streamed, &teed);
            this.record_exchange(
                &method,
                &path,
                Some(status),
                request,
                &response,
                started.elapsed().as_millis() as u64,
            );
        };
        self.respond(upstream, on_done).await
    }
}

/// What a model call's or pass-through's exchange holds of its request: for a model call
/// whose request was split, its step and frame; otherwise the request whole.
#[derive(Clone, Copy, Debug)]
struct RequestRef {
    step: Option<u64>,
    blob: Option<ContentHash>,
}

fn stringify(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
