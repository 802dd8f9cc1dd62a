"""The pytest plugin (entry point ``pytest11``): ``@pytest.mark.tapedeck`` or the ``tapedeck``
fixture runs a test's agent code in a tapedeck session, recorded to or replayed from a tape of
its own, ``tapes/{module}/{test}.jsonl`` beside the test file. The main type is
:class:`TapedeckSession`, what the fixture gives.

At ``pytest_configure`` the plugin starts one ``tapedeck proxy --sessions`` for the pytest
process and points ``OPENAI_BASE_URL`` and ``ANTHROPIC_BASE_URL`` at it, so an SDK client made
at import time goes through it too. Each marked test opens a session on that proxy (recording
with the model live, or replaying the tape), with ``TAPEDECK_SESSION`` set and the client
library connected to it for the test's duration, and closes it when the test ends; a replay that
missed or diverged, or a recording whose tape holds an API key, fails the test.

``--tapedeck-mode`` (names as pytest-recording's ``--record-mode``):

- ``once`` (the default): replay the tape if it exists, else record it;
- ``none``: replay only; a missing tape or a miss fails the test naming the tape, and
  connections to anything but 127.0.0.1 are refused, as is a model call from an unmarked test
  (what CI runs);
- ``new_episodes``: replay what the tape holds and send the rest live (the model, and read
  tools; a write tool never runs), then rewrite the tape with this run;
- ``all``: record afresh, overwriting the tape.

``--tapedeck-check`` is the drift check: the model live, every tool (and MCP call) from the tape,
a write tool never run; a test passes only if ``tapedeck diff TAPE_RUN RUN`` finds no drift
(its default tolerances, or the marker's: ``@pytest.mark.tapedeck(tolerances={"tool_calls":
"+50%"})``), and the failure is the diff and the first divergence.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

from . import session as _session

MODES = ("once", "none", "new_episodes", "all")
CONTROL = "/tapedeck/control/v1"
SESSION = "/tapedeck/session/v1"
START_TIMEOUT = 15.0
# Variables whose values must never reach a tape: what the SDKs read their keys from, and any
# other `*_KEY`, `*_TOKEN` or `*_SECRET` with a value long enough to be one.
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET)$")
SECRET_MIN_LEN = 8

_PROXY_KEY = pytest.StashKey["_Proxy"]()
_SESSION_KEY = pytest.StashKey["TapedeckSession"]()
_MISSING_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tapedeck", "tapedeck: record and replay agent runs")
    group.addoption(
        "--tapedeck-mode",
        choices=MODES,
        default=None,
        help="once (default: replay the tape if it exists, else record), none (replay only; a "
        "missing tape or a miss fails), new_episodes (replay what the tape holds, the rest "
        "live, then rewrite the tape), all (record afresh)",
    )
    group.addoption(
        "--tapedeck-check",
        action="store_true",
        help="drift check: the model live, every tool from the tape; a test passes only if its "
        "run does not drift from the tape's (tapedeck diff, its default tolerances or the "
        "marker's tolerances={...})",
    )
    parser.addini("tapedeck_mode", "the default --tapedeck-mode", default="once")
    parser.addini(
        "tapedeck_tape_dir",
        "where tapes go, relative to each test file's folder (default: tapes)",
        default="tapes",
    )
    parser.addini(
        "tapedeck_store",
        "the store the proxy records into (default: a temporary one, removed at the end)",
        default="",
    )


def _binary() -> str:
    """The ``tapedeck`` binary: ``TAPEDECK_BIN``, else the one installed beside this Python
    (the wheel's), else the first on ``PATH``."""
    explicit = os.environ.get("TAPEDECK_BIN")
    if explicit:
        return explicit
    exe = "tapedeck.exe" if os.name == "nt" else "tapedeck"
    beside = Path(sysconfig.get_path("scripts")) / exe
    if beside.is_file():
        return str(beside)
    found = shutil.which("tapedeck")
    if found:
        return found
    raise pytest.UsageError(
        "tapedeck: no `tapedeck` binary beside this Python or on PATH; install the `tapedeck` "
        "wheel into this environment, or set TAPEDECK_BIN"
    )


def _ends_with_parent() -> Optional[Callable[[], None]]:
    """On Linux, what makes the proxy get SIGTERM when pytest dies without unconfiguring (a
    SIGKILL, a CI timeout), so it does not outlive it; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return arm


class _Proxy:
    """The ``tapedeck proxy --sessions`` of this pytest process."""

    def __init__(self, config: pytest.Config) -> None:
        self.binary = _binary()
        self.tmp = tempfile.mkdtemp(prefix="tapedeck-pytest-")
        store = config.getini("tapedeck_store")
        self.store = str(Path(config.rootpath, store)) if store else os.path.join(self.tmp, "t.db")
        self.log_path = os.path.join(self.tmp, "proxy.log")
        # The secrets are read before the base URLs change, from the environment the tests get.
        self.secrets = {
            name: value
            for name, value in os.environ.items()
            if SECRET_NAME.search(name) and len(value) >= SECRET_MIN_LEN
        }
        self.saved = {
            name: os.environ.get(name) for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")
        }
        # A model call outside every session (an unmarked test) reaches its upstream unrecorded,
        # as without the plugin; under `none` (CI, offline) it is refused.
        outside = "refuse" if _mode(config) == "none" and not config.getoption(
            "--tapedeck-check"
        ) else "forward"
        with open(self.log_path, "wb") as log:
            # The proxy forwards to the base URLs the tests were given (else the public APIs).
            self.process = subprocess.Popen(
                [self.binary, "proxy", "--sessions", "--listen", "127.0.0.1:0",
                 "--store", self.store, "--outside-sessions", outside],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_ends_with_parent(),
            )
        self.base = self._wait_for_address()
        os.environ["OPENAI_BASE_URL"] = f"{self.base}/v1"
        os.environ["ANTHROPIC_BASE_URL"] = self.base

    def _log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://[0-9.:]+)", self._log())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.005)
        self.stop()
        raise pytest.UsageError(
            f"tapedeck: `{self.binary} proxy --sessions` did not start: {self._log().strip()}"
        )

    def post(self, endpoint: str, body: Dict[str, Any]) -> Dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base}{CONTROL}/{endpoint}",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:
            raw = e.read().decode("utf-8", "replace")
            try:
                message = json.loads(raw)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = raw
            raise _ControlError(message) from None
        except OSError as e:
            # The proxy went away: what it said last is the reason.
            raise _ControlError(
                f"the tapedeck proxy at {self.base} is not answering ({e}); its log:\n"
                f"{self._log().strip()}"
            ) from None

    def show(self, run: str) -> Dict[str, Any]:
        out = subprocess.run(
            [self.binary, "--store", self.store, "show", run, "--json"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"tapedeck show {run} failed: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(self.tmp, ignore_errors=True)


class _ControlError(Exception):
    pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tapedeck(tolerances={...}): run the test in a tapedeck session, recorded to or "
        "replayed from its tape; tolerances (e.g. {'tool_calls': '+50%'}) for --tapedeck-check",
    )
    mode = config.getoption("--tapedeck-mode") or config.getini("tapedeck_mode")
    if mode not in MODES:
        raise pytest.UsageError(f"tapedeck: tapedeck_mode = {mode!r}: use one of {MODES}")
    config.stash[_PROXY_KEY] = _Proxy(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    proxy = config.stash.get(_PROXY_KEY, None)
    if proxy is not None:
        proxy.stop()
        del config.stash[_PROXY_KEY]


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("tapedeck") and "tapedeck" not in getattr(
            item, "fixturenames", ["tapedeck"]
        ):
            item.fixturenames.append("tapedeck")  # type: ignore[attr-defined]


def _mode(config: pytest.Config) -> str:
    return config.getoption("--tapedeck-mode") or config.getini("tapedeck_mode")


def tape_path(item: pytest.Item) -> Path:
    """``{tapedeck_tape_dir}/{module}/{test}.jsonl`` beside the test's file."""
    file = Path(str(item.path))
    base = Path(item.config.getini("tapedeck_tape_dir") or "tapes")
    folder = base if base.is_absolute() else file.parent / base
    # `test_x`, `TestSuite.test_x`, `test_x[case-1]`: one file name each.
    test = ".".join(item.nodeid.split("::")[1:]) or item.name
    test = re.sub(r"[^A-Za-z0-9_.\-\[\]]", "_", test)
    return folder / file.stem / f"{test}.jsonl"


class RecordedRun:
    """A run the proxy recorded: ``id`` (full), ``short_id``, ``summary`` (``show --json``'s:
    ``tool_calls``, ``tokens_in``, ``tokens_out``, ``cost_usd``, ``stop_reason``, ``answer``,
    …) and the whole ``document`` (``tapedeck-run``, version 1)."""

    def __init__(self, document: Dict[str, Any]) -> None:
        self.document = document
        self.short_id: str = document["short_id"]
        self.id: str = document["run"]["id"]
        self.summary: Dict[str, Any] = document["summary"]

    def __repr__(self) -> str:
        return f"RecordedRun({self.short_id}, stop_reason={self.summary.get('stop_reason')!r})"


class TapedeckSession:
    """A test's session: ``tape`` (its path), ``mode`` (``record``, ``replay``,
    ``new_episodes`` or ``check``), ``run`` (the run's short id). :meth:`recorded_run` ends the session and gives the run."""

    def __init__(self, proxy: _Proxy, item: pytest.Item, tape: Path, mode: str) -> None:
        self._proxy = proxy
        self._item = item
        self.tape = tape
        self.mode = mode
        self.run: Optional[str] = None
        self._closed: Optional[Dict[str, Any]] = None
        self._recorded: Optional[RecordedRun] = None
        self._env: Dict[str, Optional[str]] = {}
        self._connect = None

    def _open(self) -> None:
        opened = self._proxy.post(
            "open", {"mode": self.mode, "tape": str(self.tape), "task": self._item.nodeid}
        )
        self.run = opened.get("run")
        url = f"{self._proxy.base}{SESSION}"
        self._env = {_session.ENV: os.environ.get(_session.ENV)}
        # Processes the test starts (`tapedeck mcp` servers) join through the variable; tools
        # of this process through the client library's module-level session.
        os.environ[_session.ENV] = url
        _session.connect(url)

    def close(self, failed: bool = False) -> None:
        """Ends the session (once): the tape of a recording is written and checked for API
        keys; a replay that missed or diverged fails the test."""
        if self._closed is not None:
            return
        _session.disconnect()
        for name, value in self._env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        try:
            self._closed = self._proxy.post("close", {"exit_code": 1 if failed else 0})
        except _ControlError as e:
            self._closed = {}
            pytest.fail(f"tapedeck: cannot end the session of {self.tape}: {e}", pytrace=False)
        self._check()

    def _check(self) -> None:
        closed = self._closed or {}
        if closed.get("tape_written"):
            leaked = self._leaked()
            if leaked:
                self.tape.unlink(missing_ok=True)
                pytest.fail(
                    f"tapedeck: the recording held the value of {', '.join(leaked)}; the tape "
                    f"{self.tape} was removed. Keep keys out of prompts and tool results, or "
                    "redact them",
                    pytrace=False,
                )
        stop = closed.get("stop_reason") or ""
        if stop.startswith("replay_miss"):
            pytest.fail(
                f"tapedeck: the replay of {self.tape} missed ({stop}): {closed.get('error')}\n"
                "(record it again with --tapedeck-mode all)",
                pytrace=False,
            )
        divergence = closed.get("divergence")
        if self.mode == "check":
            self._drift(closed)
        if divergence and self.mode == "replay":
            pytest.fail(
                f"tapedeck: the replay of {self.tape} left the recorded run at step "
                f"{divergence.get('step')}: expected {_move(divergence.get('expected'))}, got "
                f"{_move(divergence.get('actual'))}\n(record it again with --tapedeck-mode all)",
                pytrace=False,
            )

    def _drift(self, closed: Dict[str, Any]) -> None:
        """Fails the test when its run drifted from the tape's (``tapedeck diff``, exit 1)."""
        marker = self._item.get_closest_marker("tapedeck")
        tolerances = (marker.kwargs.get("tolerances") if marker else None) or {}
        args = [self._proxy.binary, "--store", self._proxy.store, "diff"]
        for key, value in tolerances.items():
            args += ["--tolerance", f"{key}={value}"]
        args += [str(closed.get("parent")), str(closed.get("id"))]
        out = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        if out.returncode == 0:
            return
        if out.returncode != 1:
            pytest.fail(
                f"tapedeck: cannot diff the check of {self.tape}: {out.stderr.strip()}",
                pytrace=False,
            )
        divergence = closed.get("divergence")
        first = ""
        if divergence:
            first = (
                f"\n\nfirst divergence at step {divergence.get('step')}: expected "
                f"{_move(divergence.get('expected'))}, got {_move(divergence.get('actual'))}"
            )
        pytest.fail(
            f"tapedeck: the run drifted from {self.tape}:\n{out.stdout.rstrip()}{first}",
            pytrace=False,
        )

    def _leaked(self) -> List[str]:
        try:
            text = self.tape.read_text(errors="replace")
        except OSError:
            return []
        return sorted(
            name
            for name, value in self._proxy.secrets.items()
            if value in text or json.dumps(value)[1:-1] in text
        )

    def recorded_run(self) -> RecordedRun:
        """Ends the session (if the test has not) and returns its run."""
        self.close()
        if self._recorded is None:
            run = (self._closed or {}).get("run")
            self._recorded = RecordedRun(self._proxy.show(run))
        return self._recorded


def _move(move: Optional[Dict[str, Any]]) -> str:
    if not move:
        return "the end of the run"
    return f"{move.get('kind')} {move.get('summary')}"


def _loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NetworkGuard:
    """Refuses connections to anything but the loopback while a ``none`` test runs."""

    def __init__(self, tape: Path) -> None:
        self.tape = tape
        self.connect = socket.socket.connect
        self.connect_ex = socket.socket.connect_ex

    def __enter__(self) -> "_NetworkGuard":
        guard = self

        def refuse(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
                raise ConnectionRefusedError(
                    f"tapedeck: --tapedeck-mode none refuses the connection to {address!r} "
                    f"(the test replays {guard.tape})"
                )

        def connect(sock: socket.socket, address: Any) -> None:
            refuse(sock, address)
            return guard.connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            refuse(sock, address)
            return guard.connect_ex(sock, address)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        socket.socket.connect = self.connect  # type: ignore[method-assign]
        socket.socket.connect_ex = self.connect_ex  # type: ignore[method-assign]


@pytest.fixture
def tapedeck(request: pytest.FixtureRequest):
    """The test's tapedeck session (:class:`TapedeckSession`); ``tapedeck.recorded_run()``
    gives its run once the agent code has run."""
    item = request.node
    proxy: _Proxy = item.config.stash[_PROXY_KEY]
    mode = _mode(item.config)
    tape = tape_path(item)
    check = item.config.getoption("--tapedeck-check")
    if (mode == "none" or check) and not tape.is_file():
        # Failed when the test is called (`pytest_pyfunc_call`), so it reports as failed.
        why = "--tapedeck-check checks against it" if check else "--tapedeck-mode none replays"
        item.stash[_MISSING_KEY] = (
            f"tapedeck: no tape at {tape}, and {why}; record it with --tapedeck-mode once"
        )
        yield None
        return
    if check:
        session_mode = "check"
    elif mode == "none" or (mode == "once" and tape.is_file()):
        session_mode = "replay"
    elif mode == "new_episodes" and tape.is_file():
        session_mode = "new_episodes"
    else:
        session_mode = "record"
    handle = TapedeckSession(proxy, item, tape, session_mode)
    try:
        handle._open()
    except _ControlError as e:
        pytest.fail(f"tapedeck: cannot open the session of {tape}: {e}", pytrace=False)
    item.stash[_SESSION_KEY] = handle
    guard = _NetworkGuard(tape) if mode == "none" and not check else None
    if guard is not None:
        guard.__enter__()
    try:
        yield handle
    finally:
        if guard is not None:
            guard.__exit__()
        # A test whose call never ran (a later fixture failed) still ends its session.
        if handle._closed is None:
            handle.close(failed=True)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> None:
    missing = pyfuncitem.stash.get(_MISSING_KEY, None)
    if missing is not None:
        pytest.fail(missing, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    handle: Optional[TapedeckSession] = item.stash.get(_SESSION_KEY, None)
    try:
        result = yield
    except BaseException as failure:
        if handle is not None and handle._closed is None:
            # A replay miss usually shows first as the SDK's error (the proxy answers 400):
            # the session's own verdict, naming the tape, is the failure, caused by it.
            try:
                handle.close(failed=True)
            except pytest.fail.Exception as verdict:
                raise verdict from failure
        raise
    if handle is not None:
        handle.close()
    return result
