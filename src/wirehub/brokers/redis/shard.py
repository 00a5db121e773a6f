"""One Redis shard: commands auto-pipelined over one connection, and the addresses of
the dedicated PUB/SUB connections.

Auto-pipelining (standalone and Sentinel): every command issued in an event-loop tick
is written in one go, at the end of the tick, on the shard's one command connection,
without waiting for the replies of earlier writes; replies come back in order
(:mod:`wirehub.brokers.redis.resp`). A thousand concurrent publishes are one write and
one round trip, and a node's commands reach Redis in the order they were issued (a
presence entry added then removed stays removed).

Redis Cluster: commands go through redis-py's cluster pipeline, which routes each to
the node owning its key's slot; ``_LANES`` pipelines may be in flight, commands about
one channel always in the same lane, so their order holds there too.

Sharded PUB/SUB (Cluster with partitions): each partition's PUB/SUB connection goes to
the master that owns the partition's slot, as redis-py's slot map says; a reconnection
refreshes the map first (the slot may have moved, which is often why it reconnects).

Timeouts: no timer per command. A command unanswered ``connect_timeout + io_timeout``
after it was written ends the connection, failing it and everything after it; the next
command opens a new one. Nothing retries behind the caller's back: a publish is never
sent twice. A script unknown to the server (restart, failover, flush) is sent once as
EVAL by the caller, and every new connection loads the scripts first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import hiredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, NoScriptError, RedisError, TimeoutError

from wirehub.brokers.redis.addresses import ShardSpec, TLSOptions
from wirehub.brokers.redis.keys import Keys
from wirehub.brokers.redis.resp import Prefix, RespConnection, open_connection
from wirehub.brokers.redis.scripts import SCRIPTS, Script
from wirehub.brokers.redis.sentinel import SentinelWatch, locate

__all__ = ["Shard"]

logger = logging.getLogger("wirehub.redis")

# Cluster only: pipelines in flight per shard, and the most commands in one.
_LANES = 8
_MAX_BATCH = 1000

Args = tuple[Any, ...]
Pending = list[tuple[Args, asyncio.Future[Any]]]


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def _tls_kwargs(tls: TLSOptions | None) -> dict[str, Any]:
    if tls is None:
        return {}
    return {
        "ssl": True,
        "ssl_certfile": tls.certfile or None,
        "ssl_keyfile": tls.keyfile or None,
        "ssl_ca_certs": tls.ca_file or None,
        "ssl_ca_data": tls.ca_data or None,
        "ssl_cert_reqs": "required" if tls.verify else "none",
        "ssl_check_hostname": tls.verify,
    }


def _redis_py_kwargs(spec: ShardSpec) -> dict[str, Any]:
    return {
        "username": spec.username or None,
        "password": spec.password or None,
        "client_name": spec.client_name or None,
        "socket_timeout": spec.io_timeout,
        "socket_connect_timeout": spec.connect_timeout,
        "retry": _no_retry(),
        "health_check_interval": 0,
        "protocol": 2,
    }


def _cluster_client(spec: ShardSpec) -> RedisCluster:
    nodes = [ClusterNode(host, port) for host, port in spec.hosts]
    return RedisCluster(
        startup_nodes=nodes,
        max_connections=_LANES + 4,
        **_redis_py_kwargs(spec),
        **_tls_kwargs(spec.tls),
    )


def _sentinel(spec: ShardSpec) -> Sentinel:
    sentinel_kwargs = {
        "username": spec.sentinel_username or None,
        "password": spec.sentinel_password or None,
        "socket_timeout": spec.io_timeout,
        "socket_connect_timeout": spec.connect_timeout,
        "retry": _no_retry(),
        "protocol": 2,
        **_tls_kwargs(spec.sentinel_tls),
    }
    return Sentinel(list(spec.hosts), sentinel_kwargs=sentinel_kwargs)


class _Lane:
    __slots__ = ("busy", "queue", "scheduled")

    def __init__(self) -> None:
        self.queue: Pending = []
        self.busy = False
        self.scheduled = False


class Shard:
    """A Redis (standalone, Sentinel-managed or Cluster) holding some of the channels."""

    def __init__(self, spec: ShardSpec, prefix: str, *, partitions: int = 0) -> None:
        self.spec = spec
        self.keys = Keys(prefix, cluster=spec.kind == "cluster", partitions=partitions)
        self._cluster = _cluster_client(spec) if spec.kind == "cluster" else None
        self._sentinel = _sentinel(spec) if spec.kind == "sentinel" else None
        self._timeout = spec.connect_timeout + spec.io_timeout
        self._packed: list[bytes] = []
        """Standalone and Sentinel: the commands of this tick, packed, and their futures."""
        self._futures: list[asyncio.Future[Any]] = []
        self._flush_scheduled = False
        self._connection: RespConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._lanes = [_Lane() for _ in range(_LANES)]
        self._tasks: set[asyncio.Task[None]] = set()
        self.generation = "@" if self._cluster is not None else ""
        """What the scripts compare a stream's generation with
        (:mod:`wirehub.brokers.redis.scripts`): with Sentinel, the master's configuration
        epoch as the Sentinels last said (:mod:`wirehub.brokers.redis.sentinel`); in a
        Cluster, "@" (the script asks the master its ID); otherwise ""."""
        self._master: tuple[str, int] | None = None
        self._opened: weakref.WeakSet[RespConnection] = weakref.WeakSet()
        self._sentinel_watch: SentinelWatch | None = None
        self._relocating: asyncio.Task[None] | None = None
        self.round_trips = 0
        """Writes (cluster: pipelines) sent so far: how well commands share round trips."""

    @property
    def label(self) -> str:
        return self.spec.label

    # Commands.

    def call(self, *args: Any, channel: str = "") -> asyncio.Future[Any]:
        """Send one command (auto-pipelined, in order with the node's other commands
        about ``channel``); the future holds its reply or error."""
        if self._cluster is not None:
            return self._enqueue_cluster(args, channel)
        # Packed now: a command that cannot be (an argument of a wrong type) fails here,
        # in its caller, rather than its whole batch at the end of the tick.
        return self._enqueue(hiredis.pack_command(args))

    def call_prefixed(
        self, prefix: Prefix, first: bytes, second: bytes, *, channel: str = ""
    ) -> asyncio.Future[Any]:
        """:meth:`call` with ``prefix``'s arguments, then ``first`` and ``second``."""
        if self._cluster is not None:
            return self._enqueue_cluster((*prefix.args, first, second), channel)
        return self._enqueue(prefix.pack(first, second))

    def _enqueue(self, packed: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._packed.append(packed)
        self._futures.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _enqueue_cluster(self, args: Args, channel: str) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        lane = self._lanes[hash(channel) % _LANES] if channel else self._lanes[0]
        lane.queue.append((args, future))
        if not lane.scheduled and not lane.busy:
            lane.scheduled = True
            loop.call_soon(self._kick, lane)
        return future

    async def call_script(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], *, channel: str = ""
    ) -> Any:
        """Run ``script`` by its SHA; a server that lacks it gets the source."""
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args, channel=channel)
        except NoScriptError:
            return await self.call("EVAL", script.source, len(keys), *keys, *args, channel=channel)

    @staticmethod
    def script_prefix(script: Script, keys: Sequence[str], args: Sequence[Any]) -> Prefix:
        """The script call's arguments but the last two, for :meth:`call_prefixed`
        (which does not fall back to the source: on ``NoScriptError``, the caller sends
        EVAL)."""
        return Prefix("EVALSHA", script.sha, len(keys), *keys, *args)

    async def ping(self) -> None:
        await self.call("PING")

    # Standalone and Sentinel: one connection, written once per tick.

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._connecting is not None:
            return  # written once connected
        connection = self._connection
        if connection is None or not connection.is_open:
            self._connecting = asyncio.ensure_future(self._connect())
            return
        self._write(connection)

    async def _connect(self) -> None:
        try:
            connection = await self.open_connection()
            async with asyncio.timeout(self.spec.io_timeout):
                await asyncio.gather(
                    *connection.send([("SCRIPT", "LOAD", s.source) for s in SCRIPTS])
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _fail_all(self._futures, exc)
            self._packed, self._futures = [], []
            return
        finally:
            self._connecting = None
        self._connection = connection
        if self._futures:
            self._write(connection)

    def _write(self, connection: RespConnection) -> None:
        packed, futures = self._packed, self._futures
        self._packed, self._futures = [], []
        if any(map(_done, futures)):  # callers that gave up (cancelled) are not sent
            live = [i for i, future in enumerate(futures) if not future.done()]
            packed = [packed[i] for i in live]
            futures = [futures[i] for i in live]
            if not futures:
                return
        self.round_trips += 1
        try:
            connection.write(b"".join(packed), futures)
        except ConnectionError as exc:
            _fail_all(futures, exc)
            return
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(self._timeout / 2, self._watch)

    def _watch(self) -> None:
        """End the connection if its oldest command waited too long (Redis hangs)."""
        self._watchdog = None
        connection = self._connection
        if connection is None or not connection.is_open:
            return
        oldest = connection.oldest_pending()
        if oldest is None:
            return
        if time.monotonic() - oldest > self._timeout:
            error = TimeoutError(f"Redis {self.label} did not answer in {self._timeout:g} s")
            connection.abort(error)
            return
        self._watchdog = asyncio.get_running_loop().call_later(self._timeout / 2, self._watch)

    # Redis Cluster: redis-py's pipeline, per lane.

    def _kick(self, lane: _Lane) -> None:
        lane.scheduled = False
        if lane.busy or not lane.queue:
            return
        batch = lane.queue[:_MAX_BATCH]
        del lane.queue[:_MAX_BATCH]
        lane.busy = True
        self._spawn(self._run_lane(lane, batch))

    async def _run_lane(self, lane: _Lane, batch: Pending) -> None:
        try:
            live = [(args, future) for args, future in batch if not future.done()]
            if live:
                await self._cluster_pipeline(live)
        finally:
            lane.busy = False
            if lane.queue:
                self._kick(lane)

    async def _cluster_pipeline(self, batch: Pending) -> None:
        assert self._cluster is not None
        self.round_trips += 1
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self._cluster.pipeline(transaction=False)
                for args, _ in batch:
                    pipe.execute_command(*args)
                results = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            _fail(batch, ConnectionError("the Redis client is closing"))
            raise
        except TimeoutError:
            _fail(batch, TimeoutError(f"Redis {self.label} did not answer in {self._timeout:g} s"))
            return
        except Exception as exc:
            _fail(batch, exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    # Connections.

    async def _address(self) -> tuple[str, int]:
        if self._sentinel is not None:
            address, generation = await locate(self._sentinel, self.spec.master_name)
            self._learn(address, generation)
            return address
        if self._cluster is not None:
            # PUBLISH reaches every node of a cluster: any node will do for PUB/SUB.
            await self._cluster.initialize()
            node = random.choice(self._cluster.get_nodes())
            return node.host, int(node.port)
        if self.spec.unix_path:
            return "", 0
        return self.spec.hosts[0]

    async def open_connection(self, on_push: Any = None) -> RespConnection:
        """A new connection, set up; with ``on_push``, for PUB/SUB."""
        async with asyncio.timeout(self._timeout):
            host, port = await self._address()
        connection = await open_connection(self.spec, host, port, on_push=on_push)
        if self._sentinel is not None:
            self._opened.add(connection)
            if self._master != (host, port):  # the master moved while it connected
                connection.abort(ConnectionError("the Sentinel master moved"))
                raise ConnectionError(f"{self.label}: the master moved while connecting")
            if self._sentinel_watch is None:
                self._sentinel_watch = SentinelWatch(self.spec, self._relocate)
                self._spawn(self._sentinel_watch.start())
        return connection

    # Sentinel: following the master.

    def _relocate(self) -> None:
        """Ask the Sentinels where the master is now (one question at a time)."""
        if self._relocating is None or self._relocating.done():
            self._relocating = self._spawn(self._ask_sentinels())

    async def _ask_sentinels(self) -> None:
        assert self._sentinel is not None
        try:
            async with asyncio.timeout(self._timeout):
                address, generation = await locate(self._sentinel, self.spec.master_name)
        except (OSError, TimeoutError, RedisError) as exc:
            logger.debug("asking the Sentinels of %s failed: %s", self.label, exc)
            return
        self._learn(address, generation)

    def _learn(self, address: tuple[str, int], generation: str) -> None:
        """The Sentinels say the master is at ``address``, in ``generation``: when that
        is news, end every connection to another address (they reconnect to the new
        master), and fail commands not yet written (packed for the old generation)."""
        known, self._master = self._master, address
        if known is None:
            self.generation = generation
            return
        if address == known and generation == self.generation:
            return
        logger.warning(
            "Sentinel: master %s is now %s:%d (configuration epoch %s, was %s:%d, %s); "
            "reconnecting",
            self.spec.master_name,
            *address,
            generation,
            *known,
            self.generation,
        )
        regenerated = generation != self.generation
        self.generation = generation
        error = ConnectionError(f"Sentinel failover of {self.spec.master_name}")
        if regenerated:
            _fail_all(self._futures, error)
            self._packed, self._futures = [], []
        for connection in list(self._opened):
            if regenerated or connection.address != address:
                connection.abort(error)

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def slot_owner(self, key: str, *, refresh: bool = False) -> tuple[str, int]:
        """The address of the master owning ``key``'s slot (Cluster); ``refresh``: ask
        the cluster first rather than trust the slot map."""
        cluster = self._cluster
        if cluster is None:
            raise RuntimeError(f"{self.label} is not a Redis Cluster")
        await cluster.initialize()
        if refresh:
            # Concurrent refreshes (partitions reconnecting together) are merged by
            # redis-py: those that waited find the map already renewed.
            await cluster.nodes_manager.initialize()
        node = cluster.get_node_from_key(key)
        if node is None:
            raise ConnectionError(f"no master of {key!r} in {self.label}")
        return node.host, int(node.port)

    def partition_opener(
        self, partition: int
    ) -> Callable[[Callable[[Any], None]], Awaitable[RespConnection]]:
        """What :class:`~wirehub.brokers.redis.pubsub.PubSub` calls to connect a
        partition's PUB/SUB connection: to its slot's master, the slot map refreshed on
        every attempt after the first."""
        key = self.keys.service_channel(partition)
        attempts = 0

        async def open_(on_push: Callable[[Any], None]) -> RespConnection:
            nonlocal attempts
            refresh = attempts > 0
            attempts += 1
            async with asyncio.timeout(self._timeout):
                host, port = await self.slot_owner(key, refresh=refresh)
            return await open_connection(self.spec, host, port, on_push=on_push)

        return open_

    async def close(self) -> None:
        watch, self._sentinel_watch = self._sentinel_watch, None
        if watch is not None:
            await watch.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for task in [*self._tasks, *([self._connecting] if self._connecting else [])]:
            task.cancel()
        closing = ConnectionError("the Redis client is closed")
        _fail_all(self._futures, closing)
        self._packed, self._futures = [], []
        for lane in self._lanes:
            _fail(lane.queue, closing)
            lane.queue.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort(closing)
        closables: list[Any] = [self._cluster] if self._cluster is not None else []
        if self._sentinel is not None:
            closables.extend(self._sentinel.sentinels)
        for closable in closables:
            try:
                await closable.aclose()
            except Exception:
                logger.debug("closing a client of %s failed", self.label, exc_info=True)


def _fail(batch: Pending, exc: BaseException) -> None:
    _fail_all([future for _, future in batch], exc)


def _fail_all(futures: Sequence[asyncio.Future[Any]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)


_done = asyncio.Future.done
