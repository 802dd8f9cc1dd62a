//! Serving a [`Proxy`]: [`start`] on a local port, [`run_child`] for `tapedeck record` /
//! `replay -- CMD`, and the long-lived [`Hub`] of `tapedeck proxy`.

use super::*;

/// A proxy being served.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    proxy: Arc<Proxy>,
}

/// Sets TCP_NODELAY on a client's connection: a streamed response goes out in several writes
/// (the head, then each piece), and with Nagle's algorithm against the client's delayed ACK each
/// one after the first would wait ~40 ms.
pub(super) fn no_delay(tcp: &mut tokio::net::TcpStream) {
    // Without it the proxy still works, only slower.
    let _ = tcp.set_nodelay(true);
}

/// Serves `proxy` on `addr` (`127.0.0.1:0` for an ephemeral port).
pub async fn start(proxy: Arc<Proxy>, addr: SocketAddr) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (shutdown, stop) = oneshot::channel::<()>();
    let app = Router::new()
        .route(
            &format!("{}/{{*endpoint}}", crate::session::PATH),
            axum::routing::post(session::endpoint),
        )
        .fallback(|State(proxy): State<Arc<Proxy>>, request: Request| proxy.handle(request))
        .with_state(Arc::clone(&proxy));
    let server = tokio::spawn(async move {
        axum::serve(listener.tap_io(no_delay), app)
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await
    });
    Ok(Running {
        addr,
        shutdown,
        server,
        proxy,
    })
}

impl Running {
    /// Stops serving, waits (a little) for responses in flight and for their recording, and
    /// gives the proxy back.
    pub async fn stop(self) -> Arc<Proxy> {
        let _ = self.shutdown.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        let tasks = std::mem::take(&mut *lock(&self.proxy.tasks));
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        self.proxy
    }
}

/// A signal that asks tapedeck to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
}

impl Interrupt {
    /// Its number (exit code 128 + it).
    pub fn number(self) -> i32 {
        match self {
            Self::Int => 2,
            Self::Term => 15,
        }
    }

    /// Its name, `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Int => "SIGINT",
            Self::Term => "SIGTERM",
        }
    }
}

/// How the client of [`run_child`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildEnd {
    /// Its exit code (128+N if signal N ended it); `None` if it could not be waited for.
    pub code: Option<i32>,
    /// The signal that interrupted tapedeck while the client ran.
    pub interrupted_by: Option<Interrupt>,
}

/// The client command [`run_child`] runs, and how.
#[derive(Clone, Debug, Default)]
pub struct ClientCommand {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Variables added to its environment.
    pub env: Vec<(String, String)>,
    /// Its working folder (default: tapedeck's).
    pub cwd: Option<std::path::PathBuf>,
    /// A file its stdout and stderr go to (appended); without one, tapedeck's own.
    pub output: Option<std::path::PathBuf>,
}

impl ClientCommand {
    /// `argv` as it is, with tapedeck's environment, folder and output.
    pub fn new(argv: &[String]) -> Self {
        Self {
            argv: argv.to_vec(),
            ..Self::default()
        }
    }
}

/// Serves `proxy` on 127.0.0.1 and runs `command` with `OPENAI_BASE_URL` and
/// `ANTHROPIC_BASE_URL` pointing at it, and `TAPEDECK_SESSION` at its session
/// (`crate::session`); returns how the child ended once the proxy has recorded everything.
///
/// `interrupts` brings the signals the caller listens for. SIGINT is
/// not passed on: Ctrl-C in a terminal reaches the client too (same process group), and a
/// second copy would interrupt its clean-up. SIGTERM is passed on to the client. Either way the
/// client is waited for, and the end says it was interrupted; a second signal kills it.
pub async fn run_child(
    proxy: Arc<Proxy>,
    command: &ClientCommand,
    mut interrupts: mpsc::UnboundedReceiver<Interrupt>,
) -> std::io::Result<(Arc<Proxy>, ChildEnd)> {
    let Some((program, args)) = command.argv.split_first() else {
        return Err(std::io::Error::other("no command to run"));
    };
    let output = match &command.output {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot write the client's output to `{}`: {e}",
                            path.display()
                        ),
                    )
                })?,
        ),
        None => None,
    };
    let running = start(proxy, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let port = running.addr.port();
    let mut child = tokio::process::Command::new(program);
    child.args(args).envs(command.env.iter().cloned());
    if let Some(dir) = &command.cwd {
        child.current_dir(dir);
    }
    if let Some(file) = output {
        child.stdout(file.try_clone()?).stderr(file);
    }
    let child = child
        .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{port}/v1"))
        .env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env(crate::session::ENV_VAR, crate::session::url(port))
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            running.stop().await;
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot run `{program}`: {e}"),
            ));
        }
    };
    let mut interrupted_by = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some(signal) = interrupts.recv() => {
                if interrupted_by.is_some() {
                    // A second signal: stop at once.
                    let _ = child.start_kill();
                } else if signal == Interrupt::Term {
                    forward_terminate(&child);
                }
                interrupted_by.get_or_insert(signal);
            }
        }
    };
    let proxy = running.stop().await;
    let status = status?;
    Ok((
        proxy,
        ChildEnd {
            code: exit_code(status),
            interrupted_by,
        },
    ))
}

/// Where a client run's interrupts come from ([`run_client`]): called inside the runtime that
/// serves the proxy. The command line listens for SIGINT and SIGTERM; a caller that does not
/// passes [`no_interrupts`].
pub type InterruptSource = fn() -> std::io::Result<mpsc::UnboundedReceiver<Interrupt>>;

/// An [`InterruptSource`] that never interrupts.
pub fn no_interrupts() -> std::io::Result<mpsc::UnboundedReceiver<Interrupt>> {
    let (_, receiver) = mpsc::unbounded_channel();
    Ok(receiver)
}

/// The async runtime a proxy is served on while a client runs behind it.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// How a client run behind the proxy ended: its run, and how the client ended.
pub struct ClientRun {
    /// The run, ended.
    pub run: Run,
    /// How the client ended.
    pub end: ChildEnd,
}

/// Why [`run_client`] could not run its client to the end.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The runtime, the listener, the client or its output file could not be set up.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The run could not be ended in the store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs the client behind `proxy` on a runtime of its own ([`run_child`]) and ends the run: as
/// the client's exit says, or `cancelled` when `interrupts` brought a signal. A client that
/// never started still ends its run, as one exiting 127 would.
pub fn run_client(
    proxy: Arc<Proxy>,
    command: &ClientCommand,
    interrupts: InterruptSource,
) -> Result<ClientRun, ClientError> {
    let runtime = runtime()?;
    let run_of_proxy = Arc::clone(&proxy);
    let (proxy, end) = match runtime.block_on(async {
        let interrupts = interrupts()?;
        run_child(proxy, command, interrupts).await
    }) {
        Ok(done) => done,
        Err(e) => {
            let _ = run_of_proxy.finish(Some(127));
            return Err(e.into());
        }
    };
    drop(run_of_proxy);
    let run = match end.interrupted_by {
        Some(signal) => proxy.finish_interrupted(end.code, signal)?,
        None => proxy.finish(end.code)?,
    };
    drop(runtime);
    Ok(ClientRun { run, end })
}

/// Passes SIGTERM on to the client, so it can end (and flush) on its own terms.
fn forward_terminate(child: &tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        // The child may have exited in between: nothing to pass on then.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    #[cfg(not(unix))]
    let _ = child;
}

fn exit_code(status: std::process::ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return Some(128 + signal);
        }
    }
    status.code()
}

/// The `previous_response_id` of a Responses API request body.
fn previous_response_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Continues {
        previous_response_id: Option<String>,
    }
    serde_json::from_slice::<Continues>(body)
        .ok()?
        .previous_response_id
}

/// Makes the proxy of a new run; its argument is the `x-tapedeck-run` header value, if any.
pub type MakeProxy = dyn Fn(Option<&str>) -> Result<Arc<Proxy>, StoreError> + Send + Sync;

/// The long-lived proxy (`tapedeck proxy`): one run per `x-tapedeck-run` header value, and a
/// new one after an idle gap; a Responses API request continuing an earlier response
/// (`previous_response_id`) joins that response's run.
pub struct Hub {
    make: Box<MakeProxy>,
    split_idle: Option<Duration>,
    sessions: Mutex<HashMap<String, (Arc<Proxy>, Instant)>>,
    ended: Mutex<Vec<Result<Run, StoreError>>>,
}

impl Hub {
    /// A hub making its runs with `make`.
    pub fn new(make: Box<MakeProxy>, split_idle: Option<Duration>) -> Arc<Self> {
        Arc::new(Self {
            make,
            split_idle,
            sessions: Mutex::new(HashMap::new()),
            ended: Mutex::new(Vec::new()),
        })
    }

    /// The run a request belongs to: its `x-tapedeck-run` header's (`key`); without one, the
    /// run that gave the response a Responses API request continues (`continues`, its
    /// `previous_response_id`), even after an idle gap; else the run of requests without the
    /// header.
    fn session(
        &self,
        key: Option<&str>,
        continues: Option<&str>,
    ) -> Result<Arc<Proxy>, StoreError> {
        let mut sessions = lock(&self.sessions);
        if let (None, Some(response_id)) = (key, continues) {
            // Identical requests can get identical ids: the run most recently active wins.
            let found = sessions
                .values_mut()
                .filter(|(proxy, _)| proxy.answered(response_id))
                .max_by_key(|(_, last)| *last);
            if let Some((proxy, last)) = found {
                *last = Instant::now();
                return Ok(Arc::clone(proxy));
            }
        }
        let name = key.unwrap_or_default().to_owned();
        if let Some((proxy, last)) = sessions.get_mut(&name) {
            let idle = self.split_idle.is_some_and(|gap| last.elapsed() >= gap);
            if !idle {
                *last = Instant::now();
                return Ok(Arc::clone(proxy));
            }
            let old = Arc::clone(proxy);
            sessions.remove(&name);
            lock(&self.ended).push(old.finish(Some(0)));
        }
        let proxy = (self.make)(key)?;
        sessions.insert(name, (Arc::clone(&proxy), Instant::now()));
        Ok(proxy)
    }

    async fn handle(self: Arc<Self>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let started = Instant::now();
        let key = parts
            .headers
            .get("x-tapedeck-run")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_body(&parts, body, DEFAULT_BODY_LIMIT).await;
        let continues = match &body {
            Ok(bytes)
                if key.is_none()
                    && parts.method == Method::POST
                    && Provider::of_path(parts.uri.path()) == Some(Provider::Responses) =>
            {
                previous_response_id(bytes)
            }
            _ => None,
        };
        match self.session(key.as_deref(), continues.as_deref()) {
            Ok(proxy) => proxy.serve(parts, body, started).await,
            Err(e) => json_error(
                500,
                "tapedeck_store_error",
                &format!("tapedeck: cannot record: {e}"),
            ),
        }
    }

    /// Serves on `listener` until `shutdown` resolves, then ends every open run; returns the
    /// runs ended, in the order they ended.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Vec<Result<Run, StoreError>>> {
        let app = Router::new()
            .fallback(|State(hub): State<Arc<Hub>>, request: Request| hub.handle(request))
            .with_state(Arc::clone(&self));
        axum::serve(listener.tap_io(no_delay), app)
            .with_graceful_shutdown(shutdown)
            .await?;
        let sessions: Vec<_> = lock(&self.sessions).drain().map(|(_, (p, _))| p).collect();
        for proxy in sessions {
            let tasks = std::mem::take(&mut *lock(&proxy.tasks));
            for task in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
            }
            lock(&self.ended).push(proxy.finish(Some(0)));
        }
        Ok(std::mem::take(&mut *lock(&self.ended)))
    }
}

#[cfg(test)]
mod tests {
    use super::previous_response_id;

    #[test]
    fn previous_response_id_is_read_from_any_body() {
        let body =
            br#"{"model": "m", "input": [{"big": [1, 2, 3]}], "previous_response_id": "resp_7"}"#;
        assert_eq!(previous_response_id(body).as_deref(), Some("resp_7"));
        assert_eq!(previous_response_id(br#"{"model": "m"}"#), None);
        assert_eq!(previous_response_id(b"not json"), None);
    }
}
