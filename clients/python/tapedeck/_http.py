"""The HTTP/1.1 the session protocol needs: POSTs on one kept-open connection, answered with a
status and a body. The main type is :class:`Connection`.

``http.client`` costs about 160 µs a local round trip where a socket that sends a prebuilt
request costs about 65 µs, and a recorded tool call makes two; the session's answers are small
and always carry a content-length, which is all this client reads.
"""

from __future__ import annotations

import socket
from typing import Optional, Tuple


class Closed(ConnectionResetError):
    """The server closed the connection before answering. On a kept-alive connection this is a
    server that closed it while idle, and the request is sent once more."""


# How a kept-alive connection the server closed while idle fails on the next request. A refused
# connection is not among them: it means the session is gone.
_CLOSED = (Closed, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class Connection:
    """One kept-open connection to ``host:port``, opened at the first request and again after
    the server closed it. Not safe to share between threads."""

    def __init__(self, host: str, port: int, connect_timeout: float) -> None:
        self.address = (host, port)
        self.connect_timeout = connect_timeout
        self.sock: Optional[socket.socket] = None
        self.timeout: Optional[float] = None

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def request(self, data: bytes, timeout: Optional[float]) -> Tuple[int, bytes]:
        """Sends ``data`` (a whole request, head and body) and returns the answer's status and
        body, waiting ``timeout`` seconds at most for each read (``None``: as long as it takes).
        Raises ``OSError`` when the server cannot be reached or does not answer in HTTP."""
        reused = self.sock is not None
        try:
            return self._exchange(data, timeout)
        except _CLOSED:
            self.close()
            if not reused:
                raise
        except BaseException:
            # A connection left mid-request (a timeout, an interrupt) cannot be reused.
            self.close()
            raise
        try:
            return self._exchange(data, timeout)
        except BaseException:
            self.close()
            raise

    def _exchange(self, data: bytes, timeout: Optional[float]) -> Tuple[int, bytes]:
        sock = self.sock
        if sock is None:
            sock = socket.create_connection(self.address, self.connect_timeout)
            # The request goes out in one write, which must not wait for the ACK of the last.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock, self.timeout = sock, self.connect_timeout
        if self.timeout != timeout:
            sock.settimeout(timeout)
            self.timeout = timeout
        sock.sendall(data)

        buf = b""
        end = -1
        while end < 0:
            chunk = sock.recv(65536)
            if not chunk:
                if buf:
                    raise ConnectionResetError("the connection closed in the middle of an answer")
                raise Closed("Remote end closed connection without response")
            buf += chunk
            end = buf.find(b"\r\n\r\n")
        lines = buf[:end].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status = rest[:3]
        if not version.startswith("HTTP/1.") or not status.isdigit():
            raise OSError(f"the answer is not HTTP/1.1: {lines[0][:100]!r}")
        length: Optional[int] = None
        close = version == "HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                if not value.strip().isdigit():
                    raise OSError(f"the answer's content-length is not a number: {value!r}")
                length = int(value)
            elif name == "connection":
                close = value.strip().lower() == "close"

        body = buf[end + 4 :]
        if length is None:
            # An answer without a length ends where the server closes the connection.
            close = True
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        else:
            while len(body) < length:
                chunk = sock.recv(length - len(body))
                if not chunk:
                    raise ConnectionResetError("the connection closed in the middle of an answer")
                body += chunk
        if close:
            self.close()
        return int(status), body[:length]
