"""The ``@tool`` decorator: it turns a function into a tool whose calls go through the session
when there is one, and straight to the function when there is not."""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar, Union, overload

from . import session
from ._args import KINDS, ToolSpec

F = TypeVar("F", bound=Callable[..., Any])


@overload
def tool(fn: F) -> F: ...


@overload
def tool(*, name: Optional[str] = None, kind: str = "read") -> Callable[[F], F]: ...


def tool(
    fn: Optional[F] = None, *, name: Optional[str] = None, kind: str = "read"
) -> Union[F, Callable[[F], F]]:
    """Makes ``fn`` a tool, as ``@tool`` or ``@tool(name=..., kind=...)``.

    ``name`` is the tool's name as the model knows it (the function's ``__name__`` by default);
    ``kind`` is ``"read"`` (no side effects, the default), ``"write"`` (changes something; never
    runs in a replay) or ``"expensive"`` (costs money or quota).

    The wrapper keeps the function's name, docstring, annotations and signature, and is a
    coroutine function when the function is, so a framework's own tool decorator can be put on
    top of it. On a method, the receiver (a first parameter named ``self`` or ``cls``) is left
    out of the recorded arguments; ``@staticmethod`` and ``@classmethod`` may go either side of
    ``@tool``.
    """
    if kind not in KINDS:
        raise ValueError(f"a tool's kind is one of {', '.join(KINDS)}, not {kind!r}")
    if fn is not None and not callable(fn) and not isinstance(fn, (staticmethod, classmethod)):
        raise TypeError(
            f"@tool takes a function, or keyword arguments only (name=..., kind=...), not {fn!r}"
        )

    def decorate(f: Any) -> Any:
        if isinstance(f, (staticmethod, classmethod)):
            return type(f)(decorate(f.__func__))
        return session.wrap(ToolSpec(name or f.__name__, kind, f))

    if fn is None:
        return decorate
    return decorate(fn)  # type: ignore[no-any-return]
