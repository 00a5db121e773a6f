"""node.subscribe / node.unsubscribe at runtime, seen by centrifuge-python (JSON and
Protobuf): a ``subscribe`` push, publications with no client subscribe, an
``unsubscribe`` push."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ServerPublicationContext,
    ServerSubscribedContext,
    ServerUnsubscribedContext,
)

from tests.support.inprocess import serve_node
from tests.support.pysdk import disconnect
from tests.support.server import timeout
from wirehub import Node, load_config

pytestmark = [pytest.mark.anyio, pytest.mark.interop]


class Events(ClientEventHandler):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def on_subscribed(self, ctx: ServerSubscribedContext) -> None:
        await self.queue.put(("subscribed", ctx.channel))

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        await self.queue.put(("publication", (ctx.channel, ctx.pub.data)))

    async def on_unsubscribed(self, ctx: ServerUnsubscribedContext) -> None:
        await self.queue.put(("unsubscribed", ctx.channel))

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.queue.get(), timeout(5))


@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_runtime_server_side_subscription(protobuf: bool) -> None:
    config = load_config(
        None,
        {
            "client": {"allow_anonymous_connect_without_token": True},
            "channel": {"namespaces": [{"name": "alerts"}]},
        },
        environ=False,
    )
    node = Node(config)
    async with serve_node(node) as running:
        events = Events()
        client = Client(running.ws_url, events=events, use_protobuf=protobuf)
        await client.connect()
        try:
            await client.ready(timeout(5))
            (client_id,) = [c.id for c in node.hub.clients()]
            assert await node.subscribe("alerts:1", client=client_id) == 1
            assert await events.next() == ("subscribed", "alerts:1")
            await node.publish("alerts:1", {"level": "high"})
            kind, (channel, data) = await events.next()
            assert (kind, channel) == ("publication", "alerts:1")
            assert data == (b'{"level":"high"}' if protobuf else {"level": "high"})
            assert await node.unsubscribe("alerts:1", client=client_id) == 1
            assert await events.next() == ("unsubscribed", "alerts:1")
        finally:
            await disconnect(client)
