"""The registry of this node's connections, and fan-out.

Fan-out is the hot path (``DESIGN.md``): a publication is encoded once per codec in
use, then appended to each subscriber's queue by a plain synchronous call; no
coroutine, task or await per subscriber. Queues are written once per tick by the
:class:`~wirehub.core.flusher.TickFlusher`.

A channel's subscribers live in one of three places, so that plain subscribers pay
nothing for the others' bookkeeping:

- plain subscribers: a set, delivered to unconditionally;
- positioned subscribers: their last delivered position, checked per publication
  (a duplicate is skipped, a gap reported through ``Client.insufficient_state``);
- subscribers being recovered: a buffer collecting live publications while their
  history is read, handed back by :meth:`Hub.finish_recovering`.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from wirehub.protocol.types import ClientInfo, Join, Leave, Publication, Push, Reply, StreamPosition

if TYPE_CHECKING:
    from wirehub.core.client import Client
    from wirehub.protocol.codec import Codec

__all__ = ["Hub"]

Buffered = list[tuple[Publication, StreamPosition]]


class _Encoder:
    """Encodes one push at most once per codec, on first use.

    Payloads were checked when published (:mod:`wirehub.core.publish`): whatever
    reaches a channel can be encoded for every codec subscribed to it (JSON clients are
    refused binary channels at subscribe), so nothing is checked here.
    """

    __slots__ = ("_cache", "_reply")

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._cache: dict[str, bytes] = {}

    def get(self, codec: Codec) -> bytes:
        data = self._cache.get(codec.name)
        if data is None:
            data = self._cache[codec.name] = codec.encode_reply(self._reply)
        return data

    @property
    def size(self) -> int:
        """The largest encoding made; 0 when none was needed."""
        return max(map(len, self._cache.values()), default=0)


class Hub:
    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        self._users: dict[str, set[Client]] = {}
        self._plain: dict[str, set[Client]] = {}
        self._positioned: dict[str, dict[Client, StreamPosition]] = {}
        self._recovering: dict[str, dict[Client, Buffered]] = {}
        self._join_leave: dict[str, set[Client]] = {}

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
        return [ch for ch in list(client.channels) if self.remove_subscriber(ch, client)]

    def clients(self) -> Iterator[Client]:
        return iter(list(self._clients.values()))

    def client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def user_clients(self, user: str) -> list[Client]:
        return list(self._users.get(user, ()))

    def user_count(self, user: str) -> int:
        """How many connections ``user`` has on this node."""
        connections = self._users.get(user)
        return 0 if connections is None else len(connections)

    @property
    def num_clients(self) -> int:
        return len(self._clients)

    @property
    def num_users(self) -> int:
        return len(self._users)

    # Subscriptions.

    def has_subscribers(self, channel: str) -> bool:
        return channel in self._plain or channel in self._positioned or channel in self._recovering

    def add_subscriber(
        self,
        channel: str,
        client: Client,
        *,
        position: StreamPosition | None = None,
        join_leave: bool = False,
    ) -> None:
        """Subscribe ``client``; with a ``position``, deliveries are checked against it."""
        if position is None:
            self._plain.setdefault(channel, set()).add(client)
        else:
            self._positioned.setdefault(channel, {})[client] = position
        if join_leave:
            self._join_leave.setdefault(channel, set()).add(client)

    def remove_subscriber(self, channel: str, client: Client) -> bool:
        """Unsubscribe ``client``; return whether the channel is now empty here."""
        _discard(self._plain, channel, client)
        _discard(self._positioned, channel, client)
        _discard(self._recovering, channel, client)
        _discard(self._join_leave, channel, client)
        return not self.has_subscribers(channel)

    def start_recovering(self, channel: str, client: Client) -> None:
        """Buffer the live publications of ``channel`` for ``client`` from now on."""
        self._recovering.setdefault(channel, {})[client] = []

    def finish_recovering(self, channel: str, client: Client) -> Buffered:
        """Stop buffering; return what arrived meanwhile."""
        buffers = self._recovering.get(channel, {})
        buffered = buffers.pop(client, [])
        if not buffers:
            self._recovering.pop(channel, None)
        return buffered

    def channels(self) -> list[str]:
        return list({*self._plain, *self._positioned, *self._recovering})

    # Fan-out.

    def broadcast_publication(
        self, channel: str, publication: Publication, position: StreamPosition
    ) -> tuple[int, int]:
        """Queue ``publication`` for every subscriber of ``channel`` on this node.

        Returns the size of its largest encoding (what any subscriber's queue grew by)
        and how many subscribers it was queued for.
        """
        encoder = _Encoder(Reply(push=Push(channel=channel, pub=publication)))
        reached = 0
        plain = self._plain.get(channel)
        if plain:
            # A snapshot: a subscriber that overflows its queue is removed mid-loop.
            _fan_out(tuple(plain), encoder)
            reached = len(plain)
        positioned = self._positioned.get(channel)
        if positioned:
            self._deliver_positioned(channel, positioned, encoder, position)
            reached += len(positioned)
        recovering = self._recovering.get(channel)
        if recovering:
            for buffer in recovering.values():
                buffer.append((publication, position))
        return encoder.size, reached

    def _deliver_positioned(
        self,
        channel: str,
        positioned: dict[Client, StreamPosition],
        encoder: _Encoder,
        position: StreamPosition,
    ) -> None:
        for client, last in tuple(positioned.items()):
            if position.epoch == last.epoch and position.offset <= last.offset:
                continue  # already delivered, by recovery
            if position.epoch != last.epoch or position.offset != last.offset + 1:
                client.insufficient_state(channel)
                continue
            positioned[client] = position
            _deliver(client, encoder)

    def broadcast_join(self, channel: str, info: ClientInfo) -> None:
        self._broadcast_to(channel, Reply(push=Push(channel=channel, join=Join(info=info))))

    def broadcast_leave(self, channel: str, info: ClientInfo) -> None:
        self._broadcast_to(channel, Reply(push=Push(channel=channel, leave=Leave(info=info))))

    def _broadcast_to(self, channel: str, reply: Reply) -> None:
        clients = self._join_leave.get(channel)
        if not clients:
            return
        _fan_out(tuple(clients), _Encoder(reply))


def _fan_out(clients: tuple[Client, ...], encoder: _Encoder) -> None:
    codec: Codec | None = None
    data = b""
    for client in clients:
        if client.codec is not codec:
            codec = client.codec
            data = encoder.get(codec)
        client.enqueue(data)


def _deliver(client: Client, encoder: _Encoder) -> None:
    client.enqueue(encoder.get(client.codec))


def _discard(index: MutableMapping[str, Any], channel: str, client: Client) -> None:
    members = index.get(channel)
    if members is None or client not in members:
        return
    if isinstance(members, set):
        members.discard(client)
    else:
        members.pop(client, None)
    if not members:
        del index[channel]
