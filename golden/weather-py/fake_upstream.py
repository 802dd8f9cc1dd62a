#!/usr/bin/env python3
"""A fake OpenAI Chat Completions API on 127.0.0.1 that plays a scripted model for the tasks of
this suite, so its baselines can be recorded and checked offline, with no key and no network.

    fake_upstream.py [--port PORT] [--model-behaviour baseline|extra-call|noisy]

It prints its base URL (`http://127.0.0.1:PORT/v1`, the port chosen by the system with
`--port 0`, the default) on the first line of stdout, then serves until it is stopped. Give that
URL to `tapedeck golden record|check --upstream-openai URL`.

The model is a script keyed on the question (the first user message: Paris, Lyon or Tokyo)
and on how many answers it has given in the conversation so far, so every reply follows from the
request alone and requests may come in any order or at once:

- `baseline`: Paris — get_weather, then the answer; Lyon — get_weather, create_ticket when the
  report says the service is degraded, then the answer; Tokyo — get_current_time, then the
  answer. Any other question is answered at once, with no tool.
- `extra-call`: a new model that checks the Paris weather twice (one more tool call and one more
  model call on that task only); the other tasks as `baseline`.
- `noisy`: as `baseline`, but each final answer alternates between two phrasings (and so two
  token counts) from one answer of a task to the next, as a real model's answers vary.

The token counts (`usage`) are the text's length in characters divided by four: what a request
and an answer cost grows with them as it would with a real model.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

BEHAVIOURS = ("baseline", "extra-call", "noisy")

# A fixed creation time: replies are the same from one run to the next.
CREATED = 1_700_000_000


class Model:
    """The scripted model: one reply per request, from the conversation so far."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        # The noisy model's phrasing alternates per task; requests may come from several
        # threads at once.
        self.answers: Dict[str, int] = {}
        self.lock = threading.Lock()

    def reply(self, request: Dict[str, Any]) -> Dict[str, Any]:
        messages: List[Dict[str, Any]] = request.get("messages") or []
        question = next(
            (text(m.get("content")) for m in messages if m.get("role") == "user"), ""
        )
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        results = [text(m.get("content")) for m in messages if m.get("role") == "tool"]
        task, step = self.script(question.lower(), turn, results)
        if isinstance(step, tuple):
            name, args = step
            message: Dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{turn + 1}",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                ],
            }
            finish, said = "tool_calls", name + json.dumps(args)
        else:
            answer = self.phrase(task, step)
            message = {"role": "assistant", "content": answer}
            finish, said = "stop", answer
        prompt = sum(len(text(m.get("content"))) for m in messages) + len(
            json.dumps(request.get("tools") or [])
        )
        usage = {"prompt_tokens": prompt // 4, "completion_tokens": len(said) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": f"chatcmpl-{task}-{turn + 1}",
            "object": "chat.completion",
            "created": CREATED,
            "model": request.get("model") or "unknown",
            "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": usage,
        }

    def script(
        self, question: str, turn: int, results: List[str]
    ) -> Tuple[str, Any]:
        """The task and this turn's step: a tool call `(name, arguments)` or the answer's
        text."""
        if "paris" in question:
            calls = [("get_weather", {"city": "Paris"})]
            if self.behaviour == "extra-call":
                calls.append(("get_weather", {"city": "Paris"}))
            if turn < len(calls):
                return "paris", calls[turn]
            return "paris", f"Paris: {results[-1]}."
        if "lyon" in question:
            if turn == 0:
                return "lyon", ("get_weather", {"city": "Lyon"})
            weather = results[0]
            if turn == 1 and "degraded" in weather.lower():
                return "lyon", ("create_ticket", {"title": "Lyon weather service degraded"})
            if turn == 1:
                return "lyon", f"Lyon: {weather}."
            ticket = field(results[-1], "ticket") or results[-1]
            return "lyon", f"Lyon: {weather}; ticket {ticket} opened."
        if "tokyo" in question:
            if turn == 0:
                return "tokyo", ("get_current_time", {"timezone": "Asia/Tokyo"})
            now = field(results[-1], "datetime")
            return "tokyo", f"In Tokyo it is {now[11:16] if now else results[-1]}."
        return "other", "I can tell the weather in a city and the time in a timezone."

    def phrase(self, task: str, answer: str) -> str:
        if self.behaviour != "noisy":
            return answer
        with self.lock:
            n = self.answers.get(task, 0)
            self.answers[task] = n + 1
        return answer if n % 2 == 0 else f"Here is what I found. {answer}"


def text(content: Any) -> str:
    """A message's content as text (a string, or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def field(result: str, name: str) -> Optional[str]:
    """A field of a tool's JSON result, if it is one."""
    try:
        value = json.loads(result)
    except ValueError:
        return None
    return str(value[name]) if isinstance(value, dict) and name in value else None


def handler(model: Model) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                return self.send(404, error(f"no such endpoint: POST {self.path}"))
            try:
                length = int(self.headers.get("content-length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError as e:
                return self.send(400, error(f"the request is not JSON: {e}"))
            if request.get("stream"):
                return self.send(400, error("this fake does not stream: send stream=false"))
            self.send(200, model.reply(request))

        def send(self, status: int, body: Dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would drown the output of the commands it serves

    return Handler


def error(message: str) -> Dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI API playing a scripted model.")
    parser.add_argument("--port", type=int, default=0, help="the port (default 0: any free one)")
    parser.add_argument("--model-behaviour", choices=BEHAVIOURS, default="baseline")
    opts = parser.parse_args()
    # 127.0.0.1 only: the fake is for this machine's tests and examples.
    server = ThreadingHTTPServer(("127.0.0.1", opts.port), handler(Model(opts.model_behaviour)))
    print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
