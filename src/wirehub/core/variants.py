"""Subscribers who receive a channel's publications in a variant form: through a tags
filter, or as fossil deltas.

The hub keeps them apart from its plain and positioned subscribers, so that ordinary
fan-out pays one dictionary look-up per publication for them (is there a variant here?).

Rules (``centrifugo-server-side.md`` §9.1, §9.2):

1. Filtered subscribers are grouped by filter (:attr:`TagsFilter.key`): a distinct
   filter is evaluated once per publication, however many subscribers share it. A match
   is delivered with the very bytes ordinary subscribers get; a miss is not delivered,
   but still moves a positioned subscriber's position on (no false gap), and is counted
   (``centrifugo_node_tags_filter_dropped_publications``).
2. A channel's delta subscribers share one base: the last payload this node saw in the
   channel, with its position. The publication at offset ``N`` of epoch ``E`` has a
   delta when the base is ``(N - 1, E)``, its publisher allowed deltas, and the delta is
   shorter than the payload: computed once per channel (and kept in the node's
   :class:`~wirehub.core.delta.DeltaCache`, for recoveries), encoded once per codec.
3. A delta subscriber is sent the delta only when it holds the payload at ``(N - 1,
   E)``: it was sent that one (live, or last in its subscribe reply). Anything else gets
   the full payload, which it holds from then on: the first publication after subscribe,
   or after a gap, is full. Publications without an offset (no history) are always full.
   The last payload of a subscribe reply also seeds the base when this node has none as
   recent (every base is a true pair of payload and position, so a delta is never made
   against the wrong one).
4. Every publication a delta subscriber gets, full or delta, carries its data as the
   codec's :meth:`~wirehub.protocol.codec.Codec.delta_data` (JSON: a string).
5. Positioned variant subscribers are checked like the hub's own (duplicates skipped, a
   gap reported with ``Client.insufficient_state``) before any of this.

The per-channel base costs one payload of memory per channel that has delta subscribers
on this node; it goes with the last of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import msgspec

from wirehub.protocol.types import Publication, Push, Reply, StreamPosition

if TYPE_CHECKING:
    from wirehub.core.client import Client
    from wirehub.core.delta import DeltaCache
    from wirehub.core.tags_filter import TagsFilter
    from wirehub.protocol.codec import Codec

__all__ = ["ChannelVariants", "DeltaGroup", "FilterGroup", "Outcome"]

Encode = Callable[["Codec"], bytes]
"""The bytes ordinary subscribers get for this publication, per codec (cached)."""


class Outcome:
    """What one fan-out to a channel's variant subscribers did."""

    __slots__ = ("dropped", "per_codec", "size")

    def __init__(self) -> None:
        self.per_codec: dict[Codec, list[int]] = {}
        """Deliveries and bytes queued, per codec (so per transport, for metrics)."""
        self.size = 0
        """The largest message made for delta subscribers (filtered ones get the hub's
        own encoding, whose size the hub knows)."""
        self.dropped = 0
        """Deliveries a tags filter held back."""

    @property
    def delivered(self) -> int:
        return sum(count for count, _ in self.per_codec.values())

    def tally(self, codec: Codec, sent: int, size: int) -> None:
        """Count ``sent`` deliveries of ``size`` bytes in all to ``codec``'s clients."""
        entry = self.per_codec.get(codec)
        if entry is None:
            self.per_codec[codec] = [sent, size]
        else:
            entry[0] += sent
            entry[1] += size


def _step(
    channel: str, client: Client, last: StreamPosition, position: StreamPosition
) -> bool | None:
    """A positioned subscriber at ``last`` meets ``position``: True to deliver, False
    for a duplicate (skip), None for a gap (reported)."""
    if position.epoch == last.epoch and position.offset <= last.offset:
        return False
    if position.epoch != last.epoch or position.offset != last.offset + 1:
        client.insufficient_state(channel)
        return None
    return True


class FilterGroup:
    """The subscribers of one channel that share one tags filter."""

    __slots__ = ("filter", "plain", "positioned")

    def __init__(self, tags_filter: TagsFilter) -> None:
        self.filter = tags_filter
        self.plain: set[Client] = set()
        self.positioned: dict[Client, StreamPosition] = {}

    def __len__(self) -> int:
        return len(self.plain) + len(self.positioned)

    def add(self, client: Client, position: StreamPosition | None) -> None:
        if position is None:
            self.plain.add(client)
        else:
            self.positioned[client] = position

    def discard(self, client: Client) -> None:
        self.plain.discard(client)
        self.positioned.pop(client, None)

    def broadcast(
        self,
        channel: str,
        publication: Publication,
        position: StreamPosition,
        encode: Encode,
        outcome: Outcome,
    ) -> None:
        matched = self.filter.match(publication.tags)
        tally = outcome.tally
        positioned = self.positioned
        for client, last in tuple(positioned.items()):
            if _step(channel, client, last, position):
                positioned[client] = position
                if matched:
                    data = encode(client.codec)
                    client.enqueue(data)
                    tally(client.codec, 1, len(data))
                else:
                    outcome.dropped += 1
        if matched:
            for client in tuple(self.plain):
                data = encode(client.codec)
                client.enqueue(data)
                tally(client.codec, 1, len(data))
        else:
            outcome.dropped += len(self.plain)


class DeltaGroup:
    """The delta subscribers of one channel, and the channel's base payload here."""

    __slots__ = ("base", "base_position", "holding", "plain", "positioned")

    def __init__(self) -> None:
        self.plain: dict[Client, StreamPosition | None] = {}
        """Subscribers without positioning: the position of the payload each holds."""
        self.positioned: dict[Client, StreamPosition] = {}
        """Positioned subscribers: the last position delivered to each."""
        self.holding: set[Client] = set()
        """Positioned subscribers that hold the payload at their last position."""
        self.base: bytes | None = None
        self.base_position: StreamPosition | None = None

    def __len__(self) -> int:
        return len(self.plain) + len(self.positioned)

    def add(self, client: Client, position: StreamPosition | None, held: bytes | None) -> None:
        if position is None:
            self.plain[client] = None
            return
        self.positioned[client] = position
        if held is None:
            return
        self.holding.add(client)
        base = self.base_position
        if base is None or base.epoch != position.epoch or base.offset < position.offset:
            self.base, self.base_position = held, position

    def discard(self, client: Client) -> None:
        self.plain.pop(client, None)
        self.positioned.pop(client, None)
        self.holding.discard(client)

    def broadcast(
        self,
        channel: str,
        publication: Publication,
        position: StreamPosition,
        allow_delta: bool,
        cache: DeltaCache | None,
        outcome: Outcome,
    ) -> None:
        payload = bytes(publication.data)
        offset = position.offset
        previous = StreamPosition(offset=offset - 1, epoch=position.epoch) if offset else None
        delta = None
        if allow_delta and previous is not None and previous == self.base_position:
            assert self.base is not None
            delta = _delta(cache, channel, position, self.base, payload)
        self.base, self.base_position = (payload, position) if offset else (None, None)
        encoder = _DeltaEncoder(publication, payload, delta, channel)
        # The loops are the hot path of delta channels: kept inline, one codec look-up
        # per subscriber.
        tally = outcome.tally
        positioned, holding = self.positioned, self.holding
        epoch = position.epoch
        for client, last in tuple(positioned.items()):
            if last.epoch == epoch and offset <= last.offset:
                continue  # already delivered, by recovery
            if last.epoch != epoch or offset != last.offset + 1:
                client.insufficient_state(channel)
                continue
            positioned[client] = position
            if delta is not None and client in holding:
                data = encoder.delta(client.codec)
            else:
                holding.add(client)
                data = encoder.full(client.codec)
            client.enqueue(data)
            tally(client.codec, 1, len(data))
        plain = self.plain
        held_now = position if offset else None
        for client, held in tuple(plain.items()):
            plain[client] = held_now
            if delta is not None and held == previous:
                data = encoder.delta(client.codec)
            else:
                data = encoder.full(client.codec)
            client.enqueue(data)
            tally(client.codec, 1, len(data))
        outcome.size = max(outcome.size, encoder.largest)


def _delta(
    cache: DeltaCache | None, channel: str, position: StreamPosition, base: bytes, payload: bytes
) -> bytes | None:
    if cache is None:
        from wirehub.core.delta import make_delta

        return make_delta(base, payload)
    return cache.delta(channel, position, base, payload)


class _DeltaEncoder:
    """Encodes a publication for delta subscribers, at most once per codec and form."""

    __slots__ = ("_channel", "_delta", "_deltas", "_fulls", "_payload", "_publication")

    def __init__(
        self, publication: Publication, payload: bytes, delta: bytes | None, channel: str
    ) -> None:
        self._publication = publication
        self._payload = payload
        self._delta = delta
        self._channel = channel
        self._fulls: dict[Codec, bytes] = {}
        self._deltas: dict[Codec, bytes] = {}

    def full(self, codec: Codec) -> bytes:
        data = self._fulls.get(codec)
        if data is None:
            data = self._fulls[codec] = self._encode(codec, self._payload, False)
        return data

    def delta(self, codec: Codec) -> bytes:
        """Only when there is a delta."""
        data = self._deltas.get(codec)
        if data is None:
            assert self._delta is not None
            data = self._deltas[codec] = self._encode(codec, self._delta, True)
        return data

    @property
    def largest(self) -> int:
        return max(map(len, (*self._fulls.values(), *self._deltas.values())), default=0)

    def _encode(self, codec: Codec, raw: bytes, is_delta: bool) -> bytes:
        pub = msgspec.structs.replace(self._publication, data=codec.delta_data(raw), delta=is_delta)
        return codec.encode_reply(Reply(push=Push(channel=self._channel, pub=pub)))


class ChannelVariants:
    """One channel's variant subscribers: its delta group and its filter groups."""

    __slots__ = ("delta", "filters", "group_of")

    def __init__(self) -> None:
        self.delta: DeltaGroup | None = None
        self.filters: dict[bytes, FilterGroup] = {}
        self.group_of: dict[Client, DeltaGroup | FilterGroup] = {}

    def __len__(self) -> int:
        return len(self.group_of)

    def add(
        self,
        client: Client,
        position: StreamPosition | None,
        *,
        tags_filter: TagsFilter | None,
        held: bytes | None,
    ) -> None:
        self.discard(client)
        if tags_filter is None:
            if self.delta is None:
                self.delta = DeltaGroup()
            self.delta.add(client, position, held)
            self.group_of[client] = self.delta
            return
        group = self.filters.get(tags_filter.key)
        if group is None:
            group = self.filters[tags_filter.key] = FilterGroup(tags_filter)
        group.add(client, position)
        self.group_of[client] = group

    def discard(self, client: Client) -> bool:
        """Forget ``client``; return whether it was here."""
        group = self.group_of.pop(client, None)
        if group is None:
            return False
        group.discard(client)
        if not group:
            if group is self.delta:
                self.delta = None  # and the base payload with it
            else:
                assert isinstance(group, FilterGroup)
                del self.filters[group.filter.key]
        return True

    def positions(self) -> Iterator[tuple[Client, StreamPosition]]:
        """Every positioned subscriber here, with its last delivered position."""
        if self.delta is not None:
            yield from self.delta.positioned.items()
        for group in self.filters.values():
            yield from group.positioned.items()

    def broadcast(
        self,
        channel: str,
        publication: Publication,
        position: StreamPosition,
        *,
        allow_delta: bool,
        encode: Encode,
        cache: DeltaCache | None,
    ) -> Outcome:
        outcome = Outcome()
        if self.delta is not None:
            self.delta.broadcast(channel, publication, position, allow_delta, cache, outcome)
        for group in tuple(self.filters.values()):
            group.broadcast(channel, publication, position, encode, outcome)
        return outcome
