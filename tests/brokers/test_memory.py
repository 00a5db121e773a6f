"""The in-memory broker and presence manager (wirehub.brokers.memory).

The contract every broker keeps is tested in test_contract.py; here is what is
particular to this one: epochs die with the process, each publication expires on its
own, and expiry is done by timers and a sweeper task with bounded work per step.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from msgspec import Raw

from tests.brokers.harness import WAIT, Recorder, pub
from tests.core.fakes import FakeClock
from wirehub.brokers import load_broker
from wirehub.brokers.base import HistoryOptions, PublishOptions
from wirehub.brokers.memory import MemoryBroker, MemoryPresenceManager, new_epoch
from wirehub.protocol.types import ClientInfo, Publication

pytestmark = pytest.mark.anyio

KEEP = PublishOptions(history_size=10, history_ttl=60)
SHORT = PublishOptions(history_size=10, history_ttl=2, history_meta_ttl=5)


async def started(clock: FakeClock | None = None) -> tuple[MemoryBroker, Recorder]:
    broker = MemoryBroker(clock=clock or FakeClock())
    recorder = Recorder()
    await broker.start(recorder)
    return broker, recorder


def offsets(publications: list[Publication]) -> list[int]:
    return [p.offset for p in publications]


# What the contract (test_contract.py) leaves to each broker.


async def test_a_restarted_broker_makes_new_epochs() -> None:
    broker, _ = await started()
    first = await broker.publish("a", pub(1), KEEP)
    restarted, _ = await started()  # the memory engine restarting
    assert (await restarted.publish("a", pub(1), KEEP)).epoch != first.epoch
    assert len({new_epoch() for _ in range(20)}) == 20


async def test_each_publication_expires_history_ttl_after_its_own_publish() -> None:
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


async def test_expiry_does_not_wait_for_the_sweeper() -> None:
    clock = FakeClock()
    broker, _ = await started(clock)
    old = await broker.publish("a", pub(1), SHORT)
    clock.advance(3)  # no sweep: the publication has expired all the same
    read = HistoryOptions(limit=-1, history_meta_ttl=5)
    assert (await broker.history("a", read)).publications == []
    clock.advance(5.5)  # and the position, 5 s after that read
    new = await broker.publish("a", pub(2), SHORT)
    assert new.offset == 1
    assert new.epoch != old.epoch


async def test_sweeps_do_bounded_work() -> None:
    clock = FakeClock()
    broker, _ = await started(clock)
    for n in range(2500):
        await broker.publish(f"c{n}", pub(n), SHORT)
    clock.advance(3)
    assert broker.sweep() == 1000  # sweep_batch, then the sweeper yields to the loop
    assert broker.sweep() == 1000
    assert broker.sweep() == 500
    assert broker.sweep() == 0
    assert len(broker._streams) == 2500  # the positions stay
    assert not any(stream.items for stream in broker._streams.values())
    clock.advance(3)
    while broker.sweep():
        pass
    assert broker._streams == {}
    assert broker._item_timers == []
    assert broker._meta_timers == []


class WatchedBroker(MemoryBroker):
    """Tells when its sweeper task has swept."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.swept = asyncio.Event()

    def sweep(self, budget: int | None = None) -> int:
        done = super().sweep(budget)
        self.swept.set()
        return done


async def test_the_sweeper_runs_between_start_and_close() -> None:
    clock = FakeClock()
    broker = WatchedBroker(clock=clock, sweep_interval=0.01)
    await broker.start(Recorder())
    await broker.publish("a", pub(1), SHORT)
    clock.advance(6)
    broker.swept.clear()
    async with asyncio.timeout(WAIT):
        await broker.swept.wait()  # the task's sweep, nobody reads the stream
    assert broker._streams == {}
    sweeper = broker._sweeper
    assert sweeper is not None
    await broker.close()
    assert sweeper.cancelled()
    assert broker._sweeper is None


async def test_stale_and_early_timers_are_harmless() -> None:
    clock = FakeClock()
    broker, _ = await started(clock)
    await broker.publish("a", pub(1), SHORT)  # timers at +2 (item) and +5 (position)
    clock.advance(1.5)
    await broker.publish("a", pub(2), SHORT)  # the position now lives to +6.5
    await broker.remove_history("a")
    await broker.publish("a", pub(3), SHORT)  # item expires at +3.5
    clock.advance(1)  # +2.5: the item timer fires early, finds pub 3 alive
    broker.sweep()
    read = HistoryOptions(limit=-1, history_meta_ttl=5)
    assert offsets((await broker.history("a", read)).publications) == [3]
    clock.advance(3)  # +5.5: pub 3 gone; the position timer fires early (read at +2.5)
    broker.sweep()
    stream = broker._streams["a"]
    assert stream.items is None
    assert stream.offset == 3
    assert len(broker._meta_timers) == 1  # pushed again, at the real expiry
    # A shorter TTL than before schedules an earlier timer; the later one goes stale.
    await broker.history("a", HistoryOptions(history_meta_ttl=1))
    clock.advance(1)
    while broker.sweep():
        pass
    assert "a" not in broker._streams
    assert len(broker._meta_timers) == 1  # the stale one, which then fires for nothing
    clock.advance(5)
    assert broker.sweep() == 1
    assert broker._streams == {}
    assert broker._meta_timers == []


async def test_the_stream_table_shrinks_after_a_mass_expiry() -> None:
    clock = FakeClock()
    broker, _ = await started(clock)
    empty = sys.getsizeof(broker._streams)
    for n in range(5000):
        await broker.history(f"c{n}", HistoryOptions(history_meta_ttl=1))
    full = sys.getsizeof(broker._streams)
    clock.advance(2)
    while broker.sweep():
        pass
    assert broker._streams == {}
    assert sys.getsizeof(broker._streams) == empty < full


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
