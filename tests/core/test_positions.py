"""Periodic position checks (wirehub.core.positions; centrifugo-protocol.md §5.7).

A positioned subscriber whose stream advanced while the publications never reached
this node (a lost PUB/SUB message, simulated by ``LossyBroker.drop()``) is told at the
next check, with nothing else published: an unsubscribe push 2500 (client-side; the SDK
resubscribes and recovers) or a disconnect 3010 (server-side). One ``history(limit=0)``
per channel per round; a publication still on its way is not a loss.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.core.fakes import FakeClock, FakeTransport, FakeVerifier, connect, frame, make_config
from tests.support.brokers import LossyBroker
from wirehub import Node
from wirehub.core.client import Client
from wirehub.core.events import Credentials

pytestmark = pytest.mark.anyio

HISTORY = {"history_size": 10, "history_ttl": 300, "allow_subscribe_for_client": True}
NAMESPACES: list[dict[str, Any]] = [
    {"name": "rec", **HISTORY, "force_recovery": True},
    {"name": "pos", **HISTORY, "force_positioning": True},
    {"name": "h", **HISTORY},
    {
        "name": "brief",
        **HISTORY,
        "force_recovery": True,
        "history_meta_ttl": 300,
        "allow_history_for_client": True,
    },
]
UNSUBSCRIBE_2500 = {"code": 2500, "reason": "insufficient state"}


def make_node(
    *, delay: float = 0, clock: FakeClock | None = None, subs: tuple[str, ...] = ()
) -> tuple[Node, LossyBroker]:
    """A node whose checks run only when the test calls ``node.positions.check()``
    (``delay`` 0), or every ``delay`` seconds. Token ``"server"``: user 42 with
    server-side subscriptions ``subs``."""
    broker = LossyBroker(clock=clock or FakeClock())
    config = make_config(
        client={"channel_position_check_delay": delay},
        channel={"namespaces": NAMESPACES},
    )
    verifier = FakeVerifier(connections={"server": Credentials(user="42", channels=subs)})
    return Node(config, broker=broker, token_verifier=verifier), broker


async def subscribe(
    transport: FakeTransport, client: Client, channel: str, **request: Any
) -> dict[str, Any]:
    client.handle_frame(frame({"id": 2, "subscribe": {"channel": channel, **request}}))
    reply = await transport.next_message()
    assert "subscribe" in reply, reply
    result: dict[str, Any] = reply["subscribe"]
    return result


async def next_pub(transport: FakeTransport) -> Any:
    return (await transport.next_message())["push"]["pub"]["data"]


@pytest.mark.parametrize("channel", ["rec:1", "pos:1"])
async def test_a_lost_tail_unsubscribes_with_2500_and_the_resubscribe_recovers(
    channel: str,
) -> None:
    node, broker = make_node()
    async with node:
        client, transport = await connect(node)
        await subscribe(transport, client, channel)
        await node.publish(channel, 1)
        assert await next_pub(transport) == 1
        broker.drop()
        top = await node.publish(channel, 2)  # stored, never delivered here
        assert broker.dropped
        assert transport.unread == []

        assert await node.positions.check() == 1  # one round, nothing else published
        assert await transport.next_message() == {
            "push": {"channel": channel, "unsubscribe": UNSUBSCRIBE_2500}
        }
        assert channel not in client.channels
        assert not transport.closed

        # What the SDK does next: subscribe again from its last position.
        since = {"recover": True, "offset": 1, "epoch": top.epoch}
        result = await subscribe(transport, client, channel, **since)
        if channel == "rec:1":
            assert result["recovered"] is True
            assert result["publications"] == [{"data": 2, "offset": 2}]
        else:  # positioned without recovery: told, then starts again from the top
            assert result["offset"] == 2
        assert await node.positions.check() == 0
        await node.publish(channel, 3)
        assert await next_pub(transport) == 3


async def test_a_lost_tail_disconnects_a_server_side_subscriber_with_3010() -> None:
    node, broker = make_node(subs=("rec:1",))
    async with node:
        _client, transport = await connect(node, "server")
        broker.drop()
        await node.publish("rec:1", 1)
        assert await node.positions.check() == 1
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3010, "insufficient state")
        assert not node.hub.has_subscribers("rec:1")


async def test_one_read_per_channel_and_subscribers_in_step_are_left_alone() -> None:
    node, broker = make_node()
    async with node:
        connections = [await connect(node, f"user:{n}") for n in range(3)]
        for client, transport in connections:
            await subscribe(transport, client, "rec:1")
            await subscribe(transport, client, "h:1")  # plain: not checked
        await subscribe(connections[0][1], connections[0][0], "pos:1")
        await node.publish("rec:1", 1)
        broker.history_calls.clear()

        assert await node.positions.check() == 0
        assert sorted(channel for channel, _ in broker.history_calls) == ["pos:1", "rec:1"]
        assert {options.limit for _, options in broker.history_calls} == {0}
        for _, transport in connections:
            assert await next_pub(transport) == 1
            assert transport.unread == []
        assert node.positions.rounds == 1


async def test_a_publication_still_in_flight_is_not_a_loss() -> None:
    node, broker = make_node()
    async with node:
        client, transport = await connect(node)
        await subscribe(transport, client, "rec:1")
        broker.hold_deliveries()
        await node.publish("rec:1", 1)  # stored; on its way to this node
        # The check's first read sees offset 1 while the subscriber is at 0; the
        # publication arrives before its second read.
        broker.deliver_held_at_read(2)
        broker.history_calls.clear()
        assert await node.positions.check() == 0
        assert len(broker.history_calls) == 2
        assert await next_pub(transport) == 1
        assert "rec:1" in client.channels
        # Had it not arrived by then, it would have been a loss.
        broker.hold_deliveries()
        await node.publish("rec:1", 2)
        assert await node.positions.check() == 1
        assert (await transport.next_message())["push"]["unsubscribe"] == UNSUBSCRIBE_2500


async def test_a_new_epoch_unseen_here_is_a_loss_and_recovery_says_so() -> None:
    clock = FakeClock()
    node, broker = make_node(clock=clock)
    async with node:
        client, transport = await connect(node)
        old = await subscribe(transport, client, "brief:1")
        clock.advance(301)  # the position expired: history_meta_ttl is 300 s
        broker.drop()
        new = await node.publish("brief:1", 1)
        assert (new.offset, new.epoch != old["epoch"]) == (1, True)
        assert await node.positions.check() == 1
        push = (await transport.next_message())["push"]
        assert push["unsubscribe"] == UNSUBSCRIBE_2500
        since = {"recover": True, "offset": 0, "epoch": old["epoch"]}
        result = await subscribe(transport, client, "brief:1", **since)
        assert (result.get("recovered", False), result["epoch"]) == (False, new.epoch)


async def test_every_read_and_publish_carries_the_namespace_history_meta_ttl() -> None:
    node, broker = make_node()
    published: list[float] = []
    publish = broker.publish

    async def recording_publish(channel: str, publication: Any, options: Any) -> Any:
        published.append(options.history_meta_ttl)
        return await publish(channel, publication, options)

    broker.publish = recording_publish  # type: ignore[method-assign]
    async with node:
        client, transport = await connect(node)
        await subscribe(transport, client, "brief:1")  # the position read
        client.handle_frame(frame({"id": 3, "history": {"channel": "brief:1", "limit": 5}}))
        assert "history" in await transport.next_message()
        await node.history("brief:1")
        await node.positions.check()
        await node.publish("brief:1", 1)
        await node.publish("rec:1", 1)  # the channel-wide default
        reads = [options.history_meta_ttl for _, options in broker.history_calls]
        assert reads == [300, 300, 300, 300]
        assert published == [300, 30 * 24 * 3600]


async def test_a_failed_read_postpones_the_check(caplog: pytest.LogCaptureFixture) -> None:
    node, broker = make_node()
    async with node:
        client, transport = await connect(node)
        await subscribe(transport, client, "rec:1")
        broker.drop()
        await node.publish("rec:1", 1)
        broker.fail = RuntimeError("broker down")
        with caplog.at_level(logging.WARNING, "wirehub.node"):
            assert await node.positions.check() == 0
        assert caplog.messages == [
            "position check: 1 history read(s) failed, tried again next round; "
            "first: 'rec:1': RuntimeError('broker down')"
        ]
        assert transport.unread == []
        broker.fail = None
        assert await node.positions.check() == 1


async def test_the_node_checks_every_channel_position_check_delay() -> None:
    node, broker = make_node(delay=0.05)
    async with node:
        client, transport = await connect(node)
        await subscribe(transport, client, "rec:1")
        broker.drop()
        await node.publish("rec:1", 1)
        # Nobody calls check(): the node's own task does, within one interval.
        assert (await transport.next_message())["push"]["unsubscribe"] == UNSUBSCRIBE_2500
        task = node._positions_task
        assert task is not None
    assert task.done()
    assert node._positions_task is None


async def test_no_checks_when_the_delay_is_zero() -> None:
    node, _ = make_node(delay=0)
    async with node:
        assert node._positions_task is None
