"""Streams that misbehave, against wirehub's own protocol classes.

1. A stream reader that stops reading (HTTP-streaming and SSE): its output queues up to
   ``client.queue_max_size``, then it is closed with 3008 and its connection aborted;
   what was queued for it is freed (tracemalloc, in-process server).
2. 1000 half-open SSE requests (half a request head, or a head and half a connecting
   body) against a real ``wirehub serve`` with a file-descriptor limit: every one is
   closed by the head or body timeout, a second wave finds the slots free, and a
   canary client is served throughout.
3. A server that stops ends its streams with a 3001 ``disconnect`` push at once.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import time
import tracemalloc
from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.support.inprocess import serve_node
from tests.support.server import ServerProcess, timeout
from tests.transports.canary import CANARY_NAMESPACE, Canary
from tests.transports.rawhttp import RawStream
from tests.transports.rawws import RawWebSocket
from tests.transports.test_slowloris import own_fd_limit, wait_all_closed
from wirehub import ConnectEvent, DisconnectEvent, Node, load_config

__all__ = ["own_fd_limit"]  # a fixture, used by name

QUEUE_MAX = 262_144
PAYLOAD = "x" * 16_000
WAIT = timeout(20.0)


def _open_unread(port: int, path: str, body: bytes) -> socket.socket:
    """A stream request on a socket that will never be read, with a small buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    method = "POST" if body else "GET"
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    sock.sendall(head.encode() + b"\r\n" + body)
    return sock


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["http_stream", "sse"])
async def test_a_reader_that_stops_reading_is_closed_with_3008_and_freed(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(
        None,
        {
            "client": {
                "allow_anonymous_connect_without_token": True,
                "queue_max_size": QUEUE_MAX,
            },
            transport: {"enabled": True},
            "channel": {
                "without_namespace": {
                    "allow_subscribe_for_anonymous": True,
                    "allow_subscribe_for_client": True,
                }
            },
        },
        environ=False,
    )
    node = Node(config)
    connected = asyncio.Event()
    closed: asyncio.Queue[int] = asyncio.Queue()

    @node.on_connect
    async def opened(event: ConnectEvent) -> None:
        connected.set()

    @node.on_disconnect
    async def record(event: DisconnectEvent) -> None:
        await closed.put(event.code)

    # A server-side subscription through the connect: no emulation request needed.
    connect = json.dumps({"id": 1, "connect": {}}).encode()
    node.on_connecting(_subscribe_to("feed"))
    tracemalloc.start()
    try:
        async with serve_node(node) as running:
            gc.collect()
            baseline = tracemalloc.get_traced_memory()[0]
            if transport == "sse":
                path = "/connection/sse?cf_connect=" + quote(connect.decode())
                sock = _open_unread(running.port, path, b"")
            else:
                sock = _open_unread(running.port, "/connection/http_stream", connect)
            with sock:
                async with asyncio.timeout(WAIT):
                    await connected.wait()
                    peak = 0
                    while closed.empty():
                        await node.publish("feed", {"p": PAYLOAD})
                        await asyncio.sleep(0)  # the flush and the writer run
                        peak = max(peak, tracemalloc.get_traced_memory()[0] - baseline)
                    assert await closed.get() == 3008
                    assert node.num_connections == 0
                    # The connection was dropped: past what the kernel still held, its end.
                    assert await asyncio.to_thread(_read_to_end, sock) in ("reset", "eof")
                gc.collect()
                left = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    print(f"{transport}: peak {peak / 1024:.0f} KiB over the baseline, {left / 1024:.0f} KiB left")
    # Bounded: the client's queue, the writer's buffer and a publication in flight,
    # with room for the allocator and the node's own structures; then freed.
    assert peak < 4 * QUEUE_MAX, peak
    assert left < QUEUE_MAX // 2, left
    # Aborted by the stream itself (wirehub's HTTP protocol class), not given up on.
    assert "without completing response" not in caplog.text


def _read_to_end(sock: socket.socket) -> str:
    """Read until the connection ends: ``"reset"`` or ``"eof"``."""
    sock.settimeout(WAIT)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return "reset"
    return "eof"


def _subscribe_to(channel: str) -> Callable[..., object]:
    from wirehub import ConnectingReply, Credentials

    async def connecting(event: object) -> ConnectingReply:
        return ConnectingReply(credentials=Credentials(user=""), channels=(channel,))

    return connecting


WAVE = 1000
HEAD_TIMEOUT = 1.5
SERVER_FD_LIMIT = WAVE + 150

HALF_OPEN_CONFIG = f"""
[server]
request_head_timeout = {HEAD_TIMEOUT}

[client]
allow_anonymous_connect_without_token = true

[sse]
enabled = true
{CANARY_NAMESPACE}
"""


def half_open_sse(port: int, count: int) -> list[socket.socket]:
    """Half of them send half a GET head; the others a whole POST head and half of
    the connect request its Content-Length announces."""
    half_head = (
        f"GET /connection/sse?cf_connect=%7B HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAcc".encode()
    )
    half_body = (
        f"POST /connection/sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        'Content-Type: application/json\r\nContent-Length: 64\r\n\r\n{"id":1,'
    ).encode()
    sockets = []
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout(10.0))
        sock.sendall(half_head if index % 2 else half_body)
        sockets.append(sock)
    return sockets


def test_a_thousand_half_open_sse_requests_are_closed_and_slots_recover(
    server_factory: Callable[..., ServerProcess], own_fd_limit: None
) -> None:
    server = server_factory(HALF_OPEN_CONFIG, fd_limit=SERVER_FD_LIMIT)
    with Canary(server.port) as canary:
        start = time.monotonic()
        for _ in (1, 2):
            sockets = half_open_sse(server.port, WAVE)
            try:
                with RawWebSocket.open(server.port) as probe:  # served meanwhile
                    probe.connect()
                received = wait_all_closed(sockets)
            finally:
                for sock in sockets:
                    sock.close()
            # Every one answered 408 (head or body not complete in time), then closed.
            assert all(data.startswith(b"HTTP/1.1 408 ") for data in received), {
                data[:30] for data in received
            }
        canary.served_since(start)
    assert server.stop() == 0


def test_streams_end_with_3001_when_the_server_stops(
    server_factory: Callable[..., ServerProcess],
) -> None:
    config = (
        "[client]\nallow_anonymous_connect_without_token = true\n[http_stream]\nenabled = true\n"
    )
    server = server_factory(config)
    connect = b'{"id":1,"connect":{}}'
    headers = {"Content-Type": "application/json"}
    with RawStream.open(
        server.port, "POST", "/connection/http_stream", headers=headers, body=connect
    ) as stream:
        assert stream.next_message() is not None  # connected
        os.kill(server.pid, signal.SIGTERM)
        assert stream.messages_until_end() == [
            {"push": {"disconnect": {"code": 3001, "reason": "shutdown"}}}
        ]
    assert server.stop() == 0
