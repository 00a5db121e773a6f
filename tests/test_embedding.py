"""wirehub mounted in a FastAPI app under stock uvicorn, reached by a real client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
import websockets
import websockets.asyncio.client
from centrifuge import Client, PublicationContext, SubscriptionEventHandler
from fastapi import FastAPI

from tests.support.pysdk import disconnect
from tests.support.server import timeout
from tests.transports.test_http_limits import FLOOD as FLOOD_SIZE, flood
from wirehub import ConnectingEvent, Node, create_app, load_config
from wirehub.transports.http import make_http_protocol_class

pytestmark = [pytest.mark.anyio, pytest.mark.interop]


def make_app(node: Node) -> FastAPI:
    """The README's recipe, verbatim in spirit: the node runs in the host's lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with node:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    app.mount("/rt", create_app(node))
    return app


@asynccontextmanager
async def stock_uvicorn(app: FastAPI, **options: Any) -> AsyncIterator[int]:
    # Stock uvicorn: its own ASGI WebSocket implementation, not wirehub's protocol class.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(timeout(10)):
            # uvicorn offers no startup event to wait on; poll its flag, bounded.
            while not server.started:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


class Inbox(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.publications: asyncio.Queue[object] = asyncio.Queue()

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self.publications.put(ctx.pub.data)


async def test_sdk_connects_through_mounted_app_and_receives_publications() -> None:
    config = load_config(
        None,
        {
            "client": {"allow_anonymous_connect_without_token": True},
            "channel": {
                "namespaces": [
                    {
                        "name": "chat",
                        "allow_subscribe_for_client": True,
                        "allow_subscribe_for_anonymous": True,
                    }
                ]
            },
        },
        environ=False,
    )
    node = Node(config)
    async with stock_uvicorn(make_app(node)) as port:
        client = Client(f"ws://127.0.0.1:{port}/rt/connection/websocket")
        inbox = Inbox()
        sub = client.new_subscription("chat:lobby", events=inbox)
        await client.connect()
        try:
            await sub.subscribe()
            await asyncio.wait_for(sub.ready(), timeout(5))
            await node.publish("chat:lobby", {"text": "through FastAPI"})
            data = await asyncio.wait_for(inbox.publications.get(), timeout(5))
            assert data == {"text": "through FastAPI"}
        finally:
            await disconnect(client)


async def test_host_routes_and_health_still_served() -> None:
    import httpx

    node = Node(load_config(None, {}, environ=False))
    async with stock_uvicorn(make_app(node)) as port, httpx.AsyncClient() as http:
        hello = await http.get(f"http://127.0.0.1:{port}/hello")
        health = await http.get(f"http://127.0.0.1:{port}/rt/health")
    assert hello.json() == {"hello": "world"}
    assert health.status_code == 200
    assert json.loads(health.text) == {}


# Issue 7 on the embedded path: the host server parsed the request; wirehub refuses what
# is past its limits before accepting, and applies its connection limits and origin
# check the same way as the standalone path.

ANONYMOUS = {"client": {"allow_anonymous_connect_without_token": True}}


async def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the rest of one HTTP exchange on a fresh connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout(5))
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split()[1]), headers, body
    finally:
        writer.close()
        await writer.wait_closed()


def upgrade(port: int, path: str = "/rt/connection/websocket", extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


FLOOD = "".join(f"X-Flood-{i}: y\r\n" for i in range(50))


async def test_embedded_refuses_too_many_headers_on_websocket_and_http() -> None:
    # Under the host's own limits (uvicorn's WebSocket implementation stops at 128
    # headers), over wirehub's as configured here.
    config = {**ANONYMOUS, "server": {"header_count_limit": 20}}
    node = Node(load_config(None, config, environ=False))
    async with stock_uvicorn(make_app(node)) as port:
        status, _, body = await raw_exchange(port, upgrade(port, extra=FLOOD))
        assert (status, body) == (431, b"more than 20 headers\n")
        request = f"GET /rt/health HTTP/1.1\r\nHost: x\r\n{FLOOD}\r\n".encode()
        status, headers, _ = await raw_exchange(port, request)
        assert (status, headers["connection"]) == (431, "close")
        long_url = b"GET /rt/health?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert (await raw_exchange(port, long_url))[0] == 414
        # Within the limits: served.
        assert (await raw_exchange(port, upgrade(port)))[0] == 101


async def test_embedded_connection_rate_limit() -> None:
    config = {"client": {**ANONYMOUS["client"], "connection_rate_limit": 1}}
    node = Node(load_config(None, config, environ=False))
    async with stock_uvicorn(make_app(node)) as port:
        assert (await raw_exchange(port, upgrade(port)))[0] == 101
        status, headers, _ = await raw_exchange(port, upgrade(port))
    assert status == 503
    assert int(headers["retry-after"]) >= 1


async def test_embedded_origin_is_checked_against_the_socket_not_host() -> None:
    node = Node(load_config(None, ANONYMOUS, environ=False))
    async with stock_uvicorn(make_app(node)) as port:
        evil = f"Origin: http://evil.example:{port}\r\n"
        request = upgrade(port, extra=evil).replace(b"Host: 127.0.0.1", b"Host: evil.example")
        assert (await raw_exchange(port, request))[0] == 403
        own = f"Origin: http://127.0.0.1:{port}\r\n"
        assert (await raw_exchange(port, upgrade(port, extra=own)))[0] == 101


async def test_embedded_keeps_only_transport_headers() -> None:
    node = Node(load_config(None, ANONYMOUS, environ=False))
    seen: list[ConnectingEvent] = []

    @node.on_connecting
    async def remember(event: ConnectingEvent) -> None:
        seen.append(event)

    async with stock_uvicorn(make_app(node)) as port:
        client = Client(f"ws://127.0.0.1:{port}/rt/connection/websocket")
        await client.connect()
        await client.disconnect()
    headers = seen[0].transport.headers
    assert "user-agent" in headers
    assert "sec-websocket-key" not in headers
    assert set(headers) <= {
        "authorization",
        "cookie",
        "origin",
        "user-agent",
        "x-forwarded-for",
        "x-real-ip",
    }


async def test_host_uvicorn_with_wirehubs_http_protocol_bounds_every_route() -> None:
    """The recommended setting for a host app under uvicorn: wirehub's HTTP protocol
    class bounds request heads on the host's own routes too, before any buffering."""
    config = load_config(None, ANONYMOUS, environ=False)
    node = Node(config)
    http = make_http_protocol_class(config.server)
    async with stock_uvicorn(make_app(node), http=http) as port:
        sent, status = await asyncio.to_thread(flood, port, b"GET /hello?x=")
        assert status == 414
        assert sent < FLOOD_SIZE
        assert (await raw_exchange(port, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 200


async def test_fallback_transports_through_the_mounted_app_under_stock_uvicorn() -> None:
    """HTTP-streaming with emulation, SSE and uni_sse through the ASGI app mounted at
    /rt, served by stock uvicorn (the portable path: a writer task per stream, one ASGI
    body message per flush); a server disconnect ends the stream with its push."""
    chat = {
        "name": "chat",
        "allow_subscribe_for_client": True,
        "allow_subscribe_for_anonymous": True,
        "allow_publish_for_anonymous": True,
        "allow_publish_for_client": True,
    }
    config = load_config(
        None,
        {
            "client": {"allow_anonymous_connect_without_token": True},
            "channel": {"namespaces": [chat]},
            "http_stream": {"enabled": True},
            "sse": {"enabled": True},
            "uni_sse": {"enabled": True},
            "uni_websocket": {"enabled": True},
        },
        environ=False,
    )
    node = Node(config)
    async with stock_uvicorn(make_app(node)) as port:
        await _uni_websocket(node, port)
        base = f"http://127.0.0.1:{port}/rt"
        async with (
            httpx.AsyncClient(timeout=timeout(10)) as http,
            http.stream(
                "POST",
                f"{base}/connection/http_stream",
                content=b'{"id":1,"connect":{}}',
                headers={"Content-Type": "application/json"},
            ) as stream,
            http.stream(
                "GET", f"{base}/connection/uni_sse?cf_connect=" + quote('{"subs":{"chat:x":{}}}')
            ) as uni,
        ):
            lines = stream.aiter_lines()
            connect = json.loads(await anext(lines))["connect"]
            data = '{"id":2,"subscribe":{"channel":"chat:x"}}'
            body = {"node": connect["node"], "session": connect["session"], "data": data}
            assert (await http.post(f"{base}/emulation", json=body)).status_code == 204
            assert json.loads(await anext(lines)) == {"id": 2, "subscribe": {}}
            await node.publish("chat:x", {"n": 1})
            assert json.loads(await anext(lines)) == {
                "push": {"channel": "chat:x", "pub": {"data": {"n": 1}}}
            }
            sse_lines = [line async for line in _data_lines(uni, 2)]
            assert [set(json.loads(line)) for line in sse_lines] == [
                {"connect"},
                {"channel", "pub"},
            ]
            await node.disconnect("", client=connect["client"])
            rest = [json.loads(line) async for line in lines]
            assert rest == [{"push": {"disconnect": {"code": 3503, "reason": "force disconnect"}}}]


async def _data_lines(response: httpx.Response, count: int) -> AsyncIterator[str]:
    """The first ``count`` SSE events' data."""
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield line[len("data: ") :]
            count -= 1
            if count == 0:
                return


async def _uni_websocket(node: Node, port: int) -> None:
    """uni_websocket through the ASGI app: the connect push, then one push per message
    (two publications of one tick included), then a disconnect push and the close."""
    query = quote('{"subs": {"chat:u": {}, "chat:v": {}}}')
    url = f"ws://127.0.0.1:{port}/rt/connection/uni_websocket?cf_connect={query}"
    async with websockets.asyncio.client.connect(url) as ws:
        connect = json.loads(await ws.recv())["connect"]
        assert sorted(connect["subs"]) == ["chat:u", "chat:v"]
        await node.broadcast(["chat:u", "chat:v"], {"n": 1})
        pushes = [json.loads(await ws.recv()) for _ in range(2)]
        assert sorted(p["channel"] for p in pushes) == ["chat:u", "chat:v"]
        await node.disconnect("", client=connect["client"])
        assert json.loads(await ws.recv()) == {
            "disconnect": {"code": 3503, "reason": "force disconnect"}
        }
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 3503
