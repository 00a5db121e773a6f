"""A memory broker that loses (or delays) deliveries, as a broker's PUB/SUB can.

``LossyBroker.drop()``: the next publication is stored in its stream as usual (offset,
history, recovery) but never handed to this node, as when a Redis PUB/SUB message is
lost. ``hold_deliveries()``: it is handed over only at ``deliver_held()``, as a message
still in flight. It is the GatedBroker of the core tests, so a history read can be held
too (``hold()``).
"""

from __future__ import annotations

from typing import Any

from tests.core.fakes import GatedBroker
from wirehub.brokers.base import BrokerEventHandler, HistoryOptions, HistoryPage
from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

__all__ = ["LossyBroker"]


class LossyBroker(GatedBroker):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dropped: list[tuple[str, Publication]] = []
        self._to_drop = 0
        self._to_hold = 0
        self._in_flight: list[tuple[str, Publication, StreamPosition]] = []
        self._node: BrokerEventHandler | None = None
        self._reads_left = 0

    def drop(self, count: int = 1) -> None:
        """Lose the next ``count`` deliveries."""
        self._to_drop += count

    def hold_deliveries(self, count: int = 1) -> None:
        """Keep the next ``count`` deliveries back until :meth:`deliver_held`."""
        self._to_hold += count

    def deliver_held_at_read(self, reads: int) -> None:
        """Deliver what is held when the ``reads``-th history read from now starts."""
        self._reads_left = reads

    async def history(self, channel: str, options: HistoryOptions) -> HistoryPage:
        if self._reads_left:
            self._reads_left -= 1
            if not self._reads_left:
                self.deliver_held()
        return await super().history(channel, options)

    def deliver_held(self) -> None:
        in_flight, self._in_flight = self._in_flight, []
        for channel, publication, position in in_flight:
            if self._node is not None:
                self._node.handle_publication(channel, publication, position)

    async def start(self, handler: BrokerEventHandler) -> None:
        self._node = handler
        await super().start(_Filter(self))

    async def close(self) -> None:
        await super().close()
        self._node = None

    def _deliver(self, channel: str, publication: Publication, position: StreamPosition) -> None:
        if self._to_drop:
            self._to_drop -= 1
            self.dropped.append((channel, publication))
        elif self._to_hold:
            self._to_hold -= 1
            self._in_flight.append((channel, publication, position))
        elif self._node is not None:
            self._node.handle_publication(channel, publication, position)


class _Filter:
    """The handler the memory broker sees: publications go through ``_deliver``."""

    def __init__(self, broker: LossyBroker) -> None:
        self._broker = broker

    def handle_publication(
        self, channel: str, publication: Publication, position: StreamPosition
    ) -> None:
        self._broker._deliver(channel, publication, position)

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        if self._broker._node is not None:
            self._broker._node.handle_join(channel, info)

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        if self._broker._node is not None:
            self._broker._node.handle_leave(channel, info)
