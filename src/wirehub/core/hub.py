"""The registry of this node's connections, and fan-out.

Fan-out is the hot path (``DESIGN.md``): a publication is encoded once per codec in
use, then appended to each subscriber's queue by a plain synchronous call; no
coroutine, task or await per subscriber. Queues are written once per tick by the
:class:`~wirehub.core.flusher.TickFlusher`.

A channel's subscribers live in one of four places, so that plain subscribers pay
nothing for the others' bookkeeping:

- plain subscribers: a set, delivered to unconditionally;
- positioned subscribers: their last delivered position, checked per publication
  (a duplicate is skipped, a gap reported through ``Client.insufficient_state``);
- variant subscribers, with a tags filter or deltas (:mod:`wirehub.core.variants`);
- subscribers being recovered: a buffer collecting live publications while their
  history is read, handed back by :meth:`Hub.finish_recovering`.

A publication whose ``delta`` flag is set comes from a publisher that allows deltas:
the flag is cleared before anything is encoded or buffered (on the wire it means "data
is a delta").

When the broker may have lost publications of a channel on their way here
(:meth:`Hub.insufficient_state`), its positioned subscribers are told at once, and
those being recovered when they finish (their buffer is spoilt).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from wirehub.core.variants import ChannelVariants
from wirehub.protocol.types import ClientInfo, Join, Leave, Publication, Push, Reply, StreamPosition

if TYPE_CHECKING:
    from wirehub.core.client import Client
    from wirehub.core.delta import DeltaCache
    from wirehub.core.metrics import HubMetrics
    from wirehub.core.tags_filter import TagsFilter
    from wirehub.protocol.codec import Codec

__all__ = ["Encoder", "Hub"]

Buffered = list[tuple[Publication, StreamPosition]]


class Encoder:
    """Encodes one push at most once per codec, on first use.

    Payloads were checked when published (:mod:`wirehub.core.publish`): whatever
    reaches a channel can be encoded for every codec subscribed to it (JSON clients are
    refused binary channels at subscribe), so nothing is checked here.
    """

    __slots__ = ("_cache", "_reply")

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._cache: dict[str, bytes] = {}

    @property
    def encodings(self) -> int:
        """How many codecs this push was encoded for."""
        return len(self._cache)

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
        self._sessions: dict[str, Client] = {}
        """Emulation and unidirectional connections by session (the secret their
        emulation requests name)."""
        self._users: dict[str, set[Client]] = {}
        self._plain: dict[str, set[Client]] = {}
        self._positioned: dict[str, dict[Client, StreamPosition]] = {}
        self._recovering: dict[str, dict[Client, Buffered | None]] = {}
        """None: publications may have been lost while this client was recovering."""
        self._variants: dict[str, ChannelVariants] = {}
        self._join_leave: dict[str, set[Client]] = {}
        self.metrics: HubMetrics | None = None
        """Counters of deliveries, added to once per fan-out (None: not counted)."""
        self.delta_cache: DeltaCache | None = None
        """Deltas computed for live fan-out, shared with recoveries (None: not kept)."""

    # Connections.

    def add(self, client: Client) -> None:
        self._clients[client.id] = client
        if client.session:
            self._sessions[client.session] = client
        self._users.setdefault(client.user, set()).add(client)

    def remove(self, client: Client) -> list[str]:
        """Forget ``client``; return the channels it left empty on this node."""
        if self._clients.pop(client.id, None) is None:
            return []
        if client.session:
            self._sessions.pop(client.session, None)
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

    def session(self, session: str) -> Client | None:
        """The connected client of an emulation or unidirectional ``session``."""
        return self._sessions.get(session)

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

    @property
    def num_subscriptions(self) -> int:
        return sum(len(client.channels) for client in self._clients.values())

    @property
    def num_channels(self) -> int:
        return len(self.channels())

    def num_subscribers(self, channel: str) -> int:
        return (
            len(self._plain.get(channel, ()))
            + len(self._positioned.get(channel, ()))
            + len(self._recovering.get(channel, ()))
            + len(self._variants.get(channel, ()))
        )

    # Subscriptions.

    def has_subscribers(self, channel: str) -> bool:
        return (
            channel in self._plain
            or channel in self._positioned
            or channel in self._recovering
            or channel in self._variants
        )

    def add_subscriber(
        self,
        channel: str,
        client: Client,
        *,
        position: StreamPosition | None = None,
        join_leave: bool = False,
        tags_filter: TagsFilter | None = None,
        delta: bool = False,
        held: bytes | None = None,
    ) -> None:
        """Subscribe ``client``; with a ``position``, deliveries are checked against it.

        With a ``tags_filter`` or ``delta``, it is a variant subscriber
        (:mod:`wirehub.core.variants`); ``held``: the payload at ``position`` that a
        delta subscriber was sent (its subscribe reply ended with it).
        """
        if tags_filter is not None or delta:
            variants = self._variants.get(channel)
            if variants is None:
                variants = self._variants[channel] = ChannelVariants()
            variants.add(client, position, tags_filter=tags_filter, held=held)
        elif position is None:
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
        variants = self._variants.get(channel)
        if variants is not None and variants.discard(client) and not variants:
            del self._variants[channel]
        return not self.has_subscribers(channel)

    def start_recovering(self, channel: str, client: Client) -> None:
        """Buffer the live publications of ``channel`` for ``client`` from now on."""
        self._recovering.setdefault(channel, {})[client] = []

    def finish_recovering(self, channel: str, client: Client) -> Buffered | None:
        """Stop buffering; return what arrived meanwhile, None if some may be lost."""
        buffers = self._recovering.get(channel, {})
        buffered = buffers.pop(client, [])
        if not buffers:
            self._recovering.pop(channel, None)
        return buffered

    def channels(self) -> list[str]:
        return list({*self._plain, *self._positioned, *self._recovering, *self._variants})

    def positioned_channels(self) -> list[str]:
        """The channels with positioned subscribers here."""
        variants = (ch for ch, v in self._variants.items() if next(v.positions(), None))
        return list({*self._positioned, *variants})

    def positions(self, channel: str) -> dict[Client, StreamPosition]:
        """A snapshot: each positioned subscriber of ``channel``, with the position of
        the last publication delivered to it."""
        positions = dict(self._positioned.get(channel, ()))
        variants = self._variants.get(channel)
        if variants is not None:
            positions.update(variants.positions())
        return positions

    # Fan-out.

    def broadcast_publication(
        self, channel: str, publication: Publication, position: StreamPosition
    ) -> tuple[int, int]:
        """Queue ``publication`` for every subscriber of ``channel`` on this node.

        Returns the size of its largest encoding (what any subscriber's queue grew by)
        and how many subscribers it was queued for.
        """
        allow_delta = publication.delta
        if allow_delta:
            publication = msgspec.structs.replace(publication, delta=False)
        encoder = Encoder(Reply(push=Push(channel=channel, pub=publication)))
        metrics = self.metrics
        reached = 0
        plain = self._plain.get(channel)
        if plain:
            # A snapshot: a subscriber that overflows its queue is removed mid-loop.
            clients = tuple(plain)
            _fan_out(clients, encoder)
            reached = len(clients)
            if metrics is not None:
                _count(metrics, "publication", clients, encoder)
        positioned = self._positioned.get(channel)
        if positioned:
            delivered = self._deliver_positioned(channel, positioned, encoder, position)
            reached += len(delivered)
            if metrics is not None:
                _count(metrics, "publication", delivered, encoder)
        size = 0
        variants = self._variants.get(channel)
        if variants is not None:
            outcome = variants.broadcast(
                channel,
                publication,
                position,
                allow_delta=allow_delta,
                encode=encoder.get,
                cache=self.delta_cache,
            )
            reached += outcome.delivered
            size = outcome.size
            if metrics is not None:
                for codec, (count, sent) in outcome.per_codec.items():
                    _add(metrics, "publication", codec, count, sent)
                metrics.tags_filter_dropped.value += outcome.dropped
        recovering = self._recovering.get(channel)
        if recovering:
            for buffer in recovering.values():
                if buffer is not None:
                    buffer.append((publication, position))
        return max(encoder.size, size), reached

    def insufficient_state(self, channels: Iterable[str]) -> int:
        """Publications of ``channels`` may have been lost on their way here: every
        positioned subscriber must recover. Return how many were told."""
        told = 0
        for channel in channels:
            clients = list(self._positioned.get(channel, ()))
            variants = self._variants.get(channel)
            if variants is not None:
                clients.extend(client for client, _ in variants.positions())
            for client in clients:
                client.insufficient_state(channel)
                told += 1
            recovering = self._recovering.get(channel)
            if recovering:
                for client in recovering:
                    recovering[client] = None
                    told += 1
        return told

    def _deliver_positioned(
        self,
        channel: str,
        positioned: dict[Client, StreamPosition],
        encoder: Encoder,
        position: StreamPosition,
    ) -> list[Client]:
        """Deliver to positioned subscribers; return those it was queued for."""
        delivered: list[Client] = []
        for client, last in tuple(positioned.items()):
            if position.epoch == last.epoch and position.offset <= last.offset:
                continue  # already delivered, by recovery
            if position.epoch != last.epoch or position.offset != last.offset + 1:
                client.insufficient_state(channel)
                continue
            positioned[client] = position
            _deliver(client, encoder)
            delivered.append(client)
        return delivered

    def broadcast_join(self, channel: str, info: ClientInfo) -> None:
        reply = Reply(push=Push(channel=channel, join=Join(info=info)))
        sent = self._broadcast_to(channel, reply)
        metrics = self.metrics
        if sent is not None and metrics is not None:
            _count(metrics, "join", *sent)

    def broadcast_leave(self, channel: str, info: ClientInfo) -> None:
        reply = Reply(push=Push(channel=channel, leave=Leave(info=info)))
        sent = self._broadcast_to(channel, reply)
        metrics = self.metrics
        if sent is not None and metrics is not None:
            _count(metrics, "leave", *sent)

    def _broadcast_to(
        self, channel: str, reply: Reply
    ) -> tuple[tuple[Client, ...], Encoder] | None:
        clients = self._join_leave.get(channel)
        if not clients:
            return None
        snapshot, encoder = tuple(clients), Encoder(reply)
        _fan_out(snapshot, encoder)
        return snapshot, encoder


def _fan_out(clients: tuple[Client, ...], encoder: Encoder) -> None:
    """Queue the push for every client: a plain call each, no await."""
    codec: Codec | None = None
    data = b""
    for client in clients:
        if client.codec is not codec:
            codec = client.codec
            data = encoder.get(codec)
        client.enqueue(data)


def _deliver(client: Client, encoder: Encoder) -> None:
    client.enqueue(encoder.get(client.codec))


def _count(metrics: HubMetrics, kind: str, clients: Sequence[Client], encoder: Encoder) -> None:
    """Add one fan-out's deliveries (``kind``: publication, join or leave) and bytes: per
    fan-out, not per delivery, unless subscribers of several codecs (so transports)
    shared it."""
    if not clients:
        return
    if encoder.encodings == 1:
        codec = clients[0].codec
        _add(metrics, kind, codec, len(clients), len(clients) * len(encoder.get(codec)))
        return
    by_codec: dict[str, tuple[Codec, int]] = {}
    for client in clients:
        codec = client.codec
        _, count = by_codec.get(codec.name, (codec, 0))
        by_codec[codec.name] = (codec, count + 1)
    for codec, count in by_codec.values():
        _add(metrics, kind, codec, count, count * len(encoder.get(codec)))


def _add(metrics: HubMetrics, kind: str, codec: Codec, count: int, size: int) -> None:
    counters = metrics.counters(codec.transport)
    getattr(counters, kind).value += count
    getattr(counters, kind + "_size").value += size


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
