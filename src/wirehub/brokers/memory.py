"""The in-memory broker: one process, nothing else to run. The embedded default."""

from __future__ import annotations

import secrets
import string

import msgspec

from wirehub.brokers.base import Broker, BrokerEventHandler, PublishOptions
from wirehub.protocol.types import Publication, StreamPosition

__all__ = ["MemoryBroker"]

_EPOCH_ALPHABET = string.ascii_letters


def new_epoch() -> str:
    """A fresh stream epoch: 8 random letters, as Centrifuge makes them."""
    return "".join(secrets.choice(_EPOCH_ALPHABET) for _ in range(8))


class _Stream:
    """A channel's position: epoch and top offset. History items come with issue 3."""

    __slots__ = ("epoch", "offset")

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self.offset = 0


class MemoryBroker:
    """Delivers publications to this node's hub by a direct call: no queue, no task."""

    def __init__(self) -> None:
        self._handler: BrokerEventHandler | None = None
        self._streams: dict[str, _Stream] = {}

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
        position = StreamPosition()
        if options.history_size > 0 and options.history_ttl > 0:
            stream = self._streams.get(channel)
            if stream is None:
                stream = self._streams[channel] = _Stream()
            stream.offset += 1
            position = StreamPosition(offset=stream.offset, epoch=stream.epoch)
            publication = msgspec.structs.replace(publication, offset=stream.offset)
        if self._handler is not None:
            self._handler.handle_publication(channel, publication)
        return position


_: type[Broker] = MemoryBroker
