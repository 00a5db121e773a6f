"""Fan-out (DESIGN.md, "The hot path"): encode once, one write per connection per tick,
and a slow or broken connection never holds up the others."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from tests.core.fakes import FakeTransport, frame, make_config
from wirehub import Node
from wirehub.core.client import Client, ClientState
from wirehub.protocol.json_codec import JSON_CODEC
from wirehub.protocol.types import Command, Reply

pytestmark = pytest.mark.anyio

CHANNEL = "news:1"


class CountingCodec:
    """JSON_CODEC, recording every reply it encodes."""

    binary = False
    ping = JSON_CODEC.ping

    def __init__(self, name: str = "json") -> None:
        self.name = name
        self.encoded: list[Reply] = []

    def decode_commands(self, frame: bytes) -> list[Command]:
        return JSON_CODEC.decode_commands(frame)

    def encode_reply(self, reply: Reply) -> bytes:
        self.encoded.append(reply)
        return JSON_CODEC.encode_reply(reply)

    def join(self, messages: list[bytes]) -> bytes:
        return JSON_CODEC.join(messages)

    @property
    def pushes(self) -> int:
        return sum(1 for reply in self.encoded if reply.push is not None)


def make_node(**client: Any) -> Node:
    return Node(
        make_config(
            client={"allow_anonymous_connect_without_token": True, **client},
            channel={
                "namespaces": [
                    {
                        "name": "news",
                        "allow_subscribe_for_client": True,
                        "allow_subscribe_for_anonymous": True,
                    }
                ]
            },
        ),
        token_verifier=None,
    )


async def subscribe_many(
    node: Node, count: int, codec: Any = JSON_CODEC
) -> list[tuple[Client, FakeTransport]]:
    """``count`` anonymous connections subscribed to CHANNEL, their replies read."""
    subscribers = []
    for _ in range(count):
        transport = FakeTransport()
        client = node.attach(transport, codec)
        client.handle_frame(
            frame({"connect": {}, "id": 1}, {"subscribe": {"channel": CHANNEL}, "id": 2})
        )
        subscribers.append((client, transport))
    for _, transport in subscribers:
        assert [await transport.next_message() for _ in range(2)][1] == {"id": 2, "subscribe": {}}
    return subscribers


def pushes(transport: FakeTransport, data: bytes) -> list[Any]:
    """The publication payloads in one frame."""
    return [json.loads(line)["push"]["pub"]["data"] for line in data.split(b"\n")]


async def test_one_publication_to_1000_subscribers() -> None:
    """Encoded once; every subscriber gets exactly one frame, written at the end of the tick."""
    codec = CountingCodec()
    async with make_node() as node:
        subscribers = await subscribe_many(node, 1000, codec)
        before = [len(t.frames) for _, t in subscribers]
        assert codec.pushes == 0

        await node.publish(CHANNEL, {"title": "x"})
        assert codec.pushes == 1
        assert [len(t.frames) for _, t in subscribers] == before  # queued, not yet written

        await asyncio.sleep(0)  # exactly one loop tick
        expected = b'{"push":{"channel":"news:1","pub":{"data":{"title":"x"}}}}'
        for (_, transport), count in zip(subscribers, before, strict=True):
            assert len(transport.frames) == count + 1
            assert transport.frames[-1] == expected
        assert codec.pushes == 1


async def test_ten_publications_in_one_tick_are_one_frame() -> None:
    """Ten publications in one tick: one frame per subscriber, ten newline-joined messages."""
    codec = CountingCodec()
    async with make_node() as node:
        subscribers = await subscribe_many(node, 1000, codec)
        before = [len(t.frames) for _, t in subscribers]
        for n in range(10):
            await node.publish(CHANNEL, {"n": n})
        await asyncio.sleep(0)
        for (_, transport), count in zip(subscribers, before, strict=True):
            assert len(transport.frames) == count + 1
            assert pushes(transport, transport.frames[-1]) == [{"n": n} for n in range(10)]
        assert codec.pushes == 10


async def test_encoded_once_per_codec() -> None:
    json_a, json_b = CountingCodec("json"), CountingCodec("other")
    async with make_node() as node:
        group_a = await subscribe_many(node, 5, json_a)
        group_b = await subscribe_many(node, 5, json_b)
        await node.publish(CHANNEL, "hi")
        await asyncio.sleep(0)
        assert (json_a.pushes, json_b.pushes) == (1, 1)
        for _, transport in group_a + group_b:
            assert pushes(transport, transport.frames[-1]) == ["hi"]


async def test_slow_subscriber_is_closed_3008_and_others_keep_receiving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = "x" * 80  # each push is about 130 bytes
    async with make_node(queue_max_size=1000) as node:
        subscribers = await subscribe_many(node, 20)
        slow, slow_transport = subscribers[0]
        others = subscribers[1:]
        slow.pause_writing()  # its socket buffer is full
        slow_frames = len(slow_transport.frames)
        before = [len(t.frames) for _, t in others]

        with caplog.at_level(logging.WARNING):
            for n in range(20):
                await node.publish(CHANNEL, {"n": n, "pad": payload})
                await asyncio.sleep(0)
            closed = await slow_transport.wait_closed()
            assert (closed.code, closed.reason) == (3008, "slow")
            assert slow.state is ClientState.CLOSED
            # Nothing was written to it: its queue was dropped, not flushed, on close.
            assert len(slow_transport.frames) == slow_frames
            assert slow_transport.writes_after_close == 0

            # The publication loop goes on for the others, without errors.
            for n in range(20, 25):
                await node.publish(CHANNEL, {"n": n, "pad": payload})
            await asyncio.sleep(0)
        for (_, transport), count in zip(others, before, strict=True):
            got = [p["n"] for f in transport.frames[count:] for p in pushes(transport, f)]
            assert got == list(range(25))
        assert node.num_clients == len(others)
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_paused_subscriber_gets_its_queue_when_resumed() -> None:
    async with make_node(queue_max_size=10_000) as node:
        ((client, transport),) = await subscribe_many(node, 1)
        client.pause_writing()
        before = len(transport.frames)
        for n in range(3):
            await node.publish(CHANNEL, n)
        await asyncio.sleep(0)
        assert len(transport.frames) == before
        client.resume_writing()
        await asyncio.sleep(0)
        assert len(transport.frames) == before + 1
        assert pushes(transport, transport.frames[-1]) == [0, 1, 2]


async def test_write_error_closes_3009_and_others_keep_receiving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A transport whose write raises is closed 3009; the tick's other writes still happen."""
    async with make_node() as node:
        subscribers = await subscribe_many(node, 10)
        broken_client, broken = subscribers[4]
        broken.write_error = ConnectionResetError("connection reset by peer")
        others = [t for _, t in subscribers if t is not broken]
        before = [len(t.frames) for t in others]
        with caplog.at_level(logging.WARNING, logger="wirehub"):
            await node.publish(CHANNEL, 1)
            await asyncio.sleep(0)
        closed = await broken.wait_closed()
        assert (closed.code, closed.reason) == (3009, "write error")
        assert broken_client.state is ClientState.CLOSED
        assert any(broken_client.id in r.getMessage() for r in caplog.records)
        for transport, count in zip(others, before, strict=True):
            assert len(transport.frames) == count + 1
        await node.publish(CHANNEL, 2)
        await asyncio.sleep(0)
        for transport, count in zip(others, before, strict=True):
            assert pushes(transport, transport.frames[-1]) == [2]
            assert len(transport.frames) == count + 2
