"""The exceptions a tool raises because of the session rather than because of its own code."""

from __future__ import annotations


class RecordedToolError(Exception):
    """A replayed tool call whose recorded outcome was an error.

    The original exception class is not rebuilt (it may not be importable, or not constructible
    from a message), so code that caught, say, ``ValueError`` in the recording sees this class in
    the replay; ``type`` holds the original class's ``__name__`` and ``message`` its text.
    """

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message


class ReplayMiss(Exception):
    """A replayed tool call that the recording has no answer for, and that the replay's miss
    policy does not let run. The run ends ``replay_miss:<tool>``; ``message`` says which call."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SessionError(Exception):
    """The session answered something this client does not understand (a non-200 answer, a
    body that is not the expected JSON, an unknown action) or went away after ``hello``.

    It means a bug or a version mismatch, so the tool is not run as a fallback: its call would
    be missing from the recording.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
