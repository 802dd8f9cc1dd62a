//! `tapedeck mcp record`: the pass-through between a client and a real server.

use super::*;

/// How long a server may take to exit after the client closed its end, before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often a recording checks whether the server exited.
const POLL: Duration = Duration::from_millis(10);

/// What a pass-through does with the messages that cross it: record them as a run (`mcp
/// record`), or send them to the session it joined (`tapedeck mcp` in a recording session).
pub(super) trait Tap: Send {
    /// A message from the client, before it goes on to the server. `Some(response)` answers
    /// the client with `response` instead, and the server never sees the message.
    fn client_message(&mut self, message: &Value) -> Option<Value>;

    /// A message from the server, before it goes on to the client.
    fn server_message(&mut self, message: &Value);
}

/// `mcp record` records every message as it passes.
impl Tap for Session {
    fn client_message(&mut self, message: &Value) -> Option<Value> {
        self.observe(Direction::ClientToServer, message, Origin::Live);
        None
    }

    fn server_message(&mut self, message: &Value) {
        self.observe(Direction::ServerToClient, message, Origin::Live);
    }
}

/// Starts `command` as an MCP server, its stdin and stdout piped, its stderr inherited.
pub(super) fn spawn_server(command: &[String]) -> Result<Child, McpError> {
    let (program, args) = command.split_first().ok_or(McpError::NoCommand)?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| McpError::Spawn {
            command: command.join(" "),
            source,
        })
}

/// How a pass-through ended.
pub(super) struct Passed {
    /// The server's exit code (`None` when a signal killed it).
    pub(super) exit_code: Option<i32>,
    /// Whether the server wrote anything to its client.
    pub(super) server_spoke: bool,
}

/// Records an MCP session: spawns `command` as the server, passes every line from `client_in`
/// to it and every line it writes to `client_out`, unchanged, and records the messages. The
/// server's stderr is inherited. Ends when the server closes its stdout (after the client
/// closed `client_in`, a well-behaved server exits).
pub fn record(
    writer: &Writer,
    command: &[String],
    options: &RecordOptions,
    client_in: impl Read + Send + 'static,
    client_out: impl Write + Send + 'static,
) -> Result<RecordOutcome, McpError> {
    let mut child = spawn_server(command)?;
    let mut run = mcp_run();
    run.task.clone_from(&options.task);
    run.labels.clone_from(&options.labels);
    let recorder = match writer.start_run(run) {
        Ok(recorder) => recorder,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.into());
        }
    };
    let session = Arc::new(Mutex::new(Session::new(recorder)));
    let passed = pass_through(child, Arc::clone(&session), client_in, client_out)?;
    let run = lock(&session).end(ending(passed.exit_code, passed.server_spoke))?;
    let run = run.ok_or_else(|| McpError::Io(std::io::Error::other("the run ended twice")))?;
    Ok(RecordOutcome {
        run,
        exit_code: passed.exit_code,
    })
}

/// Passes every line from `client_in` to the started server `child` and every line it writes
/// to `client_out`, unchanged, showing each message to `tap` first. Ends when the server
/// closes its stdout and has exited.
pub(super) fn pass_through<T: Tap + 'static>(
    mut child: Child,
    tap: Arc<Mutex<T>>,
    client_in: impl Read + Send + 'static,
    client_out: impl Write + Send + 'static,
) -> Result<Passed, McpError> {
    let (Some(mut server_in), Some(server_out)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(McpError::Io(std::io::Error::other("no pipe to the server")));
    };
    let child = Arc::new(Mutex::new(child));
    // Both directions may write to the client: the server's messages, and the tap's answers
    // to messages it kept from the server.
    let client_out = Arc::new(Mutex::new(client_out));

    // Client → server, on its own thread: the client may keep its end open after the server
    // exited, so this thread is not joined.
    {
        let tap = Arc::clone(&tap);
        let child = Arc::clone(&child);
        let client_out = Arc::clone(&client_out);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(client_in);
            while let Ok(Some(line)) = read_line(&mut reader) {
                let answer =
                    parse_line(&line).and_then(|message| lock(&tap).client_message(&message));
                if let Some(answer) = answer {
                    // The client's own problem if it stopped reading: the server side notices.
                    let _ = write_json_line(&mut *lock(&client_out), &answer);
                    continue;
                }
                if server_in
                    .write_all(&line)
                    .and_then(|()| server_in.flush())
                    .is_err()
                {
                    break;
                }
            }
            // Closing the server's stdin asks it to exit; one that does not in time is killed.
            drop(server_in);
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            loop {
                let mut child = lock(&child);
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    break;
                }
                drop(child);
                std::thread::sleep(POLL);
            }
        });
    }

    // Server → client, here.
    let mut reader = BufReader::new(server_out);
    let mut client_gone = false;
    let mut server_spoke = false;
    while let Some(line) = read_line(&mut reader)? {
        server_spoke = true;
        if let Some(message) = parse_line(&line) {
            lock(&tap).server_message(&message);
        }
        if !client_gone {
            let mut out = lock(&client_out);
            if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                client_gone = true;
            }
        }
    }
    // The server closed its stdout: wait for it to exit (polling, so the client side can
    // still kill a server that lingers after the client closed its end).
    let status = loop {
        if let Some(status) = lock(&child).try_wait()? {
            break status;
        }
        std::thread::sleep(POLL);
    };
    Ok(Passed {
        exit_code: status.code(),
        server_spoke,
    })
}

/// The stop reason a failed server's run ends with: the server is what provides the session's
/// tools, so its failure is a tool error, named for the server rather than for one of its tools.
const SERVER_FAILED: &str = "mcp_server";

/// How a recording ends, from the server's exit code (`None`: killed by a signal) and whether
/// it wrote anything to its client.
///
/// A server that exits non-zero failed: the run ends `error` (`tool_error:mcp_server`); one
/// that did so before writing a line most likely never started (a missing module, a bad flag),
/// and the error says so. A signal is only a note on an `ok` run: it is most often tapedeck's
/// own, for a server that outlived its client.
fn ending(exit_code: Option<i32>, server_spoke: bool) -> Ending {
    match exit_code {
        Some(0) => Ending {
            stop_reason: StopReason::Ok,
            answer: None,
            error: None,
        },
        Some(code) => {
            let before = if server_spoke {
                ""
            } else {
                " before sending any message (did it start? see its stderr)"
            };
            Ending {
                stop_reason: StopReason::ToolError(SERVER_FAILED.to_owned()),
                answer: None,
                error: Some(format!("the MCP server exited with code {code}{before}")),
            }
        }
        None => Ending {
            stop_reason: StopReason::Ok,
            answer: None,
            error: Some("the MCP server was killed by a signal".to_owned()),
        },
    }
}
