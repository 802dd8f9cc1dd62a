"""A call's arguments and a tool's result as JSON, built the same way every time: a replay
matches a call on its tool, its canonical ``args`` and its occurrence, so two processes given
the same call must send the same object."""

from __future__ import annotations

import inspect
import json
import math
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

KINDS = ("read", "write", "expensive")


def to_json(value: Any) -> Any:
    """``value`` as something ``json.dumps`` writes without help; a value JSON cannot hold
    becomes its ``repr``."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        # NaN and the infinities are not JSON.
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {
            (k if isinstance(k, str) else repr(k)): to_json(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        # A set's iteration order changes with the process's hash seed; sorting its items'
        # JSON text keeps the same set the same `args` in the recording and the replay.
        items = [to_json(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return repr(value)


class ToolSpec:
    """What the decorator knows about one tool: its name, kind and function, and the function's
    signature, read at the first call made in a session (so a tool that never meets a session
    never pays for it)."""

    __slots__ = ("name", "kind", "fn", "_signature", "_skip")

    def __init__(self, name: str, kind: str, fn: Callable[..., Any]) -> None:
        self.name = name
        self.kind = kind
        self.fn = fn
        self._signature: Optional[inspect.Signature] = None
        self._skip: Optional[str] = None

    def _bindable(self) -> inspect.Signature:
        if self._signature is None:
            sig = inspect.signature(self.fn)
            params = list(sig.parameters.values())
            # A method's receiver is not an argument the model chose; it is recognised by the
            # conventional names, since a function defined in a class body is not yet bound.
            if params and params[0].name in ("self", "cls") and params[0].kind in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            ):
                self._skip = params[0].name
            self._signature = sig
        return self._signature

    def args(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """The call's ``args`` object: positional arguments bound to their parameter names,
        defaults applied, ``**kwargs`` flattened in, every value as JSON. A call that does not
        fit the signature raises the ``TypeError`` the function itself would."""
        bound = self._bindable().bind(*args, **kwargs)
        bound.apply_defaults()
        out: Dict[str, Any] = {}
        extra: Optional[Tuple[str, Dict[str, Any]]] = None
        for name, value in bound.arguments.items():
            if name == self._skip:
                continue
            if self._signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:  # type: ignore[union-attr]
                extra = (name, value)
            else:
                out[name] = to_json(value)
        if extra is not None:
            name, values = extra
            if any(k in out for k in values):
                # Only a positional-only parameter can share a name with a keyword argument;
                # flattening would lose one of them, so the keywords stay under their own name.
                out[name] = to_json(values)
            else:
                out.update((k, to_json(v)) for k, v in values.items())
        return out
