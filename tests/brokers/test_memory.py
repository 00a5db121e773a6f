"""The in-memory broker and presence manager (wirehub.brokers.memory).

The broker contract (wirehub.brokers.base, centrifugo-protocol.md §5.1): offsets start
at 1 and grow by exactly 1 per stored publication, assigned before the publication is
handed over; an epoch per stream, fresh whenever a stream is created; at most
``history_size`` items, each living ``history_ttl``; ``remove_history`` keeps the
position. History reads: limit 0 position only, < 0 all, > 0 at most that many;
``since`` after (or, reversed, before) an offset.
"""

from __future__ import annotations

import string

import pytest
from msgspec import Raw

from tests.core.fakes import FakeClock
from wirehub.brokers import load_broker
from wirehub.brokers.base import HistoryOptions, PublishOptions
from wirehub.brokers.memory import MemoryBroker, MemoryPresenceManager, new_epoch
from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

pytestmark = pytest.mark.anyio

KEEP = PublishOptions(history_size=10, history_ttl=60)
NONE = PublishOptions()


class Recorder:
    """A BrokerEventHandler that records what it is handed."""

    def __init__(self) -> None:
        self.publications: list[tuple[str, Publication, StreamPosition]] = []
        self.joins: list[tuple[str, ClientInfo]] = []
        self.leaves: list[tuple[str, ClientInfo]] = []

    def handle_publication(
        self, channel: str, publication: Publication, position: StreamPosition
    ) -> None:
        self.publications.append((channel, publication, position))

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        self.joins.append((channel, info))

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        self.leaves.append((channel, info))


def pub(n: int) -> Publication:
    return Publication(data=Raw(b"%d" % n))


async def started(clock: FakeClock | None = None) -> tuple[MemoryBroker, Recorder]:
    broker = MemoryBroker(clock=clock or FakeClock())
    recorder = Recorder()
    await broker.start(recorder)
    return broker, recorder


async def publish_n(
    broker: MemoryBroker, channel: str, count: int, options: PublishOptions = KEEP
) -> StreamPosition:
    position = StreamPosition()
    for n in range(1, count + 1):
        position = await broker.publish(channel, pub(n), options)
    return position


def offsets(publications: list[Publication]) -> list[int]:
    return [p.offset for p in publications]


# Offsets and epochs.


async def test_offsets_start_at_one_and_are_assigned_before_hand_over() -> None:
    broker, recorder = await started()
    positions = [await broker.publish("a", pub(n), KEEP) for n in (1, 2, 3)]
    assert [p.offset for p in positions] == [1, 2, 3]
    epoch = positions[0].epoch
    assert {p.epoch for p in positions} == {epoch}
    assert [(c, p.offset, p.data, pos) for c, p, pos in recorder.publications] == [
        ("a", n, Raw(b"%d" % n), StreamPosition(offset=n, epoch=epoch)) for n in (1, 2, 3)
    ]


async def test_without_history_no_offset_and_no_stream() -> None:
    broker, recorder = await started()
    for options in (NONE, PublishOptions(history_size=10), PublishOptions(history_ttl=60)):
        position = await broker.publish("a", pub(1), options)
        assert position == StreamPosition()
    assert [p.offset for _, p, _ in recorder.publications] == [0, 0, 0]
    assert [pos for _, _, pos in recorder.publications] == [StreamPosition()] * 3
    page = await broker.history("a", HistoryOptions(limit=-1))
    assert page.publications == []
    assert page.position.offset == 0


async def test_epochs_are_eight_letters_per_stream_and_per_broker() -> None:
    broker, _ = await started()
    a = await broker.publish("a", pub(1), KEEP)
    b = await broker.publish("b", pub(1), KEEP)
    assert len(a.epoch) == 8
    assert set(a.epoch) <= set(string.ascii_letters)
    assert a.epoch != b.epoch
    restarted, _ = await started()  # the memory engine restarting
    assert (await restarted.publish("a", pub(1), KEEP)).epoch != a.epoch
    assert len({new_epoch() for _ in range(20)}) == 20


async def test_reading_an_unknown_stream_creates_it_once() -> None:
    broker, _ = await started()
    first = await broker.history("a", HistoryOptions())
    assert first.position.offset == 0
    assert first.position.epoch
    assert (await broker.history("a", HistoryOptions())).position == first.position
    assert (await broker.publish("a", pub(1), KEEP)).epoch == first.position.epoch


async def test_channels_have_separate_offsets() -> None:
    broker, _ = await started()
    await publish_n(broker, "a", 3)
    assert (await broker.publish("b", pub(1), KEEP)).offset == 1


# Retention.


async def test_history_size_trims_the_oldest() -> None:
    broker, _ = await started()
    top = await publish_n(broker, "a", 5, PublishOptions(history_size=3, history_ttl=60))
    page = await broker.history("a", HistoryOptions(limit=-1))
    assert offsets(page.publications) == [3, 4, 5]
    assert page.position == top


async def test_history_ttl_expires_items_but_keeps_the_position() -> None:
    clock = FakeClock()
    broker, _ = await started(clock)
    options = PublishOptions(history_size=10, history_ttl=10)
    await broker.publish("a", pub(1), options)
    clock.advance(6)
    top = await broker.publish("a", pub(2), options)
    clock.advance(4)  # the first is exactly 10 s old: expired
    page = await broker.history("a", HistoryOptions(limit=-1))
    assert offsets(page.publications) == [2]
    clock.advance(6)
    page = await broker.history("a", HistoryOptions(limit=-1))
    assert page.publications == []
    assert page.position == top
    assert (await broker.publish("a", pub(3), options)).offset == 3


async def test_remove_history_keeps_offset_and_epoch() -> None:
    broker, _ = await started()
    top = await publish_n(broker, "a", 3)
    await broker.remove_history("a")
    page = await broker.history("a", HistoryOptions(limit=-1))
    assert page.publications == []
    assert page.position == top
    after = await broker.publish("a", pub(4), KEEP)
    assert after == StreamPosition(offset=4, epoch=top.epoch)
    await broker.remove_history("never-published")  # nothing to do


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
async def test_history_options(options: HistoryOptions, expected: list[int]) -> None:
    broker, _ = await started()
    top = await publish_n(broker, "a", 5)
    page = await broker.history("a", options)
    assert offsets(page.publications) == expected
    assert page.position == top


async def test_history_returns_publications_as_stored() -> None:
    broker, _ = await started()
    info = ClientInfo(user="42", client="c1")
    publication = Publication(data=Raw(b'{"x":1}'), info=info, tags={"k": "v"})
    await broker.publish("a", publication, KEEP)
    (stored,) = (await broker.history("a", HistoryOptions(limit=1))).publications
    assert stored == Publication(data=Raw(b'{"x":1}'), info=info, offset=1, tags={"k": "v"})


# Join, leave, lifecycle.


async def test_join_and_leave_are_handed_over() -> None:
    broker, recorder = await started()
    info = ClientInfo(user="42", client="c1")
    await broker.publish_join("a", info)
    await broker.publish_leave("a", info)
    assert recorder.joins == [("a", info)]
    assert recorder.leaves == [("a", info)]


async def test_after_close_nothing_is_handed_over_but_history_is_kept() -> None:
    broker, recorder = await started()
    await broker.subscribe("a")
    await broker.close()
    await broker.close()  # idempotent
    assert (await broker.publish("a", pub(1), KEEP)).offset == 1
    await broker.publish_join("a", ClientInfo(user="", client="c"))
    assert recorder.publications == []
    assert recorder.joins == []
    await broker.unsubscribe("a")


def test_load_broker() -> None:
    assert isinstance(load_broker("memory"), MemoryBroker)
    with pytest.raises(ValueError, match="unknown broker"):
        load_broker("nope")


# Presence.


async def test_presence_manager() -> None:
    presence = MemoryPresenceManager()
    alice = ClientInfo(user="42", client="c1")
    alice_tab = ClientInfo(user="42", client="c2")
    anon = ClientInfo(user="", client="c3")
    anon2 = ClientInfo(user="", client="c4", conn_info=Raw(b'{"n":1}'))
    for info in (alice, alice_tab, anon, anon2):
        await presence.add_presence("room", info)
    assert await presence.presence("room") == {
        "c1": alice,
        "c2": alice_tab,
        "c3": anon,
        "c4": anon2,
    }
    stats = await presence.presence_stats("room")
    assert (stats.num_clients, stats.num_users) == (4, 2)  # "" is one user
    # Adding a client again replaces its entry.
    updated = ClientInfo(user="42", client="c1", chan_info=Raw(b'"mod"'))
    await presence.add_presence("room", updated)
    assert (await presence.presence("room"))["c1"] == updated
    await presence.remove_presence("room", "c1")
    await presence.remove_presence("room", "c1")  # already gone
    await presence.remove_presence("elsewhere", "c1")
    stats = await presence.presence_stats("room")
    assert (stats.num_clients, stats.num_users) == (3, 2)
    for client in ("c2", "c3", "c4"):
        await presence.remove_presence("room", client)
    assert await presence.presence("room") == {}
    stats = await presence.presence_stats("room")
    assert (stats.num_clients, stats.num_users) == (0, 0)
    assert presence._channels == {}  # an empty channel leaves nothing behind


async def test_presence_returns_a_copy() -> None:
    presence = MemoryPresenceManager()
    await presence.add_presence("room", ClientInfo(user="1", client="c1"))
    snapshot = await presence.presence("room")
    snapshot.clear()
    assert list(await presence.presence("room")) == ["c1"]
