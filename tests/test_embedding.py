"""wirehub mounted in a FastAPI app under stock uvicorn, reached by a real client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from centrifuge import Client, PublicationContext, SubscriptionEventHandler
from fastapi import FastAPI

from tests.support.pysdk import disconnect
from tests.support.server import timeout
from wirehub import Node, create_app, load_config

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
async def stock_uvicorn(app: FastAPI) -> AsyncIterator[int]:
    # Stock uvicorn: its own ASGI WebSocket implementation, not wirehub's protocol class.
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
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
