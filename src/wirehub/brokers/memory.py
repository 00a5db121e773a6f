"""The in-memory broker and presence manager: one process, nothing else to run."""

from __future__ import annotations

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

__all__ = ["MemoryBroker", "MemoryPresenceManager", "engine_from_config"]

_EPOCH_ALPHABET = string.ascii_letters


def new_epoch() -> str:
    """A fresh stream epoch: 8 random letters, as Centrifuge makes them."""
    return "".join(secrets.choice(_EPOCH_ALPHABET) for _ in range(8))


class _Stream:
    """A channel's publications with their expiry times, and its position."""

    __slots__ = ("epoch", "items", "offset")

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        self.items: deque[tuple[float, Publication]] = deque()

    def append(self, publication: Publication, options: PublishOptions, now: float) -> None:
        self.items.append((now + options.history_ttl, publication))
        while len(self.items) > options.history_size:
            self.items.popleft()

    def live(self, now: float) -> list[Publication]:
        while self.items and self.items[0][0] <= now:
            self.items.popleft()
        return [publication for _, publication in self.items]


class MemoryBroker:
    """Delivers publications to this node's hub by a direct call: no queue, no task.

    The offset is assigned and the publication appended before the callback runs,
    with no await in between, so both are atomic with respect to other publishers.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._handler: BrokerEventHandler | None = None
        self._streams: dict[str, _Stream] = {}
        self._clock = clock
        self._results: dict[tuple[str, str], StreamPosition] = {}
        self._result_expiry: deque[tuple[float, tuple[str, str]]] = deque()

    async def start(self, handler: BrokerEventHandler) -> None:
        self._handler = handler

    async def close(self) -> None:
        self._handler = None

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
            stream = self._stream(channel)
            stream.offset += 1
            publication = msgspec.structs.replace(publication, offset=stream.offset)
            stream.append(publication, options, self._clock())
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
        stream = self._stream(channel)
        position = StreamPosition(offset=stream.offset, epoch=stream.epoch)
        if options.limit == 0:
            return HistoryPage([], position)
        publications = stream.live(self._clock())
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
            stream.items.clear()

    def _stream(self, channel: str) -> _Stream:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream()
        return stream


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


def engine_from_config(config: Config) -> Engine:
    """``engine.type = "memory"``: everything in this process."""
    from wirehub.brokers import Engine

    return Engine(MemoryBroker(), MemoryPresenceManager())


_: type[Broker] = MemoryBroker
__: type[PresenceManager] = MemoryPresenceManager
