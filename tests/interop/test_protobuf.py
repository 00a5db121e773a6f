"""The Protobuf protocol and permessage-deflate with the official SDKs, unchanged.

centrifuge-python 0.7 with ``use_protobuf=True`` (it offers ``centrifuge-protobuf``;
payloads are bytes), and centrifuge-js 5.x's protobuf build (``centrifuge/build/protobuf``)
and JSON build in Node, driven by ``js/client_wire.mjs`` over the ``ws`` package, whose
permessage-deflate offer is on by default. Protobuf clients publish JSON text as bytes,
so that JSON clients of the same channel can read it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Self

import anyio
import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    DisconnectedContext,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from tests.interop.helpers import CHAT, EventLog, config_toml, event, make_token
from tests.interop.test_js_sdk import JS_DIR, JsClient, _node
from tests.support.pysdk import disconnect
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

StartServer = Callable[[str], ServerProcess]

WIRE_SCRIPT = JS_DIR / "client_wire.mjs"
COMPRESSION = "\n[websocket]\ncompression = true\n"


# centrifuge-python.


class _ClientEvents(ClientEventHandler):
    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self._log.add({"event": "connected", "client": ctx.client})

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self._log.add({"event": "disconnected", "code": ctx.code, "reason": ctx.reason})


class _SubscriptionEvents(SubscriptionEventHandler):
    def __init__(self, log: EventLog, channel: str) -> None:
        self._log = log
        self._channel = channel

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self._log.add({"event": "subscribed", "channel": self._channel})

    async def on_publication(self, ctx: PublicationContext) -> None:
        info = ctx.pub.info
        self._log.add(
            {
                "event": "publication",
                "channel": self._channel,
                "data": ctx.pub.data,
                "user": None if info is None else info.user,
            }
        )


@asynccontextmanager
async def sdk_client(
    url: str, *, token: str = "", use_protobuf: bool, subscribe: str | None = None
) -> AsyncIterator[tuple[Client, EventLog]]:
    """A connected centrifuge-python client (subscribed to ``subscribe`` if given)."""
    log = EventLog("python-protobuf" if use_protobuf else "python-json")
    events = _ClientEvents(log)
    client = Client(url, events=events, token=token, use_protobuf=use_protobuf, proxy=None)
    try:
        await client.connect()
        await log.wait_for(event("connected"))
        if subscribe is not None:
            sub_events = _SubscriptionEvents(log, subscribe)
            await client.new_subscription(subscribe, events=sub_events).subscribe()
            await log.wait_for(event("subscribed", channel=subscribe))
        yield client, log
    finally:
        with anyio.CancelScope(shield=True):
            await disconnect(client)


async def test_python_protobuf_client(server_factory: StartServer) -> None:
    """Token connect over centrifuge-protobuf; publications from a JSON client and from
    itself arrive as bytes; its own reach the JSON client as JSON."""
    server = server_factory(config_toml())
    async with (
        sdk_client(server.ws_url, token=make_token("42"), use_protobuf=True, subscribe=CHAT) as (
            pb_client,
            pb_log,
        ),
        sdk_client(server.ws_url, token=make_token("43"), use_protobuf=False, subscribe=CHAT) as (
            json_client,
            json_log,
        ),
    ):
        await json_client.publish(CHAT, {"text": "hi"})
        received = await pb_log.wait_for(event("publication", channel=CHAT))
        assert isinstance(received["data"], bytes)
        assert json.loads(received["data"]) == {"text": "hi"}
        assert received["user"] == "43"

        await pb_client.publish(CHAT, b'{"x":1}')
        own = await pb_log.wait_for(event("publication", channel=CHAT, data=b'{"x":1}'))
        assert own["user"] == "42"
        relayed = await json_log.wait_for(event("publication", channel=CHAT, data={"x": 1}))
        assert relayed["user"] == "42"
        assert not pb_log.matching(event("disconnected"))


async def test_python_protobuf_anonymous(server_factory: StartServer) -> None:
    server = server_factory(config_toml(anonymous=True))
    async with sdk_client(server.ws_url, use_protobuf=True) as (_, log):
        assert (await log.wait_for(event("connected")))["client"]


# centrifuge-js.


class WireJsClient(JsClient):
    """A :class:`JsClient` running ``js/client_wire.mjs`` instead of ``js/client.mjs``."""

    async def __aenter__(self) -> Self:
        command = [_node(), str(WIRE_SCRIPT), json.dumps(self.options)]
        self._process = await anyio.open_process(command, cwd=JS_DIR)
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._read_events)
        self._tasks.start_soon(self._read_stderr)
        return self

    async def publish(self, channel: str, data: Any) -> None:
        result = await self.command("publish", channel=channel, text=json.dumps(data))
        assert result["ok"], result


async def test_js_protobuf_build(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    async with (
        WireJsClient(server.ws_url, token=make_token("42"), protobuf=True, subscribe=[CHAT]) as js,
        sdk_client(server.ws_url, token=make_token("43"), use_protobuf=False) as (json_client, _),
    ):
        opened = await js.log.wait_for(event("ws_open"))
        assert opened["protocol"] == "centrifuge-protobuf"
        await js.log.wait_for(event("subscribed", channel=CHAT))

        await json_client.publish(CHAT, {"text": "hi"})
        received = await js.log.wait_for(event("publication", channel=CHAT))
        assert json.loads(received["text"]) == {"text": "hi"}
        assert received["binary"] is True

        await js.publish(CHAT, {"y": 2})
        await js.log.wait_for(event("publication", channel=CHAT, text='{"y": 2}'))
        assert not js.log.matching(event("disconnected"))


@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
@pytest.mark.parametrize("offer", [True, False], ids=["deflate", "no-deflate"])
async def test_js_with_compression_on(
    server_factory: StartServer, protobuf: bool, offer: bool
) -> None:
    """ws offers permessage-deflate by default: with websocket.compression on it is
    negotiated, and the exchange works compressed; a client not offering it still works."""
    server = server_factory(config_toml() + COMPRESSION)
    options: dict[str, Any] = {"protobuf": protobuf, "subscribe": [CHAT]}
    if not offer:
        options["perMessageDeflate"] = False
    async with WireJsClient(server.ws_url, token=make_token("42"), **options) as js:
        opened = await js.log.wait_for(event("ws_open"))
        assert opened["extensions"] == ("permessage-deflate" if offer else "")
        await js.log.wait_for(event("subscribed", channel=CHAT))

        big = {"text": "compressible " * 1000}
        await js.publish(CHAT, big)
        received = await js.log.wait_for(event("publication", channel=CHAT))
        assert json.loads(received["text"]) == big
        assert received["binary"] is protobuf
