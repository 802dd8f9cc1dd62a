//! `tapedeck mcp record`: the pass-through between a client and a real server.

use super::*;

/// How long a server may take to exit after the client closed its end, before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often a recording checks whether the server exited.
const POLL: Duration = Duration::from_millis(10);

/// Records an MCP session: spawns `command` as the server, passes every line from `client_in`
/// to it and every line it writes to `client_out`, unchanged, and records the messages. The
/// server's stderr is inherited. Ends when the server closes its stdout (after the client
/// closed `client_in`, a well-behaved server exits).
pub fn record(
    writer: &Writer,
    command: &[String],
    options: &RecordOptions,
    client_in: impl Read + Send + 'static,
    mut client_out: impl Write,
) -> Result<RecordOutcome, McpError> {
    let (program, args) = command.split_first().ok_or(McpError::NoCommand)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| McpError::Spawn {
            command: command.join(" "),
            source,
        })?;
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
    let (Some(mut server_in), Some(server_out)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(McpError::Io(std::io::Error::other("no pipe to the server")));
    };
    let child = Arc::new(Mutex::new(child));

    // Client → server, on its own thread: the client may keep its end open after the server
    // exited, so this thread is not joined.
    {
        let session = Arc::clone(&session);
        let child = Arc::clone(&child);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(client_in);
            while let Ok(Some(line)) = read_line(&mut reader) {
                if let Some(message) = parse_line(&line) {
                    lock(&session).observe(Direction::ClientToServer, &message, Origin::Live);
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
                let mut child = child.lock().unwrap_or_else(PoisonError::into_inner);
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
            lock(&session).observe(Direction::ServerToClient, &message, Origin::Live);
        }
        if !client_gone
            && client_out
                .write_all(&line)
                .and_then(|()| client_out.flush())
                .is_err()
        {
            client_gone = true;
        }
    }
    // The server closed its stdout: wait for it to exit (polling, so the client side can
    // still kill a server that lingers after the client closed its end).
    let status = loop {
        if let Some(status) = child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_wait()?
        {
            break status;
        }
        std::thread::sleep(POLL);
    };
    let exit_code = status.code();
    let run = lock(&session).end(ending(exit_code, server_spoke))?;
    let run = run.ok_or_else(|| McpError::Io(std::io::Error::other("the run ended twice")))?;
    Ok(RecordOutcome { run, exit_code })
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
