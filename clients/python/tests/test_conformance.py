"""Both conformance drivers (clients/python/conformance.py, clients/js/conformance.mjs) under a
fake session that records, then replays what it recorded, matching calls on the tool, the
canonical args and the occurrence as tapedeck does. tests/session/conformance.rs runs them
under tapedeck itself; this catches a client's mistake without it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from typing import Any, Dict, List, Tuple

from tests.fake_session import Answer, FakeSession, require

CLIENTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVERS = {
    "python": [sys.executable, os.path.join(CLIENTS, "python", "conformance.py")],
    "js": ["node", os.path.join(CLIENTS, "js", "conformance.mjs")],
}

Key = Tuple[str, str]


class Tape:
    """What a recording session kept: each call's tool, args and outcome, in order."""

    def __init__(self) -> None:
        self.calls: List[Dict[str, Any]] = []
        self._lock = threading.Lock()

    def recorder(self) -> Any:
        def answer(body: Dict[str, Any]) -> Answer:
            with self._lock:
                self.calls.append({"tool": body["tool"], "kind": body["kind"], "args": body["args"]})
                return 200, {"action": "run", "call": f"c{len(self.calls)}"}

        return answer

    def fill_outcomes(self, fake: FakeSession) -> None:
        for outcome in fake.sent("outcome"):
            self.calls[int(outcome["call"][1:]) - 1]["outcome"] = outcome

    def replayer(self) -> Any:
        seen: Dict[Key, int] = {}

        def answer(body: Dict[str, Any]) -> Answer:
            key = (body["tool"], json.dumps(body["args"], sort_keys=True, separators=(",", ":")))
            n = seen.get(key, 0)
            seen[key] = n + 1
            matches = [
                c for c in self.calls
                if (c["tool"], json.dumps(c["args"], sort_keys=True, separators=(",", ":"))) == key
            ]
            if not matches:
                return 200, {"action": "miss", "message": f"no recorded call of `{body['tool']}`"}
            call = matches[min(n, len(matches) - 1)]
            outcome = call["outcome"]
            if "error" in outcome:
                return 200, {"action": "raise", "error": outcome["error"]}
            return 200, {"action": "return", "result": outcome["result"], "origin": "recorded"}

        return answer


class Conformance(unittest.TestCase):
    def drive(self, client: str) -> None:
        if client == "js" and not require("node", shutil.which("node") is not None):
            return
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        data = os.path.join(tmp, "data")
        sink = os.path.join(tmp, "sink")
        with open(data, "w") as f:
            f.write("forty-two\n")

        def run(fake: FakeSession, extra: bool) -> Dict[str, Any]:
            env = dict(os.environ, TAPEDECK_SESSION=fake.url, CONFORMANCE_DATA=data, CONFORMANCE_SINK=sink)
            env.pop("CONFORMANCE_EXTRA", None)
            if extra:
                env["CONFORMANCE_EXTRA"] = "1"
            done = subprocess.run(DRIVERS[client], env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(done.returncode, 0, done.stderr)
            lines = done.stdout.splitlines()
            self.assertEqual(len(lines), 1, done.stdout)
            return json.loads(lines[0])

        tape = Tape()
        recording = FakeSession(mode="record", answer=tape.recorder())
        self.addCleanup(recording.stop)
        recorded = run(recording, extra=False)
        tape.fill_outcomes(recording)
        self.assertEqual(
            recorded,
            {
                "lookups": [
                    {"key": "a", "value": "forty-two"},
                    {"key": "a", "value": "forty-two"},
                    {"key": "b", "value": "forty-two"},
                ],
                "append": {"ok": True},
                "error": {"type": "ValueError", "message": "boom", "caught": "ValueError"},
            },
        )
        self.assertEqual(
            [(c["tool"], c["kind"], c["args"]) for c in tape.calls],
            [
                ("lookup", "read", {"key": "a"}),
                ("lookup", "read", {"key": "a"}),
                ("lookup", "read", {"key": "b"}),
                ("append_line", "write", {"text": "hello"}),
                ("fail", "read", {"reason": "boom"}),
            ],
        )
        with open(sink) as f:
            self.assertEqual(f.read(), "hello\n")

        # The replay: a changed data file and no sink write show nothing ran.
        with open(data, "w") as f:
            f.write("changed")
        replaying = FakeSession(mode="replay", answer=tape.replayer())
        self.addCleanup(replaying.stop)
        replayed = run(replaying, extra=True)
        self.assertEqual(replayed["lookups"], recorded["lookups"])
        self.assertEqual(replayed["append"], {"ok": True})
        self.assertEqual(
            replayed["error"], {"type": "ValueError", "message": "boom", "caught": "RecordedToolError"}
        )
        self.assertEqual(replayed["miss"], "no recorded call of `lookup`")
        self.assertEqual(replaying.sent("outcome"), [])
        with open(sink) as f:
            self.assertEqual(f.read(), "hello\n")

    def test_python(self) -> None:
        self.drive("python")

    def test_js(self) -> None:
        self.drive("js")

    def test_both_clients_record_the_same_calls(self) -> None:
        if shutil.which("node") is None:
            if not require("node", False):
                return
        seen = {}
        for client, argv in DRIVERS.items():
            fake = FakeSession()
            self.addCleanup(fake.stop)
            env = dict(os.environ, TAPEDECK_SESSION=fake.url)
            for k in ("CONFORMANCE_DATA", "CONFORMANCE_SINK", "CONFORMANCE_EXTRA"):
                env.pop(k, None)
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(done.returncode, 0, done.stderr)
            seen[client] = (done.stdout, fake.sent("call"), [
                {k: v for k, v in o.items() if k != "latency_ms"} for o in fake.sent("outcome")
            ])
        self.assertEqual(seen["python"], seen["js"])


if __name__ == "__main__":
    unittest.main()
