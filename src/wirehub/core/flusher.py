"""Per-tick output coalescing: every connection with pending output is written once.

Fan-out appends encoded messages to each subscriber's queue synchronously; the first
append in a tick registers the connection here, and one ``call_soon`` callback per tick
(not one per connection) writes each registered connection's queue as a single frame.
Under load this turns N messages per connection into one write call, the cost that
dominates a fan-out server (``DESIGN.md``, "The hot path").

The flusher also counts the bytes of the publications fanned out since its last run
(:attr:`TickFlusher.produced`, each counted once: what any one subscriber's queue grew
by at most): a connection whose commands publish a lot yields to
the event loop once that passes a budget, so that subscribers' queues are written
before they grow further (``reliability.md`` A3).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["Flushable", "TickFlusher"]


class Flushable(Protocol):
    def flush(self) -> None: ...


class TickFlusher:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[Flushable] = []
        self._scheduled = False
        self.produced = 0
        """Bytes of publications fanned out since the last flush."""

    def schedule(self, target: Flushable) -> None:
        """Flush ``target`` at the end of this tick. The caller schedules each target
        at most once per tick."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        self._pending.append(target)

    def account(self, size: int) -> None:
        """Count a publication fanned out (``size``: its largest encoding)."""
        if not size:
            return
        self.produced += size
        if not self._scheduled:  # the count is reset by the next flush, even an empty one
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._scheduled = False
        self.produced = 0
        for target in pending:
            target.flush()
