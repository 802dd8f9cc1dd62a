"""The connection to a tapedeck session (protocol v1, ``clients/PROTOCOL.md``), and the wrappers
that send a tool's calls through it. The main type is :class:`Session`.

The process has at most one session, held in the module global ``_current``. It is read from
``TAPEDECK_SESSION`` at the first tool call, or set by :func:`connect`; :func:`disconnect` drops
it. A wrapper's first and only check outside a session is ``_current is None``, so a decorated
tool costs about one extra Python call there.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlsplit

from ._args import ToolSpec, to_json
from ._http import Connection
from .errors import RecordedToolError, ReplayMiss, SessionError

__all__ = ["Session", "connect", "disconnect", "current"]

PROTOCOL = 1
CLIENT = "tapedeck-python/0.1.0"
ENV = "TAPEDECK_SESSION"

# Connecting to a live local session and its answer to `hello` take microseconds; the limits
# only bound the wait on an address where nothing answers, or where something that is not a
# session accepted the connection (a stale value). Once `hello` is answered, requests wait as
# long as the session takes: tapedeck owns the process's lifetime anyway.
CONNECT_TIMEOUT = 5.0
HELLO_TIMEOUT = 5.0

class Session:
    """A session this process talks to: its URL, and after ``hello`` its ``mode`` (``record``
    or ``replay``) and ``run`` (the run's short id). Each thread keeps its own keep-alive
    connection, since a connection carries one request at a time."""

    def __init__(self, url: str, *, lenient: bool = False) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("not an http:// URL")
        # `.port` raises ValueError itself on a port that is not a number.
        self._port = parts.port or 80
        self._host = parts.hostname
        self._path = parts.path.rstrip("/")
        self._head = (
            f"host: {parts.netloc.rpartition('@')[2]}\r\ncontent-type: application/json\r\n"
        )
        self.url = url
        self.mode: Optional[str] = None
        self.run: Optional[str] = None
        # A session found in the environment falls back to "outside a session" when it cannot
        # be reached at hello; one asked for with connect() raises instead.
        self.lenient = lenient
        self.greeted = False
        self.unreachable = False
        self.hello_lock = threading.Lock()
        self._conns_lock = threading.Lock()
        self._local = threading.local()
        self._conns: List[Connection] = []

    def __repr__(self) -> str:
        return f"Session(url={self.url!r}, mode={self.mode!r}, run={self.run!r})"

    def _connection(self) -> Connection:
        conn: Optional[Connection] = getattr(self._local, "conn", None)
        if conn is None:
            conn = Connection(self._host, self._port, CONNECT_TIMEOUT)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        """Closes every thread's connection."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()

    def post(
        self, endpoint: str, body: Dict[str, Any], timeout: Optional[float] = None
    ) -> Dict[str, Any]:
        """Sends one message and returns the answer. Raises ``OSError`` when the session cannot
        be reached (or does not answer within ``timeout`` seconds) and :class:`SessionError` for
        an answer that is not a 200 with a JSON object."""
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        head = (
            f"POST {self._path}/{endpoint} HTTP/1.1\r\n{self._head}"
            f"content-length: {len(data)}\r\n\r\n"
        )
        status, raw = self._connection().request(head.encode() + data, timeout)
        return _answer(endpoint, status, raw)

    def hello(self) -> None:
        """Says ``hello`` and keeps the session's mode and run."""
        answer = self.post("hello", {"protocol": PROTOCOL, "client": CLIENT}, HELLO_TIMEOUT)
        self.mode = answer.get("mode")
        self.run = answer.get("run")
        self.greeted = True

    def reborn(self) -> "Session":
        """The same session for a forked child, which says its own ``hello`` and must not use
        the parent's sockets."""
        return Session(self.url, lenient=self.lenient)


def _answer(endpoint: str, status: int, raw: bytes) -> Dict[str, Any]:
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status != 200:
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict) and "message" in error:
            what = f"{error['message']} ({error.get('type', 'error')})"
        else:
            what = raw[:500].decode("utf-8", "replace") or "an empty body"
        raise SessionError(f"the tapedeck session answered {status} to `{endpoint}`: {what}")
    if not isinstance(answer, dict):
        text = raw[:500].decode("utf-8", "replace")
        raise SessionError(
            f"the tapedeck session answered `{endpoint}` with something other than a JSON "
            f"object: {text!r}"
        )
    return answer


# The session of this process: _UNRESOLVED until the first tool call reads the environment,
# then a Session or None (outside a session).
_UNRESOLVED: Any = object()
_current: Any = _UNRESOLVED
_lock = threading.Lock()


def _warn(url: str, reason: object) -> None:
    print(
        f"tapedeck: {ENV}={url} is not reachable ({reason}); tools run as outside a session",
        file=sys.stderr,
        flush=True,
    )


def _resolve() -> Optional[Session]:
    """The session to use for a call, saying ``hello`` first if it has not been said; ``None``
    outside a session."""
    global _current
    with _lock:
        if _current is _UNRESOLVED:
            url = os.environ.get(ENV)
            if not url:
                _current = None
            else:
                try:
                    _current = Session(url, lenient=True)
                except ValueError as e:
                    _warn(url, e)
                    _current = None
        session: Optional[Session] = _current
    if session is None or session.greeted:
        return session
    # Threads making their first calls together wait here, so that `hello` is said once and
    # an unreachable session is warned about once.
    with session.hello_lock:
        if session.greeted:
            return session
        if session.unreachable:
            return None
        try:
            session.hello()
        except OSError as e:
            if not session.lenient:
                raise SessionError(
                    f"the tapedeck session at {session.url} is not reachable ({e})"
                ) from e
            session.unreachable = True
            _warn(session.url, e)
            with _lock:
                if _current is session:
                    _current = None
            return None
    return session


def connect(url: str) -> Session:
    """Uses the session at ``url`` from now on (instead of ``TAPEDECK_SESSION``), saying
    ``hello`` now. Raises :class:`SessionError` when it cannot be reached: asked for by name, it
    must be there."""
    global _current
    try:
        session = Session(url)
    except ValueError as e:
        raise SessionError(f"not a tapedeck session URL: {url!r} ({e})") from e
    try:
        session.hello()
    except OSError as e:
        session.close()
        raise SessionError(f"the tapedeck session at {url} is not reachable ({e})") from e
    with _lock:
        old, _current = _current, session
    if isinstance(old, Session):
        old.close()
    return session


def disconnect() -> None:
    """Closes the session's connections; tools run as outside a session from now on, whatever
    ``TAPEDECK_SESSION`` says."""
    global _current
    with _lock:
        old, _current = _current, None
    if isinstance(old, Session):
        old.close()


def current() -> Optional[Session]:
    """The session tools report to (reading ``TAPEDECK_SESSION`` and saying ``hello`` if that
    has not been done), or ``None`` outside a session."""
    return _resolve()


def _after_fork() -> None:
    global _current, _lock
    _lock = threading.Lock()
    if isinstance(_current, Session):
        _current = _current.reborn()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# --- one call in a session ------------------------------------------------------------------


def _lost(session: Session, e: OSError) -> SessionError:
    return SessionError(f"the tapedeck session at {session.url} is not reachable any more ({e})")


def _call(
    session: Session, spec: ToolSpec, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Dict[str, Any]:
    body = {"tool": spec.name, "kind": spec.kind, "args": spec.args(args, kwargs)}
    try:
        return session.post("call", body)
    except OSError as e:
        raise _lost(session, e) from e


def _replayed(spec: ToolSpec, answer: Dict[str, Any]) -> Any:
    """What an answer other than ``run`` makes the call return or raise."""
    action = answer.get("action")
    if action == "return":
        return answer.get("result")
    if action == "raise":
        error = answer.get("error")
        if not isinstance(error, dict):
            error = {}
        raise RecordedToolError(
            str(error.get("type", "Exception")), str(error.get("message", ""))
        )
    if action == "miss":
        raise ReplayMiss(str(answer.get("message", f"no recorded call of `{spec.name}`")))
    raise SessionError(
        f"the tapedeck session answered `call` of `{spec.name}` with an unknown action "
        f"{action!r} (this client speaks protocol {PROTOCOL})"
    )


def _outcome(session: Session, call: Any, latency: float, key: str, value: Any) -> None:
    body = {"call": call, key: value, "latency_ms": round(latency * 1000.0, 3)}
    try:
        session.post("outcome", body)
    except OSError as e:
        raise _lost(session, e) from e


def _failed(session: Session, call: Any, latency: float, exc: BaseException) -> None:
    """Reports the function's exception; the caller re-raises it."""
    error = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, Exception):
        _outcome(session, call, latency, "error", error)
        return
    # An interrupt, an exit or a cancellation is still the call's outcome (the session waits
    # for one), but failing to report it must not replace it.
    try:
        _outcome(session, call, latency, "error", error)
    except (SessionError, OSError):
        pass


def _run_sync(
    spec: ToolSpec, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Any:
    session = _resolve()
    if session is None:
        return fn(*args, **kwargs)
    answer = _call(session, spec, args, kwargs)
    if answer.get("action") != "run":
        return _replayed(spec, answer)
    call = answer.get("call")
    start = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        _failed(session, call, time.perf_counter() - start, exc)
        raise
    _outcome(session, call, time.perf_counter() - start, "result", to_json(result))
    return result


# The round trips of an async tool are made inline, blocking the event loop for the length of
# a local request (tens of microseconds). asyncio.to_thread would cost a thread hop of about
# as much, and would let concurrent tasks' `call`s reach the session in an order set by the
# thread pool rather than by the program, which the replay's occurrence matching depends on.
async def _run_async(
    spec: ToolSpec,
    fn: Callable[..., Awaitable[Any]],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
) -> Any:
    session = _resolve()
    if session is None:
        return await fn(*args, **kwargs)
    answer = _call(session, spec, args, kwargs)
    if answer.get("action") != "run":
        return _replayed(spec, answer)
    call = answer.get("call")
    start = time.perf_counter()
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        _failed(session, call, time.perf_counter() - start, exc)
        raise
    _outcome(session, call, time.perf_counter() - start, "result", to_json(result))
    return result


def wrap(spec: ToolSpec) -> Union[Callable[..., Any], Callable[..., Awaitable[Any]]]:
    """The tool's wrapper: a coroutine function for a coroutine function, a plain one
    otherwise, with the function's metadata and (through ``__wrapped__``) its signature."""
    fn = spec.fn
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if _current is None:
                return await fn(*args, **kwargs)
            return await _run_async(spec, fn, args, kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _current is None:
            return fn(*args, **kwargs)
        return _run_sync(spec, fn, args, kwargs)

    return wrapper
