"""The Protobuf protocol and permessage-deflate at the WebSocket endpoint of a real server.

centrifugo-protocol.md §1.3 (varint-delimited records in binary frames, the ping is the
byte 0x00), §1.4 (protocol selection by subprotocol or query) and reliability.md B6/B7
(deflate bombs). Commands are built and replies parsed with the schema compiled by
centrifuge-python (the oracle), not with wirehub's codec. The embedded (ASGI) path is
checked at the end, under stock uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from centrifuge.protocol import client_pb2 as pb
from websockets.asyncio.client import connect as async_connect
from websockets.sync.client import ClientConnection, connect

from tests.support.server import ServerProcess, serving, timeout
from tests.transports.rawpb import (
    PROTOBUF,
    PbClient,
    json_client_receives,
    json_subscribe,
    open_upgrade,
    pb_frame,
    pb_replies,
    varint,
)
from tests.transports.rawws import (
    BINARY,
    CONT,
    TEXT,
    Frame,
    RawWebSocket,
    frame,
)
from wirehub import Node, create_app, load_config

StartServer = Callable[[str], ServerProcess]

LIMIT = 65_536
WAIT = timeout(5.0)
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"

CONFIG = """
[client]
allow_anonymous_connect_without_token = true
ping_interval = {ping_interval}
pong_timeout = {pong_timeout}

[websocket]
message_size_limit = {limit}
compression = {compression}

[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_subscriber = true
allow_publish_for_client = true
allow_publish_for_anonymous = true

[[channel.namespaces]]
name = "bin"
publication_data_format = "binary"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_client = true
allow_publish_for_anonymous = true
"""


def config(*, compression: bool = False, limit: int = LIMIT, ping_interval: int = 25) -> str:
    return CONFIG.format(
        compression=str(compression).lower(),
        limit=limit,
        ping_interval=ping_interval,
        pong_timeout=min(8.0, ping_interval / 2),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One plain server for the tests that need no special settings."""
    with serving(config(), tmp_path_factory.mktemp("protobuf")) as process:
        yield process


def new_channel() -> str:
    return f"chat:{uuid.uuid4().hex}"


# (a) The centrifuge-protobuf subprotocol.


def test_protobuf_subprotocol_round_trip(server_factory: StartServer) -> None:
    """Echoed subprotocol; connect + subscribe in one frame; publish; the ping is 0x00."""
    server = server_factory(config(ping_interval=1))
    response, ws = open_upgrade(server.port, Sec_WebSocket_Protocol=PROTOBUF)
    with ws:
        assert response.headers["sec-websocket-protocol"] == PROTOBUF
        client = PbClient(ws)
        channel = new_channel()
        connect_id, subscribe_id = client.send(
            pb.Command(connect=pb.ConnectRequest()),
            pb.Command(subscribe=pb.SubscribeRequest(channel=channel)),
        )
        connect = client.recv_reply(connect_id).connect
        assert connect.client
        assert connect.ping == 1
        assert client.recv_reply(subscribe_id).HasField("subscribe")

        client.publish(channel, b'{"x":1}')
        publication = client.recv_publication(channel)
        assert publication.data == b'{"x":1}'
        assert publication.info.client == connect.client

        # Idle: the server ping is a binary frame holding the single byte 0x00, and so is
        # the pong. A pong not taken would bring 3012 (0.5 s) before the next ping (1 s).
        for _ in range(2):
            ping = ws.recv_frame(timeout(3.0))
            assert (ping.opcode, ping.fin, ping.rsv, ping.payload) == (BINARY, True, 0, b"\x00")
            ws.send_frame(BINARY, b"\x00")
        client.publish(channel, b'"still here"')
        assert client.recv_publication(channel).data == b'"still here"'


def test_binary_payloads_reach_protobuf_subscribers(server: ServerProcess) -> None:
    """Several records in one frame, and payload bytes passed through untouched."""
    channel = new_channel()
    _, ws = open_upgrade(server.port, Sec_WebSocket_Protocol=PROTOBUF)
    with ws:
        client = PbClient(ws)
        client.connect()
        client.subscribe(channel)
        _, second = client.send(
            pb.Command(publish=pb.PublishRequest(channel=channel, data=b'{"n":1}')),
            pb.Command(publish=pb.PublishRequest(channel=channel, data=b'{"n":2}')),
        )
        assert client.recv_reply(second).HasField("publish")
        assert client.recv_publication(channel).data == b'{"n":1}'
        assert client.recv_publication(channel).data == b'{"n":2}'


def test_malformed_protobuf_is_a_bad_request(server: ServerProcess) -> None:
    """P3: a record longer than its frame -> 3501."""
    _, ws = open_upgrade(server.port, Sec_WebSocket_Protocol=PROTOBUF)
    with ws:
        PbClient(ws).connect()
        ws.send_frame(BINARY, b"\x10\x08\x01")  # 16 bytes announced, 2 sent
        ws.expect_close(3501)


def test_binary_frames_are_not_checked_as_utf8(server: ServerProcess) -> None:
    """Bytes that are not UTF-8 are fine in a binary frame: payloads pass untouched, and
    a string field that is not UTF-8 is the codec's 3501, not the transport's 1007."""
    channel = f"bin:{uuid.uuid4().hex}"  # a namespace that allows binary payloads
    _, ws = open_upgrade(server.port, Sec_WebSocket_Protocol=PROTOBUF)
    with ws:
        client = PbClient(ws)
        client.connect()
        client.subscribe(channel)
        client.publish(channel, b"\xff\xfe\x00binary")
        assert client.recv_publication(channel).data == b"\xff\xfe\x00binary"
        # Command{id: 9, publish: {channel: "\xff"}}
        record = b"\x08\x09\x3a\x03\x0a\x01\xff"
        ws.send_frame(BINARY, varint(len(record)) + record)
        ws.expect_close(3501)


# (b) Protobuf asked for in the query, and what stays JSON.


@pytest.mark.parametrize("query", ["cf_protocol=protobuf", "format=protobuf"])
def test_protobuf_from_the_query(server: ServerProcess, query: str) -> None:
    response, ws = open_upgrade(server.port, f"/connection/websocket?{query}")
    with ws:
        assert "sec-websocket-protocol" not in response.headers
        client = PbClient(ws)
        assert client.connect().client


@pytest.mark.parametrize(
    ("offered", "query", "echoed", "opcode"),
    [
        (None, "", None, TEXT),
        ("centrifuge-json", "", "centrifuge-json", TEXT),
        ("centrifuge-json, centrifuge-protobuf", "", "centrifuge-json", TEXT),
        ("centrifuge-protobuf, centrifuge-json", "", "centrifuge-json", TEXT),
        ("something-else", "", None, TEXT),
        (None, "?cf_protocol=json", None, TEXT),
        (None, "?cf_protocol=protobuf&cf_protocol=json", None, BINARY),
        (None, "?cf_protocol=json&cf_protocol=protobuf", None, TEXT),
        ("centrifuge-json", "?format=protobuf", "centrifuge-json", BINARY),
    ],
)
def test_protocol_selection(
    server: ServerProcess, offered: str | None, query: str, echoed: str | None, opcode: int
) -> None:
    """As Centrifuge: its own order of subprotocols, the first query value counts, and a
    query asking for protobuf wins over the centrifuge-json subprotocol."""
    headers = {} if offered is None else {"Sec_WebSocket_Protocol": offered}
    response, ws = open_upgrade(server.port, f"/connection/websocket{query}", **headers)
    with ws:
        assert response.headers.get("sec-websocket-protocol") == echoed
        if opcode == BINARY:
            assert PbClient(ws).connect().client
        else:
            assert ws.connect()["client"]


# (c) JSON and protobuf subscribers of one channel.


def test_json_and_protobuf_subscribers_get_their_own_encoding(server: ServerProcess) -> None:
    channel = new_channel()
    _, raw_pb = open_upgrade(server.port, Sec_WebSocket_Protocol=PROTOBUF)
    with RawWebSocket.open(server.port) as json_ws, raw_pb:
        protobuf = PbClient(raw_pb)
        protobuf.connect()
        protobuf.subscribe(channel)
        json_id = json_ws.connect()["client"]
        json_subscribe(json_ws, channel)

        data = {"text": "hi", "n": [1, 2]}
        json_ws.send_commands({"publish": {"channel": channel, "data": data}})
        assert json_client_receives(json_ws, channel) == data
        publication = protobuf.recv_publication(channel)
        assert json.loads(publication.data) == data
        assert publication.info.client == json_id

        # And the other way: protobuf payload bytes are JSON text to the JSON client.
        protobuf.publish(channel, b'{"from":"protobuf"}')
        assert protobuf.recv_publication(channel).data == b'{"from":"protobuf"}'
        assert json_client_receives(json_ws, channel) == {"from": "protobuf"}


# (d) permessage-deflate negotiation.


def test_deflate_off_is_not_negotiated(server: ServerProcess) -> None:
    with connect(server.ws_url, compression="deflate", open_timeout=WAIT) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        sdk_like_exchange(ws)


def test_deflate_on_json_exchange(server_factory: StartServer) -> None:
    """An SDK-like JSON exchange over the websockets client, compressed both ways."""
    server = server_factory(config(compression=True))
    with connect(server.ws_url, compression="deflate", open_timeout=WAIT) as ws:
        extensions = ws.response.headers["Sec-WebSocket-Extensions"]
        assert extensions.startswith("permessage-deflate")
        sdk_like_exchange(ws)


def test_deflate_on_but_not_offered(server_factory: StartServer) -> None:
    server = server_factory(config(compression=True))
    with connect(server.ws_url, compression=None, open_timeout=WAIT) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        sdk_like_exchange(ws)


def test_rsv1_without_negotiation_on_a_compression_server(server_factory: StartServer) -> None:
    """B7 with compression on: a client that did not offer deflate can't send RSV1."""
    server = server_factory(config(compression=True))
    with RawWebSocket.open(server.port) as ws:
        ws.connect()
        ws.send_frame(TEXT, bytes.fromhex("aa560100"), rsv=0b100)  # deflated "{}"
        ws.expect_close(1002)


def sdk_like_exchange(ws: ClientConnection) -> None:
    """connect + subscribe in one frame, then publish, and the publication arrives."""
    channel = new_channel()
    connect_and_subscribe = [{"id": 1, "connect": {}}, {"id": 2, "subscribe": {"channel": channel}}]
    ws.send("\n".join(json.dumps(command) for command in connect_and_subscribe))
    ws.send(json.dumps({"id": 3, "publish": {"channel": channel, "data": {"big": "x" * 5000}}}))
    seen: dict[int, dict[str, Any]] = {}
    publication = None
    deadline = time.monotonic() + WAIT
    while publication is None or len(seen) < 3:
        message = ws.recv(timeout=deadline - time.monotonic())
        assert isinstance(message, str)
        for line in message.split("\n"):
            reply = json.loads(line)
            if "id" in reply:
                seen[reply["id"]] = reply
            elif "pub" in reply.get("push", {}):
                publication = reply["push"]["pub"]
    assert "connect" in seen[1]
    assert seen[2] == {"id": 2, "subscribe": {}}
    assert seen[3] == {"id": 3, "publish": {}}
    assert publication is not None
    assert publication["data"] == {"big": "x" * 5000}


def test_deflate_frames_on_the_wire(server_factory: StartServer) -> None:
    """The server's data frames carry RSV1 and inflate to the protocol's frames; the
    client may still send uncompressed frames, and compressed ones of its own."""
    server = server_factory(config(compression=True))
    for subprotocol in (None, PROTOBUF):
        headers = {"Sec_WebSocket_Extensions": DEFLATE_OFFER}
        if subprotocol:
            headers["Sec_WebSocket_Protocol"] = subprotocol
        response, ws = open_upgrade(server.port, **headers)
        with ws:
            extensions = response.headers["sec-websocket-extensions"]
            assert extensions == (
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
            )
            inflate = Inflater()
            if subprotocol is None:
                # Uncompressed connect, then a compressed subscribe (window: 12 bits).
                ws.send_text('{"id":1,"connect":{}}')
                assert "connect" in json.loads(inflate(ws.recv_frame()))
                compressor = zlib.compressobj(wbits=-12)
                body = b'{"id":2,"subscribe":{"channel":"chat:x"}}'
                deflated = compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH)
                ws.send_frame(TEXT, deflated[:-4], rsv=0b100)
                assert json.loads(inflate(ws.recv_frame())) == {"id": 2, "subscribe": {}}
            else:
                ws.send_frame(BINARY, pb_frame(pb.Command(id=1, connect=pb.ConnectRequest())))
                received = ws.recv_frame()
                assert received.opcode == BINARY
                (reply,) = pb_replies(inflate(received))
                assert reply.id == 1
                assert reply.connect.client


class Inflater:
    """Inflates a connection's server frames (context takeover: one stream)."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(wbits=-15)

    def __call__(self, received: Frame) -> bytes:
        assert received.rsv == 0b100, f"expected a compressed frame, got {received}"
        return self._zlib.decompress(received.payload + b"\x00\x00\xff\xff")


# (e) B6: deflate bombs -> 1009 while inflating, memory bounded.

_MiB = 1 << 20
_RSS_LIMIT_KB = 200 * 1024
# What inflating may add to the peak: the limit (2 MiB at most here), zlib's window and
# buffers; an inflated bomb would add hundreds of MiB.
_GROWTH_LIMIT_KB = 32 * 1024


@cache
def deflated_zeros(mebibytes: int) -> bytes:
    """A raw deflate stream of ``mebibytes`` MiB of zeros, about 1 KiB per MiB, ready
    for a frame (the trailing 00 00 ff ff left out)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    # A full flush resets the history, so every MiB compresses to the same bytes.
    block = compressor.compress(bytes(_MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block.endswith(b"\x00\x00\xff\xff")
    return (block * mebibytes)[:-4]


def memory_kb(server: ServerProcess, field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of the server process, in kB."""
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise AssertionError(f"no {field} in /proc/{server.pid}/status")


def deflate_connect(ws: RawWebSocket) -> None:
    """Connect on a connection that negotiated deflate (the reply comes compressed)."""
    ws.send_text('{"id":1,"connect":{}}')
    assert "connect" in json.loads(Inflater()(ws.recv_frame()))


def assert_serves(port: int) -> None:
    """A fresh client connects, subscribes and receives its own publication."""
    channel = new_channel()
    with RawWebSocket.open(port) as ws:
        ws.connect()
        json_subscribe(ws, channel)
        ws.send_commands({"publish": {"channel": channel, "data": {"text": "still here"}}})
        assert json_client_receives(ws, channel) == {"text": "still here"}


@pytest.mark.parametrize(
    ("limit", "mebibytes", "reason"),
    [
        # ~1 MB on the wire, 1 GiB inflated: past the limit on the header alone.
        (LIMIT, 1024, "frame with {size} bytes exceeds limit of 65536 bytes"),
        # ~48 KB on the wire, under the limit: stopped while inflating.
        (LIMIT, 48, "frame exceeds limit of 65536 bytes"),
        # ~1 MB on the wire under a 2 MiB limit, 1 GiB inflated: stopped while inflating.
        (2 * _MiB, 1024, f"frame exceeds limit of {2 * _MiB} bytes"),
    ],
    ids=["1MB-header", "48KB-inflating", "1MB-inflating"],
)
def test_deflate_bomb(server_factory: StartServer, limit: int, mebibytes: int, reason: str) -> None:
    server = server_factory(config(compression=True, limit=limit))
    bomb = deflated_zeros(mebibytes)
    _, ws = open_upgrade(server.port, Sec_WebSocket_Extensions=DEFLATE_OFFER)
    with ws:
        deflate_connect(ws)
        peak_before = memory_kb(server, "VmHWM")
        ws.send_raw(frame(TEXT, bomb, rsv=0b100))
        closed = ws.expect_close(1009)
        assert closed.reason == reason.format(size=len(bomb))
    peak = memory_kb(server, "VmHWM")
    assert peak < _RSS_LIMIT_KB, f"peak RSS {peak} kB"
    assert peak - peak_before < _GROWTH_LIMIT_KB, f"peak RSS {peak_before} -> {peak} kB"
    assert_serves(server.port)


def test_deflate_bomb_in_fragments(server_factory: StartServer) -> None:
    """Fragments that each inflate under the limit but not together: 1009 on the way."""
    server = server_factory(config(compression=True))
    compressor = zlib.compressobj(wbits=-15)
    piece = compressor.compress(bytes(40_960)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    again = compressor.compress(bytes(40_960)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    _, ws = open_upgrade(server.port, Sec_WebSocket_Extensions=DEFLATE_OFFER)
    with ws:
        deflate_connect(ws)
        ws.send_raw(frame(TEXT, piece, rsv=0b100, fin=False) + frame(CONT, again, fin=False))
        closed = ws.expect_close(1009)
        assert closed.reason == "frame after reading 40960 bytes exceeds limit of 65536 bytes"
    assert_serves(server.port)


# The embedded (ASGI) path under stock uvicorn.


@asynccontextmanager
async def embedded_server() -> AsyncIterator[str]:
    """create_app(node) served by stock uvicorn (its own WebSocket implementation)."""
    node = Node(
        load_config(
            None, {"client": {"allow_anonymous_connect_without_token": True}}, environ=False
        )
    )
    app = create_app(node)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    async with node:
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(timeout(10)):
                # uvicorn offers no startup event to wait on; poll its flag, bounded.
                while not server.started:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield f"ws://127.0.0.1:{port}/connection/websocket"
        finally:
            server.should_exit = True
            await task


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("suffix", "subprotocols"),
    [("", [PROTOBUF]), ("?cf_protocol=protobuf", None)],
    ids=["subprotocol", "query"],
)
async def test_embedded_path_speaks_protobuf(suffix: str, subprotocols: list[str] | None) -> None:
    async with (
        embedded_server() as url,
        async_connect(
            url + suffix,
            subprotocols=subprotocols,
            open_timeout=WAIT,  # type: ignore[arg-type]
        ) as ws,
    ):
        assert ws.subprotocol == (PROTOBUF if subprotocols else None)
        await ws.send(pb_frame(pb.Command(id=1, connect=pb.ConnectRequest())))
        message = await asyncio.wait_for(ws.recv(), WAIT)
        assert isinstance(message, bytes), "protobuf goes out in binary frames"
        (reply,) = pb_replies(message)
        assert reply.id == 1
        assert reply.connect.client


@pytest.mark.anyio
async def test_embedded_path_json_stays_text() -> None:
    async with embedded_server() as url, async_connect(url, open_timeout=WAIT) as ws:
        assert ws.subprotocol is None
        await ws.send('{"id":1,"connect":{}}')
        message = await asyncio.wait_for(ws.recv(), WAIT)
        assert isinstance(message, str)
        assert "connect" in json.loads(message)
