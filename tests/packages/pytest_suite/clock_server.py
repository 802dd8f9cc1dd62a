"""A stdio MCP server with one tool, `now`, in plain Python (no `mcp` package): each start
appends a line to the file CLOCK_STARTS names, so a test can tell a replay never started it."""

import json
import os
import sys


def answer(id_, result):
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}) + "\n")
    sys.stdout.flush()


def main():
    with open(os.environ["CLOCK_STARTS"], "a", encoding="utf-8") as starts:
        starts.write("started\n")
    for line in sys.stdin:
        message = json.loads(line)
        method, id_ = message.get("method"), message.get("id")
        if method == "initialize":
            answer(id_, {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                         "serverInfo": {"name": "clock", "version": "1"}})
        elif method == "tools/call":
            answer(id_, {"content": [{"type": "text", "text": "12:00"}], "isError": False})
        elif id_ is not None:
            answer(id_, {})


if __name__ == "__main__":
    main()
