//! Forwarding: the upstream a modelled or passed-through request goes to (the real API, or
//! the recording in replay), and the tee that streams its answer to the client while keeping
//! the pieces for the recording.

use super::*;

/// An async client for the upstreams (rustls with the ring provider).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already installed by the host program: keep that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// What the tee kept of a response, for its recording.
pub(super) struct Teed {
    /// The pieces as they arrived, at most [`wire::MAX_RESPONSE_BYTES`] of them.
    pub(super) chunks: Vec<String>,
    /// Whether the body was cut (the upstream failed before its end).
    pub(super) cut: bool,
    /// Whether the body went over [`wire::MAX_RESPONSE_BYTES`]: its rest reached the client
    /// but was not kept.
    pub(super) over: bool,
}

/// What the upstream (live or recorded) answered.
pub(super) struct Upstream {
    /// In replay, the cost recorded for the call.
    pub(super) recorded_cost: Option<f64>,
    pub(super) status: u16,
    headers: Vec<(String, String)>,
    body: ByteStream,
}

impl Upstream {
    pub(super) fn content_type(&self) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map_or("", |(_, v)| v.as_str())
    }

    pub(super) fn is_sse(&self) -> bool {
        self.content_type().contains("text/event-stream")
    }

    /// Rebuilds a recorded response.
    fn from_recorded(recorded: RecordedResponse) -> Self {
        let status = recorded.status;
        let truncated = recorded.truncated;
        let headers = recorded
            .content_type
            .iter()
            .map(|ct| ("content-type".to_owned(), ct.clone()))
            .collect();
        let mut body: Vec<Result<Bytes, String>> = recorded
            .into_pieces()
            .into_iter()
            .map(|piece| Ok(Bytes::from(piece)))
            .collect();
        if truncated {
            body.push(Err("the recorded stream was cut here".to_owned()));
        }
        Self {
            status,
            headers,
            body: Box::pin(futures_util::stream::iter(body)),
            recorded_cost: None,
        }
    }
}

/// Why the proxy answered a request itself: what it sends the client, and records.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    /// A replay has no recorded answer for a model call.
    #[error("tapedeck replay: {0}")]
    ReplayMiss(String),
    /// A replay has no recorded exchange for a pass-through request.
    #[error("tapedeck replay: no recorded exchange for {method} {path}")]
    NoExchange {
        /// The request's method.
        method: String,
        /// Its path.
        path: String,
    },
    /// The real upstream could not be reached.
    #[error("tapedeck: the upstream {url} could not be reached: {detail}")]
    Unreachable {
        /// Where the request went.
        url: String,
        /// Why it failed.
        detail: String,
    },
}

impl FetchError {
    /// The HTTP status the client gets.
    pub(super) fn status(&self) -> u16 {
        match self {
            Self::ReplayMiss(_) => 400,
            Self::NoExchange { .. } => 404,
            Self::Unreachable { .. } => 502,
        }
    }

    /// The `error.type` of the JSON body the client gets.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::ReplayMiss(_) | Self::NoExchange { .. } => "tapedeck_replay_miss",
            Self::Unreachable { .. } => "upstream_unreachable",
        }
    }

    /// Whether a replay's recording had no answer for a model call.
    pub(super) fn is_replay_miss(&self) -> bool {
        matches!(self, Self::ReplayMiss(_) | Self::NoExchange { .. })
    }
}

/// Request headers not forwarded upstream.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "accept-encoding"
            | "te"
            | "upgrade"
            | "proxy-connection"
    ) || name.starts_with("x-tapedeck-")
}

impl Proxy {
    /// The upstream's answer to a request: `matching` is a modelled request's matching form
    /// and `step` its step (`None` for a pass-through).
    pub(super) async fn fetch(
        &self,
        parts: &Parts,
        path: &str,
        bytes: Bytes,
        matching: Option<&Value>,
        step: Option<u64>,
    ) -> Result<Upstream, FetchError> {
        match &self.backend {
            Backend::Live { client, upstreams } => {
                self.live(client, upstreams, parts, path, bytes).await
            }
            Backend::Fork {
                recording,
                through_step,
                client,
                upstreams,
            } => match step.filter(|s| *s <= *through_step) {
                Some(step) => {
                    let served = lock(recording).take_step(step);
                    let (raw, cost) = served.ok_or_else(|| {
                        FetchError::ReplayMiss(format!("the recording has no model call #{step}"))
                    })?;
                    Ok(Upstream {
                        recorded_cost: cost,
                        ..Upstream::from_recorded(raw)
                    })
                }
                None => self.live(client, upstreams, parts, path, bytes).await,
            },
            Backend::Episodes {
                recording,
                client,
                upstreams,
            } => {
                let served = {
                    let mut recording = lock(recording);
                    match matching {
                        Some(request) => recording.take(request).ok(),
                        None => recording
                            .take_exchange(parts.method.as_str(), &self.redactor.path(path))
                            .map(|raw| (raw, None)),
                    }
                };
                match served {
                    Some((raw, cost)) => Ok(Upstream {
                        recorded_cost: cost,
                        ..Upstream::from_recorded(raw)
                    }),
                    None => self.live(client, upstreams, parts, path, bytes).await,
                }
            }
            Backend::Replay(recording) => {
                let mut recording = lock(recording);
                let (raw, cost) = match matching {
                    Some(request) => recording.take(request).map_err(FetchError::ReplayMiss)?,
                    None => recording
                        .take_exchange(parts.method.as_str(), &self.redactor.path(path))
                        .ok_or_else(|| FetchError::NoExchange {
                            method: parts.method.to_string(),
                            path: path.to_owned(),
                        })
                        .map(|raw| (raw, None))?,
                };
                Ok(Upstream {
                    recorded_cost: cost,
                    ..Upstream::from_recorded(raw)
                })
            }
        }
    }

    /// Sends a request to the real upstream.
    async fn live(
        &self,
        client: &reqwest::Client,
        upstreams: &Upstreams,
        parts: &Parts,
        path: &str,
        bytes: Bytes,
    ) -> Result<Upstream, FetchError> {
        let anthropic = parts.uri.path().starts_with("/v1/messages")
            || parts.headers.contains_key("anthropic-version");
        let url = if anthropic {
            format!("{}{path}", upstreams.anthropic.trim_end_matches('/'))
        } else {
            let rest = path.strip_prefix("/v1").unwrap_or(path);
            format!("{}{rest}", upstreams.openai.trim_end_matches('/'))
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &parts.headers {
            if !hop_by_hop(name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
            if Redactor::is_secret_name(name.as_str())
                && let Ok(v) = value.to_str()
            {
                self.redactor.learn(v);
            }
        }
        let response = client
            .request(parts.method.clone(), &url)
            .headers(headers)
            .body(bytes)
            .send()
            .await
            .map_err(|e| FetchError::Unreachable {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = response
            .bytes_stream()
            .map(|r| r.map_err(|e| e.to_string()));
        Ok(Upstream {
            status,
            headers,
            body: Box::pin(body),
            recorded_cost: None,
        })
    }

    /// Sends the upstream's response to the client as it arrives, while a tee keeps its
    /// pieces (up to [`wire::MAX_RESPONSE_BYTES`]); `on_done` gets them once the upstream is
    /// done, even if the client went away meanwhile.
    pub(super) async fn respond(
        self: &Arc<Self>,
        upstream: Upstream,
        on_done: impl FnOnce(Teed) + Send + 'static,
    ) -> Response {
        let Upstream {
            status,
            headers,
            mut body,
            ..
        } = upstream;
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        let sse = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-type") && v.contains("text/event-stream")
        });
        let task = tokio::spawn(async move {
            let mut chunks = Vec::new();
            let mut kept = 0usize;
            let mut over = false;
            let mut cut = None;
            let mut client = true;
            // The end of a response reaches the client only once it is recorded, so a client
            // that answers at once (with tool results) finds its calls recorded. A stream's
            // pieces go on at once, but for the one that ends it; a whole body goes one piece
            // behind.
            let mut held: Vec<Bytes> = Vec::new();
            while let Some(item) = body.next().await {
                match item {
                    Ok(bytes) => {
                        let piece = text(&bytes);
                        let last =
                            !sse || piece.contains("[DONE]") || piece.contains("message_stop");
                        // Past the bound the bytes still go to the client; only the keeping stops.
                        if !over && kept + bytes.len() <= wire::MAX_RESPONSE_BYTES {
                            kept += bytes.len();
                            chunks.push(piece);
                        } else {
                            over = true;
                        }
                        if last {
                            for b in std::mem::take(&mut held) {
                                if client && tx.send(Ok(b)).await.is_err() {
                                    client = false;
                                }
                            }
                            held.push(bytes);
                        } else {
                            held.push(bytes);
                            for b in std::mem::take(&mut held) {
                                if client && tx.send(Ok(b)).await.is_err() {
                                    client = false;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        cut = Some(e);
                        break;
                    }
                }
            }
            on_done(Teed {
                chunks,
                cut: cut.is_some(),
                over,
            });
            for b in held {
                if client && tx.send(Ok(b)).await.is_err() {
                    client = false;
                }
            }
            if let (Some(e), true) = (cut, client) {
                let _ = tx.send(Err(std::io::Error::other(e))).await;
            }
        });
        {
            // Only the tasks still running are waited for at the end: a finished one's handle
            // would keep its memory for the rest of the run.
            let mut tasks = lock(&self.tasks);
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut response = Response::new(Body::from_stream(stream));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "content-length" | "transfer-encoding" | "connection" | "keep-alive"
            ) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::from_bytes(lower.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}
