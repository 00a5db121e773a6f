"""What one connection may hold: reliability.md A10, issue 7 hole 7.

1. After the handshake a connection keeps only ``client.transport_headers``: measured
   structurally (tracemalloc, in-process server with wirehub's protocol classes), the
   memory a connection retains does not grow with the headers its client sent.
2. Before the connect command, ``websocket.pre_connect_message_size_limit`` bounds a
   pending fragmented message and what deflate may inflate (1009 past it); after
   connect the normal limit applies. Against a real ``wirehub serve`` with a canary.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import time
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

from tests.support.inprocess import serve_node
from tests.support.server import ServerProcess, timeout
from tests.transports.canary import CANARY_NAMESPACE, Canary
from tests.transports.rawws import CONT, TEXT, RawWebSocket, frame
from tests.transports.test_protobuf_and_deflate import DEFLATE_OFFER, Inflater, open_upgrade
from wirehub import ConnectingEvent, Node, load_config

PAD_HEADERS = 120
PAD_SIZE = 8000
PRE_CONNECT = 16_384  # websocket.pre_connect_message_size_limit, left at its default


def upgrade(port: int, extra: bytes) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        (
            f"GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nCookie: session=abc\r\nUser-Agent: test\r\n"
        ).encode()
        + extra
        + b"\r\n"
    )


async def open_connected(port: int, extra: bytes) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade(port, extra))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head[:100]
    writer.write(frame(TEXT, b'{"id":1,"connect":{}}'))
    assert b'"connect"' in await reader.read(65536)
    return writer


async def retained_per_connection(
    port: int, extra: bytes, writers: list[asyncio.StreamWriter], count: int
) -> float:
    """Bytes traced memory grows by per connected client (client side included, the
    same whatever the headers); the clients stay connected, in ``writers``."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    writers += [await open_connected(port, extra) for _ in range(count)]
    gc.collect()
    return (tracemalloc.get_traced_memory()[0] - before) / count


@pytest.mark.anyio
async def test_retained_memory_does_not_grow_with_request_headers() -> None:
    config = load_config(
        None,
        {
            "client": {"allow_anonymous_connect_without_token": True},
            # Let 120 headers of 8 KB through, to see what a connection keeps of them.
            "server": {"request_head_size_limit": 2_000_000},
        },
        environ=False,
    )
    node = Node(config)
    seen: list[ConnectingEvent] = []

    @node.on_connecting
    async def remember(event: ConnectingEvent) -> None:
        seen.append(event)

    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * PAD_SIZE) for i in range(PAD_HEADERS))
    count = 20
    writers: list[asyncio.StreamWriter] = []
    async with serve_node(node) as running:
        writers.append(await open_connected(running.port, b""))  # warm up: imports, caches
        tracemalloc.start()
        try:
            plain = await retained_per_connection(running.port, b"", writers, count)
            padded = await retained_per_connection(running.port, pad, writers, count)
        finally:
            tracemalloc.stop()
            for writer in writers:
                writer.close()
                await writer.wait_closed()
    print(f"retained per connection: {plain:.0f} B plain, {padded:.0f} B with 960 KB of headers")
    # Before: +960 KB each (the whole request was kept for the connection's life).
    assert padded - plain < 2048, (plain, padded)
    headers = seen[-1].transport.headers
    assert dict(headers) == {"cookie": "session=abc", "user-agent": "test"}
    assert headers["Cookie"] == "session=abc"  # any case
    assert "x-pad-1" not in headers


def test_large_headers_on_a_real_server(
    server_factory: Callable[..., ServerProcess], record_property: pytest.RecordProperty
) -> None:
    """A10 on a real server: a client sending 960 KB of headers (allowed by the config
    here) connects and works; the canary is served meanwhile."""
    server = server_factory(CONFIG.format(extra="[server]\nrequest_head_size_limit = 2000000"))
    pad = {f"X-Pad-{i}": "p" * PAD_SIZE for i in range(PAD_HEADERS)}
    with Canary(server.port) as canary:
        start = time.monotonic()
        clients = [RawWebSocket.open(server.port, headers=pad) for _ in range(10)]
        try:
            for client in clients:
                client.connect()
        finally:
            for client in clients:
                client.close()
        canary.served_since(start)
        record_property("canary", canary.summary(start))


CONFIG = f"""
[client]
allow_anonymous_connect_without_token = true

[websocket]
compression = true
{{extra}}
{CANARY_NAMESPACE}
"""


@pytest.fixture
def compression_server(
    server_factory: Callable[..., ServerProcess],
) -> ServerProcess:
    return server_factory(CONFIG.format(extra=""))


def test_pending_fragments_before_connect_are_bounded(compression_server: ServerProcess) -> None:
    port = compression_server.port
    with Canary(port) as canary:
        start = time.monotonic()
        with RawWebSocket.open(port) as ws:
            ws.send_raw(frame(TEXT, b"{" + b" " * 8191, fin=False))
            ws.send_raw(frame(CONT, b" " * 8192, fin=False))
            ws.send_raw(frame(CONT, b" ", fin=False))  # 16385 bytes pending: one too many
            closed = ws.expect_close(1009)
        assert "16384" in closed.reason
        compression_server.wait_for("a message before connect larger than")
        canary.served_since(start)


def compressed(size: int) -> bytes:
    compressor = zlib.compressobj(wbits=-12)  # the window the server asked for
    data = json.dumps({"id": 1, "connect": {"data": {"pad": "x" * size}}}).encode()
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_deflate_before_connect_inflates_at_most_the_pre_connect_limit(
    compression_server: ServerProcess,
) -> None:
    port = compression_server.port
    with Canary(port) as canary:
        start = time.monotonic()
        bomb = compressed(30_000)  # under 1 KB on the wire, 30 KB inflated
        assert len(bomb) < 1024
        _, ws = open_upgrade(port, Sec_WebSocket_Extensions=DEFLATE_OFFER)
        with ws:
            ws.send_raw(frame(TEXT, bomb, rsv=0b100))
            closed = ws.expect_close(1009)
        assert closed.reason == f"frame exceeds limit of {PRE_CONNECT} bytes"
        canary.served_since(start)


def test_after_connect_the_message_size_limit_applies(compression_server: ServerProcess) -> None:
    """The same 30 KB message, compressed or not, is fine once connected."""
    port = compression_server.port
    _, ws = open_upgrade(port, Sec_WebSocket_Extensions=DEFLATE_OFFER)
    with ws:
        inflate = Inflater()
        ws.send_text('{"id":1,"connect":{}}')
        assert "connect" in json.loads(inflate(ws.recv_frame()))
        big = '{"id":2,"rpc":{"method":"m","data":{"pad":"' + "x" * 30_000 + '"}}}'
        ws.send_text(big)  # uncompressed: 30 KB through
        reply = json.loads(inflate(ws.recv_frame(timeout(5.0))))
        assert reply["id"] == 2  # answered (104: no RPC handler), not closed
        compressor = zlib.compressobj(wbits=-12)  # the window the server asked for
        payload = compressor.compress(big.replace('"id":2', '"id":3').encode())
        payload += compressor.flush(zlib.Z_SYNC_FLUSH)
        ws.send_raw(frame(TEXT, payload[:-4], rsv=0b100))
        assert json.loads(inflate(ws.recv_frame(timeout(5.0))))["id"] == 3


def test_oversized_token_in_the_connect_frame(compression_server: ServerProcess) -> None:
    """J8: a 100 KB token in the connect command is refused on the frame's header,
    before any JSON parsing (a 100 KB token in the URL gets 414: test_http_limits)."""
    port = compression_server.port
    with Canary(port) as canary:
        start = time.monotonic()
        with RawWebSocket.open(port) as ws:
            ws.send_commands({"connect": {"token": "t" * 100_000}})
            closed = ws.expect_close(1009)
        assert closed.reason.endswith(f"exceeds limit of {PRE_CONNECT} bytes")
        canary.served_since(start)
