"""Faults under the Redis engine, seen by both official SDKs: nothing is lost without
the client being told.

The Redis is the test's own (``RedisServer``, never the shared one), persistent so that
history survives its restart. Node A is a ``wirehub serve`` process; the publisher is a
node in the test process, publishing sequence numbers without pause (each with an
idempotency key, so a publish retried after an error it did not see succeed is never
stored twice).
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from centrifuge import ReplyError
from msgspec import Raw

from tests.interop.helpers import EventLog, event
from tests.interop.test_features_js import FeaturesJsClient
from tests.interop.test_features_python import (
    RECOVERABLE,
    PyClient,
    connection_token,
    py_client,
)
from tests.interop.test_js_sdk import FAST_RECONNECT
from tests.interop.test_redis_nodes import CHAT, redis_toml
from tests.support.redis import RedisServer, eventually, sentinel_group, unique_prefix
from tests.support.server import ServerProcess, timeout
from wirehub import Node, load_config
from wirehub.brokers.base import PublishOptions
from wirehub.protocol.types import Publication

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

WAIT = timeout(30.0)


class Publisher:
    """Publishes 1, 2, 3, ... into RECOVERABLE until stopped, retrying a failed number."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.last = 0
        self.failures = 0
        self.stopping = False
        self.progress = asyncio.Event()

    async def run(self) -> None:
        options = self.node.rules.namespace(RECOVERABLE)
        n = 1
        while not self.stopping:
            publication = Publication(data=Raw(json.dumps({"n": n}).encode()))
            kept = PublishOptions(
                history_size=options.history_size,
                history_ttl=options.history_ttl,
                idempotency_key=f"n{n}",
            )
            try:
                await self.node.broker.publish(RECOVERABLE, publication, kept)
            except Exception:
                self.failures += 1
                await asyncio.sleep(0.05)
            else:
                self.last = n
                n += 1
                await asyncio.sleep(0.01)
            self.progress.set()

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not condition():
                    self.progress.clear()
                    await self.progress.wait()
        except TimeoutError:
            raise AssertionError(f"publisher: timed out waiting for {what}") from None


TOLD = ("unsubscribed", "subscribing", "disconnected", "connecting")


def check_no_silent_gap(log: EventLog, last: int) -> int:
    """Every sequence number up to ``last`` arrived once, in order, except where the
    client was told (it lost its subscription or connection, and then did not recover);
    return how many times it was told."""
    expected = 1
    told = 0
    pending_tell = False
    for item in log.events:
        name = item.get("event")
        if name in TOLD and item.get("channel", RECOVERABLE) == RECOVERABLE:
            pending_tell = True
            told += 1
        elif name == "subscribed" and item.get("channel") == RECOVERABLE and pending_tell:
            if not item.get("recovered", True):
                expected = None  # type: ignore[assignment]  # told: starts afresh
        elif name == "publication" and item.get("channel") == RECOVERABLE:
            n = item["data"]["n"]
            if expected is not None:
                assert n == expected, f"{log.name}: got {n}, expected {expected}\n{log.dump()}"
            expected = n + 1
            pending_tell = False
    assert expected == last + 1, f"{log.name}: ended at {expected}, last was {last}"
    return told


@pytest.fixture
def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", persistent=True).start()
    yield server
    server.stop()


@asynccontextmanager
async def streamed(
    url: str, server_factory: Callable[..., ServerProcess]
) -> AsyncIterator[tuple[Publisher, FeaturesJsClient, PyClient]]:
    """Node A on the engine at ``url``, centrifuge-js (JSON) and centrifuge-python
    (Protobuf) on it, both subscribed to RECOVERABLE, and a publisher node, not yet
    publishing."""
    toml = redis_toml(url, unique_prefix(), history_size=10_000)
    a = server_factory(toml)
    publisher_node = Node(load_config(None, tomllib.loads(toml), environ=False))
    async with (
        publisher_node,
        FeaturesJsClient(
            a.ws_url,
            "json",
            token=connection_token("js"),
            subscribe=[
                {"channel": RECOVERABLE, "minResubscribeDelay": 100, "maxResubscribeDelay": 500}
            ],
            **FAST_RECONNECT,
        ) as js,
        py_client(a.ws_url, "protobuf", token=connection_token("py")) as py,
    ):
        await js.connected()
        await py.connected()
        await py.subscribe(RECOVERABLE, max_resubscribe_delay=0.5)
        for log in (js.log, py.log):
            await log.wait_for(event("subscribed", channel=RECOVERABLE))
        yield Publisher(publisher_node), js, py


async def resubscriptions(logs: list[EventLog], last: int) -> list[list[dict[str, Any]]]:
    """Once every log has the publication ``last``: check there is no silent gap, that
    each client was told at least once, and return each one's subscribes after the
    first."""
    for log in logs:
        await log.wait_for(
            lambda e: e.get("event") == "publication" and e["data"]["n"] == last, WAIT
        )
    told = [check_no_silent_gap(log, last) for log in logs]
    assert all(count >= 1 for count in told), told
    again = [log.matching(event("subscribed", channel=RECOVERABLE))[1:] for log in logs]
    for log, subscribes in zip(logs, again, strict=True):
        assert subscribes, log.dump()
    return again


async def test_redis_restart_while_publications_stream(
    own_redis: RedisServer, server_factory: Callable[..., ServerProcess]
) -> None:
    """Redis stops for a while and comes back (same data): every positioned subscriber
    receives every publication, in order and once, or was told and recovered; a client
    publish while Redis is down fails at once with error 100; service resumes by itself."""
    async with streamed(own_redis.url, server_factory) as (publisher, js, py):
        await py.subscribe(CHAT)
        task = asyncio.create_task(publisher.run())
        try:
            await publisher.until(lambda: publisher.last >= 20, "20 publications")
            own_redis.stop()
            await publisher.until(lambda: publisher.failures >= 10, "failed publishes")
            with pytest.raises(ReplyError) as failed:
                async with asyncio.timeout(WAIT):
                    await py.client.publish(CHAT, py.payload({"x": 1}))
            assert failed.value.code == 100
            down_at = publisher.last
            own_redis.start()
            await publisher.until(lambda: publisher.last >= down_at + 20, "publishing again")
        finally:
            publisher.stopping = True
            await task
        again = await resubscriptions([js.log, py.log], publisher.last)
        for log, subscribes in zip((js.log, py.log), again, strict=True):
            assert all(item["recovered"] for item in subscribes), log.dump()  # same data
        await py.client.publish(CHAT, py.payload({"x": 2}))  # service resumed


async def test_sentinel_failover_while_publications_stream(
    tmp_path: Path, server_factory: Callable[..., ServerProcess]
) -> None:
    """SENTINEL FAILOVER while publications stream. Writes the old master accepted after
    its last sync to the replica are lost, so the new master's streams start a new
    epoch: every positioned subscriber receives every publication, in order and once, or
    is told (recovered: false) and goes on from the new timeline; nothing is lost
    silently. Publishing resumes by itself on the new master."""
    async with (
        sentinel_group(tmp_path) as (_, replica, sentinel),
        streamed(sentinel.url, server_factory) as (publisher, js, py),
    ):
        task = asyncio.create_task(publisher.run())
        try:
            await publisher.until(lambda: publisher.last >= 20, "20 publications")
            await asyncio.to_thread(sentinel.command, "SENTINEL", "FAILOVER", sentinel.name)

            async def switched() -> bool:
                master = await asyncio.to_thread(sentinel.master)
                return master == ("127.0.0.1", replica.port)

            await eventually(switched, "the Sentinel to switch masters", wait=30)
            # Each client is told (2500) and subscribes again while publishing goes on.
            for log in (js.log, py.log):
                await log.wait_for(event("subscribed", channel=RECOVERABLE), WAIT, count=2)
            at = publisher.last
            await publisher.until(lambda: publisher.last >= at + 20, "publishing again")
        finally:
            publisher.stopping = True
            await task
        again = await resubscriptions([js.log, py.log], publisher.last)
        for log, subscribes in zip((js.log, py.log), again, strict=True):
            assert not all(item["recovered"] for item in subscribes), log.dump()  # new epoch
