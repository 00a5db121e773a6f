"""Per-tick output coalescing: every connection with pending output is written once.

Fan-out appends encoded messages to each subscriber's queue synchronously; the first
append in a tick registers the connection here, and one ``call_soon`` callback per tick
(not one per connection) writes each registered connection's queue as a single frame.
Under load this turns N messages per connection into one write call, the cost that
dominates a fan-out server (``DESIGN.md``, "The hot path").

A connection whose commands publish in a loop (a pipelined frame, a flood) asks
:meth:`TickFlusher.should_yield` after each command whether to let the event loop run
(``reliability.md`` A3, A4). The rules are about work, not time: every extra turn costs
one write per connection waiting to be written, which is what fan-out throughput is
made of.

1. Queue safety: once the publications fanned out since the last full flush add up to
   ``byte_budget`` bytes (each counted once: what any one subscriber's queue grew by
   at most), yield, and the next flush writes every queue.
2. Fairness: once they made :data:`YIELD_DELIVERIES` deliveries, and on average
   :data:`YIELD_PER_CONNECTION` per connection waiting, yield so that other
   connections' frames are read and their commands run. The flush that follows is
   partial: it writes the queues shorter than :data:`YIELD_PER_CONNECTION` messages
   (interactive connections, another channel's subscribers) and lets the long ones
   (the burst's own subscribers) keep coalescing until rule 1 or the end of the burst,
   so a burst costs about as many writes as before.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

__all__ = ["YIELD_DELIVERIES", "YIELD_PER_CONNECTION", "Flushable", "TickFlusher"]

YIELD_DELIVERIES: Final = 4096
YIELD_PER_CONNECTION: Final = 32


class Flushable(Protocol):
    def flush(self) -> None: ...

    @property
    def queued_messages(self) -> int: ...


class TickFlusher:
    def __init__(self, loop: asyncio.AbstractEventLoop, *, byte_budget: int) -> None:
        self._loop = loop
        self._byte_budget = byte_budget
        self._pending: list[Flushable] = []
        self._scheduled = False
        self._partial = False
        self.produced = 0
        """Bytes of the publications fanned out since the last full flush."""
        self.delivered = 0
        """Messages they queued since the last flush, across connections."""

    def schedule(self, target: Flushable) -> None:
        """Flush ``target`` at the end of this tick. The caller schedules each target
        at most once until it is flushed."""
        self._call_soon()
        self._pending.append(target)

    def account(self, size: int, reached: int) -> None:
        """Count a publication fanned out (``size``: its largest encoding) to ``reached``
        connections."""
        if reached:
            self.produced += size
            self.delivered += reached

    def should_yield(self) -> bool:
        """Whether a connection publishing in a loop should let the event loop run now
        (see the module's rules)."""
        if self.produced > self._byte_budget:
            return True
        delivered = self.delivered
        if delivered >= YIELD_DELIVERIES and delivered >= YIELD_PER_CONNECTION * len(self._pending):
            self._partial = True
            return True
        return False

    def _call_soon(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._scheduled = False
        partial = self._partial and self.produced <= self._byte_budget
        self._partial = False
        self.delivered = 0
        if not partial:
            self.produced = 0
            for target in pending:
                target.flush()
            return
        for target in pending:
            if target.queued_messages < YIELD_PER_CONNECTION:
                target.flush()
            else:
                self._pending.append(target)  # still scheduled: written by a later flush
        if self._pending:
            self._call_soon()
