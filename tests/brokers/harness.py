"""What the broker contract suite (``test_contract.py``) needs from an implementation.

Each implementation registers a factory in ``IMPLEMENTATIONS``; the ``harness`` fixture
(``conftest.py``) runs every contract test once per entry. A factory is an async
context manager yielding a started :class:`Harness` and closing everything at exit.

To add one (Redis, say): write ``redis_harness()`` next to ``memory_harness()``:
``advance`` sleeps for real (contract tests keep their TTLs to a few whole seconds so
that this stays cheap, and never assert that something still exists *just before* a
TTL), ``holds``/``holds_publications`` look at the keys (``EXISTS``), and the factory
skips, or fails under ``WIREHUB_STRICT=1``, when the service is not reachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from msgspec import Raw

from tests.core.fakes import FakeClock
from tests.support.server import timeout
from wirehub.brokers.base import Broker, PublishOptions
from wirehub.brokers.memory import MemoryBroker
from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

__all__ = ["IMPLEMENTATIONS", "Harness", "Recorder", "pub"]

WAIT = timeout(5.0)


class Recorder:
    """A BrokerEventHandler that records what it is handed; tests wait on counts."""

    def __init__(self) -> None:
        self.publications: list[tuple[str, Publication, StreamPosition]] = []
        self.joins: list[tuple[str, ClientInfo]] = []
        self.leaves: list[tuple[str, ClientInfo]] = []
        self._changed = asyncio.Event()

    def handle_publication(
        self, channel: str, publication: Publication, position: StreamPosition
    ) -> None:
        self.publications.append((channel, publication, position))
        self._changed.set()

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        self.joins.append((channel, info))
        self._changed.set()

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        self.leaves.append((channel, info))
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds (a remote broker delivers later)."""
        async with asyncio.timeout(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@dataclass
class Harness:
    broker: Broker
    recorder: Recorder
    advance: Callable[[float], Awaitable[None]]
    """Let this many seconds pass, and give the broker the chance to expire things."""
    holds: Callable[[str], Awaitable[bool]]
    """Whether anything of the channel's stream is still stored (position included),
    looked at without reading through the broker (a read is activity)."""
    holds_publications: Callable[[str], Awaitable[bool]]
    """Whether any publication of the channel is still stored, looked at likewise."""


def pub(n: int) -> Publication:
    return Publication(data=Raw(b"%d" % n))


async def publish_n(
    broker: Broker, channel: str, count: int, options: PublishOptions
) -> StreamPosition:
    position = StreamPosition()
    for n in range(1, count + 1):
        position = await broker.publish(channel, pub(n), options)
    return position


@asynccontextmanager
async def memory_harness() -> AsyncIterator[Harness]:
    clock = FakeClock(1000.0)
    broker = MemoryBroker(clock=clock)
    recorder = Recorder()

    async def advance(seconds: float) -> None:
        clock.advance(seconds)
        while broker.sweep():  # what the sweeper task does within a second
            pass

    async def holds(channel: str) -> bool:
        return channel in broker._streams

    async def holds_publications(channel: str) -> bool:
        stream = broker._streams.get(channel)
        return stream is not None and bool(stream.items)

    await broker.start(recorder)
    try:
        yield Harness(broker, recorder, advance, holds, holds_publications)
    finally:
        await broker.close()


IMPLEMENTATIONS: dict[str, Callable[[], AbstractAsyncContextManager[Harness]]] = {
    "memory": memory_harness,
}


def _register_redis() -> None:
    # One Redis only: the stream-lifecycle cases sleep through real TTLs there (~33 s);
    # sharded and Cluster setups run the engine suite of tests/brokers/test_engines.py.
    from tests.brokers.redis_harness import REDIS_IMPLEMENTATIONS

    IMPLEMENTATIONS["redis"] = REDIS_IMPLEMENTATIONS["redis"]


_register_redis()
