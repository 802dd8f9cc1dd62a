//! A tool that is a subprocess: the JSON arguments go to its stdin, its JSON result comes back
//! on stdout, and a non-zero exit is a failure explained by the end of its stderr.
//!
//! The command is an argv (no shell) run in the config file's folder. Both output pipes are
//! drained on their own threads, so a chatty stderr never blocks the child, and a child that
//! outlives its timeout is killed and reaped.

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::AgentError;
use crate::tool::{ToolBackend, ToolFailure};

/// The most stdout that is kept; a larger result is a failure (the rest is still drained).
const MAX_STDOUT: usize = 16 * 1024 * 1024;
/// How much of the end of stderr is kept to explain a failure.
const STDERR_TAIL: usize = 64 * 1024;
/// Roughly how many characters of stderr a failure message quotes.
const FAILURE_CHARS: usize = 300;
/// How many characters of a non-JSON output a failure quotes.
const NOT_JSON_CHARS: usize = 200;

/// A subprocess tool: `command` (an argv, no shell) run in the config's folder.
#[derive(Clone, Debug)]
pub struct Subprocess {
    /// The tool's name, for messages.
    name: String,
    /// The program to start, resolved (relative to the folder, or found on `PATH`).
    program: PathBuf,
    /// `command[0]` as written, for messages.
    shown: String,
    /// The rest of the argv.
    args: Vec<String>,
    /// The working directory: the config's folder, made absolute.
    dir: PathBuf,
}

impl Subprocess {
    /// Sets up the tool `name` running `command` in `dir` (the config file's folder).
    ///
    /// The program must exist: a `command[0]` with a `/` is taken relative to `dir` (unless
    /// absolute), any other is looked up on `PATH`.
    pub fn new(name: &str, command: &[String], dir: &Path) -> Result<Self, AgentError> {
        let err = |message: String| AgentError::Tool {
            tool: name.to_owned(),
            message,
        };
        let Some((first, rest)) = command.split_first() else {
            return Err(err("`command` is empty".to_owned()));
        };
        if first.is_empty() {
            return Err(err("`command` starts with an empty program name".to_owned()));
        }
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let program = if first.contains('/') {
            let candidate = dir.join(first);
            if !candidate.is_file() {
                return Err(err(format!(
                    "command `{first}` not found (on PATH or relative to {})",
                    dir.display()
                )));
            }
            if !is_executable(&candidate) {
                return Err(err(format!(
                    "command `{first}` ({}) is not executable",
                    candidate.display()
                )));
            }
            candidate
        } else {
            find_on_path(OsStr::new(first)).ok_or_else(|| {
                err(format!(
                    "command `{first}` not found (on PATH or relative to {})",
                    dir.display()
                ))
            })?
        };
        Ok(Self {
            name: name.to_owned(),
            program,
            shown: first.clone(),
            args: rest.to_vec(),
            dir,
        })
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resolved program that is started.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The folder the command runs in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn start(&self) -> Result<Child, ToolFailure> {
        Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ToolFailure::Unavailable(format!("cannot start `{}`: {e}", self.shown)))
    }
}

/// What a pipe-reading thread hands back.
enum Output {
    Stdout { bytes: Vec<u8>, overflow: bool },
    Stderr(Vec<u8>),
}

impl ToolBackend for Subprocess {
    fn call(&self, args: &Value, timeout: Duration) -> Result<Value, ToolFailure> {
        let deadline = Instant::now().checked_add(timeout);
        let input = serde_json::to_vec(args)
            .map_err(|e| ToolFailure::Failed(format!("cannot encode the arguments: {e}")))?;
        let mut child = self.start()?;

        let (tx, rx) = mpsc::channel();
        if let Some(mut stdin) = child.stdin.take() {
            // On its own thread: a child that does not read its input (or writes a lot before
            // reading) must not block us. A closed pipe just means it did not want the input.
            thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let mut pending = 0;
        if let Some(stdout) = child.stdout.take() {
            pending += 1;
            let tx = tx.clone();
            thread::spawn(move || {
                let (bytes, overflow) = read_capped(stdout);
                let _ = tx.send(Output::Stdout { bytes, overflow });
            });
        }
        if let Some(stderr) = child.stderr.take() {
            pending += 1;
            let tx = tx.clone();
            thread::spawn(move || {
                let _ = tx.send(Output::Stderr(read_tail(stderr)));
            });
        }
        drop(tx);

        let status = match wait_until(&mut child, deadline) {
            Ok(Some(status)) => status,
            Ok(None) => {
                stop(&mut child);
                return Err(ToolFailure::Timeout(timeout));
            }
            Err(e) => {
                stop(&mut child);
                return Err(ToolFailure::Failed(format!(
                    "cannot wait for `{}`: {e}",
                    self.shown
                )));
            }
        };

        // The child has exited; its pipes close unless something it started still holds them,
        // so the deadline still applies to collecting the output.
        let mut stdout = None;
        let mut stderr = Vec::new();
        while pending > 0 {
            let received = match deadline {
                Some(deadline) => {
                    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                }
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(Output::Stdout { bytes, overflow }) => stdout = Some((bytes, overflow)),
                Ok(Output::Stderr(bytes)) => stderr = bytes,
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(ToolFailure::Timeout(timeout)),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            pending -= 1;
        }
        let (stdout, overflow) = stdout.unwrap_or_default();

        if !status.success() {
            let mut message = describe_status(status);
            let explain = match tail_lines(&stderr, FAILURE_CHARS) {
                s if s.is_empty() => tail_lines(&stdout, FAILURE_CHARS),
                s => s,
            };
            if !explain.is_empty() {
                message.push_str(": ");
                message.push_str(&explain);
            }
            return Err(ToolFailure::Failed(message));
        }
        if overflow {
            return Err(ToolFailure::Failed(format!(
                "output larger than {} MiB",
                MAX_STDOUT / (1024 * 1024)
            )));
        }
        serde_json::from_slice(&stdout).map_err(|_| {
            let text = String::from_utf8_lossy(&stdout);
            let text = text.trim();
            if text.is_empty() {
                ToolFailure::NotJson("(no output)".to_owned())
            } else {
                ToolFailure::NotJson(crate::model::http::shorten(text, NOT_JSON_CHARS))
            }
        })
    }
}

/// Waits for the child until `deadline` (`None`: forever). `Ok(None)` when time ran out.
fn wait_until(child: &mut Child, deadline: Option<Instant>) -> std::io::Result<Option<ExitStatus>> {
    let Some(deadline) = deadline else {
        return child.wait().map(Some);
    };
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Kills the child and reaps it, so no zombie is left behind.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a pipe to its end, keeping at most [`MAX_STDOUT`] bytes; `true` if there was more.
fn read_capped(mut pipe: impl Read) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut overflow = false;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = MAX_STDOUT.saturating_sub(kept.len());
                if n > room {
                    overflow = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (kept, overflow)
}

/// Reads a pipe to its end, keeping only about the last [`STDERR_TAIL`] bytes.
fn read_tail(mut pipe: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * STDERR_TAIL {
                    kept.drain(..kept.len() - STDERR_TAIL);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    kept
}

/// "exit status N", or the signal that ended the process.
fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    format!("{status}")
}

/// The last non-empty lines of `bytes`, as many as fit in about `max` characters (a single
/// longer last line is cut at its start, marked with `…`).
fn tail_lines(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in text
        .lines()
        .rev()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
    {
        let len = line.chars().count();
        if lines.is_empty() && len > max {
            let skip = len - max;
            let cut: String = line.chars().skip(skip).collect();
            return format!("…{cut}");
        }
        if used + len + 1 > max && !lines.is_empty() {
            break;
        }
        used += len + 1;
        lines.push(line);
    }
    lines.reverse();
    lines.join("\n")
}

/// Whether a file may be executed (on Unix: some execute bit is set).
fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// The first executable file named `program` in a `PATH` folder.
fn find_on_path(program: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_keeps_the_last_non_empty_lines() {
        let text = b"first\nsecond\n\nTraceback\nValueError: bad\n\n";
        assert_eq!(
            tail_lines(text, 300),
            "first\nsecond\nTraceback\nValueError: bad"
        );
        assert_eq!(tail_lines(text, 20), "ValueError: bad");
        let long = "x".repeat(500);
        let cut = tail_lines(long.as_bytes(), 300);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.starts_with('…'));
        assert_eq!(tail_lines(b"", 300), "");
    }

    #[test]
    fn head_cuts_on_characters() {
        assert_eq!(crate::model::http::shorten("héllo", 2), "hé…");
        assert_eq!(crate::model::http::shorten("hi", 2), "hi");
    }
}
