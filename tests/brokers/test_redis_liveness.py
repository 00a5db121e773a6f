"""The Redis PUB/SUB connection when Redis goes silent without closing it (a middlebox
dropping an idle connection, a stalled or paused Redis): reliability.md F8 and F9.

Redis here is a redis-server of the test's own, paused with SIGSTOP: the connection
stays open and nothing comes back, as through a middlebox that drops packets. The PUB/SUB
connection PINGs after 1 s of silence and gives up ``io_timeout`` later; its channels are
reported as possibly lost (the node then tells its positioned subscribers), it
reconnects with backoff while Redis stays silent, and once Redis answers again it
resubscribes and its backoff starts over from the minimum.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from msgspec import Raw

from tests.brokers.engines import Recorder
from tests.support.redis import RedisServer, eventually, unique_prefix
from tests.support.server import timeout
from wirehub.brokers.base import PublishOptions
from wirehub.brokers.redis.addresses import parse_shards
from wirehub.brokers.redis.engine import RedisEngine
from wirehub.brokers.redis.pubsub import Backoff, PubSub
from wirehub.config import RedisEngineConfig
from wirehub.protocol.types import Publication

IO_TIMEOUT = 0.5
PING_INTERVAL = 1.0  # PubSub's own, not configurable
KEEP = PublishOptions(history_size=10, history_ttl=60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    own = RedisServer(tmp_path / "redis").start()
    yield own
    os.kill(pid(own), signal.SIGCONT)  # harmless if it runs
    own.stop()


def pid(server: RedisServer) -> int:
    proc = server._proc  # the test's own redis-server process
    assert proc is not None
    return proc.pid


@pytest.fixture
async def engine(server: RedisServer) -> AsyncIterator[tuple[RedisEngine, Recorder]]:
    config = RedisEngineConfig(address=server.url, connect_timeout=0.5, io_timeout=IO_TIMEOUT)
    engine = RedisEngine(parse_shards(config), prefix=unique_prefix())
    recorder = Recorder()
    await engine.broker.start(recorder)
    try:
        yield engine, recorder
    finally:
        await engine.broker.close()


def pubsub_of(engine: RedisEngine) -> PubSub:
    (pubsub,) = engine.broker._pubsubs  # one shard, one PUB/SUB connection
    return pubsub


@pytest.mark.anyio
async def test_silent_redis_is_detected_and_backoff_resets_after_reconnecting(
    server: RedisServer, engine: tuple[RedisEngine, Recorder]
) -> None:
    broker_engine, recorder = engine
    broker = broker_engine.broker
    pubsub = pubsub_of(broker_engine)
    await broker.subscribe("a")
    await broker.publish("a", Publication(data=Raw(b"1")), KEEP)
    await recorder.wait(lambda: len(recorder.of("a")) == 1, "the first publication")
    assert pubsub.backoff.attempt == 0

    # F8: Redis goes silent; the connection stays open.
    os.kill(pid(server), signal.SIGSTOP)
    paused = time.monotonic()
    await recorder.wait(lambda: bool(recorder.gaps), "the silent connection to be given up")
    detected = time.monotonic() - paused
    assert recorder.gaps == [["a"]]
    assert not pubsub.live
    # PING after PING_INTERVAL of silence, give up IO_TIMEOUT later; checked every
    # PING_INTERVAL / 2, so at most about 2 s here.
    assert detected < timeout(PING_INTERVAL * 1.5 + IO_TIMEOUT + 1.0), detected

    # Still silent: every reconnect attempt times out, and the delay between attempts
    # grows.
    async def backed_off() -> bool:
        return pubsub.backoff.attempt >= 3

    await eventually(backed_off, "three failed reconnects", wait=15)
    assert not pubsub.live

    # F9: Redis answers again: resubscribed, and the backoff is back at its minimum.
    os.kill(pid(server), signal.SIGCONT)
    resumed = time.monotonic()

    async def live() -> bool:
        return pubsub.live

    await eventually(live, "the PUB/SUB connection back", wait=15)
    assert pubsub.backoff.attempt == 0
    base = pubsub.backoff.base
    assert base / 2 <= Backoff(base).next() <= base  # what the next loss waits first
    await broker.publish("a", Publication(data=Raw(b"2")), KEEP)
    await recorder.wait(lambda: len(recorder.of("a")) == 2, "a publication after resubscribing")
    # Back within one backoff cap of Redis answering (the attempt in flight, then one
    # more at most).
    assert time.monotonic() - resumed < timeout(pubsub.backoff.cap + 3 * (0.5 + IO_TIMEOUT))


def test_backoff_grows_with_jitter_to_its_cap_and_resets() -> None:
    """The delays the reconnect loop sleeps: [d/2, d] with d doubling from 0.25 s up
    to 5 s; after a reset the first delay is the minimum again."""
    backoff = Backoff()
    delays = [backoff.next() for _ in range(10)]
    for n, delay in enumerate(delays):
        top = min(backoff.cap, backoff.base * 2**n)
        assert top / 2 <= delay <= top, (n, delay)
    assert all(d <= backoff.cap for d in [backoff.next() for _ in range(100)])  # no overflow
    backoff.reset()
    assert backoff.base / 2 <= backoff.next() <= backoff.base
