"""Proxies and in-process handlers together (``docs/proxies.md``, "Precedence"): the
proxy decides first, the handler runs after it and may refine its result.

An in-process node (its handlers are Python functions of the test) with the threaded
backend of :mod:`tests.proxy.backend`; clients speak the JSON protocol over the
``websockets`` client, in the test's loop.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
import websockets

from tests.interop.helpers import node_config
from tests.proxy.backend import Backend
from tests.support.inprocess import RunningNode, serve_node
from tests.support.server import timeout
from wirehub import (
    ConnectingReply,
    Credentials,
    Node,
    PublishReply,
    RPCReply,
    SubscribeReply,
)
from wirehub.core.events import (
    ConnectEvent,
    ConnectingEvent,
    PublishEvent,
    RPCEvent,
    SubscribeEvent,
)
from wirehub.proxy import proxies

pytestmark = pytest.mark.anyio

WAIT = timeout(5)


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    started = Backend().start()
    yield started
    started.stop()


def config(url: str) -> str:
    return f"""
[client.proxy.connect]
enabled = true
endpoint = "{url}/connect"

[client.proxy.refresh]
enabled = true
endpoint = "{url}/refresh"

[channel.proxy.subscribe]
endpoint = "{url}/subscribe"

[channel.proxy.publish]
endpoint = "{url}/publish"

[rpc.proxy]
endpoint = "{url}/rpc"

[rpc.without_namespace]
proxy_enabled = true

[[channel.namespaces]]
name = "px"
subscribe_proxy_enabled = true
publish_proxy_enabled = true
"""


class Seen:
    def __init__(self) -> None:
        self.events: list[Any] = []


@pytest.fixture
async def running(backend: Backend) -> AsyncIterator[tuple[RunningNode, Seen]]:
    node = Node(node_config(config(backend.url)))
    seen = Seen()

    @node.on_connecting
    async def connecting(event: ConnectingEvent) -> ConnectingReply | None:
        seen.events.append(event)
        if json.loads(event.data or b"{}").get("refine"):
            return ConnectingReply(credentials=Credentials(user="refined"))
        return None

    @node.on_connect
    async def connected(event: ConnectEvent) -> None:
        seen.events.append(event)

    @node.on_subscribe
    async def subscribing(event: SubscribeEvent) -> SubscribeReply | None:
        seen.events.append(event)
        return SubscribeReply(data={"from": "handler"})

    @node.on_publish
    async def publishing(event: PublishEvent) -> PublishReply | None:
        seen.events.append(event)
        return PublishReply(data={**json.loads(event.data), "enriched": True})

    @node.on_rpc
    async def rpc(event: RPCEvent) -> RPCReply | None:
        seen.events.append(event)
        if event.method == "refine":
            assert event.result is not None
            return RPCReply(data={"proxy_said": json.loads(event.result)})
        return None

    async with serve_node(node) as served:
        yield served, seen


class Conn:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 1
        self.pushes: list[dict[str, Any]] = []

    async def call(self, name: str, **request: Any) -> dict[str, Any]:
        command_id = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps({"id": command_id, name: request}))
        while True:
            for line in (await _recv(self.ws)).splitlines():
                message = json.loads(line)
                if message.get("id") == command_id:
                    return dict(message)
                if "push" in message:
                    self.pushes.append(message["push"])

    async def pub(self) -> dict[str, Any]:
        while True:
            for push in self.pushes:
                if "pub" in push:
                    return dict(push["pub"])
            for line in (await _recv(self.ws)).splitlines():
                message = json.loads(line)
                if "push" in message:
                    self.pushes.append(message["push"])


async def _recv(ws: Any) -> str:
    with anyio.fail_after(WAIT):
        data = await ws.recv()
    return data if isinstance(data, str) else data.decode()


async def open_conn(served: RunningNode, **connect: Any) -> tuple[Conn, dict[str, Any]]:
    ws = await websockets.connect(served.ws_url)
    conn = Conn(ws)
    return conn, await conn.call("connect", **connect)


def of(seen: Seen, kind: type[Any]) -> list[Any]:
    return [event for event in seen.events if isinstance(event, kind)]


async def test_on_connecting_sees_the_proxys_credentials_and_may_keep_them(
    running: tuple[RunningNode, Seen],
) -> None:
    served, seen = running
    conn, reply = await open_conn(served, data={"marker": 1})
    async with conn.ws:
        assert reply["connect"]["data"] == {"greeting": "hello"}
        (connecting,) = of(seen, ConnectingEvent)
        assert connecting.credentials is not None
        assert connecting.credentials.user == "42"
        assert [e.user for e in of(seen, ConnectEvent)] == ["42"]


async def test_on_connecting_may_replace_the_proxys_credentials(
    running: tuple[RunningNode, Seen],
) -> None:
    served, seen = running
    conn, reply = await open_conn(served, data={"refine": True})
    async with conn.ws:
        assert "connect" in reply
        assert [e.user for e in of(seen, ConnectEvent)] == ["refined"]


async def test_on_connecting_is_not_reached_when_the_proxy_refuses(
    running: tuple[RunningNode, Seen],
) -> None:
    served, seen = running
    conn, reply = await open_conn(served, data={"mode": "error"})
    async with conn.ws:
        assert reply["error"]["code"] == 1000
        assert of(seen, ConnectingEvent) == []


async def test_on_subscribe_refines_what_the_proxy_allowed(
    running: tuple[RunningNode, Seen],
) -> None:
    served, seen = running
    conn, _ = await open_conn(served)
    async with conn.ws:
        reply = await conn.call("subscribe", channel="px:ok-1")
        assert reply["subscribe"]["data"] == {"from": "handler"}
        refused = await conn.call("subscribe", channel="px:error-1")
        assert refused["error"]["code"] == 1000
        assert [e.channel for e in of(seen, SubscribeEvent)] == ["px:ok-1"]


async def test_on_publish_sees_the_proxys_rewrite(running: tuple[RunningNode, Seen]) -> None:
    served, seen = running
    conn, _ = await open_conn(served)
    async with conn.ws:
        await conn.call("subscribe", channel="px:ok-2")
        reply = await conn.call("publish", channel="px:ok-2", data={"mode": "rewrite"})
        assert reply.get("publish") == {}, reply
        (event,) = of(seen, PublishEvent)
        assert json.loads(event.data) == {"rewritten": True, "by": "42"}
        pub = await conn.pub()
        assert pub["data"] == {"rewritten": True, "by": "42", "enriched": True}


async def test_on_rpc_runs_after_the_proxy(running: tuple[RunningNode, Seen]) -> None:
    served, _ = running
    conn, _ = await open_conn(served)
    async with conn.ws:
        kept = await conn.call("rpc", method="keep", data={"a": 1})
        assert kept["rpc"]["data"] == {"method": "keep", "echo": {"a": 1}}
        refined = await conn.call("rpc", method="refine")
        assert refined["rpc"]["data"] == {"proxy_said": {"method": "refine", "echo": None}}


async def test_a_failed_refresh_is_retried_later(
    running: tuple[RunningNode, Seen], backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection gets RETRY_DELAY more seconds (60, made 1 here), then the proxy is
    # asked again; this backend's second answer expires it.
    monkeypatch.setattr(proxies, "RETRY_DELAY", 1)
    served, _ = running
    conn, reply = await open_conn(served, data={"user": "refresh-fails-once", "expire_in": 2})
    client = reply["connect"]["client"]
    with anyio.fail_after(timeout(10)):
        await conn.ws.wait_closed()
    assert conn.ws.close_code == 3005
    assert backend.refreshes[client] == 2
    first, second = backend.recorded("/refresh", lambda r: r.body["client"] == client)
    assert second.at - first.at >= 0.9  # RETRY_DELAY (whole seconds, rounded up) later
