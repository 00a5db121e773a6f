"""Delta compression (fossil): negotiation, a stream's deltas, and subscribe replies.

Rules (``centrifugo-protocol.md`` §2.7, ``centrifugo-server-side.md`` §9.1):

1. A subscribe asking for ``delta: "fossil"`` gets ``delta: true`` when the namespace's
   ``allowed_delta_types`` has it, and ``false`` (no error) otherwise; another delta
   type is a malformed request: disconnect 3501, as Centrifugo does.
2. A delta is taken only when it is shorter than the payload
   (:func:`make_delta`); the delta between two consecutive publications of a stream
   is the same for every subscriber, so the node keeps recent ones
   (:class:`DeltaCache`): live fan-out computes each once per channel, and subscribers
   recovering the same publications reuse them.
3. The publications of a subscribe reply, and the live ones queued right after it, go
   to a delta subscriber as one chain (:func:`chain`): the first in full, each next as
   a delta against the one before when that is shorter. History replies never carry
   deltas.

Where the previous payload comes from: the node itself. Publications of a channel reach
a node in order with their offsets, so the hub keeps the last payload of each channel
that has delta subscribers here and checks, by offset and epoch, that it is the one
right before the next publication. No broker change is needed, and nothing more travels
through Redis (Centrifugo's Redis broker reads the previous stream entry in its publish
script and sends both payloads over PUB/SUB, doubling every delta channel's traffic to
every node). The cost: one payload per such channel in this node's memory, and a full
payload for the first publication after this node's first delta subscriber joined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import msgspec

from wirehub.errors import DISCONNECT_BAD_REQUEST
from wirehub.protocol.fossil import create_delta
from wirehub.protocol.types import Publication, StreamPosition

if TYPE_CHECKING:
    from wirehub.config import NamespaceOptions
    from wirehub.protocol.codec import Codec

__all__ = ["DeltaCache", "chain", "make_delta", "negotiate"]

FOSSIL: Final = "fossil"


def negotiate(delta: str, options: NamespaceOptions) -> bool:
    """Whether a subscribe asking for ``delta`` gets deltas (rule 1).

    Raises:
        Disconnect: 3501, an unknown delta type.
    """
    if not delta:
        return False
    if delta != FOSSIL:
        raise DISCONNECT_BAD_REQUEST
    return FOSSIL in options.allowed_delta_types


def make_delta(base: bytes, payload: bytes) -> bytes | None:
    """The fossil delta from ``base`` to ``payload``; None when it is not shorter."""
    delta = create_delta(base, payload)
    return delta if len(delta) < len(payload) else None


class DeltaCache:
    """Deltas between consecutive publications of streams, by (channel, epoch, offset):
    the delta from the payload at ``offset - 1`` to the one at ``offset`` (or None: no
    delta is shorter). Bounded in entries and bytes; the oldest entries go first.

    Args:
        max_entries: entries kept at most.
        max_bytes: bytes of deltas kept at most.
    """

    def __init__(self, *, max_entries: int = 4096, max_bytes: int = 4 << 20) -> None:
        self._entries: dict[tuple[str, str, int], bytes | None] = {}
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def delta(
        self, channel: str, position: StreamPosition, base: bytes, payload: bytes
    ) -> bytes | None:
        """The delta to the publication at ``position`` from ``base``, the payload right
        before it; computed once, then remembered."""
        key = (channel, position.epoch, position.offset)
        if key in self._entries:
            return self._entries[key]
        delta = make_delta(base, payload)
        self._entries[key] = delta
        self._bytes += len(delta or b"")
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            oldest = next(iter(self._entries))
            self._bytes -= len(self._entries.pop(oldest) or b"")
        return delta


def chain(
    codec: Codec,
    channel: str,
    epoch: str,
    publications: Sequence[Publication],
    cache: DeltaCache | None = None,
) -> list[Publication]:
    """``publications`` (ascending offsets, one epoch) as a delta subscriber gets them
    (rule 3): data as ``codec.delta_data``, the first full, the others deltas against
    their predecessor where shorter."""
    out: list[Publication] = []
    previous: Publication | None = None
    for publication in publications:
        payload = bytes(publication.data)
        delta = None
        if previous is not None and publication.offset == previous.offset + 1:
            base = bytes(previous.data)
            position = StreamPosition(offset=publication.offset, epoch=epoch)
            if cache is None:
                delta = make_delta(base, payload)
            else:
                delta = cache.delta(channel, position, base, payload)
        data = codec.delta_data(payload if delta is None else delta)
        out.append(msgspec.structs.replace(publication, data=data, delta=delta is not None))
        previous = publication
    return out
