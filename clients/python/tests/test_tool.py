"""The Python client against a fake session: outside a session, recording, replaying, an
unreachable session, and a decorated function that still looks like itself to frameworks."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import os
import socket
import threading
import time
import timeit
import typing
import unittest
from typing import Any, Dict, Iterator, List, Optional
from unittest import mock

import tapedeck
from tapedeck import session as td_session

from tests.fake_session import FakeSession, replaying, require


def reset(url: Optional[str]) -> mock._patch:  # type: ignore[type-arg]
    """Forgets any session and sets (or unsets) TAPEDECK_SESSION, as in a new process."""
    td_session.disconnect()
    td_session._current = td_session._UNRESOLVED
    env = dict(os.environ)
    env.pop("TAPEDECK_SESSION", None)
    if url is not None:
        env["TAPEDECK_SESSION"] = url
    patch = mock.patch.dict(os.environ, env, clear=True)
    patch.start()
    return patch


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def stderr() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        yield buf


class Calls:
    """Counts the real calls of the tools below."""

    def __init__(self) -> None:
        self.seen: List[Any] = []


class SessionTest(unittest.TestCase):
    fake: Optional[FakeSession] = None

    def start(self, **kw: Any) -> FakeSession:
        self.fake = FakeSession(**kw)
        self.addCleanup(self.fake.stop)
        self.addCleanup(reset(self.fake.url).stop)
        self.addCleanup(td_session.disconnect)
        return self.fake


class Outside(unittest.TestCase):
    def setUp(self) -> None:
        self.addCleanup(reset(None).stop)

    def test_passthrough(self) -> None:
        seen = []

        @tapedeck.tool
        def add(a: int, b: int = 2) -> int:
            seen.append((a, b))
            return a + b

        self.assertEqual(add(1), 3)
        self.assertEqual(add(1, b=5), 6)
        self.assertEqual(seen, [(1, 2), (1, 5)])
        # The environment was read once; later calls take the fast path.
        self.assertIsNone(td_session._current)

    def test_costs_under_a_microsecond_a_call(self) -> None:
        def bare(x: int) -> int:
            return x

        wrapped = tapedeck.tool(bare)
        wrapped(0)  # reads the environment once
        n = 100_000
        # The best of 5 repeats: the least disturbed by whatever else the machine runs.
        plain = min(timeit.repeat(lambda: bare(1), number=n, repeat=5)) / n
        decorated = min(timeit.repeat(lambda: wrapped(1), number=n, repeat=5)) / n
        self.assertLess(decorated - plain, 1e-6, f"{plain * 1e9:.0f} ns bare, {decorated * 1e9:.0f} ns decorated")

    def test_exception_passes_through(self) -> None:
        @tapedeck.tool
        def boom() -> None:
            raise KeyError("k")

        with self.assertRaises(KeyError):
            boom()

    def test_async_passthrough(self) -> None:
        @tapedeck.tool(kind="write")
        async def double(x: int) -> int:
            await asyncio.sleep(0)
            return 2 * x

        self.assertTrue(inspect.iscoroutinefunction(double))
        self.assertEqual(asyncio.run(double(4)), 8)

    def test_disconnect_ignores_the_environment(self) -> None:
        fake = FakeSession()
        self.addCleanup(fake.stop)
        reset(fake.url)
        td_session.disconnect()

        @tapedeck.tool
        def one() -> int:
            return 1

        self.assertEqual(one(), 1)
        self.assertEqual(fake.messages, [])


class Record(SessionTest):
    def test_hello_once_then_call_and_outcome(self) -> None:
        fake = self.start()

        @tapedeck.tool
        def get_weather(city: str, unit: str = "C") -> Dict[str, Any]:
            return {"city": city, "temp": 21, "unit": unit}

        self.assertEqual(get_weather("Paris"), {"city": "Paris", "temp": 21, "unit": "C"})
        self.assertEqual(get_weather(city="Oslo", unit="F")["unit"], "F")
        self.assertEqual(fake.endpoints(), ["hello", "call", "outcome", "call", "outcome"])
        hello = fake.sent("hello")[0]
        self.assertEqual(hello["protocol"], 1)
        self.assertTrue(hello["client"].startswith("tapedeck-python/"))
        calls = fake.sent("call")
        self.assertEqual(
            calls[0], {"tool": "get_weather", "kind": "read", "args": {"city": "Paris", "unit": "C"}}
        )
        self.assertEqual(calls[1]["args"], {"city": "Oslo", "unit": "F"})
        outcomes = fake.sent("outcome")
        self.assertEqual(outcomes[0]["call"], "c1")
        self.assertEqual(outcomes[0]["result"], {"city": "Paris", "temp": 21, "unit": "C"})
        self.assertNotIn("error", outcomes[0])
        self.assertIsInstance(outcomes[0]["latency_ms"], float)
        self.assertEqual(outcomes[1]["call"], "c2")
        # One keep-alive connection for all of it.
        self.assertEqual(len(set(fake.client_ports())), 1)
        s = td_session.current()
        assert s is not None
        self.assertEqual((s.mode, s.run), ("record", "3f9c2e1a"))

    def test_exception_is_reported_and_reraised(self) -> None:
        fake = self.start()

        class NoSuchCity(ValueError):
            pass

        @tapedeck.tool
        def get_weather(city: str) -> str:
            raise NoSuchCity(f"no such city: {city}")

        with self.assertRaises(NoSuchCity) as caught:
            get_weather("Atlantis")
        self.assertEqual(str(caught.exception), "no such city: Atlantis")
        outcome = fake.sent("outcome")[0]
        self.assertEqual(outcome["error"], {"type": "NoSuchCity", "message": "no such city: Atlantis"})
        self.assertNotIn("result", outcome)

    def test_latency_is_measured(self) -> None:
        fake = self.start()

        @tapedeck.tool
        def slow() -> None:
            time.sleep(0.02)

        slow()
        self.assertGreaterEqual(fake.sent("outcome")[0]["latency_ms"], 20.0)
        self.assertIsNone(fake.sent("outcome")[0]["result"])

    def test_name_kind_and_args(self) -> None:
        fake = self.start()

        @tapedeck.tool(kind="write", name="create_ticket")
        def make(title: str, *tags: str, priority: int = 3, **extra: Any) -> object:
            return object()

        result = make("broken", "a", "b", owner="ann", due=(1, 2), nan=float("nan"))
        self.assertIsInstance(result, object)  # the caller gets the real value back
        call = fake.sent("call")[0]
        self.assertEqual(call["tool"], "create_ticket")
        self.assertEqual(call["kind"], "write")
        self.assertEqual(
            call["args"],
            {
                "title": "broken",
                "tags": ["a", "b"],
                "priority": 3,
                "owner": "ann",
                "due": [1, 2],
                "nan": "nan",
            },
        )
        # A result JSON cannot hold is sent as its repr.
        self.assertTrue(fake.sent("outcome")[0]["result"].startswith("<object object at"))

    def test_sets_are_sent_in_a_stable_order(self) -> None:
        fake = self.start()

        @tapedeck.tool
        def pick(names: Any) -> None:
            pass

        pick({"pear", "apple", "fig"})
        self.assertEqual(fake.sent("call")[0]["args"], {"names": ["apple", "fig", "pear"]})

    def test_bad_arguments_raise_the_functions_type_error_without_a_call(self) -> None:
        fake = self.start()

        @tapedeck.tool
        def one(a: int) -> int:
            return a

        with self.assertRaises(TypeError):
            one(1, 2)  # type: ignore[call-arg]
        self.assertNotIn("call", fake.endpoints())

    def test_reconnects_when_the_server_dropped_the_connection(self) -> None:
        fake = self.start(close_after_each=True)

        @tapedeck.tool
        def one() -> int:
            return 1

        for _ in range(3):
            self.assertEqual(one(), 1)
        self.assertEqual(fake.endpoints(), ["hello"] + ["call", "outcome"] * 3)

    def test_threads_say_hello_once_and_use_their_own_connections(self) -> None:
        fake = self.start()

        @tapedeck.tool
        def echo(n: int) -> int:
            return n

        results: List[int] = []
        threads = [threading.Thread(target=lambda i=i: results.append(echo(i))) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(results), [0, 1, 2, 3])
        self.assertEqual(fake.endpoints().count("hello"), 1)
        self.assertEqual(sorted(c["args"]["n"] for c in fake.sent("call")), [0, 1, 2, 3])

    def test_async_record(self) -> None:
        fake = self.start()

        @tapedeck.tool
        async def fetch(url: str) -> Dict[str, str]:
            await asyncio.sleep(0.001)
            return {"url": url}

        @tapedeck.tool
        async def broken() -> None:
            raise RuntimeError("down")

        async def main() -> Any:
            ok = await fetch("http://x")
            with self.assertRaises(RuntimeError):
                await broken()
            return ok

        self.assertTrue(inspect.iscoroutinefunction(fetch))
        self.assertEqual(asyncio.run(main()), {"url": "http://x"})
        outcomes = fake.sent("outcome")
        self.assertEqual(outcomes[0]["result"], {"url": "http://x"})
        self.assertEqual(outcomes[1]["error"], {"type": "RuntimeError", "message": "down"})

    def test_methods_leave_out_the_receiver(self) -> None:
        fake = self.start()

        class Weather:
            unit = "C"

            @tapedeck.tool
            def get(self, city: str) -> str:
                return f"{city} 21{self.unit}"

            @classmethod
            @tapedeck.tool
            def units(cls, system: str = "metric") -> str:
                return cls.unit

            @tapedeck.tool
            @staticmethod
            def ping(n: int) -> int:
                return n

            @tapedeck.tool
            async def aget(self, city: str) -> str:
                return city

        w = Weather()
        self.assertEqual(w.get("Paris"), "Paris 21C")
        self.assertEqual(Weather.units(), "C")
        self.assertEqual(w.ping(7), 7)
        self.assertEqual(asyncio.run(w.aget("Oslo")), "Oslo")
        calls = fake.sent("call")
        self.assertEqual(
            [(c["tool"], c["args"]) for c in calls],
            [
                ("get", {"city": "Paris"}),
                ("units", {"system": "metric"}),
                ("ping", {"n": 7}),
                ("aget", {"city": "Oslo"}),
            ],
        )

    def test_explicit_connect(self) -> None:
        fake = FakeSession(mode="replay", answer=replaying({"action": "return", "result": 5}))
        self.addCleanup(fake.stop)
        self.addCleanup(reset(None).stop)
        self.addCleanup(td_session.disconnect)
        s = tapedeck.session.connect(fake.url)
        self.assertEqual(s.mode, "replay")
        self.assertEqual(fake.endpoints(), ["hello"])

        @tapedeck.tool
        def five() -> int:
            raise AssertionError("not called in a replay")

        self.assertEqual(five(), 5)
        tapedeck.session.disconnect()
        with self.assertRaises(AssertionError):
            five()


class Replay(SessionTest):
    def test_return_raise_miss_without_calling(self) -> None:
        fake = self.start(
            mode="replay",
            answer=replaying(
                {"action": "return", "result": {"temp_c": 21}, "origin": "recorded"},
                {"action": "raise", "error": {"type": "ValueError", "message": "no such city"}},
                {"action": "miss", "message": "no recorded call of `get_weather` with these args"},
            ),
        )
        called = []

        @tapedeck.tool
        def get_weather(city: str) -> Any:
            called.append(city)

        self.assertEqual(get_weather("Paris"), {"temp_c": 21})
        with self.assertRaises(tapedeck.RecordedToolError) as raised:
            get_weather("Atlantis")
        self.assertEqual(raised.exception.type, "ValueError")
        self.assertEqual(raised.exception.message, "no such city")
        self.assertEqual(str(raised.exception), "ValueError: no such city")
        with self.assertRaises(tapedeck.ReplayMiss) as missed:
            get_weather("Oslo")
        self.assertIn("no recorded call of `get_weather`", missed.exception.message)
        self.assertEqual(called, [])
        self.assertNotIn("outcome", fake.endpoints())

    def test_write_tool_is_not_called(self) -> None:
        fake = self.start(
            mode="replay", answer=replaying({"action": "return", "result": "T-1", "origin": "recorded"})
        )
        written = []

        @tapedeck.tool(kind="write", name="create_ticket")
        def create(title: str) -> str:
            written.append(title)
            return "T-new"

        self.assertEqual(create("printer on fire"), "T-1")
        self.assertEqual(written, [])
        self.assertEqual(fake.sent("call")[0]["kind"], "write")

    def test_async_replay(self) -> None:
        self.start(
            mode="replay",
            answer=replaying(
                {"action": "return", "result": [1, 2]},
                {"action": "raise", "error": {"type": "TimeoutError", "message": "slow"}},
            ),
        )

        @tapedeck.tool
        async def fetch() -> Any:
            raise AssertionError("not called in a replay")

        async def main() -> None:
            self.assertEqual(await fetch(), [1, 2])
            with self.assertRaises(tapedeck.RecordedToolError) as raised:
                await fetch()
            self.assertEqual(raised.exception.type, "TimeoutError")

        asyncio.run(main())

    def test_live_read_tool_runs_and_reports(self) -> None:
        fake = self.start(mode="replay", answer=replaying({"action": "run", "call": "c9"}))

        @tapedeck.tool
        def lookup() -> str:
            return "live"

        self.assertEqual(lookup(), "live")
        self.assertEqual(fake.sent("outcome")[0]["call"], "c9")


class Errors(SessionTest):
    def test_unreachable_session_warns_once_and_passes_through(self) -> None:
        self.addCleanup(reset(f"http://127.0.0.1:{closed_port()}/tapedeck/session/v1").stop)
        self.addCleanup(td_session.disconnect)

        @tapedeck.tool
        def one() -> int:
            return 1

        @tapedeck.tool
        async def two() -> int:
            return 2

        with stderr() as err:
            self.assertEqual(one(), 1)
            self.assertEqual(one(), 1)
            self.assertEqual(asyncio.run(two()), 2)
        lines = err.getvalue().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(
            lines[0],
            r"^tapedeck: TAPEDECK_SESSION=http://127\.0\.0\.1:\d+/tapedeck/session/v1 is not "
            r"reachable \(.+\); tools run as outside a session$",
        )
        self.assertIsNone(td_session._current)

    def test_a_listener_that_never_answers_hello_warns(self) -> None:
        # Something that is not a session holds the port: it accepts and says nothing.
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        self.addCleanup(reset(f"http://127.0.0.1:{port}/tapedeck/session/v1").stop)
        self.addCleanup(td_session.disconnect)
        quick = mock.patch.object(td_session, "HELLO_TIMEOUT", 0.2)
        quick.start()
        self.addCleanup(quick.stop)

        @tapedeck.tool
        def one() -> int:
            return 1

        with stderr() as err:
            self.assertEqual(one(), 1)
        self.assertIn("is not reachable (timed out)", err.getvalue())

    def test_bad_url_warns_once(self) -> None:
        self.addCleanup(reset("127.0.0.1:9/no-scheme").stop)

        @tapedeck.tool
        def one() -> int:
            return 1

        with stderr() as err:
            self.assertEqual(one(), 1)
            self.assertEqual(one(), 1)
        self.assertEqual(len(err.getvalue().splitlines()), 1)
        self.assertIn("not an http:// URL", err.getvalue())

    def test_non_200_raises_session_error_without_running(self) -> None:
        self.start(
            answer=lambda body: (400, {"error": {"type": "bad_request", "message": "args must be an object"}})
        )
        called = []

        @tapedeck.tool
        def one() -> None:
            called.append(1)

        with self.assertRaises(tapedeck.SessionError) as raised:
            one()
        self.assertIn("args must be an object", raised.exception.message)
        self.assertIn("400", raised.exception.message)
        self.assertEqual(called, [])

    def test_non_200_at_hello_raises(self) -> None:
        self.start(hello=(400, {"error": {"type": "protocol", "message": "protocol 1 is not spoken here"}}))

        @tapedeck.tool
        def one() -> None:
            raise AssertionError("never run after a refused hello")

        with self.assertRaises(tapedeck.SessionError) as raised:
            one()
        self.assertIn("protocol 1 is not spoken here", str(raised.exception))

    def test_unknown_action_raises(self) -> None:
        self.start(answer=replaying({"action": "teleport"}))

        @tapedeck.tool
        def one() -> None:
            raise AssertionError("never run on an unknown action")

        with self.assertRaises(tapedeck.SessionError):
            one()

    def test_session_gone_after_hello_raises(self) -> None:
        fake = self.start()

        @tapedeck.tool
        def one() -> int:
            return 1

        self.assertEqual(one(), 1)
        fake.stop()
        with self.assertRaises(tapedeck.SessionError) as raised:
            one()
        self.assertIn("not reachable any more", str(raised.exception))

    def test_connect_to_nothing_raises(self) -> None:
        self.addCleanup(reset(None).stop)
        with self.assertRaises(tapedeck.SessionError):
            tapedeck.session.connect(f"http://127.0.0.1:{closed_port()}/tapedeck/session/v1")

    def test_bad_kind(self) -> None:
        with self.assertRaises(ValueError):
            tapedeck.tool(kind="delete")


class LooksLikeItself(unittest.TestCase):
    def test_metadata_and_signature(self) -> None:
        def get_weather(city: str, days: int = 1) -> Dict[str, Any]:
            """The forecast for a city.

            Args:
                city: The city's name.
                days: How many days ahead.
            """
            return {}

        async def aget_weather(city: str, days: int = 1) -> Dict[str, Any]:
            """Async forecast."""
            return {}

        for fn in (get_weather, aget_weather):
            wrapped = tapedeck.tool(fn)
            self.assertEqual(wrapped.__name__, fn.__name__)
            self.assertEqual(wrapped.__doc__, fn.__doc__)
            self.assertEqual(wrapped.__qualname__, fn.__qualname__)
            self.assertIs(wrapped.__wrapped__, fn)  # type: ignore[attr-defined]
            self.assertEqual(inspect.signature(wrapped), inspect.signature(fn))
            self.assertEqual(typing.get_type_hints(wrapped), typing.get_type_hints(fn))
            self.assertEqual(inspect.iscoroutinefunction(wrapped), inspect.iscoroutinefunction(fn))

    def test_openai_agents_function_tool_reads_the_signature(self) -> None:
        import importlib.util

        if not require("the openai-agents package", importlib.util.find_spec("agents") is not None):
            return
        from agents import function_tool

        @function_tool
        @tapedeck.tool
        def get_weather(city: str, days: int = 1) -> str:
            """The forecast for a city.

            Args:
                city: The city's name.
                days: How many days ahead.
            """
            return "sunny"

        @function_tool
        @tapedeck.tool(kind="write")
        async def create_ticket(title: str) -> str:
            """Opens a ticket."""
            return "T-1"

        self.assertEqual(get_weather.name, "get_weather")
        self.assertEqual(get_weather.description, "The forecast for a city.")
        props = get_weather.params_json_schema["properties"]
        self.assertEqual(props["city"]["type"], "string")
        self.assertEqual(props["city"]["description"], "The city's name.")
        self.assertEqual(props["days"]["type"], "integer")
        self.assertEqual(create_ticket.name, "create_ticket")
        self.assertIn("title", create_ticket.params_json_schema["properties"])


if __name__ == "__main__":
    unittest.main()
