"""Recovery after reconnect: pure functions over history pages and buffered publications.

Rules (``centrifugo-protocol.md`` §5.4): recovery is all or nothing.

1. The client's epoch, when it sent one, must equal the stream's; else not recovered.
2. History must hold exactly the publications after the client's offset up to the top:
   none when the client is at the top, otherwise a first offset of ``offset + 1`` and a
   last one equal to the top, and no more than the recovery limit.
3. Live publications that arrived while history was read are merged in, ordered by
   offset, duplicates dropped. A hole in the merged list means something was lost in
   between: the caller disconnects with 3010 so the client tries again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wirehub.protocol.types import Publication, StreamPosition

__all__ = ["Recovery", "merge_live", "recover"]


@dataclass(frozen=True, slots=True)
class Recovery:
    recovered: bool
    publications: list[Publication]
    """Recovered and buffered publications, ascending; empty when not recovered."""
    position: StreamPosition
    """The position after the last publication the client will have seen."""
    gap: bool = False
    """The merge with buffered live publications found a hole."""


def recover(
    since: StreamPosition,
    history: Sequence[Publication],
    top: StreamPosition,
    buffered: Sequence[tuple[Publication, StreamPosition]],
    *,
    limit: int,
) -> Recovery:
    """Decide whether a client at ``since`` recovers from ``history`` (read after
    ``since``, ascending, at most ``limit + 1`` items) and the publications
    ``buffered`` while it was read."""
    if since.epoch and since.epoch != top.epoch:
        return merge_live(top, buffered, recovered=False)
    complete = (not history and top.offset == since.offset) or (
        0 < len(history) <= limit
        and history[0].offset == since.offset + 1
        and history[-1].offset == top.offset
    )
    if not complete:
        return merge_live(top, buffered, recovered=False)
    merged = list(history)
    last = top.offset
    for publication, position in buffered:
        if position.epoch != top.epoch or publication.offset <= last:
            continue
        if publication.offset != last + 1:
            return Recovery(True, merged, top, gap=True)
        merged.append(publication)
        last = publication.offset
    return Recovery(True, merged, StreamPosition(offset=last, epoch=top.epoch))


def merge_live(
    top: StreamPosition,
    buffered: Sequence[tuple[Publication, StreamPosition]],
    *,
    recovered: bool = False,
) -> Recovery:
    """Without recovery: the live publications that arrived after ``top`` was read, to
    be delivered right after the subscribe reply."""
    live: list[Publication] = []
    last = top.offset
    for publication, position in buffered:
        if position.epoch != top.epoch or publication.offset <= last:
            continue
        if publication.offset != last + 1:
            return Recovery(recovered, [], top, gap=True)
        live.append(publication)
        last = publication.offset
    return Recovery(recovered, live, StreamPosition(offset=last, epoch=top.epoch))
