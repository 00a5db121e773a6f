"""Periodic position checks: a subscriber that lost the tail of its stream is told.

The hub finds a gap when the next publication arrives (offset > last + 1, or another
epoch). When the *last* publications before a quiet spell are lost on the way to this
node (a broker's PUB/SUB hiccup), nothing arrives to reveal it. So every
``client.channel_position_check_delay`` seconds the node compares each positioned
subscriber's last delivered position with the top of its stream
(``centrifugo-protocol.md`` §5.7, ``centrifugo-server-side.md`` §1.11).

Rules:

1. One ``history(limit=0)`` read per channel per round, however many subscribers the
   channel has here (Centrifugo reads per subscriber unless its PRO shared position
   sync is on).
2. A subscriber is in step when its epoch is the top's and its offset has reached the
   top's offset.
3. A publication is stored before it reaches the nodes, so a subscriber can be behind
   for a moment without having lost anything. One behind is therefore judged after a
   second read: it lost something if its epoch is not that read's, or if it still has
   not reached the *first* read's offset (a whole round trip later).
4. Lost something: the same treatment as a gap (``Client.insufficient_state``): an
   unsubscribe push 2500 for a client-side subscription (the SDKs resubscribe and
   recover), a disconnect 3010 for a server-side one (they reconnect and recover).
5. A failed read postpones that channel to the next round (Centrifugo does the same).
6. Rounds never overlap: the next one starts ``channel_position_check_delay`` after the
   previous one ended. Within a round channels are read ``_CONCURRENCY`` at a time
   (a remote broker pipelines them), yielding to the event loop between groups.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from wirehub.brokers.base import HistoryOptions
from wirehub.protocol.types import StreamPosition

if TYPE_CHECKING:
    from wirehub.core.node import Node

__all__ = ["PositionChecker"]

logger = logging.getLogger("wirehub.node")

_CONCURRENCY = 64


class PositionChecker:
    """Runs the rounds of position checks for one node; :meth:`run` is its task."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.rounds = 0
        """Rounds completed."""
        self._failed: list[tuple[str, Exception]] = []

    async def run(self, interval: float) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except Exception:
                logger.exception("position check failed")

    async def check(self) -> int:
        """Check every channel with positioned subscribers once; return how many
        subscribers were found to have lost publications."""
        channels = self._node.hub.positioned_channels()
        told = 0
        self._failed = []
        for start in range(0, len(channels), _CONCURRENCY):
            group = channels[start : start + _CONCURRENCY]
            told += sum(await asyncio.gather(*(self._check(ch) for ch in group)))
        self.rounds += 1
        if self._failed:  # one line per round, not one per channel while a broker is down
            channel, exc = self._failed[0]
            logger.warning(
                "position check: %d history read(s) failed, tried again next round; first: %r: %r",
                len(self._failed),
                channel,
                exc,
            )
        return told

    async def _check(self, channel: str) -> int:
        hub = self._node.hub
        rules = self._node.rules
        options = HistoryOptions(history_meta_ttl=rules.history_meta_ttl(rules.namespace(channel)))
        first = await self._top(channel, options)
        if first is None:
            return 0
        behind = [c for c, pos in hub.positions(channel).items() if not _reached(pos, first)]
        if not behind:
            return 0
        second = await self._top(channel, options)
        if second is None:
            return 0
        bar = first.offset if first.epoch == second.epoch else 0
        positions = hub.positions(channel)
        told = 0
        for client in behind:
            position = positions.get(client)
            if position is not None and (position.epoch != second.epoch or position.offset < bar):
                client.insufficient_state(channel)
                told += 1
        if told:
            logger.info("%r: %d subscriber(s) behind the stream top %s", channel, told, first)
        return told

    async def _top(self, channel: str, options: HistoryOptions) -> StreamPosition | None:
        try:
            page = await self._node.broker.history(channel, options)
        except Exception as exc:
            self._failed.append((channel, exc))
            return None
        return page.position


def _reached(position: StreamPosition, top: StreamPosition) -> bool:
    return position.epoch == top.epoch and position.offset >= top.offset
