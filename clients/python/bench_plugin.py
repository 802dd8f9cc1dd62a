"""What the pytest plugin costs a replayed test (`tapedeck bench pytest`): a suite of N tests,
each one model call on the chat completions API, is recorded once through the plugin against a
fake upstream on 127.0.0.1 in this process; then the same suite runs, best of --runs, bare
(no plugin, the calls answered by the fake upstream) and replayed (the plugin, --tapedeck-mode
none, the upstream stopped). Prints one JSON line: the two wall times of the whole pytest run
and the number of tests. Needs pytest; the plugin comes from this folder (PYTHONPATH).

    python3 bench_plugin.py --binary target/release/tapedeck --tests 50 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent

CONFTEST = '''
def pytest_configure(config):
    config.addinivalue_line("markers", "tapedeck: run in a tapedeck session")
'''

TEST = '''
import json
import os
import urllib.request

import pytest


def ask(question):
    request = urllib.request.Request(
        os.environ["OPENAI_BASE_URL"] + "/chat/completions",
        data=json.dumps({{"model": "gpt-test", "messages": [{{"role": "user", "content": question}}]}}).encode(),
        headers={{"content-type": "application/json", "authorization": "Bearer sk-bench"}},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["choices"][0]["message"]["content"]

{tests}
'''

ONE = '''
@pytest.mark.tapedeck
def test_{n}():
    assert ask("Question {n}?") == "Answer."
'''


class Upstream(BaseHTTPRequestHandler):
    """A chat completions API that answers every request at once."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-test",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "Answer."},
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def pytest(suite: Path, env: dict, plugin: bool, extra: list) -> float:
    """Runs the suite; returns its wall time in seconds (a failure ends the benchmark)."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if plugin:
        args += ["-p", "tapedeck.pytest_plugin"]
    start = time.perf_counter()
    out = subprocess.run(
        args + extra + [str(suite)], env=env, capture_output=True, text=True, cwd=suite
    )
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"bench_plugin: pytest failed:\n{out.stdout}\n{out.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, help="the tapedeck binary the plugin runs")
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream = f"http://127.0.0.1:{server.server_address[1]}/v1"
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-pytest-") as tmp:
        suite = Path(tmp)
        (suite / "conftest.py").write_text(CONFTEST)
        tests = "".join(ONE.format(n=n) for n in range(options.tests))
        (suite / "test_bench.py").write_text(TEST.format(tests=tests))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "TAPEDECK_BIN": options.binary,
            "OPENAI_BASE_URL": upstream,
        }
        env.pop("TAPEDECK_SESSION", None)
        # The tapes, recorded once with the upstream there.
        pytest(suite, env, True, ["--tapedeck-mode", "all"])
        bare = min(pytest(suite, env, False, []) for _ in range(options.runs))
        server.shutdown()
        server.server_close()
        replayed = min(
            pytest(suite, env, True, ["--tapedeck-mode", "none"]) for _ in range(options.runs)
        )
    print(json.dumps({"tests": options.tests, "bare_s": bare, "replayed_s": replayed}))


if __name__ == "__main__":
    main()
