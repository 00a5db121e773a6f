"""The Redis engine: a broker, a presence manager and a controller sharing shards."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

from wirehub.brokers.redis.addresses import ShardSpec, check_partitions, parse_shards
from wirehub.brokers.redis.broker import RedisBroker
from wirehub.brokers.redis.controller import RedisController
from wirehub.brokers.redis.presence import RedisPresenceManager
from wirehub.brokers.redis.shard import Shard
from wirehub.brokers.redis.sharding import shard_index

if TYPE_CHECKING:
    from wirehub.brokers import Engine
    from wirehub.config import Config

__all__ = ["RedisEngine", "ShardSet", "create_engine", "engine_from_config"]


class ShardSet:
    """The shards, in configured order (which sharding depends on), and who uses them:
    the clients close when the last of broker and controller closes.

    ``partitions`` > 0: sharded PUB/SUB with that many partitions per shard (Cluster
    shards only)."""

    def __init__(self, specs: list[ShardSpec], prefix: str, *, partitions: int = 0) -> None:
        if not specs:
            raise ValueError("at least one Redis shard is needed")
        check_partitions(specs, partitions)
        self.partitions = partitions
        self._shards = [Shard(spec, prefix, partitions=partitions) for spec in specs]
        self._users = 0

    def __iter__(self) -> Iterator[Shard]:
        return iter(self._shards)

    def __len__(self) -> int:
        return len(self._shards)

    def __getitem__(self, index: int) -> Shard:
        return self._shards[index]

    def index(self, channel: str) -> int:
        return shard_index(channel, len(self._shards))

    def for_channel(self, channel: str) -> Shard:
        return self._shards[shard_index(channel, len(self._shards))]

    def acquire(self) -> None:
        self._users += 1

    async def release(self) -> None:
        self._users -= 1
        if self._users == 0:
            await asyncio.gather(*(shard.close() for shard in self._shards))


class RedisEngine:
    """Everything a node needs from Redis.

    Args:
        specs: one per shard (:func:`~wirehub.brokers.redis.addresses.parse_shards`).
        prefix: of every key and channel.
        presence_ttl: seconds a presence entry lives unless refreshed.
        sharded_pub_sub_partitions: > 0: sharded PUB/SUB (Redis Cluster only).
    """

    def __init__(
        self,
        specs: list[ShardSpec],
        *,
        prefix: str = "wirehub",
        presence_ttl: float = 60.0,
        sharded_pub_sub_partitions: int = 0,
    ) -> None:
        self.shards = ShardSet(specs, prefix, partitions=sharded_pub_sub_partitions)
        self.broker = RedisBroker(self.shards)
        self.presence_manager = RedisPresenceManager(self.shards, presence_ttl=presence_ttl)
        self.controller = RedisController(self.shards)


def create_engine(
    address: str | list[str],
    *,
    prefix: str = "wirehub",
    presence_ttl: float = 60.0,
    sharded_pub_sub_partitions: int = 0,
) -> RedisEngine:
    """An engine for one address or a list of them (sharded); for tests and scripts.
    ``wirehub serve`` builds it from ``engine.redis`` instead."""
    from wirehub.config import RedisEngineConfig

    specs = parse_shards(RedisEngineConfig(address=address))
    return RedisEngine(
        specs,
        prefix=prefix,
        presence_ttl=presence_ttl,
        sharded_pub_sub_partitions=sharded_pub_sub_partitions,
    )


def engine_from_config(config: Config) -> Engine:
    """``engine.type = "redis"``, from ``engine.redis``."""
    from wirehub.brokers import Engine

    options = config.engine.redis
    engine = RedisEngine(
        parse_shards(options),
        prefix=options.prefix,
        presence_ttl=options.presence_ttl,
        sharded_pub_sub_partitions=options.sharded_pub_sub_partitions,
    )
    return Engine(engine.broker, engine.presence_manager, engine.controller)
