"""The broker contract (wirehub.brokers.base), run against every implementation.

Streams (centrifugo-protocol.md §5.1, centrifugo-server-side.md §1.5-1.6): offsets start
at 1 and grow by exactly 1 per stored publication, assigned before the publication is
handed over; an epoch per stream; at most ``history_size`` publications, all gone
``history_ttl`` after the last publish, read or not; the position gone
``history_meta_ttl`` after the last publish or read, then a new epoch; ``remove_history``
keeps the position. History reads: limit 0 position only, < 0 all, > 0 at most that
many; ``since`` after (or, reversed, before) an offset.

Written for remote brokers too (see harness.py): the node subscribes before it expects
deliveries, deliveries are waited for, time passes through ``harness.advance``.
"""

from __future__ import annotations

import string

import pytest
from msgspec import Raw

from tests.brokers.harness import Harness, pub, publish_n
from wirehub.brokers.base import HistoryOptions, PublishOptions
from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

pytestmark = pytest.mark.anyio

KEEP = PublishOptions(history_size=10, history_ttl=60)
NONE = PublishOptions()
SHORT = PublishOptions(history_size=10, history_ttl=2, history_meta_ttl=5)
"""Publications for 2 s, the position for 5 s after the last activity."""
POSITION = HistoryOptions()


def offsets(publications: list[Publication]) -> list[int]:
    return [p.offset for p in publications]


# Offsets and epochs.


async def test_offsets_start_at_one_and_are_assigned_before_hand_over(harness: Harness) -> None:
    broker, recorder = harness.broker, harness.recorder
    await broker.subscribe("a")
    positions = [await broker.publish("a", pub(n), KEEP) for n in (1, 2, 3)]
    assert [p.offset for p in positions] == [1, 2, 3]
    epoch = positions[0].epoch
    assert {p.epoch for p in positions} == {epoch}
    await recorder.wait_for(lambda: len(recorder.publications) == 3)
    assert [(c, p.offset, p.data, pos) for c, p, pos in recorder.publications] == [
        ("a", n, Raw(b"%d" % n), StreamPosition(offset=n, epoch=epoch)) for n in (1, 2, 3)
    ]


async def test_without_history_no_offset_and_no_stream(harness: Harness) -> None:
    broker, recorder = harness.broker, harness.recorder
    await broker.subscribe("a")
    for options in (NONE, PublishOptions(history_size=10), PublishOptions(history_ttl=60)):
        position = await broker.publish("a", pub(1), options)
        assert position == StreamPosition()
    await recorder.wait_for(lambda: len(recorder.publications) == 3)
    assert [p.offset for _, p, _ in recorder.publications] == [0, 0, 0]
    assert [pos for _, _, pos in recorder.publications] == [StreamPosition()] * 3
    assert not await harness.holds("a")
    page = await broker.history("a", HistoryOptions(limit=-1))
    assert page.publications == []
    assert page.position.offset == 0


async def test_epochs_are_eight_letters_and_differ_per_stream(harness: Harness) -> None:
    a = await harness.broker.publish("a", pub(1), KEEP)
    b = await harness.broker.publish("b", pub(1), KEEP)
    assert len(a.epoch) == 8
    assert set(a.epoch) <= set(string.ascii_letters)
    assert a.epoch != b.epoch


async def test_reading_an_unknown_stream_creates_it_once(harness: Harness) -> None:
    broker = harness.broker
    first = await broker.history("a", POSITION)
    assert first.position.offset == 0
    assert first.position.epoch
    assert await harness.holds("a")
    assert (await broker.history("a", POSITION)).position == first.position
    assert (await broker.publish("a", pub(1), KEEP)).epoch == first.position.epoch


async def test_channels_have_separate_offsets(harness: Harness) -> None:
    await publish_n(harness.broker, "a", 3, KEEP)
    assert (await harness.broker.publish("b", pub(1), KEEP)).offset == 1


# Retention of publications.


async def test_history_size_trims_the_oldest(harness: Harness) -> None:
    options = PublishOptions(history_size=3, history_ttl=60)
    top = await publish_n(harness.broker, "a", 5, options)
    page = await harness.broker.history("a", HistoryOptions(limit=-1))
    assert offsets(page.publications) == [3, 4, 5]
    assert page.position == top


async def test_publications_are_freed_after_history_ttl_without_a_read(harness: Harness) -> None:
    await harness.broker.publish("a", pub(1), SHORT)
    await harness.advance(1)
    top = await harness.broker.publish("a", pub(2), SHORT)
    assert await harness.holds_publications("a")
    await harness.advance(2.5)  # 2.5 s after the last publish
    assert not await harness.holds_publications("a")  # nobody read it
    assert await harness.holds("a")  # the position stays
    page = await harness.broker.history("a", HistoryOptions(limit=-1))
    assert page.publications == []
    assert page.position == top
    assert (await harness.broker.publish("a", pub(3), SHORT)) == StreamPosition(3, top.epoch)


async def test_remove_history_keeps_offset_and_epoch(harness: Harness) -> None:
    broker = harness.broker
    top = await publish_n(broker, "a", 3, KEEP)
    await broker.remove_history("a")
    assert not await harness.holds_publications("a")
    page = await broker.history("a", HistoryOptions(limit=-1))
    assert page.publications == []
    assert page.position == top
    after = await broker.publish("a", pub(4), KEEP)
    assert after == StreamPosition(offset=4, epoch=top.epoch)
    await broker.remove_history("never-published")  # nothing to do
    assert not await harness.holds("never-published")


# Retention of the position (history_meta_ttl).


async def test_position_expires_after_history_meta_ttl_then_a_new_epoch(harness: Harness) -> None:
    broker = harness.broker
    old = await publish_n(broker, "a", 2, SHORT)
    await harness.advance(6)  # 6 s without activity; the meta TTL is 5
    assert not await harness.holds("a")  # freed without a read
    new = await broker.publish("a", pub(3), SHORT)
    assert new.offset == 1
    assert new.epoch != old.epoch
    page = await broker.history("a", HistoryOptions(limit=-1, history_meta_ttl=5))
    assert [(p.offset, p.data) for p in page.publications] == [(1, Raw(b"3"))]


async def test_publish_and_read_keep_the_position(harness: Harness) -> None:
    broker = harness.broker
    first = await broker.publish("a", pub(1), SHORT)
    await harness.advance(3)
    await broker.publish("a", pub(2), SHORT)  # activity: 5 s more from here
    await harness.advance(3)  # 6 s after the first publish
    page = await broker.history("a", HistoryOptions(history_meta_ttl=5))  # 5 s more
    assert page.position == StreamPosition(2, first.epoch)
    await harness.advance(3)
    page = await broker.history("a", HistoryOptions(history_meta_ttl=5))
    assert page.position == StreamPosition(2, first.epoch)
    assert (await broker.publish("a", pub(3), SHORT)) == StreamPosition(3, first.epoch)


async def test_remove_history_is_not_activity(harness: Harness) -> None:
    broker = harness.broker
    old = await broker.publish("a", pub(1), SHORT)
    await harness.advance(3)
    await broker.remove_history("a")
    await harness.advance(3)  # 6 s after the publish, 3 after the removal
    assert not await harness.holds("a")
    assert (await broker.publish("a", pub(2), SHORT)).epoch != old.epoch


async def test_position_created_by_a_read_expires_too(harness: Harness) -> None:
    broker = harness.broker
    options = HistoryOptions(history_meta_ttl=2)
    old = (await broker.history("a", options)).position
    assert await harness.holds("a")
    await harness.advance(3)
    assert not await harness.holds("a")
    new = (await broker.history("a", options)).position
    assert new.offset == 0
    assert new.epoch != old.epoch


async def test_zero_history_meta_ttl_keeps_the_position(harness: Harness) -> None:
    broker = harness.broker
    forever = PublishOptions(history_size=10, history_ttl=1, history_meta_ttl=0)
    first = await broker.publish("a", pub(1), forever)
    await harness.advance(3)
    assert not await harness.holds_publications("a")
    assert await harness.holds("a")
    page = await broker.history("a", HistoryOptions(history_meta_ttl=0))
    assert page.position == first
    assert (await broker.publish("a", pub(2), forever)) == StreamPosition(2, first.epoch)


# History options.


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (HistoryOptions(), []),  # limit 0: the position only
        (HistoryOptions(limit=0, since=StreamPosition(offset=1)), []),
        (HistoryOptions(limit=-1), [1, 2, 3, 4, 5]),
        (HistoryOptions(limit=2), [1, 2]),
        (HistoryOptions(limit=99), [1, 2, 3, 4, 5]),
        (HistoryOptions(limit=-1, since=StreamPosition(offset=2)), [3, 4, 5]),
        (HistoryOptions(limit=2, since=StreamPosition(offset=2)), [3, 4]),
        (HistoryOptions(limit=-1, since=StreamPosition(offset=5)), []),
        (HistoryOptions(limit=-1, since=StreamPosition(offset=0)), [1, 2, 3, 4, 5]),
        (HistoryOptions(limit=-1, reverse=True), [5, 4, 3, 2, 1]),
        (HistoryOptions(limit=2, reverse=True), [5, 4]),
        (HistoryOptions(limit=-1, since=StreamPosition(offset=4), reverse=True), [3, 2, 1]),
        (HistoryOptions(limit=1, since=StreamPosition(offset=4), reverse=True), [3]),
        (HistoryOptions(limit=-1, since=StreamPosition(offset=1), reverse=True), []),
    ],
)
async def test_history_options(
    harness: Harness, options: HistoryOptions, expected: list[int]
) -> None:
    top = await publish_n(harness.broker, "a", 5, KEEP)
    page = await harness.broker.history("a", options)
    assert offsets(page.publications) == expected
    assert page.position == top


async def test_history_returns_publications_as_stored(harness: Harness) -> None:
    info = ClientInfo(user="42", client="c1")
    publication = Publication(data=Raw(b'{"x":1}'), info=info, tags={"k": "v"})
    await harness.broker.publish("a", publication, KEEP)
    (stored,) = (await harness.broker.history("a", HistoryOptions(limit=1))).publications
    assert stored == Publication(data=Raw(b'{"x":1}'), info=info, offset=1, tags={"k": "v"})


async def test_the_delta_flag_travels_live_but_is_not_stored(harness: Harness) -> None:
    """The publisher's "deltas allowed" reaches the nodes' hubs; history never has it."""
    broker, recorder = harness.broker, harness.recorder
    await broker.subscribe("a")
    for options in (KEEP, NONE):
        await broker.publish("a", Publication(data=Raw(b"1"), delta=True), options)
    await broker.publish("a", Publication(data=Raw(b"2")), KEEP)
    await recorder.wait_for(lambda: len(recorder.publications) == 3)
    assert [p.delta for _, p, _ in recorder.publications] == [True, True, False]
    page = await broker.history("a", HistoryOptions(limit=-1))
    assert [(p.offset, p.delta) for p in page.publications] == [(1, False), (2, False)]


# Join and leave.


async def test_join_and_leave_are_handed_over(harness: Harness) -> None:
    broker, recorder = harness.broker, harness.recorder
    await broker.subscribe("a")
    info = ClientInfo(user="42", client="c1")
    await broker.publish_join("a", info)
    await broker.publish_leave("a", info)
    await recorder.wait_for(lambda: bool(recorder.joins and recorder.leaves))
    assert recorder.joins == [("a", info)]
    assert recorder.leaves == [("a", info)]
