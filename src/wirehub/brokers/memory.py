"""The in-memory broker and presence manager: one process, nothing else to run.

Streams expire on their own, read or not (the contract in :mod:`wirehub.brokers.base`):

1. Each stream with publications has one timer, at its oldest publication's expiry;
   each stream has one more, at its metadata's expiry. Timers live in two heaps of
   ``(due, channel)``; a timer is current only while it equals the stream's
   ``items_due`` / ``meta_due`` (anything else in the heap is stale and skipped).
2. A timer may fire early (activity moved the real expiry later): it is then pushed
   again at the real expiry. It never fires late by more than one sweep interval.
3. A sweeper task, started by :meth:`MemoryBroker.start` and cancelled by ``close``,
   runs every ``sweep_interval`` seconds and handles at most ``sweep_batch`` due timers
   before it yields to the event loop, so a mass expiry never stalls delivery.
4. Every access also checks expiry itself (an expired metadata is replaced by a new
   epoch, expired publications are never returned), so what clients see does not
   depend on when the sweeper last ran.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import secrets
import string
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from wirehub.brokers.base import (
    IDEMPOTENT_RESULT_TTL,
    Broker,
    BrokerEventHandler,
    ControlEventHandler,
    Controller,
    HistoryOptions,
    HistoryPage,
    PresenceManager,
    PresenceStats,
    PublishOptions,
)
from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

if TYPE_CHECKING:
    from wirehub.brokers import Engine
    from wirehub.config import Config

__all__ = ["MemoryBroker", "MemoryController", "MemoryPresenceManager", "engine_from_config"]

_EPOCH_ALPHABET = string.ascii_letters

_Timers = list[tuple[float, str]]
_NEVER = math.inf


def new_epoch() -> str:
    """A fresh stream epoch: 8 random letters, as Centrifuge makes them."""
    return "".join(secrets.choice(_EPOCH_ALPHABET) for _ in range(8))


class _Stream:
    """A channel's publications with their expiry times, its position, and its timers."""

    # Slots and no deque until the first publication: a stream with only its
    # position (a positioned subscriber on a quiet channel) stays small.
    __slots__ = ("epoch", "items", "items_due", "meta_due", "meta_expires", "offset")

    def __init__(self, meta_expires: float) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        self.items: deque[tuple[float, Publication]] | None = None
        self.items_due = 0.0
        """When this stream's publication timer fires; 0: it has none."""
        self.meta_expires = meta_expires
        self.meta_due = meta_expires
        """When its metadata timer fires (inf: never)."""

    def live(self, now: float) -> list[Publication]:
        items = self.items
        if not items:
            return []
        while items and items[0][0] <= now:
            items.popleft()
        return [publication for expires, publication in items if expires > now]


class MemoryBroker:
    """Delivers publications to this node's hub by a direct call: no queue, no task.

    The offset is assigned and the publication appended before the callback runs,
    with no await in between, so both are atomic with respect to other publishers.

    Args:
        clock: monotonic seconds, injectable for tests.
        sweep_interval: seconds between expiry sweeps.
        sweep_batch: most timers one sweep step handles before yielding.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval: float = 1.0,
        sweep_batch: int = 1000,
    ) -> None:
        self._handler: BrokerEventHandler | None = None
        self._streams: dict[str, _Stream] = {}
        self._clock = clock
        self._item_timers: _Timers = []
        self._meta_timers: _Timers = []
        self._sweep_interval = sweep_interval
        self._sweep_batch = sweep_batch
        self._sweeper: asyncio.Task[None] | None = None
        self._dropped = 0
        """Streams deleted since ``_streams`` was last compacted."""
        self._results: dict[tuple[str, str], StreamPosition] = {}
        self._result_expiry: deque[tuple[float, tuple[str, str]]] = deque()

    async def start(self, handler: BrokerEventHandler) -> None:
        self._handler = handler
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="wirehub-sweeper")

    async def close(self) -> None:
        self._handler = None
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])

    async def subscribe(self, channel: str) -> None:
        # Every publication is seen by this process already; nothing to register.
        pass

    async def unsubscribe(self, channel: str) -> None:
        pass

    async def publish(
        self, channel: str, publication: Publication, options: PublishOptions
    ) -> StreamPosition:
        key = options.idempotency_key
        if key:
            self._expire_results()
            seen = self._results.get((channel, key))
            if seen is not None:
                return seen
        position = self._publish(channel, publication, options)
        if key:
            self._results[(channel, key)] = position
            self._result_expiry.append((self._clock() + IDEMPOTENT_RESULT_TTL, (channel, key)))
        return position

    def _expire_results(self) -> None:
        now = self._clock()
        expiry = self._result_expiry
        while expiry and expiry[0][0] <= now:
            self._results.pop(expiry.popleft()[1], None)

    def _publish(
        self, channel: str, publication: Publication, options: PublishOptions
    ) -> StreamPosition:
        position = StreamPosition()
        if options.history_size > 0 and options.history_ttl > 0:
            now = self._clock()
            stream = self._touch(channel, now, options.history_meta_ttl)
            stream.offset += 1
            publication = msgspec.structs.replace(publication, offset=stream.offset)
            # Its ``delta`` flag (the publisher allows deltas) is for live delivery only.
            stored = (
                msgspec.structs.replace(publication, delta=False)
                if publication.delta
                else publication
            )
            self._append(channel, stream, stored, now + options.history_ttl, options)
            position = StreamPosition(offset=stream.offset, epoch=stream.epoch)
        if self._handler is not None:
            self._handler.handle_publication(channel, publication, position)
        return position

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        if self._handler is not None:
            self._handler.handle_join(channel, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        if self._handler is not None:
            self._handler.handle_leave(channel, info)

    async def history(self, channel: str, options: HistoryOptions) -> HistoryPage:
        now = self._clock()
        stream = self._touch(channel, now, options.history_meta_ttl)
        position = StreamPosition(offset=stream.offset, epoch=stream.epoch)
        if options.limit == 0:
            return HistoryPage([], position)
        publications = stream.live(now)
        since = options.since
        if options.reverse:
            publications.reverse()
            if since is not None:
                publications = [p for p in publications if p.offset < since.offset]
        elif since is not None:
            publications = [p for p in publications if p.offset > since.offset]
        if options.limit > 0:
            publications = publications[: options.limit]
        return HistoryPage(publications, position)

    async def remove_history(self, channel: str) -> None:
        stream = self._streams.get(channel)
        if stream is not None:
            stream.items = None  # its timer, if any, finds nothing and lapses

    # Expiry.

    def sweep(self, budget: int | None = None) -> int:
        """Handle the timers due by now, at most ``budget``; return how many.

        The sweeper task calls this; tests with a fake clock call it directly.
        """
        budget = self._sweep_batch if budget is None else budget
        now = self._clock()
        done = 0
        for timers, fire in (
            (self._item_timers, self._expire_items),
            (self._meta_timers, self._expire_meta),
        ):
            while done < budget and timers and timers[0][0] <= now:
                due, channel = heapq.heappop(timers)
                fire(channel, due, now)
                done += 1
        if self._dropped > 4 * len(self._streams) + 1024:
            # A dict never shrinks by deletion: after a mass expiry its table would stay
            # at the high-water mark. Rebuilt when mostly empty, so amortised O(1).
            self._streams = dict(self._streams)
            self._dropped = 0
        return done

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            busy = True
            while busy:
                busy = self.sweep() >= self._sweep_batch
                if busy:
                    await asyncio.sleep(0)  # a mass expiry: let the loop breathe

    def _touch(self, channel: str, now: float, meta_ttl: float) -> _Stream:
        """The channel's stream, created if missing or expired; its metadata now lives
        ``meta_ttl`` more seconds."""
        expires = now + meta_ttl if meta_ttl > 0 else _NEVER
        stream = self._streams.get(channel)
        if stream is None or stream.meta_expires <= now:
            return self._create(channel, stream, expires)
        stream.meta_expires = expires
        if expires < stream.meta_due:  # a shorter TTL than before: an earlier timer
            stream.meta_due = expires
            heapq.heappush(self._meta_timers, (expires, channel))
        return stream

    def _create(self, channel: str, expired: _Stream | None, expires: float) -> _Stream:
        if expired is not None:
            self._drop(channel, expired)
        stream = self._streams[channel] = _Stream(expires)
        if expires < _NEVER:
            heapq.heappush(self._meta_timers, (expires, channel))
        return stream

    def _append(
        self,
        channel: str,
        stream: _Stream,
        publication: Publication,
        expires: float,
        options: PublishOptions,
    ) -> None:
        items = stream.items
        if items is None:
            items = stream.items = deque()
        items.append((expires, publication))
        while len(items) > options.history_size:
            items.popleft()
        if not stream.items_due:
            stream.items_due = items[0][0]
            heapq.heappush(self._item_timers, (stream.items_due, channel))

    def _expire_items(self, channel: str, due: float, now: float) -> None:
        stream = self._streams.get(channel)
        if stream is None or stream.items_due != due:
            return  # stale
        items = stream.items
        while items and items[0][0] <= now:
            items.popleft()
        if items:
            stream.items_due = items[0][0]
            heapq.heappush(self._item_timers, (stream.items_due, channel))
        else:
            stream.items = None
            stream.items_due = 0.0

    def _expire_meta(self, channel: str, due: float, now: float) -> None:
        stream = self._streams.get(channel)
        if stream is None or stream.meta_due != due:
            return  # stale
        if stream.meta_expires <= now:
            self._drop(channel, stream)
            return
        stream.meta_due = stream.meta_expires
        if stream.meta_due < _NEVER:
            heapq.heappush(self._meta_timers, (stream.meta_due, channel))

    def _drop(self, channel: str, stream: _Stream) -> None:
        del self._streams[channel]
        stream.items = None
        self._dropped += 1


class MemoryPresenceManager:
    """Presence kept in this process; entries leave with their connection."""

    def __init__(self) -> None:
        self._channels: dict[str, dict[str, ClientInfo]] = {}

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        return dict(self._channels.get(channel, {}))

    async def presence_stats(self, channel: str) -> PresenceStats:
        entries = self._channels.get(channel, {})
        return PresenceStats(len(entries), len({info.user for info in entries.values()}))

    async def add_presence(self, channel: str, info: ClientInfo) -> None:
        self._channels.setdefault(channel, {})[info.client] = info

    async def remove_presence(self, channel: str, client_id: str) -> None:
        entries = self._channels.get(channel)
        if entries is not None:
            entries.pop(client_id, None)
            if not entries:
                del self._channels[channel]


class MemoryController:
    """The controller of a node alone in its process: there is no other node to reach.

    The core applies its own actions locally itself, so a broadcast delivers nothing
    here, and neither does a message to another node id (no such node exists).
    """

    def __init__(self) -> None:
        self._handler: ControlEventHandler | None = None

    async def start(self, handler: ControlEventHandler, node_id: str) -> None:
        self._handler = handler

    async def close(self) -> None:
        self._handler = None

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        if self._handler is None:
            raise RuntimeError("the controller is not running")


def engine_from_config(config: Config) -> Engine:
    """``engine.type = "memory"``: everything in this process."""
    from wirehub.brokers import Engine

    return Engine(MemoryBroker(), MemoryPresenceManager())


_: type[Broker] = MemoryBroker
__: type[PresenceManager] = MemoryPresenceManager
___: type[Controller] = MemoryController
