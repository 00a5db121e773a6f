"""Engines under test: every implementation (memory, one Redis, Redis sharded over two
servers, a 3-master Redis Cluster, the same Cluster with sharded PUB/SUB; the last three
from ``.ci/services.sh``), with nodes of their own on one backend, for
``test_engines.py``, ``test_redis.py`` and ``test_redis_sharded.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.redis import (
    cluster_url,
    delete_prefix,
    redis_url,
    require_redis,
    shard_urls,
    unique_prefix,
)
from tests.support.server import timeout
from wirehub.brokers.base import Broker, PresenceManager
from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

TIMEOUT = timeout(10.0)

PARTITIONS = {"redis-cluster-sharded": 8}
"""``sharded_pub_sub_partitions`` of the backends that have it."""


class Recorder:
    """A BrokerEventHandler and ControlEventHandler that records, and can be waited on."""

    def __init__(self) -> None:
        self.publications: list[tuple[str, Publication, StreamPosition]] = []
        self.joins: list[tuple[str, ClientInfo]] = []
        self.leaves: list[tuple[str, ClientInfo]] = []
        self.gaps: list[list[str]] = []
        self.controls: list[bytes] = []
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

    def handle_gap(self, channels: Any) -> None:
        self.gaps.append(list(channels))
        self._changed.set()

    def handle_control(self, data: bytes) -> None:
        self.controls.append(data)
        self._changed.set()

    def of(self, channel: str) -> list[Publication]:
        return [p for c, p, _ in self.publications if c == channel]

    async def wait(self, predicate: Callable[[], bool], what: str = "condition") -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


@dataclass
class Peer:
    """One node's view of the backend: its broker, presence manager and controller."""

    broker: Broker
    presence: PresenceManager
    controller: Any = None
    recorder: Recorder = field(default_factory=Recorder)


class Backend:
    def __init__(self, name: str, address: str | list[str] | None) -> None:
        self.name = name
        self.address = address
        self.partitions = PARTITIONS.get(name, 0)
        self.prefix = unique_prefix()
        self.peers: list[Peer] = []

    @property
    def is_redis(self) -> bool:
        return self.address is not None

    async def peer(self, *, presence_ttl: float = 60.0) -> Peer:
        """A started node on this backend (memory: a separate, unconnected one)."""
        if self.address is None:
            from wirehub.brokers.memory import MemoryBroker, MemoryPresenceManager

            peer = Peer(MemoryBroker(), MemoryPresenceManager())
        else:
            from wirehub.brokers.redis.engine import create_engine

            engine = create_engine(
                self.address,
                prefix=self.prefix,
                presence_ttl=presence_ttl,
                sharded_pub_sub_partitions=self.partitions,
            )
            peer = Peer(engine.broker, engine.presence_manager, engine.controller)
        await peer.broker.start(peer.recorder)
        self.peers.append(peer)
        return peer

    async def close(self) -> None:
        for peer in self.peers:
            if peer.controller is not None:
                await peer.controller.close()
            await peer.broker.close()
        if self.address is not None:
            for url in [self.address] if isinstance(self.address, str) else self.address:
                await asyncio.to_thread(delete_prefix, url, self.prefix)


def address(name: str) -> str | list[str] | None:
    if name == "memory":
        return None
    if name == "redis":
        url = redis_url()
        require_redis(url)
        return url
    if name == "redis-sharded":
        return shard_urls()
    return cluster_url()
