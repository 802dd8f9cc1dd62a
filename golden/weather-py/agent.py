#!/usr/bin/env python3
"""A small weather agent on the official `openai` SDK: the template of a golden suite for an agent
written as code (see README.md beside it).

    agent.py [--model MODEL] [--prompt FILE] QUESTION...

Tools the model is given:

- `get_weather(city)` (read): the line for that city in the file named by WEATHER_DATA
  (default: `weather.txt` beside this script);
- `create_ticket(title)` (write): appends the title to the file named by TICKETS_FILE (default:
  `weather-py-tickets.txt` in the system's temporary folder, so a real run never writes into
  the checkout) and answers the ticket's id;
- `get_current_time(timezone)` of mcp-server-time, started through `tapedeck mcp` (the binary
  named by TAPEDECK_BIN, default `tapedeck` on PATH).

The two Python tools are decorated with the tapedeck client library, and the MCP server runs
behind `tapedeck mcp`, so under `tapedeck golden record` every call is recorded in the task's run
and under `tapedeck golden check` every call is answered from the baseline (the write tool never
runs). Outside tapedeck the agent runs as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List

HERE = Path(__file__).resolve().parent
# The client library of this repository (clients/python); a copy of this suite elsewhere uses
# the installed one (the `tapedeck` wheel built from the folder `clients/python`).
CLIENT = HERE.parents[1] / "clients" / "python"
if (CLIENT / "tapedeck").is_dir():
    sys.path.insert(0, str(CLIENT))

import tapedeck  # noqa: E402
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

MCP_TOOLS = ("get_current_time",)
MAX_TURNS = 8


@tapedeck.tool
def get_weather(city: str) -> str:
    path = Path(os.environ.get("WEATHER_DATA") or HERE / "weather.txt")
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, report = line.partition(":")
        if name.strip().lower() == city.strip().lower():
            return report.strip()
    return f"no weather data for {city}"


@tapedeck.tool(kind="write")
def create_ticket(title: str) -> Dict[str, str]:
    path = Path(
        os.environ.get("TICKETS_FILE")
        or Path(tempfile.gettempdir()) / "weather-py-tickets.txt"
    )
    with path.open("a", encoding="utf-8") as f:
        f.write(title + "\n")
    count = len(path.read_text(encoding="utf-8").splitlines())
    return {"ticket": f"T-{count}"}


LOCAL: Dict[str, Callable[..., Any]] = {"get_weather": get_weather, "create_ticket": create_ticket}

LOCAL_SCHEMAS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather report of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_ticket",
            "description": "Opens a support ticket and returns its id.",
            "parameters": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "required": ["title"],
            },
        },
    },
]


def field(obj: Any, name: str, older: str) -> Any:
    # The MCP SDK's types name their fields in snake_case since version 2, in camelCase before.
    return getattr(obj, name) if hasattr(obj, name) else getattr(obj, older)


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def run_tool(mcp: ClientSession, name: str, arguments: str) -> str:
    args = json.loads(arguments or "{}")
    if name in MCP_TOOLS:
        result = await mcp.call_tool(name, args)
        text = "\n".join(c.text for c in result.content if c.type == "text")
        return f"error: {text}" if field(result, "is_error", "isError") else text
    fn = LOCAL.get(name)
    if fn is None:
        return f"error: no tool named {name}"
    try:
        return as_text(fn(**args))
    except (tapedeck.ReplayMiss, tapedeck.SessionError):
        # Not the tool's failure: the replay cannot go on, and the run must say so.
        raise
    except tapedeck.RecordedToolError as e:
        # A replayed failure reads as the recorded one did.
        return f"error: {e.type}: {e.message}"
    except Exception as e:
        # The model sees a failed tool as text and can work around it.
        return f"error: {type(e).__name__}: {e}"


async def mcp_tools(mcp: ClientSession) -> List[Dict[str, Any]]:
    listed = await mcp.list_tools()
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description or "",
                "parameters": field(t, "input_schema", "inputSchema"),
            },
        }
        for t in listed.tools
        if t.name in MCP_TOOLS
    ]


async def agent(prompt: str, model: str, question: str) -> str:
    server = StdioServerParameters(
        command=os.environ.get("TAPEDECK_BIN", "tapedeck"),
        args=["mcp", "--name", "time", "--", sys.executable, "-m", "mcp_server_time"],
        # The SDK passes the server only a few variables of its own choosing; `tapedeck mcp`
        # needs TAPEDECK_SESSION to join the task's run.
        env=dict(os.environ),
    )
    client = AsyncOpenAI(max_retries=0)
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as mcp:
            await mcp.initialize()
            tools = LOCAL_SCHEMAS + await mcp_tools(mcp)
            messages: List[Dict[str, Any]] = [
                {"role": "system", "content": prompt},
                {"role": "user", "content": question},
            ]
            for _ in range(MAX_TURNS):
                response = await client.chat.completions.create(
                    model=model, messages=messages, tools=tools
                )
                message = response.choices[0].message
                calls = message.tool_calls or []
                turn: Dict[str, Any] = {"role": "assistant", "content": message.content}
                if calls:
                    turn["tool_calls"] = [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.function.name, "arguments": c.function.arguments},
                        }
                        for c in calls
                    ]
                messages.append(turn)
                if not calls:
                    return message.content or ""
                for c in calls:
                    content = await run_tool(mcp, c.function.name, c.function.arguments)
                    messages.append({"role": "tool", "tool_call_id": c.id, "content": content})
            raise SystemExit(f"no final answer after {MAX_TURNS} model calls")


def main() -> None:
    parser = argparse.ArgumentParser(description="A small weather agent on the openai SDK.")
    parser.add_argument("--model", default="gpt-4o-mini", help="the model (default: gpt-4o-mini)")
    parser.add_argument(
        "--prompt",
        type=Path,
        default=HERE / "prompt.txt",
        help="the system prompt's file (default: prompt.txt beside this script)",
    )
    parser.add_argument("question", nargs="+")
    opts = parser.parse_args()
    prompt = opts.prompt.read_text(encoding="utf-8").strip()
    print(asyncio.run(agent(prompt, opts.model, " ".join(opts.question))))


if __name__ == "__main__":
    main()
