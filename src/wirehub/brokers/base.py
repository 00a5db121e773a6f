"""The broker interface: how publications travel between nodes.

A broker never sees clients, hubs or nodes. It reports what arrives through the
narrow :class:`BrokerEventHandler` callback interface, with typed messages.

Semantics every implementation keeps (one contract suite checks them all):

- ``publish`` hands the publication to every node subscribed to the channel, this one
  included, at most once each. When the channel keeps history, the offset is assigned
  atomically with the append and before any node sees the publication, so the
  publication a subscriber receives always carries its offset.
- Publications of one channel reach a node in publish order.
- ``subscribe``/``unsubscribe`` are about this node's interest in a channel, not about
  any single client; the core calls them for the first and last local subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from wirehub.protocol.types import Publication, StreamPosition

__all__ = ["Broker", "BrokerEventHandler", "PublishOptions"]


@dataclass(frozen=True, slots=True)
class PublishOptions:
    history_size: int = 0
    """Keep at most this many publications in the channel's stream; 0 keeps none."""
    history_ttl: float = 0.0
    """Seconds each kept publication lives."""


class BrokerEventHandler(Protocol):
    """What a broker calls back. Implemented by the core; must not block."""

    def handle_publication(self, channel: str, publication: Publication) -> None: ...


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
