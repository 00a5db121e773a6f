"""Server actions and surveys across nodes (``centrifugo-server-side.md`` §1.12-1.14),
and their targeting on one node (§1.13, §4.3).

Two Nodes in one process, joined by an in-test controller that delivers each message
on a later loop tick, as a PUB/SUB would; a broadcast comes back to its sender too,
which must drop it. Clients are FakeTransport connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.core.fakes import WAIT, FakeClock, FakeVerifier, connect, make_config
from wirehub import Disconnect, Node
from wirehub.brokers.base import ControlEventHandler
from wirehub.core import cluster as cluster_module
from wirehub.core.cluster import SurveyError

pytestmark = pytest.mark.anyio

NAMESPACES = [{"name": "news"}, {"name": "room", "allow_subscribe_for_client": True}]


class Bus:
    """A PUB/SUB between controllers: broadcast (sender included) or to one node."""

    def __init__(self) -> None:
        self.handlers: dict[str, ControlEventHandler] = {}
        self.messages: list[tuple[bytes, str]] = []
        self.fail: Exception | None = None
        self.muted: set[str] = set()
        """Nodes whose messages are lost (a node that died without a word)."""

    def controller(self) -> BusController:
        return BusController(self)


class BusController:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.node_id = ""

    async def start(self, handler: ControlEventHandler, node_id: str) -> None:
        self.node_id = node_id
        self.bus.handlers[node_id] = handler

    async def close(self) -> None:
        self.bus.handlers.pop(self.node_id, None)

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        if self.bus.fail is not None:
            raise self.bus.fail
        self.bus.messages.append((data, node_id))
        if self.node_id in self.bus.muted:
            return
        loop = asyncio.get_running_loop()
        for target, handler in list(self.bus.handlers.items()):
            if not node_id or node_id == target:
                loop.call_soon(handler.handle_control, data)


def make_node(bus: Bus, **config: Any) -> Node:
    return Node(
        make_config(
            client={"allow_anonymous_connect_without_token": True},
            channel={"namespaces": NAMESPACES},
            **config,
        ),
        token_verifier=FakeVerifier(),
        controller=bus.controller(),
    )


@asynccontextmanager
async def two_nodes(**config: Any) -> AsyncIterator[tuple[Bus, Node, Node]]:
    bus = Bus()
    first, second = make_node(bus, **config), make_node(bus, **config)
    async with first, second:
        await eventually(lambda: first.num_nodes == 2 and second.num_nodes == 2)
        yield bus, first, second


async def eventually(condition: Callable[[], bool], wait: float = WAIT) -> None:
    """Wait, one loop tick at a time, until ``condition()`` holds."""
    async with asyncio.timeout(wait):
        while not condition():  # noqa: ASYNC110 (the bus delivers on later ticks)
            await asyncio.sleep(0)


# Across nodes.


async def test_nodes_learn_of_each_other_and_info_lists_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each node's figures as of its last heartbeat (made frequent here)."""
    monkeypatch.setattr(cluster_module, "HEARTBEAT", 0.01)
    async with two_nodes() as (_, first, second):
        await connect(second, "user:1")
        await connect(first, "user:2")
        assert [n.num_clients for n in await first.info()] == [1, 0]  # its own: current
        await eventually(lambda: first.cluster.nodes()[1].num_clients == 1)  # a heartbeat
        nodes = await first.info()
        assert [n.uid for n in nodes] == [first.id, second.id]
        assert nodes[0].version == first.version


async def test_info_answers_at_once_while_a_dead_node_is_registered() -> None:
    """A node that died without a word stays listed until pruned: ``info`` reads the
    registry and never waits for it (a survey would, then fail)."""
    async with two_nodes() as (bus, first, second):
        first.cluster.survey_timeout = 3600
        bus.muted.add(second.id)
        async with asyncio.timeout(WAIT):
            assert [n.uid for n in await first.info()] == [first.id, second.id]


async def test_disconnect_reaches_the_users_connections_on_the_other_node() -> None:
    async with two_nodes() as (_, first, second):
        _, here = await connect(first, "user:7")
        _, there = await connect(second, "user:7")
        _, other_user = await connect(second, "user:8")
        assert await first.disconnect("7") == 1  # the local count
        assert (await here.wait_closed()).code == 3503
        closed = await there.wait_closed()
        assert (closed.code, closed.reason) == (3503, "force disconnect")
        assert not other_user.closed


async def test_send_reaches_the_users_connections_on_the_other_node() -> None:
    async with two_nodes() as (_, first, second):
        _, here = await connect(first, "user:7")
        _, there = await connect(second, "user:7")
        _, other_user = await connect(second, "user:8")
        _, by_id = await connect(second, "user:9")
        assert first.send({"n": 1}, user="7") == 1  # the local count; no waiting
        assert await here.next_message() == {"push": {"message": {"data": {"n": 1}}}}
        assert await there.next_message() == {"push": {"message": {"data": {"n": 1}}}}
        client_id = second.hub.user_clients("9")[0].id
        assert first.send("by id", client=client_id) == 0
        assert await by_id.next_message() == {"push": {"message": {"data": "by id"}}}
        assert not other_user.unread


async def test_a_failed_send_to_other_nodes_is_logged_and_delivered_here(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with two_nodes() as (bus, first, _):
        _, transport = await connect(first, "user:3")
        bus.fail = ConnectionError("redis is down")
        assert first.send([1], user="3") == 1
        assert await transport.next_message() == {"push": {"message": {"data": [1]}}}
        await eventually(lambda: "could not send SendCommand" in caplog.text)


async def test_subscribe_and_unsubscribe_on_the_other_node() -> None:
    async with two_nodes() as (_, first, second):
        client, transport = await connect(second, "user:5")
        assert await first.subscribe("news:1", "5") == 0
        assert await transport.next_message() == {"push": {"channel": "news:1", "subscribe": {}}}
        assert "news:1" in client.channels
        await first.unsubscribe("news:1", "5")
        push = await transport.next_message()
        assert push["push"]["unsubscribe"] == {"code": 2000, "reason": "server unsubscribe"}
        assert client.channels == {}


async def test_refresh_on_the_other_node() -> None:
    async with two_nodes() as (_, first, second):
        _, transport = await connect(second, "user:5")
        await first.refresh("5", expired=True)
        assert (await transport.wait_closed()).code == 3005


async def test_channels_sums_subscribers_of_every_node() -> None:
    async with two_nodes() as (_, first, second):
        for node in (first, second):
            client, _ = await connect(node, "user:1")
            await node.subscribe("room:a", client=client.id)
        client, _ = await connect(second, "user:2")
        await second.subscribe("room:b", client=client.id)
        await second.subscribe("news:x", client=client.id)
        assert await first.channels() == {"room:a": 2, "room:b": 1, "news:x": 1}
        assert await first.channels("room:*") == {"room:a": 2, "room:b": 1}


async def test_a_node_drops_its_own_broadcasts() -> None:
    """The bus hands every broadcast back to its sender: applied once, not twice."""
    async with two_nodes() as (bus, first, _):
        _, transport = await connect(first, "user:3")
        await first.subscribe("news:1", "3")
        await first.subscribe("news:2", "3")
        assert bus.messages  # the actions went out
        for _ in range(3):
            await asyncio.sleep(0)  # our own copies came back by now
        pushes = [m["push"]["channel"] for m in transport.unread]
        assert pushes == ["news:1", "news:2"]


async def test_a_failed_publish_applies_nothing() -> None:
    async with two_nodes() as (bus, first, _):
        _, transport = await connect(first, "user:3")
        bus.fail = ConnectionError("redis is down")
        with pytest.raises(ConnectionError):
            await first.disconnect("3")
        assert not transport.closed


async def test_survey_fails_when_a_node_does_not_answer() -> None:
    async with two_nodes() as (bus, first, second):
        first.cluster.survey_timeout = 0.05
        bus.muted.add(second.id)
        with pytest.raises(SurveyError, match=second.id):
            await first.channels()


async def test_a_node_that_shuts_down_is_forgotten_at_once() -> None:
    bus = Bus()
    first, second = make_node(bus), make_node(bus)
    async with first:
        await second.start()
        await eventually(lambda: first.num_nodes == 2)
        await second.close()
        await eventually(lambda: first.num_nodes == 1)
        assert [n.uid for n in await first.info()] == [first.id]


async def test_stale_nodes_are_pruned() -> None:
    clock = FakeClock()
    async with two_nodes() as (_, first, second):
        first.cluster._clock = clock  # from now on, time moves only when told
        first.cluster._registry[second.id] = (first.cluster._registry[second.id][0], clock())
        clock.advance(cluster_module.STALE_AFTER - 1)
        first.cluster.prune()
        assert first.num_nodes == 2
        clock.advance(2)
        first.cluster.prune()
        assert first.num_nodes == 1


async def test_malformed_control_messages_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    async with two_nodes() as (_, first, _second):
        for data in (b"\xff", b'{"type":"disconnect","uid":"x"}', b'{"type":"nope","uid":"x"}'):
            first.handle_control(data)
        assert caplog.text.count("dropped a malformed control message") == 3
        assert first.num_nodes == 2


# Targeting on one node.


@asynccontextmanager
async def one_node() -> AsyncIterator[Node]:
    async with make_node(Bus()) as node:
        yield node


async def test_an_empty_user_targets_anonymous_connections_only() -> None:
    async with one_node() as node:
        _, anonymous = await connect(node, "")
        _, named = await connect(node, "user:9")
        assert await node.disconnect("") == 1
        assert (await anonymous.wait_closed()).code == 3503
        assert not named.closed


async def test_client_narrows_within_the_user_and_whitelist_spares() -> None:
    async with one_node() as node:
        a, a_transport = await connect(node, "user:4")
        b, b_transport = await connect(node, "user:4")
        c, c_transport = await connect(node, "user:4")
        assert await node.disconnect("5", client=a.id) == 0  # another user's client id
        assert await node.disconnect("4", client=a.id) == 1
        assert (await a_transport.wait_closed()).code == 3503
        custom = Disconnect(4000, "custom")
        assert await node.disconnect("4", whitelist=[b.id], disconnect=custom) == 1
        closed = await c_transport.wait_closed()
        assert (closed.code, closed.reason) == (4000, "custom")
        assert not b_transport.closed
        assert await node.disconnect("4", session="no-such-session") == 0
        assert not b_transport.closed
        del c


async def test_unsubscribe_from_every_channel() -> None:
    async with one_node() as node:
        client, transport = await connect(node, "user:4")
        await node.subscribe("news:1", "4")
        await node.subscribe("room:1", "4")
        assert await node.unsubscribe("", "4") == 2
        assert client.channels == {}

        def unsubscribed() -> list[str]:
            pushes = [m.get("push", {}) for m in transport.messages]
            return sorted(p["channel"] for p in pushes if "unsubscribe" in p)

        await transport.wait_for(lambda: len(unsubscribed()) == 2)
        assert unsubscribed() == ["news:1", "room:1"]


async def test_refresh_moves_or_ends_the_expiry() -> None:
    clock = FakeClock()
    async with one_node() as node:
        node.clock = clock
        _, transport = await connect(node, "user:4:exp:1700000100")
        assert await node.refresh("4", expire_at=int(clock()) + 600) == 1
        assert await transport.next_message() == {
            "push": {"refresh": {"expires": True, "ttl": 600}}
        }
        await node.refresh("4")  # no expire_at: never expires
        assert await transport.next_message() == {"push": {"refresh": {}}}
        await node.refresh("4", expire_at=int(clock()) - 1)  # in the past: closed
        assert (await transport.wait_closed()).code == 3005


async def test_server_subscribe_with_info_data_and_recovery() -> None:
    bus = Bus()
    node = Node(
        make_config(
            channel={
                "namespaces": [{"name": "h", "history_size": 10, "history_ttl": 60}],
            },
        ),
        token_verifier=FakeVerifier(),
        controller=bus.controller(),
    )
    async with node:
        first = await node.publish("h:1", {"n": 1})
        await node.publish("h:1", {"n": 2})
        client, transport = await connect(node, "user:4")
        await node.subscribe(
            "h:1",
            "4",
            info={"role": "reader"},
            data={"welcome": True},
            override={"force_recovery": True},
            recover_since=first,
        )
        push = (await transport.next_message())["push"]
        assert push["subscribe"]["data"] == {"welcome": True}
        assert push["subscribe"]["recoverable"] is True
        recovered = await transport.next_message()
        assert recovered == {"push": {"channel": "h:1", "pub": {"data": {"n": 2}, "offset": 2}}}
        info = client.channel_info("h:1", client.channels["h:1"]).chan_info
        assert bytes(info) == b'{"role":"reader"}'


async def test_actions_need_a_user_or_a_client() -> None:
    async with one_node() as node:
        for call in (node.disconnect(), node.refresh(), node.unsubscribe("news:1")):
            with pytest.raises(TypeError, match="user="):
                await call


async def test_the_memory_controller_serves_a_lone_node(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    node = Node(make_config(channel={"namespaces": NAMESPACES}), token_verifier=FakeVerifier())
    async with node:
        client, transport = await connect(node, "user:1")
        await node.subscribe("news:1", client=client.id)
        assert await node.channels() == {"news:1": 1}
        assert [n.uid for n in await node.info()] == [node.id]
        await node.disconnect("1")
        assert (await transport.wait_closed()).code == 3503
    assert caplog.text == ""
