"""Idempotent publishing: a retried publish with the same key is not published twice.

As Centrifugo's (``idempotency_key`` of the server API's ``publish``): the key acts
per channel, and the result of the first publish is kept for :data:`RESULT_TTL`
seconds; a publish with the same channel and key within that window is suppressed
and answers with the first one's result. A publish that failed keeps nothing, so its
retry runs. Two identical publishes in flight at once share the first one's outcome.

The cache belongs to one node: with several nodes behind a load balancer, a retry
that lands on another node is published again unless the broker deduplicates too.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from wirehub.protocol.types import StreamPosition

__all__ = ["RESULT_TTL", "IdempotencyCache"]

RESULT_TTL = 300.0
"""Seconds a publish result is kept (Centrifugo's ``IdempotentResultTTL``)."""


class IdempotencyCache:
    def __init__(
        self,
        *,
        ttl: float = RESULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        on_suppressed: Callable[[], None] | None = None,
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._on_suppressed = on_suppressed
        # Insertion order is expiry order: every entry lives the same ttl.
        self._results: OrderedDict[tuple[str, str], tuple[float, asyncio.Future[StreamPosition]]]
        self._results = OrderedDict()
        self.suppressed = 0
        """How many publishes were answered from the cache."""

    def __len__(self) -> int:
        return len(self._results)

    async def publish(
        self, channel: str, key: str, publish: Callable[[], Awaitable[StreamPosition]]
    ) -> StreamPosition:
        """Run ``publish`` unless ``key`` was published into ``channel`` recently;
        return its stream position (the first publish's, when suppressed)."""
        if not key:
            return await publish()
        now = self._clock()
        self._expire(now)
        entry = self._results.get((channel, key))
        if entry is not None:
            self.suppressed += 1
            if self._on_suppressed is not None:
                self._on_suppressed()
            return await asyncio.shield(entry[1])
        future: asyncio.Future[StreamPosition] = asyncio.get_running_loop().create_future()
        self._results[(channel, key)] = (now + self._ttl, future)
        try:
            position = await publish()
        except Exception as exc:
            self._results.pop((channel, key), None)
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        except BaseException:  # cancelled: those waiting are told so, and may retry
            self._results.pop((channel, key), None)
            future.cancel()
            raise
        future.set_result(position)
        return position

    def _expire(self, now: float) -> None:
        results = self._results
        while results:
            expires, future = next(iter(results.values()))
            if expires > now or not future.done():
                return
            results.popitem(last=False)
