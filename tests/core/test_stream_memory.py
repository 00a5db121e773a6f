"""Channels and streams leave nothing behind (reliability.md A5, issue 7 hole 6).

A real node (memory broker and presence manager, anonymous connections of a lean
in-memory transport) churns through 100 000 unique channel names: 60 000 subscribed and
unsubscribed in frames of 100 commands (a third plain, a third positioned on a stream,
a third with presence and join/leave), 40 000 given one publication each with
``history_ttl`` 2 s. Nothing reads those streams again. The broker's clock is fake and
its sweeps are run by the test (what its sweeper task does each second), so the TTLs
pass at once.

Memory is measured against a baseline taken after a warm-up round (so that interpreter
caches and hash tables have their working size): the churn counts the interpreter's
allocated blocks (``sys.getallocatedblocks``: every small object, at no cost while the
churn runs; a channel left behind costs several), the 60 KB publications what
``tracemalloc`` counts. Before the fix, the churn left 848 bytes per channel name and
every 60 KB publication stayed until read (``bench/memory_streams.py``).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from tests.core.fakes import WAIT, FakeClock, make_config
from wirehub import Node, TransportInfo
from wirehub.brokers.memory import MemoryBroker
from wirehub.core.client import Client
from wirehub.errors import Disconnect
from wirehub.protocol.json_codec import JSON_CODEC

pytestmark = pytest.mark.anyio

ANYONE = {"allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True}
TTL = {"history_size": 10, "history_ttl": 2, "history_meta_ttl": 10}
CONFIG = {
    "client": {
        "allow_anonymous_connect_without_token": True,
        "channel_position_check_delay": 0,
        # Churn, not a flood: 10 connections send 100 000 names as fast as they can.
        "rate_limit": {"client_command": {"enabled": False}},
    },
    "channel": {
        "without_namespace": ANYONE,
        "namespaces": [
            {"name": "h", **ANYONE, **TTL, "force_recovery": True},
            {
                "name": "room",
                **ANYONE,
                "presence": True,
                "join_leave": True,
                "force_push_join_leave": True,
            },
        ],
    },
}
CONNECTIONS = 10
PER_FRAME = 100


class CountingTransport:
    """Counts what the core writes and keeps none of it (a recording transport would
    be the memory growth)."""

    info = TransportInfo("test", "json", "127.0.0.1:0", {})

    def __init__(self) -> None:
        self.messages = 0
        self.closed_with: Disconnect | None = None
        self._changed = asyncio.Event()

    def write_frame(self, data: bytes) -> None:
        self.messages += data.count(b"\n") + 1
        self._changed.set()

    def close(self, disconnect: Disconnect) -> None:
        self.closed_with = disconnect
        self._changed.set()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    async def wait_messages(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while self.messages < count:
                assert self.closed_with is None, self.closed_with
                self._changed.clear()
                await self._changed.wait()


class Churn:
    def __init__(self, node: Node, broker: MemoryBroker, clock: FakeClock) -> None:
        self.node = node
        self.broker = broker
        self.clock = clock
        self.connections: list[tuple[Client, CountingTransport]] = []
        self._ids = 1

    async def connect(self) -> None:
        for _ in range(CONNECTIONS):
            transport = CountingTransport()
            client = self.node.attach(transport, JSON_CODEC)
            client.handle_frame(b'{"id":1,"connect":{}}')
            await transport.wait_messages(1)
            self.connections.append((client, transport))

    async def subscribe_and_unsubscribe(self, names: list[str]) -> None:
        """Each connection takes ``PER_FRAME`` names at a time, subscribes to all of them
        in one frame, then unsubscribes from all of them in one frame."""
        batch = PER_FRAME * CONNECTIONS
        for start in range(0, len(names), batch):
            for index, (client, transport) in enumerate(self.connections):
                first = start + index * PER_FRAME
                mine = names[first : first + PER_FRAME]
                for method in ("subscribe", "unsubscribe"):
                    await self._send(client, transport, method, mine)

    async def _send(
        self, client: Client, transport: CountingTransport, method: str, names: list[str]
    ) -> None:
        if not names:
            return
        lines = []
        for name in names:
            self._ids += 1
            lines.append(f'{{"id":{self._ids},"{method}":{{"channel":"{name}"}}}}')
        expected = transport.messages + len(names)
        client.handle_frame("\n".join(lines).encode())
        await transport.wait_messages(expected)

    async def publish(self, names: list[str], data: Any = 1) -> None:
        for name in names:
            await self.node.publish(name, data)

    def let_pass(self, seconds: float) -> None:
        """Move the broker's clock and run the sweeps its task would run meanwhile."""
        self.clock.advance(seconds)
        while self.broker.sweep():
            pass


def names(prefix: str, count: int) -> list[str]:
    """Unique names: a third plain, a third positioned with history, a third presence."""
    kinds = ("", "h:", "room:")
    return [f"{kinds[n % 3]}{prefix}-{n}" for n in range(count)]


@asynccontextmanager
async def churning() -> AsyncIterator[Churn]:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    node = Node(make_config(**CONFIG), broker=broker)
    async with node:
        churn = Churn(node, broker, clock)
        await churn.connect()
        # Warm-up: one smaller round of everything the measured round does.
        await churn.subscribe_and_unsubscribe(names("warm", 3000))
        await churn.publish([f"h:warm-pub-{n}" for n in range(3000)])
        churn.let_pass(20)
        yield churn


@contextmanager
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def growth(base: int) -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - base


def blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


async def test_churn_of_100k_channel_names_returns_memory_to_baseline() -> None:
    async with churning() as churn:
        node, broker = churn.node, churn.broker
        base = blocks()
        await churn.subscribe_and_unsubscribe(names("churn", 60_000))
        assert node.hub.channels() == []
        # Only the positioned third has a stream: its position, read at subscribe.
        assert len(broker._streams) == 20_000
        assert await node.presence_manager.presence("room:churn-2") == {}
        await churn.publish([f"h:pub-{n}" for n in range(40_000)])
        assert blocks() - base > 60_000 * 4  # the measure sees the streams

        churn.let_pass(2.5)  # past history_ttl: the publications are gone, unread
        assert not any(stream.items for stream in broker._streams.values())
        churn.let_pass(10)  # past history_meta_ttl: the positions too
        assert broker._streams == {}
        # Under 0.05 blocks per name; one channel left behind would be several.
        assert blocks() - base < 5000
        assert all(transport.closed_with is None for _, transport in churn.connections)
        for client, _ in churn.connections:
            client.transport_closed()
        assert (node.num_clients, node.hub.num_users) == (0, 0)


async def test_big_publications_are_freed_after_history_ttl_without_a_read() -> None:
    async with churning() as churn:
        with traced():
            base = growth(0)
            for n in range(300):  # distinct 60 KB payloads, as clients would send
                await churn.node.publish(f"h:big-{n}", f'"{n:08}{"x" * 61_430}"'.encode())
            assert growth(base) > 300 * 60_000
            churn.let_pass(2.5)
            left = growth(base)
        assert left < 300 * 1000  # the positions remain (until history_meta_ttl), not 18 MB
