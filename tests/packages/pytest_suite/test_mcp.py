"""A test whose agent starts an MCP server through `tapedeck mcp` (tests/packages): the server's
tool call joins the test's run, and a replay answers it without starting the server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def rpc(process, id_, method, params):
    message = {"jsonrpc": "2.0", "method": method, "params": params}
    if id_ is not None:
        message["id"] = id_
    process.stdin.write(json.dumps(message) + "\n")
    process.stdin.flush()
    if id_ is None:
        return None
    return json.loads(process.stdout.readline())


@pytest.mark.tapedeck
def test_clock_through_tapedeck_mcp(tapedeck, tmp_path):
    starts = tmp_path / "starts"
    server = ["tapedeck", "mcp", "--name", "clock", "--", sys.executable,
              str(HERE / "clock_server.py")]
    process = subprocess.Popen(server, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "CLOCK_STARTS": str(starts)})
    rpc(process, 1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "test", "version": "1"}})
    rpc(process, None, "notifications/initialized", {})
    called = rpc(process, 2, "tools/call", {"name": "now", "arguments": {}})
    process.stdin.close()
    assert process.wait(timeout=30) == 0
    assert called["result"]["content"][0]["text"] == "12:00"
    # The server ran in the recording; a replay answered from the tape without it.
    assert starts.exists() == (tapedeck.mode == "record")
    run = tapedeck.recorded_run()
    assert run.summary["tool_calls_by_tool"] == {"now": 1}
