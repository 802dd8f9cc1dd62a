#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from the repository's
own data: the fixture tapes and agent versions, the proxy's recorded tapes, and streams and
bodies shaped like the wire tests'. The OTLP seeds are fixture tapes exported by a tapedeck
binary (the TAPEDECK variable, else target/debug/tapedeck). Run from anywhere; the output is
committed, so a run only rewrites what it writes."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
TAPES = [
    ROOT / "fixtures/tapes/clean.jsonl",
    ROOT / "fixtures/tapes/tool-denied.jsonl",
    ROOT / "fixtures/tapes/browser-retry-incident.jsonl",
    ROOT / "crates/tapedeck-store/tests/data/tape-v1.jsonl",
    ROOT / "crates/tapedeck-proxy/tests/data/weather-v2.jsonl",
    ROOT / "crates/tapedeck-proxy/tests/data/weather-v3.jsonl",
]


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def lines(tape):
    return tape.read_text().splitlines()


def tape_seeds():
    # One line of each event kind and a header of each version: a few dozen seeds in all.
    seen = set()
    for tape in TAPES:
        stem = tape.stem
        write("tape_import", f"{stem}.jsonl", tape.read_bytes())
        all_lines = lines(tape)
        version = json.loads(all_lines[0])["version"]
        if version not in seen:
            seen.add(version)
            write("tape_line", f"header-v{version}", all_lines[0] + "\n")
        for line in all_lines[1:]:
            kind = json.loads(line)["kind"]
            if kind in seen or len(line) > 8_000:
                continue
            seen.add(kind)
            write("tape_line", kind, line + "\n")


def otlp_seeds():
    binary = os.environ.get("TAPEDECK", str(ROOT / "target/debug/tapedeck"))
    with tempfile.TemporaryDirectory() as tmp:
        store = pathlib.Path(tmp) / "seeds.db"
        for tape in TAPES[:2] + TAPES[5:]:
            subprocess.run([binary, "--store", str(store), "import", str(tape)],
                           check=True, capture_output=True)
            run_id = json.loads(lines(tape)[0])["run"]["id"]
            otlp = subprocess.run(
                [binary, "--store", str(store), "export", run_id[:8], "--format", "otel"],
                check=True, capture_output=True).stdout
            write("otlp_import", f"{tape.stem}.otlp.json", otlp)
    # Another producer's minimal GenAI trace (as in the store's otel tests).
    attr = lambda k, v: {"key": k, "value": {"stringValue": v}}
    foreign = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
         "name": "invoke_agent helper", "kind": 1,
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000002000000000",
         "attributes": [attr("gen_ai.operation.name", "invoke_agent"),
                        attr("gen_ai.agent.name", "helper")]},
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00f067aa0ba902b7",
         "parentSpanId": "b7ad6b7169203331", "name": "chat gpt-x", "kind": 3,
         "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000000900000000",
         "attributes": [attr("gen_ai.operation.name", "chat"),
                        attr("gen_ai.request.model", "gpt-x"),
                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}]},
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00f067aa0ba902b8",
         "parentSpanId": "b7ad6b7169203331", "name": "execute_tool search", "kind": 1,
         "startTimeUnixNano": "1700000001000000000", "endTimeUnixNano": "1700000001500000000",
         "attributes": [attr("gen_ai.operation.name", "execute_tool"),
                        attr("gen_ai.tool.name", "search"),
                        attr("gen_ai.tool.call.id", "call_1")]},
    ]}]}]}
    write("otlp_import", "foreign.otlp.json", compact(foreign) + "\n")


def agent_seeds():
    for path in sorted((ROOT / "fixtures/agents").glob("*.yaml")):
        write("agent_config", path.name, path.read_bytes())
    write("agent_config", "minimal.json", compact({
        "name": "json-bot", "model": {"provider": "openai", "name": "gpt-x"},
        "system_prompt": "Be brief.",
        "tools": {"allow": ["kb.read"], "defs": [
            {"name": "kb.read", "builtin": "mock", "mock": [{"output": {"ok": True}}],
             "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]},
        "budgets": {"max_steps": 4, "max_usd": 0.5},
        "pricing": {"gpt-x": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}}))


def sse(events):
    out = ""
    for name, data in events:
        data = data if isinstance(data, str) else compact(data)
        out += f"event: {name}\ndata: {data}\n\n" if name else f"data: {data}\n\n"
    return out


def chunk(delta, finish=None):
    return (None, {"id": "c", "model": "gpt-x",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def streams():
    usage = (None, {"id": "c", "model": "gpt-x", "choices": [],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 7}})
    openai_text = sse([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}),
                       chunk({"content": "lo — ✓"}), chunk({}, "stop"), usage,
                       (None, "[DONE]")])
    openai_calls = sse([
        chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function",
             "function": {"name": "get", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "put", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"), usage, (None, "[DONE]")])
    anthropic = sse([
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        ("ping", {"type": "ping"}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Let me look."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": "{\"q\": \"tapes\"}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 12}}),
        ("message_stop", {"type": "message_stop"})])
    anthropic_error = sse([("error", {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}})])
    response = {"id": "resp_1", "model": "gpt-x", "status": "completed", "output": [
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Hi there"}]},
        {"type": "function_call", "call_id": "fc_1", "name": "get", "arguments": "{\"a\":2}"}],
        "usage": {"input_tokens": 8, "output_tokens": 3}}
    responses = sse([
        ("response.created", {"type": "response.created",
                              "response": {"id": "resp_1", "status": "in_progress"}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Hi "}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "there"}),
        ("response.completed", {"type": "response.completed", "response": response})])
    return [
        ("openai-text", 0, openai_text),
        ("openai-calls", 0, openai_calls),
        ("openai-crlf-bom", 0, "\ufeff" + openai_text.replace("\n", "\r\n")),
        ("openai-keepalive", 0, ": keep-alive\n\n: keep-alive\n\nid: 7\nretry: 10\n\n"),
        ("anthropic", 1, anthropic),
        ("anthropic-cut", 1, anthropic[: anthropic.index("message_delta") - 7]),
        ("anthropic-error", 1, anthropic_error),
        ("responses", 2, responses),
        ("responses-cr", 2, responses.replace("\n", "\r")),
    ]


def stream_seeds():
    # The first byte of an `sse` input chooses its cuts; a `stream` input has the API first.
    for name, provider, text in streams():
        data = text.encode()
        write("sse", name, bytes([len(name)]) + data)
        write("stream", name, bytes([provider, len(name)]) + data)


def wire_seeds():
    chat = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "kb.read", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7}}
    messages = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{"type": "thinking", "thinking": "…"},
                            {"type": "text", "text": "Checking."},
                            {"type": "tool_use", "id": "call_1", "name": "kb.read",
                             "input": {"a": 1}}],
                "stop_reason": "tool_calls", "usage": {"input_tokens": 5, "output_tokens": 7}}
    responses = {"id": "resp_1", "object": "response", "status": "completed",
                 "output": [{"type": "reasoning", "summary": []},
                            {"type": "message", "role": "assistant",
                             "content": [{"type": "output_text", "text": "Checking."}]},
                            {"type": "function_call", "call_id": "call_1", "name": "kb.read",
                             "arguments": "{\"a\":1}"}],
                 "usage": {"input_tokens": 5, "output_tokens": 7},
                 "incomplete_details": None}
    for name, body in [("chat", chat), ("messages", messages), ("responses", responses)]:
        write("wire_body", name, compact(body))
    chat_request = {"model": "gpt-x", "max_tokens": 64, "stream": True,
                    "stream_options": {"include_usage": True}, "temperature": 0.2, "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": None, "tool_calls": [
                            {"id": "call_1", "type": "function",
                             "function": {"name": "kb_read", "arguments": "{}"}}]},
                        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}],
                    "tools": [{"type": "function", "function": {
                        "name": "kb_read", "description": "Reads.",
                        "parameters": {"type": "object"}}}]}
    messages_request = {"model": "claude-x", "max_tokens": 64, "system": "Be brief.",
                        "temperature": 0.0,
                        "tools": [{"name": "kb_read", "description": "Reads.",
                                   "input_schema": {"type": "object"}}],
                        "messages": [
                            {"role": "assistant", "content": [
                                {"type": "tool_use", "id": "toolu_1", "name": "kb_read",
                                 "input": {}}]},
                            {"role": "user", "content": [
                                {"type": "tool_result", "tool_use_id": "toolu_1",
                                 "content": "ok", "is_error": False},
                                {"type": "text", "text": "Go on."}]}]}
    responses_request = {"model": "gpt-x", "instructions": "Be brief.", "input": [
        {"role": "user", "content": "Hi"},
        {"type": "function_call_output", "call_id": "fc_1", "output": "ok"}],
        "previous_response_id": "resp_0", "user": "u"}
    for name, body in [("chat", chat_request), ("messages", messages_request),
                       ("responses", responses_request)]:
        write("wire_request", name, compact(body))
    # What the proxy recorded: requests (their matching form's body) and responses.
    tape = ROOT / "crates/tapedeck-proxy/tests/data/weather-v2.jsonl"
    n = 0
    for line in lines(tape):
        event = json.loads(line)
        if event.get("kind") != "http_exchange":
            continue
        n += 1
        blobs = event["blobs"]
        request = blobs[event["data"]["request"]]
        response = blobs[event["data"]["response"]]
        write("wire_request", f"weather-{n}", compact(request["body"]))
        write("wire_body", f"weather-{n}", response["body"])


def mcp_seeds():
    for tape in TAPES[4:]:
        recording, client = [], []
        for line in lines(tape)[1:]:
            event = json.loads(line)
            data = event["data"]
            if event["kind"] == "mcp_message":
                message = event["blobs"].get(data["message"])
                direction = data["direction"]
            elif event["kind"] in ("tool_call", "tool_result"):
                continue
            else:
                continue
            if message is None:
                continue
            arrow = ">" if direction == "client_to_server" else "<"
            recording.append(arrow + compact(message))
            if direction == "client_to_server":
                client.append(compact(message))
        client.append(compact({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                               "params": {"name": "get_current_time",
                                          "arguments": {"timezone": "Asia/Tokyo"}}}))
        client.append(compact({"jsonrpc": "2.0", "id": 10, "method": "ping"}))
        client.append("not json")
        write("mcp_line", tape.stem, "\n".join(recording + ["---"] + client) + "\n")
    call = {"jsonrpc": "2.0", "id": "a", "method": "tools/call",
            "params": {"name": "get_weather", "arguments": {"city": "Paris"}, "_meta": {"t": 1}}}
    recording = [
        ">" + compact({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}),
        "<" + compact({"jsonrpc": "2.0", "id": 1, "result": {
            "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "w", "version": "1"}}}),
        ">" + compact(call),
        "<" + compact({"jsonrpc": "2.0", "method": "notifications/progress",
                       "params": {"progress": 1}}),
        "<" + compact({"jsonrpc": "2.0", "id": 5, "method": "sampling/createMessage",
                       "params": {}}),
        ">" + compact({"jsonrpc": "2.0", "id": 5, "result": {}}),
        "<" + compact({"jsonrpc": "2.0", "id": "a", "result": {
            "content": [{"type": "text", "text": "no such city"}], "isError": True}}),
    ]
    client = [
        compact({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                 "params": {"protocolVersion": "2025-11-25"}}),
        compact({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        compact(call),
        compact({"jsonrpc": "2.0", "id": 5, "result": {}}),
        compact({"jsonrpc": "2.0", "id": "b", "method": "tools/call",
                 "params": {"name": "get_weather", "arguments": {"city": "Rome"}}}),
    ]
    write("mcp_line", "discovery", "\n".join(recording + ["---"] + client) + "\n")


def main():
    tape_seeds()
    agent_seeds()
    stream_seeds()
    wire_seeds()
    mcp_seeds()
    otlp_seeds()
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    files = sum(1 for p in CORPUS.rglob("*") if p.is_file())
    print(f"{files} seed files, {total} bytes", file=sys.stderr)


main()
