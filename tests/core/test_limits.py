"""Limits on what one connection may make the node do (reliability.md P6, A3, A4, A9;
centrifugo-server-side.md §7.3-7.4): command rate limits (111, then 3013), backpressure
on a frame's commands (a reader is never closed for its own replies; fan-out yields so
subscribers are written), fairness between channels, connections per user (3504), and
expiry times clamped to the protocol's ``ttl`` range. A Node with a MemoryBroker and
FakeTransport clients; no test waits on wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from centrifuge.protocol import client_pb2 as pb

from tests.core.fakes import (
    FakeClock,
    FakeTransport,
    FakeVerifier,
    ProtobufTransport,
    connect,
    frame,
    make_config,
    pb_frame,
)
from tests.support.server import timeout
from wirehub import Node
from wirehub.core.client import Client
from wirehub.core.events import (
    ConnectingEvent,
    ConnectingReply,
    Credentials,
    RefreshEvent,
    RefreshReply,
    SubscriptionCredentials,
)
from wirehub.core.expiry import MAX_TIMER_DELAY, MAX_TTL
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC

pytestmark = pytest.mark.anyio

NAMESPACES: list[dict[str, Any]] = [
    {
        "name": "chat",
        "history_size": 300,
        "history_ttl": 300,
        "allow_subscribe_for_client": True,
        "allow_subscribe_for_anonymous": True,
        "allow_publish_for_client": True,
        "allow_publish_for_anonymous": True,
        "allow_history_for_client": True,
        "allow_history_for_anonymous": True,
    },
    {"name": "private", "allow_publish_for_subscriber": True},
]

# Buckets so large in time that no test depends on the clock: nothing refills.
HOUR = 3600.0
NO_LIMITS = {"client_command": {"enabled": False}}


def make_node(
    rate_limit: dict[str, Any] | None = None,
    verifier: FakeVerifier | None = None,
    clock: FakeClock | None = None,
    **client: Any,
) -> Node:
    settings: dict[str, Any] = {"allow_anonymous_connect_without_token": True, **client}
    if rate_limit is not None:
        settings["rate_limit"] = rate_limit
    config = make_config(client=settings, channel={"namespaces": NAMESPACES})
    return Node(config, token_verifier=verifier or FakeVerifier(), clock=clock or FakeClock())


def bucket(rate: int, interval: float = HOUR) -> dict[str, Any]:
    return {"enabled": True, "buckets": [{"interval": interval, "rate": rate}]}


def limits(refused: int = 1000, **commands: Any) -> dict[str, Any]:
    """A client_command section: the given buckets, ``total`` off unless given."""
    section = {"total": {"enabled": False}, **commands}
    section["refused"] = {"interval": HOUR, "rate": refused}
    return {"client_command": section}


def publishes(count: int, channel: str = "chat:1", start: int = 10, size: int = 0) -> bytes:
    pad = "x" * size
    return frame(
        *(
            {"publish": {"channel": channel, "data": {"n": n, "p": pad}}, "id": start + n}
            for n in range(count)
        )
    )


async def subscriber(node: Node, channel: str = "chat:1") -> tuple[Client, FakeTransport]:
    client, transport = await connect(node, "")
    client.handle_frame(frame({"subscribe": {"channel": channel}, "id": 2}))
    assert "subscribe" in await transport.next_message()
    return client, transport


def received(transport: FakeTransport, channel: str = "chat:1") -> list[Any]:
    return [
        m["push"]["pub"]["data"]["n"]
        for m in transport.messages
        if m.get("push", {}).get("channel") == channel and "pub" in m["push"]
    ]


def replies(transport: FakeTransport) -> dict[int, dict[str, Any]]:
    return {m["id"]: m for m in transport.messages if m.get("id")}


def answered(transport: FakeTransport) -> int:
    """How many replies were written, counted without parsing (waits re-check often)."""
    return sum(frame.count(b'{"id":') for frame in transport.frames)


LONG = timeout(20.0)
"""For waits on thousands of commands, on a loaded machine."""


# Command rate limits (P6).


async def test_total_bucket_refuses_with_111_and_the_connection_stays() -> None:
    async with make_node(limits(total=bucket(5))) as node:
        client, transport = await connect(node, "")  # the connect takes 1 of 5 tokens
        client.handle_frame(publishes(6))
        await transport.wait_for(lambda: answered(transport) == 7, LONG)
        answers = replies(transport)
        assert [answers[10 + n].get("publish") for n in range(4)] == [{}] * 4
        for n in (4, 5):
            assert answers[10 + n]["error"] == {
                "code": 111,
                "message": "too many requests",
                "temporary": True,
            }
        assert not transport.closed
        assert client._rate is not None
        assert len(client._rate) == 2  # the total bucket and the refusals: 2 floats


async def test_persistently_over_the_limit_is_3013() -> None:
    """Refusals beyond ``refused`` close the connection; what came before was answered."""
    async with make_node(limits(total=bucket(3), refused=4)) as node:
        client, transport = await connect(node, "")
        client.handle_frame(publishes(100))
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3013, "too many requests")
        answers = replies(transport)
        assert [n for n in range(100) if "publish" in answers.get(10 + n, {})] == [0, 1]
        assert [n for n in range(100) if "error" in answers.get(10 + n, {})] == [2, 3, 4, 5]
        assert node.num_clients == 0


async def test_own_bucket_replaces_default_and_total_still_applies() -> None:
    rate_limit = limits(total=bucket(6), default=bucket(100), publish=bucket(2))
    async with make_node(rate_limit) as node:
        client, transport = await connect(node, "")
        client.handle_frame(
            publishes(3) + b"\n" + frame({"history": {"channel": "chat:1"}, "id": 50})
        )
        await transport.wait_for(lambda: 50 in replies(transport))
        answers = replies(transport)
        assert "publish" in answers[10]
        assert "publish" in answers[11]
        assert answers[12]["error"]["code"] == 111  # publish's own bucket: 2
        assert "history" in answers[50]  # default: plenty
        # Refused commands took no token: connect, 2 publishes, 1 history so far.
        client.handle_frame(
            frame(*({"history": {"channel": "chat:1"}, "id": i} for i in (51, 52, 53)))
        )
        await transport.wait_for(lambda: 53 in replies(transport))
        assert "history" in replies(transport)[52]
        assert replies(transport)[53]["error"]["code"] == 111  # total: 6


async def test_rpc_method_overrides() -> None:
    rpc = {**bucket(50), "method_overrides": [{"method": "slow", **bucket(1)}]}
    async with make_node(limits(rpc=rpc)) as node:

        @node.on_rpc
        async def echo(event: Any) -> None:
            return None

        client, transport = await connect(node, "")
        calls = [("slow", 1), ("slow", 2), ("fast", 3), ("fast", 4)]
        client.handle_frame(frame(*({"rpc": {"method": m}, "id": i} for m, i in calls)))
        await transport.wait_for(lambda: 4 in replies(transport))
        answers = replies(transport)
        assert "rpc" in answers[1]
        assert answers[2]["error"]["code"] == 111
        assert "rpc" in answers[3]
        assert "rpc" in answers[4]


async def test_commands_without_id_over_the_limit_are_dropped_and_counted() -> None:
    messages: list[Any] = []
    async with make_node(limits(send=bucket(2), refused=3)) as node:

        @node.on_message
        async def got(event: Any) -> None:
            messages.append(json.loads(event.data))

        client, transport = await connect(node, "")
        client.handle_frame(frame(*({"send": {"data": n}} for n in range(10))))
        closed = await transport.wait_closed()
        assert closed.code == 3013
        assert messages == [0, 1]
        assert not any("error" in m for m in transport.messages)  # nothing to answer


async def test_rate_limits_off() -> None:
    async with make_node(NO_LIMITS) as node:
        assert not node.limiter.enabled
        client, transport = await connect(node, "")
        client.handle_frame(publishes(2000))
        await transport.wait_for(lambda: answered(transport) == 2001, LONG)
        assert client._rate is None


async def test_idle_connection_holds_no_buckets() -> None:
    async with make_node() as node:
        client = node.attach(FakeTransport(), PROTOBUF_CODEC)
        assert client._rate is None
        client.disconnect(client_disconnect())


def client_disconnect() -> Any:
    from wirehub.errors import DISCONNECT_SHUTDOWN

    return DISCONNECT_SHUTDOWN


# Backpressure on a frame's commands (A3).


async def test_pipelined_publishes_never_close_subscribers_that_read() -> None:
    """2605 publishes in one frame, 50 subscribers whose writes succeed: before, all
    were queued in one tick and every subscriber closed with 3008 (312 KB queued past
    queue_max_size); now the publisher yields as the pushes pile up."""
    async with make_node(NO_LIMITS, queue_max_size=64 * 1024) as node:
        subscribers = [await subscriber(node) for _ in range(50)]
        publisher, publisher_transport = await connect(node, "")
        publisher.handle_frame(publishes(2605))
        await publisher_transport.wait_for(lambda: answered(publisher_transport) == 2606, LONG)
        await asyncio.sleep(0)  # the last tick's flush
        for _, transport in subscribers:
            assert not transport.closed
            assert received(transport) == list(range(2605))


async def test_pipelined_history_waits_for_its_own_replies_to_be_written() -> None:
    """Ten history calls whose replies together exceed queue_max_size: the command loop
    waits while the connection's socket is full, and the reader gets all ten."""
    async with make_node(NO_LIMITS, queue_max_size=100_000) as node:
        for n in range(10):
            await node.publish("chat:1", {"n": n, "p": "x" * 7000})  # ~70 KB per reply
        client, transport = await connect(node, "")
        client.pause_writing()  # the socket's buffer is full
        calls = [{"history": {"channel": "chat:1", "limit": -1}, "id": 20 + i} for i in range(10)]
        client.handle_frame(frame(*calls))
        for _ in range(3):
            await asyncio.sleep(0)
        assert transport.frames[1:] == []  # nothing written while the socket is full
        assert len(client._queue) == 1  # one reply queued, then the loop waited
        client.resume_writing()  # the reader takes what comes
        await transport.wait_for(lambda: answered(transport) == 11, LONG)
        assert max(len(f) for f in transport.frames) < 100_000  # one reply per write
        answers = replies(transport)
        assert all(len(answers[20 + i]["history"]["publications"]) == 10 for i in range(10))
        assert not transport.closed


async def test_reply_larger_than_the_queue_is_error_106() -> None:
    async with make_node(NO_LIMITS, queue_max_size=20_000) as node:
        for n in range(5):
            await node.publish("chat:1", {"n": n, "p": "x" * 5000})
        client, transport = await connect(node, "")
        client.handle_frame(frame({"history": {"channel": "chat:1", "limit": -1}, "id": 5}))
        reply = await transport.next_message()
        assert reply == {"id": 5, "error": {"code": 106, "message": "limit exceeded"}}
        client.handle_frame(frame({"history": {"channel": "chat:1", "limit": 2}, "id": 6}))
        assert len((await transport.next_message())["history"]["publications"]) == 2


async def test_a_subscriber_that_does_not_read_still_gets_3008() -> None:
    async with make_node(NO_LIMITS, queue_max_size=20_000) as node:
        slow, slow_transport = await subscriber(node)
        _, reader = await subscriber(node)
        slow.pause_writing()  # never reads again
        publisher, publisher_transport = await connect(node, "")
        publisher.handle_frame(publishes(500))
        closed = await slow_transport.wait_closed()
        assert (closed.code, closed.reason) == (3008, "slow")
        await publisher_transport.wait_for(lambda: answered(publisher_transport) == 501, LONG)
        await asyncio.sleep(0)
        assert received(reader) == list(range(500))
        assert not reader.closed


# Fairness (A4): a flood on one channel does not starve another's subscribers.


async def test_canary_on_another_channel_is_served_during_a_flood() -> None:
    """The flood's publisher yields once a quarter of queue_max_size has been fanned
    out, so the canary's publication goes out while the flood is still running."""
    async with make_node(NO_LIMITS, queue_max_size=40_000) as node:
        flooded = [await subscriber(node, "chat:x") for _ in range(5)]
        _, canary = await subscriber(node, "chat:y")
        flooder, flooder_transport = await connect(node, "")
        other, _ = await connect(node, "")
        flooder.handle_frame(publishes(3000, channel="chat:x", size=200))
        other.handle_frame(frame({"publish": {"channel": "chat:y", "data": {"n": 0}}, "id": 9}))
        await canary.wait_for(lambda: received(canary, "chat:y") == [0])
        assert answered(flooder_transport) < 3001  # the flood was not over
        await flooder_transport.wait_for(lambda: answered(flooder_transport) == 3001, LONG)
        await asyncio.sleep(0)
        for _, transport in flooded:
            assert received(transport, "chat:x") == list(range(3000))


async def test_a_burst_yields_but_its_subscribers_still_get_one_write() -> None:
    """Yields for fairness flush only short queues: the burst's 200 subscribers get its
    200 publications in one frame each (as without yields), while a canary on another
    channel, published to by another connection, is written during the burst."""
    async with make_node(NO_LIMITS) as node:
        flooded = [await subscriber(node, "chat:x") for _ in range(200)]
        _, canary = await subscriber(node, "chat:y")
        before = [len(t.frames) for _, t in flooded]
        flooder, flooder_transport = await connect(node, "")
        other, _ = await connect(node, "")
        flooder.handle_frame(publishes(200, channel="chat:x"))
        other.handle_frame(frame({"publish": {"channel": "chat:y", "data": {"n": 0}}, "id": 9}))
        await canary.wait_for(lambda: received(canary, "chat:y") == [0])
        assert answered(flooder_transport) < 201  # still publishing
        await flooder_transport.wait_for(lambda: answered(flooder_transport) == 201, LONG)
        await asyncio.sleep(0)
        for (_, transport), count in zip(flooded, before, strict=True):
            assert len(transport.frames) == count + 1
            assert received(transport, "chat:x") == list(range(200))


# Connections per user (client.user_connection_limit).


async def test_user_connection_limit_is_3504_and_anonymous_users_are_not_counted() -> None:
    async with make_node(user_connection_limit=2) as node:
        first, _ = await connect(node, "user:42")
        await connect(node, "user:42")
        transport = FakeTransport()
        third = node.attach(transport, first.codec)
        third.handle_frame(frame({"connect": {"token": "user:42"}, "id": 1}))
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3504, "connection limit")
        assert not closed.reconnect
        await connect(node, "user:7")  # another user
        for _ in range(5):
            await connect(node, "")  # anonymous: unlimited
        first.disconnect(client_disconnect())
        await connect(node, "user:42")  # a place is free again
        assert node.hub.user_count("42") == 2


# Expiry times clamped to the protocol's ttl (A9).


@pytest.mark.parametrize(
    ("expire_at", "ttl"),
    [(10**30, MAX_TTL), (10**400, MAX_TTL), (1e30, MAX_TTL), (1e308, MAX_TTL), (-5, 0)],
)
async def test_connect_ttl_is_clamped(expire_at: float, ttl: int) -> None:
    credentials = Credentials(user="1", expire_at=expire_at)  # type: ignore[arg-type]
    verifier = FakeVerifier(connections={"t": credentials})
    async with make_node(verifier=verifier) as node:
        client, transport = await connect(node, "t")
        result = transport.messages[0]["connect"]
        assert (result["expires"], result.get("ttl", 0)) == (True, ttl)
        assert client._expire_timer is not None
        assert client._expire_timer.when() - node.loop.time() <= MAX_TIMER_DELAY
        _, pb_transport = await connect(node, "t", codec=PROTOBUF_CODEC)
        assert pb_transport.replies[0].connect.ttl == ttl  # a valid uint32


@pytest.mark.parametrize("expire_at", [math.nan, math.inf, "soon"])
async def test_non_numeric_expiry_from_on_connecting_is_error_100(expire_at: Any) -> None:
    async with make_node() as node:

        @node.on_connecting
        async def auth(event: ConnectingEvent) -> ConnectingReply:
            return ConnectingReply(credentials=Credentials(user="1", expire_at=expire_at))

        transport = ProtobufTransport()
        client = node.attach(transport, PROTOBUF_CODEC)
        client.handle_frame(pb_frame(pb.Command(id=1, connect=pb.ConnectRequest())))
        reply = await transport.next_reply()
        assert (reply.error.code, reply.error.temporary) == (100, True)
        assert not transport.closed


async def test_refresh_ttl_is_clamped_and_bad_values_are_error_100() -> None:
    answers = iter([10**30, -1, math.nan])
    async with make_node() as node:

        @node.on_refresh
        async def refresh(event: RefreshEvent) -> RefreshReply:
            return RefreshReply(expire_at=next(answers))

        client, transport = await connect(node, "user:1")
        for command_id in (2, 3, 4):
            client.handle_frame(frame({"refresh": {"token": "x"}, "id": command_id}))
        await transport.wait_for(lambda: 4 in replies(transport))
        answers_by_id = replies(transport)
        assert answers_by_id[2]["refresh"]["ttl"] == MAX_TTL
        assert answers_by_id[3]["refresh"]["expires"] is True
        assert "ttl" not in answers_by_id[3]["refresh"]  # 0
        assert answers_by_id[4]["error"]["code"] == 100
        assert not transport.closed


async def test_subscription_token_ttl_is_clamped() -> None:
    token = SubscriptionCredentials(user="1", channel="$private:1", expire_at=10**30)
    verifier = FakeVerifier(subscriptions={"sub": token})
    async with make_node(verifier=verifier) as node:
        client, transport = await connect(node, "user:1")
        request = {"channel": "$private:1", "token": "sub"}
        client.handle_frame(frame({"subscribe": request, "id": 2}))
        result = (await transport.next_message())["subscribe"]
        assert (result["expires"], result["ttl"]) == (True, MAX_TTL)
        client.handle_frame(frame({"sub_refresh": request, "id": 3}))
        result = (await transport.next_message())["sub_refresh"]
        assert (result["expires"], result["ttl"]) == (True, MAX_TTL)
        context = client.channels["$private:1"]
        assert context.expire_timer is not None
        assert context.expire_timer.when() - node.loop.time() <= MAX_TIMER_DELAY
