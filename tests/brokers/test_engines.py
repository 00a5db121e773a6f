"""Engines: the broker contract over every implementation, and several nodes sharing
one Redis.

Each test runs against the memory broker, one Redis, Redis sharded over two servers, a
3-master Redis Cluster and the same Cluster with sharded PUB/SUB (``backend``); what needs several nodes runs against the Redis
ones (``redis_backend``), each node a broker of its own on the same Redis. (The
time-driven stream rules are in ``test_contract.py``'s suite, where ``redis_harness.py``
plugs the same Redis setups in.)
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import AsyncIterator

import pytest
from msgspec import Raw

from tests.brokers.engines import Backend, Peer, address
from tests.support.redis import eventually
from wirehub.brokers.base import HistoryOptions, PublishOptions
from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

pytestmark = pytest.mark.anyio

KEEP = PublishOptions(history_size=10, history_ttl=60)
NONE = PublishOptions()


@pytest.fixture(
    params=["memory", "redis", "redis-sharded", "redis-cluster", "redis-cluster-sharded"]
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    chosen = Backend(request.param, address(request.param))
    yield chosen
    await chosen.close()


@pytest.fixture(params=["redis", "redis-sharded", "redis-cluster", "redis-cluster-sharded"])
async def redis_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    chosen = Backend(request.param, address(request.param))
    yield chosen
    await chosen.close()


def pub(n: int) -> Publication:
    return Publication(data=Raw(b"%d" % n))


def offsets(publications: list[Publication]) -> list[int]:
    return [p.offset for p in publications]


async def publish_n(
    peer: Peer, channel: str, count: int, options: PublishOptions = KEEP
) -> StreamPosition:
    position = StreamPosition()
    for n in range(1, count + 1):
        position = await peer.broker.publish(channel, pub(n), options)
    return position


async def subscribed(backend: Backend, *channels: str) -> Peer:
    peer = await backend.peer()
    for channel in channels:
        await peer.broker.subscribe(channel)
    return peer


# Offsets, epochs, delivery.


async def test_offsets_start_at_one_and_travel_with_publications(backend: Backend) -> None:
    peer = await subscribed(backend, "a")
    positions = [await peer.broker.publish("a", pub(n), KEEP) for n in (1, 2, 3)]
    assert [p.offset for p in positions] == [1, 2, 3]
    epoch = positions[0].epoch
    assert {p.epoch for p in positions} == {epoch}
    recorder = peer.recorder
    await recorder.wait(lambda: len(recorder.publications) == 3, "3 publications")
    assert [(c, p.offset, p.data, pos) for c, p, pos in recorder.publications] == [
        ("a", n, Raw(b"%d" % n), StreamPosition(offset=n, epoch=epoch)) for n in (1, 2, 3)
    ]


async def test_without_history_no_offset_and_no_stream(backend: Backend) -> None:
    peer = await subscribed(backend, "a")
    for options in (NONE, PublishOptions(history_size=10), PublishOptions(history_ttl=60)):
        assert await peer.broker.publish("a", pub(1), options) == StreamPosition()
    recorder = peer.recorder
    await recorder.wait(lambda: len(recorder.publications) == 3, "3 publications")
    assert [p.offset for _, p, _ in recorder.publications] == [0, 0, 0]
    assert [pos for _, _, pos in recorder.publications] == [StreamPosition()] * 3
    page = await peer.broker.history("a", HistoryOptions(limit=-1))
    assert page.publications == []
    assert page.position.offset == 0


async def test_epochs_are_eight_letters_per_stream(backend: Backend) -> None:
    peer = await backend.peer()
    a = await peer.broker.publish("a", pub(1), KEEP)
    b = await peer.broker.publish("b", pub(1), KEEP)
    assert len(a.epoch) == 8
    assert set(a.epoch) <= set(string.ascii_letters)
    assert a.epoch != b.epoch


async def test_reading_an_unknown_stream_creates_it_once(backend: Backend) -> None:
    peer = await backend.peer()
    first = await peer.broker.history("a", HistoryOptions())
    assert first.position.offset == 0
    assert first.position.epoch
    assert (await peer.broker.history("a", HistoryOptions())).position == first.position
    assert (await peer.broker.publish("a", pub(1), KEEP)).epoch == first.position.epoch


async def test_channels_have_separate_offsets(backend: Backend) -> None:
    peer = await backend.peer()
    await publish_n(peer, "a", 3)
    assert (await peer.broker.publish("b", pub(1), KEEP)).offset == 1


async def test_publications_of_a_channel_arrive_in_publish_order(backend: Backend) -> None:
    peer = await subscribed(backend, "a")
    positions = await asyncio.gather(*(peer.broker.publish("a", pub(n), KEEP) for n in range(100)))
    assert sorted(p.offset for p in positions) == list(range(1, 101))
    recorder = peer.recorder
    await recorder.wait(lambda: len(recorder.publications) == 100, "100 publications")
    assert offsets(recorder.of("a")) == list(range(1, 101))


# Retention.


async def test_history_size_trims_the_oldest(backend: Backend) -> None:
    peer = await backend.peer()
    top = await publish_n(peer, "a", 5, PublishOptions(history_size=3, history_ttl=60))
    page = await peer.broker.history("a", HistoryOptions(limit=-1))
    assert offsets(page.publications) == [3, 4, 5]
    assert page.position == top


async def test_history_ttl_drops_publications_but_keeps_the_position(backend: Backend) -> None:
    peer = await backend.peer()
    options = PublishOptions(history_size=10, history_ttl=0.2)
    top = await publish_n(peer, "a", 2, options)

    async def expired() -> bool:
        return not (await peer.broker.history("a", HistoryOptions(limit=-1))).publications

    await eventually(expired, "the publications to expire")
    assert (await peer.broker.history("a", HistoryOptions())).position == top
    assert await peer.broker.publish("a", pub(3), options) == StreamPosition(3, top.epoch)


async def test_remove_history_keeps_offset_and_epoch(backend: Backend) -> None:
    peer = await backend.peer()
    top = await publish_n(peer, "a", 3)
    await peer.broker.remove_history("a")
    page = await peer.broker.history("a", HistoryOptions(limit=-1))
    assert page.publications == []
    assert page.position == top
    assert await peer.broker.publish("a", pub(4), KEEP) == StreamPosition(4, top.epoch)
    await peer.broker.remove_history("never-published")  # nothing to do


HISTORY_CASES = [
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
]


async def test_history_options(backend: Backend) -> None:
    peer = await backend.peer()
    top = await publish_n(peer, "a", 5)
    for options, expected in HISTORY_CASES:
        page = await peer.broker.history("a", options)
        assert (options, offsets(page.publications)) == (options, expected)
        assert page.position == top


async def test_publications_are_kept_and_delivered_as_published(backend: Backend) -> None:
    peer = await subscribed(backend, "a")
    info = ClientInfo(user="42", client="c1", conn_info=Raw(b'{"n":1}'), chan_info=Raw(b'"x"'))
    binary = bytes(range(256))  # a Protobuf client may publish any bytes
    await peer.broker.publish(
        "a", Publication(data=Raw(b'{"x":1}'), info=info, tags={"k": "v"}), KEEP
    )
    await peer.broker.publish("a", Publication(data=Raw(binary)), KEEP)
    stored = (await peer.broker.history("a", HistoryOptions(limit=-1))).publications
    expected = [
        Publication(data=Raw(b'{"x":1}'), info=info, offset=1, tags={"k": "v"}),
        Publication(data=Raw(binary), offset=2),
    ]
    assert stored == expected
    recorder = peer.recorder
    await recorder.wait(lambda: len(recorder.publications) == 2, "2 publications")
    assert recorder.of("a") == expected


async def test_join_and_leave_are_handed_over(backend: Backend) -> None:
    peer = await subscribed(backend, "a")
    info = ClientInfo(user="42", client="c1", conn_info=Raw(b"{}"))
    await peer.broker.publish_join("a", info)
    await peer.broker.publish_leave("a", info)
    recorder = peer.recorder
    await recorder.wait(lambda: bool(recorder.leaves), "the leave")
    assert recorder.joins == [("a", info)]
    assert recorder.leaves == [("a", info)]


# Idempotent publish.


async def test_idempotent_publish_with_history(backend: Backend) -> None:
    peer = await subscribed(backend, "a")
    options = PublishOptions(history_size=10, history_ttl=60, idempotency_key="k1")
    first = await peer.broker.publish("a", pub(1), options)
    assert await peer.broker.publish("a", pub(2), options) == first
    other = await peer.broker.publish("a", pub(3), PublishOptions(10, 60, idempotency_key="k2"))
    assert other.offset == first.offset + 1
    assert await peer.broker.publish("b", pub(4), options) != first  # keys are per channel
    page = await peer.broker.history("a", HistoryOptions(limit=-1))
    assert [p.data for p in page.publications] == [Raw(b"1"), Raw(b"3")]
    recorder = peer.recorder
    await recorder.wait(lambda: len(recorder.of("a")) == 2, "2 publications")


async def test_idempotent_publish_without_history(backend: Backend) -> None:
    peer = await subscribed(backend, "a")
    options = PublishOptions(idempotency_key="k1")
    for n in (1, 2):
        assert await peer.broker.publish("a", pub(n), options) == StreamPosition()
    await peer.broker.publish("a", pub(3), NONE)
    recorder = peer.recorder
    await recorder.wait(lambda: len(recorder.of("a")) == 2, "2 publications")
    assert [p.data for p in recorder.of("a")] == [Raw(b"1"), Raw(b"3")]


# Presence.


async def test_presence_manager(backend: Backend) -> None:
    presence = (await backend.peer()).presence
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
    updated = ClientInfo(user="42", client="c1", chan_info=Raw(b'"mod"'))
    await presence.add_presence("room", updated)  # adding again replaces the entry
    assert (await presence.presence("room"))["c1"] == updated
    await presence.remove_presence("room", "c1")
    await presence.remove_presence("room", "c1")  # already gone
    await presence.remove_presence("elsewhere", "c1")
    stats = await presence.presence_stats("room")
    assert (stats.num_clients, stats.num_users) == (3, 2)
    for client in ("c2", "c3", "c4"):
        await presence.remove_presence("room", client)
    assert await presence.presence("room") == {}
    assert await presence.presence("elsewhere") == {}


# Several nodes on one Redis.


async def test_publications_reach_every_subscribed_node(redis_backend: Backend) -> None:
    a = await subscribed(redis_backend, "x", "y")
    b = await subscribed(redis_backend, "x")
    for n in range(1, 21):
        await b.broker.publish("x", pub(n), KEEP)
    await a.broker.publish("y", pub(1), NONE)
    for peer in (a, b):
        recorder = peer.recorder
        await recorder.wait(lambda r=recorder: len(r.of("x")) == 20, "20 publications")
        assert offsets(recorder.of("x")) == list(range(1, 21))
    await a.recorder.wait(lambda: len(a.recorder.of("y")) == 1, "y")
    assert b.recorder.of("y") == []  # b is not subscribed to y
    page = await a.broker.history("x", HistoryOptions(limit=-1))
    assert offsets(page.publications) == list(range(11, 21))


async def test_subscription_churn_keeps_the_channel(redis_backend: Backend) -> None:
    """Unsubscribing and subscribing again at once (the last local subscriber left, a
    new one came) costs no UNSUBSCRIBE and loses nothing."""
    a = await subscribed(redis_backend, "x")
    b = await redis_backend.peer()
    for _ in range(3):
        await a.broker.unsubscribe("x")
        await a.broker.subscribe("x")
    await b.broker.publish("x", pub(1), KEEP)
    await a.recorder.wait(lambda: len(a.recorder.of("x")) == 1, "the publication")


async def test_join_and_leave_reach_other_nodes(redis_backend: Backend) -> None:
    a = await subscribed(redis_backend, "x")
    b = await redis_backend.peer()
    info = ClientInfo(user="42", client="c1")
    await b.broker.publish_join("x", info)
    await b.broker.publish_leave("x", info)
    await a.recorder.wait(lambda: bool(a.recorder.leaves), "the leave")
    assert (a.recorder.joins, a.recorder.leaves) == ([("x", info)], [("x", info)])


async def test_presence_is_shared_and_expires_unless_refreshed(redis_backend: Backend) -> None:
    a = await redis_backend.peer(presence_ttl=0.5)
    b = await redis_backend.peer(presence_ttl=0.5)
    info = ClientInfo(user="42", client="c1")
    await b.presence.add_presence("room", info)
    assert await a.presence.presence("room") == {"c1": info}

    async def gone() -> bool:
        return not await a.presence.presence("room")

    await eventually(gone, "the entry to expire")
    stats = await a.presence.presence_stats("room")
    assert (stats.num_clients, stats.num_users) == (0, 0)


async def test_controller_to_one_node_and_to_all(redis_backend: Backend) -> None:
    peers = [await redis_backend.peer() for _ in range(3)]
    for n, peer in enumerate(peers):
        await peer.controller.start(peer.recorder, f"node-{n}")
    await peers[0].controller.publish_control(b"to one", "node-1")
    await peers[0].controller.publish_control(b"to all")
    for peer in peers:
        await peer.recorder.wait(lambda p=peer: b"to all" in p.recorder.controls, "broadcast")
    assert peers[1].recorder.controls == [b"to one", b"to all"]
    assert peers[0].recorder.controls == [b"to all"]  # the core drops its own
    assert peers[2].recorder.controls == [b"to all"]
