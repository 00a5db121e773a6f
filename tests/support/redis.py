"""The Redis setups tests run against, from the environment (``.ci/services.sh``).

``WIREHUB_TEST_REDIS_URL`` defaults to the local Redis; the shards, the cluster and
Sentinel exist only when ``.ci/services.sh start`` (or ``.ci/run``) started them, and
tests needing them skip otherwise, which fails the run under ``WIREHUB_STRICT=1``.
Every test uses its own key prefix, and removes its keys afterwards: parallel runs
share 127.0.0.1:6379, and nothing here ever flushes a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.server import timeout

__all__ = [
    "RedisServer",
    "SentinelServer",
    "cluster_url",
    "delete_prefix",
    "eventually",
    "redis_url",
    "sentinel_group",
    "sentinel_url",
    "shard_urls",
    "unique_prefix",
]


def redis_url() -> str:
    return os.environ.get("WIREHUB_TEST_REDIS_URL") or "redis://127.0.0.1:6379"


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f'{name} is not set: run `eval "$(.ci/services.sh start)"`')
    return value


def shard_urls() -> list[str]:
    return _required("WIREHUB_TEST_REDIS_SHARD_URLS").split(",")


def cluster_url() -> str:
    return _required("WIREHUB_TEST_REDIS_CLUSTER_URL")


def sentinel_url() -> str:
    return _required("WIREHUB_TEST_REDIS_SENTINEL_URL")


def unique_prefix() -> str:
    return f"wirehub-test-{uuid.uuid4().hex[:12]}"


def require_redis(url: str) -> None:
    """Skip unless the Redis at ``url`` answers."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {url}: {exc}")
    finally:
        client.close()


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key of ``prefix`` (the test's own) at ``url``, a Redis or a cluster."""
    import redis
    from redis.cluster import ClusterNode, RedisCluster

    if url.startswith("redis+cluster://"):
        from wirehub.brokers.redis.addresses import parse_shards
        from wirehub.config import RedisEngineConfig

        (spec,) = parse_shards(RedisEngineConfig(cluster_address=[url]))
        nodes = [ClusterNode(host, port) for host, port in spec.hosts]
        cluster = RedisCluster(startup_nodes=nodes)
        try:
            for node in cluster.get_primaries():
                client = cluster.get_redis_connection(node)
                keys = list(client.scan_iter(match=f"{prefix}.*", count=1000))
                for key in keys:
                    cluster.delete(key)
        finally:
            cluster.close()
        return
    client = redis.Redis.from_url(url.replace("redis+sentinel://", "redis://"))
    try:
        keys = list(client.scan_iter(match=f"{prefix}.*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, wait: float = 10.0) -> None:
    """Poll ``check`` until it holds: for what only time brings (an expiry), never to
    synchronise with an event that can be awaited."""
    deadline = asyncio.get_running_loop().time() + timeout(wait)
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class RedisServer:
    """A redis-server of the test's own, on a free port, for faults: stop, start again
    on the same port, kill. Never the shared one."""

    def __init__(
        self,
        directory: Path,
        *,
        persistent: bool = False,
        args: tuple[str, ...] = (),
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.directory = directory
        self.persistent = persistent
        """Keep data across restarts (append-only file, synced on every write)."""
        self.args = args
        """More redis-server options (a password, ACL users)."""
        self.tls = tls
        """(certificate, key): serve TLS only, on :attr:`port`."""
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        aof = ["yes", "--appendfsync", "always"] if self.persistent else ["no"]
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            cert, key = self.tls
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert)]
            listen += ["--tls-key-file", str(key), "--tls-auth-clients", "no"]
        return [
            "redis-server",
            *("--bind", "127.0.0.1", *listen, "--save", ""),
            *("--dir", str(self.directory), "--appendonly", *aof),
            *self.args,
        ]

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout(10.0)
        while True:
            if self._answers():
                return self
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def _answers(self) -> bool:
        """Whether it answers a PING (or asks for a password)."""
        try:
            with contextlib.ExitStack() as stack:
                sock = stack.enter_context(
                    socket.create_connection(("127.0.0.1", self.port), timeout=1)
                )
                if self.tls is not None:
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    sock = stack.enter_context(context.wrap_socket(sock))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def command(self, *args: str) -> object:
        """One command and its reply (a server without TLS or a password)."""
        import redis

        client = redis.Redis(port=self.port, socket_timeout=timeout(5.0))
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout(10.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SentinelServer(RedisServer):
    """A Sentinel of the test's own (``redis-server --sentinel``, as Debian's
    redis-sentinel runs it) watching the master on ``master_port`` as ``name``, quick to
    act: a master silent for 1 s is down, a failover may take 5 s."""

    def __init__(self, directory: Path, master_port: int, name: str = "wirehub") -> None:
        super().__init__(directory)
        self.master_port = master_port
        self.name = name

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}?sentinel_master_name={self.name}"

    def _argv(self) -> list[str]:
        config = self.directory / "sentinel.conf"  # Sentinel rewrites it: its state
        config.write_text(
            f"sentinel monitor {self.name} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {self.name} 1000\n"
            f"sentinel failover-timeout {self.name} 5000\n"
        )
        return [
            *("redis-server", str(config), "--sentinel"),
            *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory)),
        ]

    def master(self) -> tuple[str, int]:
        reply = self.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
        assert isinstance(reply, list), reply
        return reply[0].decode(), int(reply[1])

    def knows_replica(self, port: int) -> bool:
        """Whether it has found the replica on ``port``, linked to its master."""
        replicas = self.command("SENTINEL", "REPLICAS", self.name)
        assert isinstance(replicas, list), replicas
        return any(
            int(replica[b"port"]) == port and replica[b"master-link-status"] == b"ok"
            for replica in replicas  # redis-py makes each a dict
        )


@contextlib.asynccontextmanager
async def sentinel_group(
    directory: Path,
) -> AsyncIterator[tuple[RedisServer, RedisServer, SentinelServer]]:
    """A master, its replica and a Sentinel watching them, all of the test's own, once
    the Sentinel has found the replica (so that a failover can promote it); stopped
    afterwards."""
    with contextlib.ExitStack() as stack:
        master = RedisServer(directory / "master").start()
        stack.callback(master.stop)
        replica = RedisServer(
            directory / "replica", args=("--replicaof", "127.0.0.1", str(master.port))
        ).start()
        stack.callback(replica.stop)
        sentinel = SentinelServer(directory / "sentinel", master.port).start()
        stack.callback(sentinel.stop)

        async def replica_known() -> bool:
            return await asyncio.to_thread(sentinel.knows_replica, replica.port)

        await eventually(replica_known, "the Sentinel to find the replica", wait=30)
        yield master, replica, sentinel


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
