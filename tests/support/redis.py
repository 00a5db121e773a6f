"""The Redis setups tests run against, from the environment (``.ci/services.sh``).

``WIREHUB_TEST_REDIS_URL`` defaults to the local Redis; the shards, the cluster and
Sentinel exist only when ``.ci/services.sh start`` (or ``.ci/run``) started them, and
tests needing them skip otherwise, which fails the run under ``WIREHUB_STRICT=1``.
Every test uses its own key prefix, and removes its keys afterwards: parallel runs
share 127.0.0.1:6379, and nothing here ever flushes a database.
"""

from __future__ import annotations

import os
import uuid

import pytest

__all__ = [
    "cluster_url",
    "delete_prefix",
    "redis_url",
    "sentinel_url",
    "shard_urls",
    "unique_prefix",
]


def redis_url() -> str:
    return os.environ.get("WIREHUB_TEST_REDIS_URL") or "redis://127.0.0.1:6379"


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: run `eval \"$(.ci/services.sh start)\"`")
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
