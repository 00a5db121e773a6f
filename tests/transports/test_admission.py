"""Connection limits before the upgrade: reliability.md H6, issue 7 hole 5
(``client.connection_limit``, ``client.connection_rate_limit``).

The token bucket and the count are tested on a fake clock; then against a real
``wirehub serve``, with a canary client connected before the burst that must be served
throughout.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable

import pytest

from tests.support.server import ServerProcess, timeout
from tests.transports.canary import CANARY_NAMESPACE, Canary
from tests.transports.rawws import RawWebSocket, http_upgrade
from wirehub.transports.admission import RETRY_AFTER_LIMIT, Admission


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_is_a_bucket_of_n_refilled_n_per_second() -> None:
    clock = FakeClock()
    admission = Admission(connection_limit=0, connection_rate_limit=4, count=lambda: 0, clock=clock)
    assert [admission.check() for _ in range(4)] == [None] * 4
    refusal = admission.check()
    assert refusal is not None
    assert (refusal.status, refusal.headers) == (503, [("Retry-After", "1")])
    clock.now += 0.5  # two tokens back
    assert [admission.check() is None for _ in range(3)] == [True, True, False]
    clock.now += 60  # never more than the burst
    assert sum(admission.check() is None for _ in range(10)) == 4
    assert admission.refused == {"connection_limit": 0, "connection_rate_limit": 8}


def test_connection_limit_counts_the_node() -> None:
    connections = 0
    admission = Admission(connection_limit=2, connection_rate_limit=0, count=lambda: connections)
    assert admission.check() is None
    connections = 2
    refusal = admission.check()
    assert refusal is not None
    assert refusal.headers == [("Retry-After", str(RETRY_AFTER_LIMIT))]
    assert refusal.reason == "client.connection_limit (2) reached"
    connections = 1
    assert admission.check() is None


def test_zero_is_off() -> None:
    admission = Admission(connection_limit=0, connection_rate_limit=0, count=lambda: 10**9)
    assert all(admission.check() is None for _ in range(1000))


def burst(port: int, count: int) -> list[tuple[int, str | None]]:
    """``count`` upgrade requests sent all at once; each one's status and Retry-After."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    try:
        for sock in sockets:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                f"GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
        results = []
        for sock in sockets:
            sock.settimeout(timeout(5.0))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:])
            results.append((int(lines[0].split()[1]), headers.get("retry-after")))
        return results
    finally:
        for sock in sockets:
            sock.close()


def upgrade_status(port: int) -> int:
    response, sock, _ = http_upgrade(port)
    sock.close()
    return response.status


CONFIG = f"""
[client]
allow_anonymous_connect_without_token = true
{{limits}}
{CANARY_NAMESPACE}
"""


def test_rate_limit_refuses_a_burst_with_503(
    server_factory: Callable[..., ServerProcess], record_property: pytest.RecordProperty
) -> None:
    server = server_factory(CONFIG.format(limits="connection_rate_limit = 2"))
    with Canary(server.port) as canary:
        start = time.monotonic()
        results = burst(server.port, 30)
        refused = [retry for status, retry in results if status == 503]
        assert {status for status, _ in results} <= {101, 503}
        assert len(refused) >= 20  # the bucket holds 2; a few more may refill meanwhile
        assert all(retry is not None and int(retry) >= 1 for retry in refused)
        server.wait_for(r"refused a connection: client\.connection_rate_limit \(2\) reached")
        canary.served_since(start)  # connected before: untouched
        record_property("canary", canary.summary(start))


def test_connection_limit_refuses_past_the_limit(
    server_factory: Callable[..., ServerProcess], record_property: pytest.RecordProperty
) -> None:
    server = server_factory(CONFIG.format(limits="connection_limit = 3"))
    with Canary(server.port) as canary:
        start = time.monotonic()
        # Counted from the upgrade on: a client that has not sent connect yet counts.
        with RawWebSocket.open(server.port), RawWebSocket.open(server.port) as third:
            response, sock, _ = http_upgrade(server.port)
            sock.close()
            assert response.status == 503
            assert response.headers["retry-after"] == str(RETRY_AFTER_LIMIT)
            assert response.body == b"too many connections; retry later\n"  # no setting named
            third.connect()
        # Both closed: the next one gets in (the server notices the closes first).
        deadline = time.monotonic() + timeout(5.0)
        while (status := upgrade_status(server.port)) == 503:
            assert time.monotonic() < deadline, "the closed connections were never released"
        assert status == 101
        canary.served_since(start)
        record_property("canary", canary.summary(start))
