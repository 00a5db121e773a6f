"""One Redis shard: its command client, auto-pipelining, and dedicated connections.

Auto-pipelining: commands issued while others are on their way share round trips.
Commands go into one of ``_LANES`` lanes, chosen by channel; each lane has at most one
pipeline in flight. The first command of an event-loop tick schedules a flush; every
command of that lane issued in that tick goes out in one pipeline, and commands issued
while it is in flight leave together in the next one. A thousand concurrent publishes
are thus a handful of round trips, not a thousand, on at most ``_LANES`` connections;
and a node's commands about one channel (publishes, presence added then removed) reach
Redis in the order they were issued.

Nothing retries behind the caller's back (redis-py's default retries are turned off):
a publish must not be sent twice, and a caller must get its error within the timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError

from wirehub.brokers.redis.addresses import ShardSpec, TLSOptions
from wirehub.brokers.redis.keys import Keys
from wirehub.brokers.redis.scripts import Script

__all__ = ["Shard"]

_pack_command: Any
try:  # C packing: redis-py's own encodes every argument in Python first.
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover
    _pack_command = None

logger = logging.getLogger("wirehub.redis")

# Lanes (pipelines in flight) per shard, and the most commands in one pipeline.
_LANES = 8
_MAX_BATCH = 1000

Args = tuple[Any, ...]


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


def _connection_kwargs(spec: ShardSpec) -> dict[str, Any]:
    return {
        "username": spec.username or None,
        "password": spec.password or None,
        "client_name": spec.client_name or None,
        "socket_timeout": spec.io_timeout,
        "socket_connect_timeout": spec.connect_timeout,
        "retry": _no_retry(),
        "health_check_interval": 0,
        # RESP2 on every version of redis-py and server: PUB/SUB messages are plain
        # replies to the reader, not push frames handed to a callback.
        "protocol": 2,
    }


def _build_client(spec: ShardSpec) -> tuple[Any, list[Any]]:
    """The command client, and other clients to close with it (Sentinel's)."""
    kwargs = _connection_kwargs(spec)
    pool_size = _LANES + 4
    if spec.kind == "cluster":
        nodes = [ClusterNode(host, port) for host, port in spec.hosts]
        cluster = RedisCluster(
            startup_nodes=nodes,
            max_connections=pool_size,
            **kwargs,
            **_tls_kwargs(spec.tls),
        )
        return cluster, []
    if spec.kind == "sentinel":
        sentinel_kwargs = {
            "username": spec.sentinel_username or None,
            "password": spec.sentinel_password or None,
            "socket_timeout": spec.io_timeout,
            "socket_connect_timeout": spec.connect_timeout,
            "retry": _no_retry(),
            "protocol": 2,
            **_tls_kwargs(spec.sentinel_tls),
        }
        sentinel = Sentinel(list(spec.hosts), sentinel_kwargs=sentinel_kwargs)
        master = sentinel.master_for(
            spec.master_name,
            db=spec.db,
            max_connections=pool_size,
            **kwargs,
            **_tls_kwargs(spec.tls),
        )
        return master, list(sentinel.sentinels)
    if spec.unix_path:
        client = aioredis.Redis(
            unix_socket_path=spec.unix_path, db=spec.db, max_connections=pool_size, **kwargs
        )
        return client, []
    host, port = spec.hosts[0]
    client = aioredis.Redis(
        host=host,
        port=port,
        db=spec.db,
        max_connections=pool_size,
        **kwargs,
        **_tls_kwargs(spec.tls),
    )
    return client, []


class _Lane:
    __slots__ = ("busy", "connection", "queue", "scheduled")

    def __init__(self) -> None:
        self.queue: list[tuple[Args, asyncio.Future[Any]]] = []
        self.busy = False
        self.scheduled = False
        self.connection: AbstractConnection | None = None
        """Standalone and Sentinel: the lane's own connection, pipelined by hand."""


class Shard:
    """A Redis (standalone, Sentinel-managed or Cluster) holding some of the channels."""

    def __init__(self, spec: ShardSpec, prefix: str) -> None:
        self.spec = spec
        self.keys = Keys(prefix, cluster=spec.kind == "cluster")
        self.client, self._closables = _build_client(spec)
        self._timeout = spec.connect_timeout + spec.io_timeout
        self._lanes = [_Lane() for _ in range(_LANES)]
        self._tasks: set[asyncio.Task[None]] = set()
        self._scripts: dict[str, Script] = {}
        self.round_trips = 0
        """Pipelines sent so far (how well commands share round trips)."""

    @property
    def label(self) -> str:
        return self.spec.label

    # Commands.

    def call(self, *args: Any, channel: str = "") -> asyncio.Future[Any]:
        """Send one command (auto-pipelined, in order with the other commands about
        ``channel``); the future holds its reply or error."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        lane = self._lanes[hash(channel) % _LANES] if channel else self._lanes[0]
        lane.queue.append((args, future))
        if not lane.scheduled and not lane.busy:
            lane.scheduled = True
            future.get_loop().call_soon(self._kick, lane)
        return future

    def call_script(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], *, channel: str = ""
    ) -> asyncio.Future[Any]:
        """Run ``script`` by its SHA; a server that lacks it gets the source once."""
        self._scripts[script.sha] = script
        return self.call("EVALSHA", script.sha, len(keys), *keys, *args, channel=channel)

    def _kick(self, lane: _Lane) -> None:
        lane.scheduled = False
        if lane.busy or not lane.queue:
            return
        batch = lane.queue[:_MAX_BATCH]
        del lane.queue[:_MAX_BATCH]
        lane.busy = True
        task = asyncio.ensure_future(self._run(lane, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, lane: _Lane, batch: list[tuple[Args, asyncio.Future[Any]]]) -> None:
        try:
            live = [(args, future) for args, future in batch if not future.done()]
            if live:
                await self._execute(lane, live)
        finally:
            lane.busy = False
            if lane.queue:
                self._kick(lane)

    async def _execute(self, lane: _Lane, batch: list[tuple[Args, asyncio.Future[Any]]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                results = await self._pipeline(lane, [args for args, _ in batch])
                missing = [
                    i for i, result in enumerate(results) if isinstance(result, NoScriptError)
                ]
                if missing:
                    # The server lost its script cache (restart, failover): send the source.
                    retried = await self._pipeline(
                        lane, [self._with_source(batch[i][0]) for i in missing]
                    )
                    for i, result in zip(missing, retried, strict=True):
                        results[i] = result
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

    async def _pipeline(self, lane: _Lane, commands: list[Args]) -> list[Any]:
        self.round_trips += 1
        if self.spec.kind == "cluster":
            # redis-py routes each command to the node owning its key's slot.
            pipe = self.client.pipeline(transaction=False)
            for args in commands:
                pipe.execute_command(*args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            return results
        return await self._send(lane, commands)

    async def _send(self, lane: _Lane, commands: list[Args]) -> list[Any]:
        """One round trip on the lane's connection: every command written at once, then
        every reply read. Cheaper than redis-py's pipelines (no per-reply timer, no
        per-command response callback); the caller bounds the whole with a timeout. A
        failure of any kind drops the connection, since replies may be left unread."""
        connection = lane.connection
        if connection is None:
            connection = lane.connection = await self.open_connection()
        try:
            if _pack_command is not None:
                packed: Any = b"".join([_pack_command(args) for args in commands])
            else:
                packed = connection.pack_commands(commands)
            await connection.send_packed_command(packed, check_health=False)
            results: list[Any] = []
            for _ in commands:
                try:
                    results.append(await connection.read_response())
                except ResponseError as exc:  # an error reply, read whole: carry on
                    results.append(exc)
            return results
        except BaseException:
            lane.connection = None
            await _disconnect(connection)
            raise

    def _with_source(self, args: Args) -> Args:
        script = self._scripts[args[1]]
        return ("EVAL", script.source, *args[2:])

    # Dedicated connections, for PUB/SUB.

    async def open_connection(self) -> AbstractConnection:
        """A new connection of its own (not from the pool), connected."""
        connection: AbstractConnection
        if self.spec.kind == "cluster":
            connection = await self._cluster_connection()
        else:
            connection = self.client.connection_pool.make_connection()
        # Reads on a PUB/SUB connection wait as long as it takes; liveness is checked
        # with PINGs instead.
        connection.socket_timeout = None
        await connection.connect()  # type: ignore[no-untyped-call]
        return connection

    async def _cluster_connection(self) -> AbstractConnection:
        cluster: RedisCluster = self.client
        await cluster.initialize()
        # PUBLISH reaches every node of a cluster: any node will do.
        node = random.choice(cluster.get_nodes())
        kwargs = {**node.connection_kwargs, "retry": _no_retry()}
        connection: AbstractConnection = node.connection_class(**kwargs)
        return connection

    async def ping(self) -> None:
        await self.call("PING")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for lane in self._lanes:
            _fail(lane.queue, ConnectionError("the Redis client is closed"))
            lane.queue.clear()
            connection, lane.connection = lane.connection, None
            if connection is not None:
                await _disconnect(connection)
        for closable in (self.client, *self._closables):
            try:
                await closable.aclose()
            except Exception:
                logger.debug("closing a client of %s failed", self.label, exc_info=True)


async def _disconnect(connection: AbstractConnection) -> None:
    try:
        await connection.disconnect()
    except Exception:
        logger.debug("disconnect failed", exc_info=True)


def _fail(batch: list[tuple[Args, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
