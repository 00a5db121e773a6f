"""Slowloris against a real ``wirehub serve``: reliability.md A7 and H2 (HTTP part).

The server runs with a file-descriptor limit that leaves room for one wave of 1000
attacking sockets and little more. Each socket sends half a request head and then
nothing. The server must close every one at the head timeout (the test sees its EOF);
a second wave must then find the slots free again (a client that connects during it is
served), and a canary client must be served throughout.
"""

from __future__ import annotations

import resource
import selectors
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.server import ServerProcess, timeout
from tests.transports.canary import CANARY_NAMESPACE, Canary
from tests.transports.rawws import RawWebSocket

WAVE = 1000
HEAD_TIMEOUT = 1.5
# The server's descriptors: one wave, the canary and the probes, the listener, the
# event loop's own. Without the timeout the second wave would find none left.
SERVER_FD_LIMIT = WAVE + 150

CONFIG = f"""
[server]
request_head_timeout = {HEAD_TIMEOUT}

[client]
allow_anonymous_connect_without_token = true
{CANARY_NAMESPACE}
"""


@pytest.fixture
def own_fd_limit() -> Iterator[None]:
    """This process opens two waves at most at once, plus its own files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * WAVE + 200
    if soft >= needed:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"RLIMIT_NOFILE hard limit {hard} < {needed}: raise it (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def half_heads(port: int, count: int) -> list[socket.socket]:
    """``count`` sockets, each having sent the first half of an upgrade request."""
    half = f"GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: web".encode()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout(10.0))
        sock.sendall(half)
        sockets.append(sock)
    return sockets


def wait_all_closed(sockets: list[socket.socket]) -> list[bytes]:
    """Read every socket until the server closes it; return what each received."""
    received = {sock: b"" for sock in sockets}
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout(30.0)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{len(selector.get_map())} sockets still open"
            for key, _ in selector.select(remaining):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[sock] += chunk
                else:
                    selector.unregister(sock)
    return [received[sock] for sock in sockets]


def test_a_thousand_half_heads_are_closed_and_slots_recover(
    server_factory: Callable[..., ServerProcess],
    own_fd_limit: None,
    record_property: pytest.RecordProperty,
) -> None:
    server = server_factory(CONFIG, fd_limit=SERVER_FD_LIMIT)
    with Canary(server.port) as canary:
        start = time.monotonic()
        for wave in (1, 2):
            sockets = half_heads(server.port, WAVE)
            try:
                opened = time.monotonic()
                # A client arriving meanwhile is accepted and served.
                with RawWebSocket.open(server.port) as probe:
                    probe.connect()
                received = wait_all_closed(sockets)
                closed_after = round(time.monotonic() - opened, 2)
                record_property(f"wave{wave}_closed_after_s", closed_after)
                print(f"wave {wave}: {WAVE} half heads all closed {closed_after} s after opening")
            finally:
                for sock in sockets:
                    sock.close()
            assert all(data.startswith(b"HTTP/1.1 408 ") for data in received), {
                data[:30] for data in received
            }
        canary.served_since(start)
        record_property("canary", canary.summary(start))
        print(canary.summary(start))
    assert server.stop() == 0  # still whole: it stops cleanly
