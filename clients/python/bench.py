"""The Python client's cost per tool call, printed as one JSON object:

    {"bare_ns": ..., "outside_ns": ..., "recorded_us": ...}

``bare_ns`` is a plain function call and ``outside_ns`` the same function decorated with
``@tapedeck.tool`` outside a session (best of 5 timeit repeats, per call). ``recorded_us`` is the
time per call of ``--calls`` calls through the session named by ``TAPEDECK_SESSION`` (each a
`call` and an `outcome` round trip in a recording), or null without one. The session's run
gets those calls as tool calls of ``bench_echo``.

    python3 clients/python/bench.py [--calls N] [--number N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tapedeck  # noqa: E402


def echo(x: int) -> int:
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls through the session")
    parser.add_argument("--number", type=int, default=1_000_000, help="calls per timeit repeat")
    opts = parser.parse_args()

    tool = tapedeck.tool(name="bench_echo")(echo)

    recorded_us = None
    if os.environ.get("TAPEDECK_SESSION") and tapedeck.session.current() is not None:
        tool(0)  # the first call says hello: not part of the per-call cost
        start = time.perf_counter()
        for i in range(opts.calls):
            tool(i)
        recorded_us = (time.perf_counter() - start) / opts.calls * 1e6
    tapedeck.session.disconnect()
    tool(0)

    def best(fn: object) -> float:
        times = timeit.repeat(lambda: fn(1), number=opts.number, repeat=5)  # type: ignore[operator]
        return min(times) / opts.number * 1e9

    bare_ns = best(echo)
    outside_ns = best(tool)
    print(
        json.dumps(
            {
                "bare_ns": round(bare_ns, 1),
                "outside_ns": round(outside_ns, 1),
                "recorded_us": None if recorded_us is None else round(recorded_us, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
