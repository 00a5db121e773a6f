"""The registry of this node's connections, and fan-out.

Fan-out is the hot path (``DESIGN.md``): a publication is encoded once per codec in
use, then appended to each subscriber's queue by a plain synchronous call; no
coroutine, task or await per subscriber. Queues are written once per tick by the
:class:`~wirehub.core.flusher.TickFlusher`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from wirehub.protocol.types import Publication, Push, Reply

if TYPE_CHECKING:
    from wirehub.core.client import Client

__all__ = ["Hub"]


class Hub:
    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        self._users: dict[str, set[Client]] = {}
        self._channels: dict[str, set[Client]] = {}

    # Connections.

    def add(self, client: Client) -> None:
        self._clients[client.id] = client
        self._users.setdefault(client.user, set()).add(client)

    def remove(self, client: Client) -> list[str]:
        """Forget ``client``; return the channels it left empty on this node."""
        if self._clients.pop(client.id, None) is None:
            return []
        connections = self._users.get(client.user)
        if connections is not None:
            connections.discard(client)
            if not connections:
                del self._users[client.user]
        return [ch for ch in client.channels if self.remove_subscriber(ch, client)]

    def clients(self) -> Iterator[Client]:
        return iter(list(self._clients.values()))

    def user_clients(self, user: str) -> list[Client]:
        return list(self._users.get(user, ()))

    @property
    def num_clients(self) -> int:
        return len(self._clients)

    @property
    def num_users(self) -> int:
        return len(self._users)

    # Subscriptions.

    def add_subscriber(self, channel: str, client: Client) -> bool:
        """Subscribe ``client``; return whether it is the channel's first here."""
        subscribers = self._channels.get(channel)
        if subscribers is None:
            self._channels[channel] = {client}
            return True
        subscribers.add(client)
        return False

    def remove_subscriber(self, channel: str, client: Client) -> bool:
        """Unsubscribe ``client``; return whether the channel is now empty here."""
        subscribers = self._channels.get(channel)
        if subscribers is None or client not in subscribers:
            return False
        subscribers.discard(client)
        if subscribers:
            return False
        del self._channels[channel]
        return True

    def has_subscribers(self, channel: str) -> bool:
        return channel in self._channels

    def channels(self) -> list[str]:
        return list(self._channels)

    @property
    def num_channels(self) -> int:
        return len(self._channels)

    # Fan-out.

    def broadcast_publication(self, channel: str, publication: Publication) -> None:
        """Queue ``publication`` for every subscriber of ``channel`` on this node."""
        subscribers = self._channels.get(channel)
        if not subscribers:
            return
        reply = Reply(push=Push(channel=channel, pub=publication))
        encoded: dict[str, bytes] = {}
        # A snapshot: a subscriber that overflows its queue is removed mid-loop.
        for client in tuple(subscribers):
            codec = client.codec
            data = encoded.get(codec.name)
            if data is None:
                data = encoded[codec.name] = codec.encode_reply(reply)
            client.enqueue(data)
