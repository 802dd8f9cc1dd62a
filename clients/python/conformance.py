#!/usr/bin/env python3
"""The Python client's conformance driver, run by tests/session/conformance.rs under
`tapedeck record -- python3 clients/python/conformance.py` and then under `tapedeck replay RUN
-- ...`. clients/js/conformance.mjs makes the same calls with the same arguments and prints the
same line, so one test checks both clients.

Tools: `lookup(key)` (read) returns {"key": key, "value": <the text of the file named by
CONFORMANCE_DATA, trailing whitespace removed, or "live" without it>}; `append_line(text)`
(write) appends the text and a newline to the file named by CONFORMANCE_SINK (nothing without
it) and returns {"ok": true}; `fail(reason)` (read) raises ValueError(reason).

The calls: lookup("a") twice, lookup("b"), append_line("hello"), fail("boom"); with
CONFORMANCE_EXTRA=1 also lookup("zzz-unrecorded"). The one line on stdout is JSON:

    {"lookups":[...],"append":{...},"error":{"type":"ValueError","message":"boom","caught":...},
     "miss":<ReplayMiss's message or null, with CONFORMANCE_EXTRA=1 only>}

`error.type` and `error.message` are the error as recorded; `error.caught` is the class the
script caught: ValueError when the tool ran, RecordedToolError when a replay answered.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tapedeck  # noqa: E402


@tapedeck.tool
def lookup(key: str) -> Dict[str, Any]:
    path = os.environ.get("CONFORMANCE_DATA")
    if not path:
        return {"key": key, "value": "live"}
    with open(path, encoding="utf-8") as f:
        return {"key": key, "value": f.read().rstrip()}


@tapedeck.tool(kind="write")
def append_line(text: str) -> Dict[str, Any]:
    path = os.environ.get("CONFORMANCE_SINK")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    return {"ok": True}


@tapedeck.tool
def fail(reason: str) -> None:
    raise ValueError(reason)


def main() -> None:
    lookups: List[Any] = [lookup("a"), lookup("a"), lookup("b")]
    append = append_line("hello")
    error: Dict[str, Any]
    try:
        fail("boom")
        error = {"type": None, "message": None, "caught": None}
    except ValueError as e:
        error = {"type": type(e).__name__, "message": str(e), "caught": "ValueError"}
    except tapedeck.RecordedToolError as e:
        error = {"type": e.type, "message": e.message, "caught": "RecordedToolError"}
    out: Dict[str, Any] = {"lookups": lookups, "append": append, "error": error}
    if os.environ.get("CONFORMANCE_EXTRA") == "1":
        miss: Optional[str] = None
        try:
            lookup("zzz-unrecorded")
        except tapedeck.ReplayMiss as e:
            miss = e.message
        out["miss"] = miss
    print(json.dumps(out, ensure_ascii=False, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
