"""Pure tests of wirehub.core.recovery: whether a client recovers, and what it gets.

centrifugo-protocol.md §5.4 (stream-mode recovery): the client's epoch, when sent, must
match; history must hold exactly the publications from offset + 1 up to the top (none
when the client is at the top) and no more than the limit; publications buffered
while history was read are merged in order, duplicates dropped, a hole reported.
"""

from __future__ import annotations

from msgspec import Raw

from wirehub.core.recovery import Recovery, merge_live, recover
from wirehub.protocol.types import Publication, StreamPosition

EPOCH = "AbCdEfGh"
OTHER = "ZzZzZzZz"


def pub(offset: int) -> Publication:
    return Publication(data=Raw(b'{"n":%d}' % offset), offset=offset)


def pubs(first: int, last: int) -> list[Publication]:
    return [pub(n) for n in range(first, last + 1)]


def pos(offset: int, epoch: str = EPOCH) -> StreamPosition:
    return StreamPosition(offset=offset, epoch=epoch)


def live(*offsets: int, epoch: str = EPOCH) -> list[tuple[Publication, StreamPosition]]:
    """Publications as the hub buffers them: each with the stream position after it."""
    return [(pub(n), pos(n, epoch)) for n in offsets]


def offsets(recovery: Recovery) -> list[int]:
    return [p.offset for p in recovery.publications]


# recover(): success.


def test_client_at_the_top_recovers_nothing() -> None:
    recovery = recover(pos(5), [], pos(5), [], limit=300)
    assert recovery == Recovery(True, [], pos(5))


def test_empty_stream_and_client_at_zero_recovers() -> None:
    assert recover(pos(0), [], pos(0), [], limit=300) == Recovery(True, [], pos(0))


def test_missed_publications_are_recovered_in_order() -> None:
    recovery = recover(pos(2), pubs(3, 5), pos(5), [], limit=300)
    assert recovery.recovered
    assert not recovery.gap
    assert offsets(recovery) == [3, 4, 5]
    assert recovery.position == pos(5)


def test_client_without_epoch_recovers() -> None:
    """centrifuge-js omits an empty epoch; only a sent, different epoch fails recovery."""
    recovery = recover(StreamPosition(offset=2), pubs(3, 4), pos(4), [], limit=300)
    assert recovery.recovered
    assert offsets(recovery) == [3, 4]


def test_exactly_limit_publications_recover() -> None:
    recovery = recover(pos(0), pubs(1, 3), pos(3), [], limit=3)
    assert recovery.recovered
    assert offsets(recovery) == [1, 2, 3]


def test_buffered_duplicates_are_dropped_and_newer_ones_appended() -> None:
    """A publication that raced the history read is both in history and buffered."""
    recovery = recover(pos(2), pubs(3, 5), pos(5), live(4, 5, 6, 7), limit=300)
    assert recovery.recovered
    assert not recovery.gap
    assert offsets(recovery) == [3, 4, 5, 6, 7]
    assert recovery.position == pos(7)


def test_buffered_publications_after_an_empty_history() -> None:
    recovery = recover(pos(5), [], pos(5), live(6), limit=300)
    assert recovery == Recovery(True, [pub(6)], pos(6))


def test_buffered_publication_of_another_epoch_is_ignored() -> None:
    recovery = recover(pos(2), pubs(3, 3), pos(3), live(4, epoch=OTHER), limit=300)
    assert recovery.recovered
    assert offsets(recovery) == [3]
    assert recovery.position == pos(3)


def test_buffered_hole_is_a_gap() -> None:
    recovery = recover(pos(2), pubs(3, 3), pos(3), live(5), limit=300)
    assert recovery.gap
    assert recovery.recovered


# recover(): failure.


def test_epoch_mismatch_fails() -> None:
    recovery = recover(pos(2, OTHER), pubs(3, 5), pos(5), [], limit=300)
    assert not recovery.recovered
    assert recovery.publications == []
    assert recovery.position == pos(5)


def test_epoch_mismatch_still_hands_over_live_publications() -> None:
    """Not recovered: what arrived after the top is delivered after the reply."""
    recovery = recover(pos(2, OTHER), pubs(3, 5), pos(5), live(5, 6), limit=300)
    assert recovery == Recovery(False, [pub(6)], pos(6))


def test_first_missed_publication_evicted_fails() -> None:
    """History trimmed (history_size) or expired (history_ttl): offset 3 is gone."""
    recovery = recover(pos(2), pubs(4, 5), pos(5), [], limit=300)
    assert not recovery.recovered
    assert recovery.position == pos(5)


def test_all_missed_publications_expired_fails() -> None:
    recovery = recover(pos(2), [], pos(5), [], limit=300)
    assert not recovery.recovered
    assert recovery.position == pos(5)


def test_history_not_reaching_the_top_fails() -> None:
    recovery = recover(pos(2), pubs(3, 4), pos(5), [], limit=300)
    assert not recovery.recovered


def test_more_than_the_limit_missed_fails() -> None:
    """The caller reads limit + 1 items: one too many means too much was missed."""
    recovery = recover(pos(0), pubs(1, 4), pos(4), [], limit=3)
    assert not recovery.recovered
    assert recovery.publications == []


def test_client_ahead_of_the_top_fails() -> None:
    recovery = recover(pos(9), [], pos(5), [], limit=300)
    assert not recovery.recovered
    assert recovery.position == pos(5)


def test_failure_with_a_buffered_hole_is_a_gap() -> None:
    recovery = recover(pos(2, OTHER), [], pos(5), live(7), limit=300)
    assert recovery.gap
    assert not recovery.recovered


# merge_live(): positioned subscribe without recovery.


def test_merge_live_nothing_buffered() -> None:
    assert merge_live(pos(5), []) == Recovery(False, [], pos(5))


def test_merge_live_keeps_only_what_follows_the_top() -> None:
    """Publications at or below the top were published before the position was read."""
    recovery = merge_live(pos(5), live(4, 5, 6, 7))
    assert offsets(recovery) == [6, 7]
    assert recovery.position == pos(7)
    assert not recovery.gap


def test_merge_live_skips_another_epoch() -> None:
    recovery = merge_live(pos(5), live(6, epoch=OTHER))
    assert recovery == Recovery(False, [], pos(5))


def test_merge_live_hole_is_a_gap() -> None:
    recovery = merge_live(pos(5), live(6, 8))
    assert recovery.gap
    assert recovery.publications == []


def test_merge_live_passes_recovered_through() -> None:
    assert merge_live(pos(1), [], recovered=True).recovered
