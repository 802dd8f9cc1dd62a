"""Under `--tapedeck-mode none` a test reaches nothing but the loopback (tests/packages)."""

import socket

import pytest


@pytest.mark.tapedeck
def test_only_the_loopback(request):
    if request.config.getoption("--tapedeck-mode") != "none":
        return
    # 192.0.2.1 is TEST-NET-1: refused before any packet leaves.
    with pytest.raises(ConnectionRefusedError, match="--tapedeck-mode none refuses"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
