"""A fake tapedeck session for the client's tests: an HTTP/1.1 keep-alive server on 127.0.0.1
(port 0) that speaks protocol v1, records every message with the client's address, and answers
each `call` from a script."""

from __future__ import annotations

import json
import os
import sys
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

BASE = "/tapedeck/session/v1"

Answer = Tuple[int, Dict[str, Any]]


class FakeSession:
    """``answer(call_body)`` gives the answer to each `call` (by default `run` with a fresh call
    id). ``close_after_each`` makes the server drop the connection after every answer without
    saying so, as a server closing an idle keep-alive connection does."""

    def __init__(
        self,
        mode: str = "record",
        answer: Optional[Callable[[Dict[str, Any]], Answer]] = None,
        hello: Optional[Answer] = None,
        close_after_each: bool = False,
    ) -> None:
        self.mode = mode
        self.answer = answer or self._run
        self.hello = hello
        self.close_after_each = close_after_each
        self.messages: List[Tuple[str, Dict[str, Any], Tuple[str, int]]] = []
        self._lock = threading.Lock()
        self._calls = 0
        self._open: List[socket.socket] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The head and the body go out in two writes; with Nagle's algorithm on, the
            # second waits for the client's delayed ACK (tens of milliseconds a message).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._open.append(self.connection)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                endpoint = self.path[len(BASE) + 1 :] if self.path.startswith(BASE + "/") else None
                with fake._lock:
                    fake.messages.append((endpoint or self.path, body, self.client_address))
                status, out = fake._answer(endpoint, body)
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if fake.close_after_each:
                    self.close_connection = True

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{BASE}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def _run(self, body: Dict[str, Any]) -> Answer:
        with self._lock:
            self._calls += 1
            return 200, {"action": "run", "call": f"c{self._calls}"}

    def _answer(self, endpoint: Optional[str], body: Dict[str, Any]) -> Answer:
        if endpoint == "hello":
            if self.hello is not None:
                return self.hello
            return 200, {"protocol": 1, "mode": self.mode, "run": "3f9c2e1a"}
        if endpoint == "call":
            return self.answer(body)
        if endpoint == "outcome":
            return 200, {}
        return 404, {"error": {"type": "bad_request", "message": f"no endpoint {endpoint}"}}

    def sent(self, endpoint: Optional[str] = None) -> List[Dict[str, Any]]:
        """The bodies received, of one endpoint or all."""
        with self._lock:
            return [b for e, b, _ in self.messages if endpoint is None or e == endpoint]

    def endpoints(self) -> List[str]:
        with self._lock:
            return [e for e, _, _ in self.messages]

    def client_ports(self) -> List[int]:
        with self._lock:
            return [a[1] for _, _, a in self.messages]

    def stop(self) -> None:
        """Stops listening and closes the connections still open, as a session that ended."""
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A connection reset by a client, or closed by stop(), is part of the tests.
        pass


def replaying(*answers: Dict[str, Any]) -> Callable[[Dict[str, Any]], Answer]:
    """An `answer` giving these answers to successive calls."""
    queue = list(answers)

    def answer(body: Dict[str, Any]) -> Answer:
        return 200, queue.pop(0)

    return answer


def require(client: str, available: bool) -> bool:
    """Whether a test that needs `client` runs. A missing client fails the test, as in the rest
    of the repository's tests, unless TAPEDECK_SKIP_REAL_CLIENTS=1 lets it pass without
    running (with a note on stderr)."""
    if available:
        return True
    if os.environ.get("TAPEDECK_SKIP_REAL_CLIENTS") != "1":
        raise AssertionError(
            f"{client} is not installed (`.ci/test` installs it), or set "
            "TAPEDECK_SKIP_REAL_CLIENTS=1 to let the tests that need it pass without running"
        )
    print(f"note: {client} is missing and TAPEDECK_SKIP_REAL_CLIENTS=1: not run", file=sys.stderr)
    return False
