"""The broker interface: how publications travel between nodes, and where history lives.

A broker never sees clients, hubs or nodes. It reports what arrives through the
narrow :class:`BrokerEventHandler` callback interface, with typed messages.

Semantics every implementation keeps (one contract suite checks them all):

- ``publish`` hands the publication to every node subscribed to the channel, this one
  included, at most once each. When the channel keeps history, the offset is assigned
  atomically with the append and before any node sees the publication, so the
  publication a subscriber receives always carries its offset and the stream position.
- Publications of one channel reach a node in publish order.
- A stream has an epoch, regenerated whenever its metadata is created anew (a restart
  of the memory broker, a flushed Redis), so that old offsets are never taken for new
  ones. Offsets start at 1 and grow by exactly 1 per stored publication.
- ``subscribe``/``unsubscribe`` are about this node's interest in a channel, not about
  any single client; the core calls them for the first and last local subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

__all__ = [
    "Broker",
    "BrokerEventHandler",
    "HistoryOptions",
    "HistoryPage",
    "PresenceManager",
    "PresenceStats",
    "PublishOptions",
]


@dataclass(frozen=True, slots=True)
class PublishOptions:
    history_size: int = 0
    """Keep at most this many publications in the channel's stream; 0 keeps none."""
    history_ttl: float = 0.0
    """Seconds each kept publication lives."""


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    since: StreamPosition | None = None
    """Return publications after (or, reversed, before) this offset."""
    limit: int = 0
    """0: none, only the position; negative: all; positive: at most that many."""
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class HistoryPage:
    publications: list[Publication]
    position: StreamPosition
    """The top of the stream: its last offset and its epoch."""


class BrokerEventHandler(Protocol):
    """What a broker calls back. Implemented by the core; must not block."""

    def handle_publication(
        self, channel: str, publication: Publication, position: StreamPosition
    ) -> None:
        """``position`` is the stream's after this publication (offset 0 without history)."""
        ...

    def handle_join(self, channel: str, info: ClientInfo) -> None: ...

    def handle_leave(self, channel: str, info: ClientInfo) -> None: ...


class Broker(Protocol):
    async def start(self, handler: BrokerEventHandler) -> None:
        """Connect, and from now on report arrivals to ``handler``."""
        ...

    async def close(self) -> None:
        """Stop reporting and release connections. Idempotent."""
        ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving publications of ``channel`` on this node."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving publications of ``channel`` on this node."""
        ...

    async def publish(
        self, channel: str, publication: Publication, options: PublishOptions
    ) -> StreamPosition:
        """Publish; return the stream position (offset 0, epoch "" without history)."""
        ...

    async def publish_join(self, channel: str, info: ClientInfo) -> None: ...

    async def publish_leave(self, channel: str, info: ClientInfo) -> None: ...

    async def history(self, channel: str, options: HistoryOptions) -> HistoryPage:
        """Read the channel's stream. A channel never published to has offset 0 and a
        fresh epoch, kept from then on."""
        ...

    async def remove_history(self, channel: str) -> None:
        """Drop the stream's publications, keeping its offset and epoch."""
        ...


@dataclass(frozen=True, slots=True)
class PresenceStats:
    num_clients: int
    num_users: int


class PresenceManager(Protocol):
    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """Client id -> info of everyone present in ``channel``."""
        ...

    async def presence_stats(self, channel: str) -> PresenceStats: ...

    async def add_presence(self, channel: str, info: ClientInfo) -> None: ...

    async def remove_presence(self, channel: str, client_id: str) -> None: ...
