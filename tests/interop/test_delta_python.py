"""centrifuge-python 0.7 (unchanged) with fossil delta compression and tags filters,
over JSON and Protobuf, on the memory and the Redis engines.

A delta subscription follows a 2 KB dashboard through 50 versions, across a network
cut with recovery, and must reconstruct every version exactly; a subscriber without
delta on the same channel gets every full payload. A tags filter lets only matching
publications through; where the namespace does not allow one, or it is malformed, the
subscribe fails with 107 (the SDK unsubscribes with that code).

The node is served in-process (``Node.publish``); configuration and documents are shared
with ``test_delta_js.py``.
"""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from centrifuge import DeltaType, Filter, FilterNode

from tests.interop.helpers import SECRET, event
from tests.interop.test_features_python import ENCODINGS, connection_token, py_client
from tests.support.inprocess import serve_node
from tests.support.proxy import TcpProxy
from tests.support.redis import delete_prefix, redis_url, require_redis, unique_prefix
from wirehub import Config, Node, load_config

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

DOC = "doc:dashboard"
"""History, recovery for everyone, fossil deltas for every publish."""
QUOTES = "quotes:all"
"""Tags filters allowed."""
PLAIN = "plain:all"
"""Tags filters not allowed."""

VERSIONS = 50
LIVE_BEFORE, MISSED = 20, 15
"""Versions sent before the cut, then while the client is cut off (recovered)."""


def delta_toml(engine: str, prefix: str = "") -> str:
    engine_section = ""
    if engine == "redis":
        engine_section = (
            f'[engine]\ntype = "redis"\n\n[engine.redis]\n'
            f'address = "{redis_url()}"\nprefix = "{prefix}"\n'
        )
    return f"""
[server]
log_level = "debug"

[client.token]
hmac_secret_key = "{SECRET}"

[[channel.namespaces]]
name = "doc"
allow_subscribe_for_client = true
history_size = 100
history_ttl = 300
force_recovery = true
allowed_delta_types = ["fossil"]
delta_publish = true

[[channel.namespaces]]
name = "quotes"
allow_subscribe_for_client = true
allow_tags_filter = true

[[channel.namespaces]]
name = "plain"
allow_subscribe_for_client = true

{engine_section}"""


def engine_configs(engine: str) -> Iterator[Config]:
    """The tests' configuration on ``engine`` (Redis: a key prefix of its own, whose
    keys are deleted when the generator ends)."""
    if engine == "memory":
        yield load_config(None, tomllib.loads(delta_toml("memory")), environ=False)
        return
    url = redis_url()
    require_redis(url)
    prefix = unique_prefix()
    yield load_config(None, tomllib.loads(delta_toml("redis", prefix)), environ=False)
    delete_prefix(url, prefix)


@pytest.fixture(params=["memory", "redis"])
def engine_config(request: pytest.FixtureRequest) -> Iterator[Config]:
    yield from engine_configs(request.param)


def memory_config() -> Config:
    return load_config(None, tomllib.loads(delta_toml("memory")), environ=False)


def dashboard_versions(count: int = VERSIONS, seed: int = 5) -> list[dict[str, Any]]:
    """A ~2 KB dashboard state, one field changed per version (some non-ASCII text)."""
    rng = random.Random(seed)
    state: dict[str, Any] = {
        "title": "Opérations",
        "widgets": {
            f"w{i}": {"value": rng.randint(0, 99_999), "unit": "req/s", "label": f"Métrique {i}"}
            for i in range(30)
        },
    }
    versions = []
    for n in range(count):
        widget = state["widgets"][f"w{rng.randrange(30)}"]
        if n % 7 == 3:
            widget["label"] = rng.choice(["Débit", "Latence p99", "Erreurs/s"])
        else:
            widget["value"] = rng.randint(0, 99_999)
        versions.append(json.loads(json.dumps(state)))
    assert 1800 < len(json.dumps(versions[0], ensure_ascii=False).encode()) < 2600
    return versions


@pytest.fixture(params=ENCODINGS)
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_delta_subscription_reconstructs_every_version_across_a_cut(
    encoding: str, engine_config: Config
) -> None:
    node = Node(engine_config)
    versions = dashboard_versions()
    async with (
        serve_node(node) as running,
        TcpProxy(running.port) as proxy,
        py_client(proxy.ws_url(running.ws_url), encoding, token=connection_token("42")) as py,
        py_client(
            running.ws_url, encoding, token=connection_token("43"), name="without delta"
        ) as plain,
    ):
        await py.connected()
        await py.subscribe(DOC, delta=DeltaType.FOSSIL)
        await plain.connected()
        await plain.subscribe(DOC)
        await py.log.wait_for(event("subscribed", channel=DOC))
        await plain.log.wait_for(event("subscribed", channel=DOC))
        for version in versions[:LIVE_BEFORE]:
            await node.publish(DOC, version)
        await py.log.wait_for(event("publication", channel=DOC), count=LIVE_BEFORE)

        with proxy.down():  # reset under both ends; these are recovered
            for version in versions[LIVE_BEFORE : LIVE_BEFORE + MISSED]:
                await node.publish(DOC, version)

        again = await py.log.wait_for(event("subscribed", channel=DOC), count=2)
        assert (again["was_recovering"], again["recovered"]) == (True, True)
        for version in versions[LIVE_BEFORE + MISSED :]:
            await node.publish(DOC, version)
        await py.log.wait_for(event("publication", channel=DOC), count=VERSIONS)
        await plain.log.wait_for(event("publication", channel=DOC), count=VERSIONS)

        received = py.publications(DOC)
        assert [item["data"] for item in received] == versions
        assert [item["offset"] for item in received] == list(range(1, VERSIONS + 1))
        # Full: the first after subscribing and the first recovered one; deltas otherwise.
        full = [n for n, item in enumerate(received) if not item["delta"]]
        assert full == [0, LIVE_BEFORE]
        without = plain.publications(DOC)
        assert [item["data"] for item in without] == versions
        assert not any(item["delta"] for item in without)
        assert proxy.cuts == 1


async def test_tags_filter_lets_only_matching_publications_through(encoding: str) -> None:
    node = Node(memory_config())
    async with (
        serve_node(node) as running,
        py_client(running.ws_url, encoding, token=connection_token("42")) as py,
    ):
        await py.connected()
        tags_filter = Filter.all(
            Filter.eq("ticker", "AAPL"), Filter.negate(Filter.is_in("venue", ["OTC"]))
        )
        await py.subscribe(QUOTES, tags_filter=tags_filter)
        await py.log.wait_for(event("subscribed", channel=QUOTES))
        sent = [
            ("AAPL", "NASDAQ"),
            ("MSFT", "NASDAQ"),
            ("AAPL", "OTC"),
            ("AAPL", "NYSE"),
            ("GOOG", "OTC"),
        ]
        for n, (ticker, venue) in enumerate(sent):
            await node.publish(QUOTES, {"n": n}, tags={"ticker": ticker, "venue": venue})
        await node.publish(QUOTES, {"n": "last"}, tags={"ticker": "AAPL", "venue": "LSE"})
        last = await py.log.wait_for(event("publication", channel=QUOTES, data={"n": "last"}))
        assert last["tags"] == {"ticker": "AAPL", "venue": "LSE"}
        assert [item["data"]["n"] for item in py.publications(QUOTES)] == [0, 3, "last"]


@pytest.mark.parametrize(
    ("channel", "tags_filter"),
    [
        (PLAIN, Filter.eq("ticker", "AAPL")),  # the namespace does not allow filters
        (QUOTES, FilterNode({"key": "ticker", "cmp": "eq"})),  # no value to compare to
        (QUOTES, FilterNode({"op": "not", "nodes": []})),
        (QUOTES, FilterNode({"key": "price", "cmp": "gt", "val": "cheap"})),
    ],
)
async def test_a_refused_tags_filter_is_error_107(
    encoding: str, channel: str, tags_filter: FilterNode
) -> None:
    node = Node(memory_config())
    async with (
        serve_node(node) as running,
        py_client(running.ws_url, encoding, token=connection_token("42")) as py,
    ):
        await py.connected()
        await py.subscribe(channel, tags_filter=tags_filter)
        unsubscribed = await py.log.wait_for(event("unsubscribed", channel=channel))
        assert unsubscribed["code"] == 107
        # The connection is fine: another subscription works.
        await py.subscribe("quotes:other")
        await py.log.wait_for(event("subscribed", channel="quotes:other"))
