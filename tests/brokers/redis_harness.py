"""Redis implementations for the broker contract suite (``harness.py``'s
``IMPLEMENTATIONS``): one Redis, Redis sharded over two servers, a 3-master Cluster, the
same Cluster with sharded PUB/SUB over 8 partitions.

Register them there (the lead's merge step)::

    from tests.brokers.redis_harness import REDIS_IMPLEMENTATIONS
    IMPLEMENTATIONS.update(REDIS_IMPLEMENTATIONS)

``advance`` sleeps for real (Redis expires keys on its own clock); ``holds`` and
``holds_publications`` look at the keys with EXISTS, which is not activity. Each run has
a key prefix of its own, deleted at the end. Without the service the factory skips,
which fails the run under ``WIREHUB_STRICT=1``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from tests.brokers.harness import Harness, Recorder
from tests.support.redis import (
    cluster_url,
    delete_prefix,
    redis_url,
    require_redis,
    shard_urls,
    unique_prefix,
)

__all__ = ["REDIS_IMPLEMENTATIONS"]


class _Recorder(Recorder):
    """The suite's recorder, plus what a remote broker reports when cut off."""

    def __init__(self) -> None:
        super().__init__()
        self.gaps: list[list[str]] = []

    def handle_gap(self, channels: Sequence[str]) -> None:
        self.gaps.append(list(channels))


def _redis_harness(
    address: Callable[[], str | list[str]], *, partitions: int = 0
) -> Callable[[], AbstractAsyncContextManager[Harness]]:
    @asynccontextmanager
    async def factory() -> AsyncIterator[Harness]:
        from wirehub.brokers.redis.engine import create_engine

        where = address()
        urls = [where] if isinstance(where, str) else where
        if not urls[0].startswith("redis+cluster://"):
            require_redis(urls[0])
        prefix = unique_prefix()
        engine = create_engine(where, prefix=prefix, sharded_pub_sub_partitions=partitions)
        recorder = _Recorder()

        async def advance(seconds: float) -> None:
            await asyncio.sleep(seconds)

        async def exists(channel: str, *, stream_only: bool) -> bool:
            shard = engine.shards.for_channel(channel)
            keys = [shard.keys.stream(channel)]
            if not stream_only:
                keys.append(shard.keys.meta(channel))
            found = await asyncio.gather(*(shard.call("EXISTS", key) for key in keys))
            return any(found)

        async def holds(channel: str) -> bool:
            return await exists(channel, stream_only=False)

        async def holds_publications(channel: str) -> bool:
            return await exists(channel, stream_only=True)

        await engine.broker.start(recorder)
        try:
            yield Harness(engine.broker, recorder, advance, holds, holds_publications)
        finally:
            await engine.broker.close()
            for url in urls:
                await asyncio.to_thread(delete_prefix, url, prefix)

    return factory


REDIS_IMPLEMENTATIONS: dict[str, Callable[[], AbstractAsyncContextManager[Harness]]] = {
    "redis": _redis_harness(redis_url),
    "redis-sharded": _redis_harness(shard_urls),
    "redis-cluster": _redis_harness(cluster_url),
    "redis-cluster-sharded": _redis_harness(cluster_url, partitions=8),
}
