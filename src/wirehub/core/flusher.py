"""Per-tick output coalescing: every connection with pending output is written once.

Fan-out appends encoded messages to each subscriber's queue synchronously; the first
append in a tick registers the connection here, and one ``call_soon`` callback per tick
(not one per connection) writes each registered connection's queue as a single frame.
Under load this turns N messages per connection into one write call, the cost that
dominates a fan-out server (``DESIGN.md``, "The hot path").
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

    def schedule(self, target: Flushable) -> None:
        """Flush ``target`` at the end of this tick. The caller schedules each target
        at most once per tick."""
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(target)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for target in pending:
            target.flush()
