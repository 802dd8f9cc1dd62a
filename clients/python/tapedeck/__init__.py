"""tapedeck's Python client: ``@tapedeck.tool`` makes a function a tool that reports each call
to the tapedeck session the process runs in (``tapedeck record -- CMD``), or takes its answer
from the recording without being called (``tapedeck replay RUN -- CMD``). Outside a session a
tool is the plain function.

The session is found through ``TAPEDECK_SESSION``; :mod:`tapedeck.session` connects to one
explicitly. The protocol is ``clients/PROTOCOL.md`` in the tapedeck repository.
"""

from . import session
from ._tool import tool
from .errors import RecordedToolError, ReplayMiss, SessionError

__all__ = ["tool", "session", "RecordedToolError", "ReplayMiss", "SessionError"]
__version__ = "0.1.0"
