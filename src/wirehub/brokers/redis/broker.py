"""The Redis broker: publications, history and join/leave through Redis.

Per shard, the node holds one PUB/SUB connection carrying every channel of that shard
that has a local subscriber (:mod:`wirehub.brokers.redis.pubsub`), and sends commands
through the shard's auto-pipelined client. A publication with history is appended and
published by one script call, which assigns its offset and epoch
(:mod:`wirehub.brokers.redis.scripts`); every node, this one included, receives it
over PUB/SUB.

With sharded PUB/SUB (a Redis Cluster with ``sharded_pub_sub_partitions``), a shard's
channels are spread over its partitions instead, each with a PUB/SUB connection of its
own (SSUBSCRIBE) to the master owning the partition's slot, and publications go out
with SPUBLISH: a master sends each only to the connections subscribed on it, where
classic PUBLISH in a cluster travels to every master.

When a PUB/SUB connection ends, publications of its channels may have been lost on
their way here: the broker reports those channels with ``handle_gap`` at once, and the
core makes their positioned subscribers recover once the connection is back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from redis.exceptions import (
    ConnectionError as RedisConnectionError,
    NoScriptError,
    RedisError,
    TimeoutError as RedisTimeoutError,
)

from wirehub.brokers.base import (
    IDEMPOTENT_RESULT_TTL,
    Broker,
    BrokerEventHandler,
    HistoryOptions,
    HistoryPage,
    PublishOptions,
)
from wirehub.brokers.redis import codec
from wirehub.brokers.redis.codec import MalformedMessage
from wirehub.brokers.redis.pubsub import PubSub
from wirehub.brokers.redis.resp import Prefix
from wirehub.brokers.redis.scripts import (
    HISTORY,
    PUBLISH_HISTORY,
    PUBLISH_IDEMPOTENT,
    SPUBLISH_HISTORY,
    SPUBLISH_IDEMPOTENT,
    Script,
)
from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

if TYPE_CHECKING:
    from wirehub.brokers.redis.engine import ShardSet
    from wirehub.brokers.redis.shard import Shard

__all__ = ["RedisBroker"]

logger = logging.getLogger("wirehub.redis")


# Every publish carries a seed for a new epoch (used only if the stream has none, by
# the script): drawn from a generator seeded from the OS once, not per publish.
_random = random.Random(secrets.randbits(128))


def _epoch_seed() -> int:
    return _random.getrandbits(48)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _meta_ttl(seconds: float) -> str:
    return "0" if seconds <= 0 else str(_ms(seconds))


_RESULT_TTL = str(_ms(IDEMPOTENT_RESULT_TTL))


@functools.lru_cache(maxsize=256)
def _retention(options: PublishOptions) -> tuple[int, int, str]:
    """The script's size, ttl and meta ttl arguments (few distinct options exist: one
    per namespace)."""
    return options.history_size, _ms(options.history_ttl), _meta_ttl(options.history_meta_ttl)


_ROUTES = 4096
"""Channels whose Redis names (and publish script prefix) a broker keeps at hand: the
busy ones; the table starts over when full."""


class _Route:
    """Where a channel lives, and its Redis names."""

    __slots__ = ("generation", "name", "prefixes", "shard")

    def __init__(self, shard: Shard, name: bytes) -> None:
        self.shard = shard
        self.name = name
        self.prefixes: dict[PublishOptions, Prefix] = {}
        """Per publish options: the history publish script call but the seed and body."""
        self.generation = shard.generation
        """The shard's generation the prefixes were made for."""


class _LogLimit:
    """At most ``burst`` log lines per ``period``: garbage on a channel must not flood."""

    def __init__(self, burst: int = 10, period: float = 10.0) -> None:
        self._burst = burst
        self._period = period
        self._since = 0.0
        self._count = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._since > self._period:
            self._since, self._count = now, 0
        self._count += 1
        return self._count <= self._burst


class RedisBroker:
    """Args:
    shards: the Redis shards, shared with the presence manager and the controller.
    """

    def __init__(self, shards: ShardSet) -> None:
        self._shards = shards
        self._handler: BrokerEventHandler | None = None
        self._pubsubs: list[PubSub] = []
        """Per shard in order: one, or (sharded PUB/SUB) one per partition."""
        self._first: list[int] = []
        """Per shard, the index of its first PUB/SUB in ``_pubsubs``."""
        self._names: list[dict[bytes, str]] = []
        """Per PUB/SUB: Redis channel -> channel, for what it carries."""
        self._log_limit = _LogLimit()
        self._routes: dict[str, _Route] = {}
        self._started = False

    # Lifecycle.

    async def start(self, handler: BrokerEventHandler) -> None:
        if self._started:
            raise RuntimeError("this broker is already running")
        self._started = True
        self._handler = handler
        self._shards.acquire()
        if self._shards.partitions:
            await asyncio.gather(*(_check_sharded_pub_sub(shard) for shard in self._shards))
        for shard in self._shards:
            self._first.append(len(self._pubsubs))
            for partition in range(shard.keys.partitions or 1):
                self._names.append({})
                self._pubsubs.append(self._pubsub(shard, partition, len(self._pubsubs)))
        await asyncio.gather(*(pubsub.start() for pubsub in self._pubsubs))

    def _pubsub(self, shard: Shard, partition: int, index: int) -> PubSub:
        common: dict[str, Any] = {
            "on_message": partial(self._on_message, index),
            "on_lost": partial(self._on_lost, index),
            "connect_timeout": shard.spec.connect_timeout,
            "io_timeout": shard.spec.io_timeout,
        }
        if not shard.keys.sharded:
            return PubSub(shard.open_connection, name=shard.label, **common)
        return PubSub(
            shard.partition_opener(partition),
            name=f"{shard.label} partition {partition}",
            sharded=True,
            service=shard.keys.service_channel(partition).encode(),
            **common,
        )

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self._handler = None
        pubsubs, self._pubsubs = self._pubsubs, []
        await asyncio.gather(*(pubsub.close() for pubsub in pubsubs))
        self._first, self._names = [], []  # after: a message may arrive until closed
        await self._shards.release()

    async def ping(self) -> None:
        """Raise unless every shard answers a PING."""
        await asyncio.gather(*(shard.ping() for shard in self._shards))

    # Subscriptions.

    def _route(self, channel: str) -> tuple[Shard, bytes]:
        route = self._routes.get(channel) or self._new_route(channel)
        return route.shard, route.name

    def _new_route(self, channel: str) -> _Route:
        shard = self._shards.for_channel(channel)
        route = _Route(shard, shard.keys.client_channel(channel).encode())
        if len(self._routes) >= _ROUTES:
            self._routes.clear()
        self._routes[channel] = route
        return route

    def _pubsub_index(self, channel: str) -> int:
        """Which of ``_pubsubs`` carries ``channel`` (the broker is running)."""
        shard_index = self._shards.index(channel)
        keys = self._shards[shard_index].keys
        return self._first[shard_index] + keys.partition(channel)

    async def subscribe(self, channel: str) -> None:
        _, name = self._route(channel)
        if not self._pubsubs:
            raise RuntimeError("the broker is not running")
        index = self._pubsub_index(channel)
        self._names[index][name] = channel
        await self._pubsubs[index].subscribe([name])

    async def unsubscribe(self, channel: str) -> None:
        _, name = self._route(channel)
        if not self._pubsubs:
            return
        index = self._pubsub_index(channel)
        for released in self._pubsubs[index].unsubscribe([name]):
            self._names[index].pop(released, None)

    def _on_message(self, index: int, name: bytes, data: bytes) -> None:
        handler = self._handler
        if handler is None:
            return
        channel = self._names[index].get(name)
        if channel is None:
            return
        try:
            kind, content, position = codec.decode_message(data)
        except MalformedMessage as exc:
            if self._log_limit.allow():
                logger.warning("dropped a malformed message on %r: %s: %r", channel, exc, data[:64])
            return
        if isinstance(content, Publication):
            handler.handle_publication(channel, content, position)
        elif kind == codec.JOIN:
            handler.handle_join(channel, content)
        else:
            handler.handle_leave(channel, content)

    def _on_lost(self, index: int, names: list[bytes]) -> None:
        handler = self._handler
        known = self._names[index]
        channels = [known[name] for name in names if name in known]
        if handler is not None and channels:
            logger.warning(
                "%d channel(s) may have lost publications while the PUB/SUB connection to %s was down",
                len(channels),
                self._pubsubs[index].name,
            )
            handler.handle_gap(channels)

    # Publishing.

    async def publish(
        self, channel: str, publication: Publication, options: PublishOptions
    ) -> StreamPosition:
        route = self._routes.get(channel) or self._new_route(channel)
        shard = route.shard
        body = codec.encode_publication(publication)
        keys = shard.keys
        if options.history_size > 0 and options.history_ttl > 0:
            script = SPUBLISH_HISTORY if keys.sharded else PUBLISH_HISTORY
            seed = b"%d" % _epoch_seed()
            if options.idempotency_key:
                size, ttl, meta_ttl = _retention(options)
                reply = await shard.call_script(
                    script,
                    (
                        keys.stream(channel),
                        keys.meta(channel),
                        keys.result(channel, options.idempotency_key),
                    ),
                    (size, ttl, route.name, meta_ttl, _RESULT_TTL, shard.generation, seed, body),
                    channel=channel,
                )
            else:
                if route.generation != shard.generation:  # a Sentinel failover
                    route.prefixes.clear()
                    route.generation = shard.generation
                prefix = route.prefixes.get(options) or self._publish_prefix(
                    script, channel, route, options
                )
                try:
                    reply = await shard.call_prefixed(prefix, seed, body, channel=channel)
                except NoScriptError:  # Redis restarted or was flushed: the source, once
                    _, _, *rest = prefix.args
                    reply = await shard.call(
                        "EVAL", script.source, *rest, seed, body, channel=channel
                    )
            return StreamPosition(int(reply[0]), _text(reply[1]))
        message = codec.encode_publication_message(body)
        if options.idempotency_key:
            await shard.call_script(
                SPUBLISH_IDEMPOTENT if keys.sharded else PUBLISH_IDEMPOTENT,
                (keys.result(channel, options.idempotency_key),),
                (route.name, message, _RESULT_TTL),
                channel=channel,
            )
        else:
            await shard.call(keys.publish_command, route.name, message, channel=channel)
        return StreamPosition()

    @staticmethod
    def _publish_prefix(
        script: Script, channel: str, route: _Route, options: PublishOptions
    ) -> Prefix:
        keys = route.shard.keys
        size, ttl, meta_ttl = _retention(options)
        # Without an idempotency key the script never reads its result key: any key of
        # the channel's slot will do.
        stream, meta = keys.stream(channel), keys.meta(channel)
        prefix = route.shard.script_prefix(
            script, (stream, meta, meta), (size, ttl, route.name, meta_ttl, "", route.generation)
        )
        if len(route.prefixes) >= 8:  # options differ per namespace, not per publish
            route.prefixes.clear()
        route.prefixes[options] = prefix
        return prefix

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        shard, name = self._route(channel)
        await shard.call(shard.keys.publish_command, name, codec.encode_join(info), channel=channel)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        shard, name = self._route(channel)
        await shard.call(
            shard.keys.publish_command, name, codec.encode_leave(info), channel=channel
        )

    # History.

    async def history(self, channel: str, options: HistoryOptions) -> HistoryPage:
        shard = self._shards.for_channel(channel)
        direction, start = _range(options)
        count = 0 if options.limit < 0 else options.limit
        keys = shard.keys
        reply = await shard.call_script(
            HISTORY,
            (keys.stream(channel), keys.meta(channel)),
            (
                _epoch_seed(),
                _meta_ttl(options.history_meta_ttl),
                direction,
                start,
                count,
                shard.generation,
            ),
            channel=channel,
        )
        position = StreamPosition(offset=int(reply[0]), epoch=_text(reply[1]))
        return HistoryPage(self._entries(channel, reply[2]), position)

    def _entries(self, channel: str, entries: list[Any]) -> list[Publication]:
        publications = []
        for entry in entries:
            try:
                publications.append(codec.decode_history_entry(entry))
            except MalformedMessage as exc:
                if self._log_limit.allow():
                    logger.warning("dropped a malformed history entry of %r: %s", channel, exc)
        return publications

    async def remove_history(self, channel: str) -> None:
        shard = self._shards.for_channel(channel)
        await shard.call("DEL", shard.keys.stream(channel), channel=channel)


async def _check_sharded_pub_sub(shard: Shard) -> None:
    """Refuse to start on a Cluster without sharded PUB/SUB (Redis < 7): every channel's
    subscription and publish would fail. A Redis that does not answer is not refused
    here: the node starts and reconnects, as without partitions."""
    try:
        await shard.call("SPUBLISH", shard.keys.service_channel(0), b"")
    except (RedisConnectionError, RedisTimeoutError, OSError):
        return
    except RedisError as exc:
        raise RuntimeError(
            "engine.redis.sharded_pub_sub_partitions needs sharded PUB/SUB (SPUBLISH and "
            f"SSUBSCRIBE: Redis 7.0 or newer, or Valkey); {shard.label} refused SPUBLISH: {exc}"
        ) from None


def _range(options: HistoryOptions) -> tuple[str, str]:
    """What the history script reads: direction ("", "f", "r") and the first entry ID."""
    since = options.since
    if options.limit == 0:
        return "", ""
    if options.reverse:
        if since is None:
            return "r", "+"
        if since.offset <= 1:
            return "", ""
        return "r", str(since.offset - 1)
    return "f", "-" if since is None else str(since.offset + 1)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_: type[Broker] = RedisBroker
