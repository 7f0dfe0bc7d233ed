"""Fixtures the end-to-end modules share."""

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    """A TCP listener on loopback for connect hooks to observe (one per module)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server
    server.close()
