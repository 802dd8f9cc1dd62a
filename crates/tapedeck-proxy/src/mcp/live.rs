//! The MCP server of a replay, started only when the session lets a read tool run live
//! (`--on-miss live --live-allow TOOL`): the client's handshake was answered from the
//! recording, so `tapedeck mcp` makes its own with the server (the client's `initialize` params
//! when it sent one), then sends it the live calls with ids of its own.

use std::process::{Child, ChildStdin, ChildStdout};

use super::record::spawn_server;
use super::*;

/// The protocol version a live server is asked for when the client made no `initialize` of its
/// own (it spoke the stateless era): the last version of the handshake era.
const HANDSHAKE_VERSION: &str = "2025-11-25";

/// A server started for live calls.
pub(super) struct LiveServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl LiveServer {
    /// Starts `command` and makes the handshake, with `initialize` (the client's params) or
    /// tapedeck's own.
    pub(super) fn start(command: &[String], initialize: Option<&Value>) -> Result<Self, String> {
        let mut child = spawn_server(command).map_err(|e| e.to_string())?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("no pipe to the MCP server".to_owned());
        };
        let mut server = Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            next_id: 0,
        };
        let params = initialize.cloned().unwrap_or_else(|| {
            json!({
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "tapedeck-mcp", "version": env!("CARGO_PKG_VERSION")},
            })
        });
        let answer = server.request("initialize", params)?;
        if let Some(error) = answer.get("error") {
            return Err(format!("the MCP server refused the handshake: {error}"));
        }
        server.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(server)
    }

    fn send(&mut self, message: &Value) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| "the MCP server's input is closed".to_owned())?;
        let mut line = message.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot write to the MCP server: {e}"))
    }

    /// Sends a request and waits for its response (the whole message). What the server sends
    /// meanwhile is passed over: its notifications are not the client's (the client lives in
    /// the recording), and a request of its own gets a JSON-RPC error.
    fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = format!("tapedeck-live-{}", self.next_id);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        loop {
            let line = read_line(&mut self.stdout)
                .map_err(|e| format!("cannot read from the MCP server: {e}"))?
                .ok_or_else(|| "the MCP server closed its output before answering".to_owned())?;
            let Some(message) = parse_line(&line) else {
                continue;
            };
            let its_id = message.get("id").filter(|i| !i.is_null()).map(id_text);
            match (message.get("method"), its_id) {
                (None, Some(i)) if i == id => return Ok(message),
                (Some(_), Some(_)) => {
                    let refusal = json!({
                        "jsonrpc": "2.0",
                        "id": message.get("id"),
                        "error": {"code": -32601, "message": "tapedeck mcp: a live call in a replay answers no requests of the server's"},
                    });
                    self.send(&refusal)?;
                }
                _ => {}
            }
        }
    }

    /// Calls `tool` with `arguments`: the response's `result`, or its JSON-RPC error.
    pub(super) fn call(&mut self, tool: &str, arguments: &Value) -> Result<Value, String> {
        let response = self.request("tools/call", json!({"name": tool, "arguments": arguments}))?;
        match response.get("result") {
            Some(result) => Ok(result.clone()),
            None => Ok(json!({"error": response.get("error").cloned().unwrap_or(Value::Null)})),
        }
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        // Closing its input asks the server to exit; one that lingers is killed.
        drop(self.stdin.take());
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
