"""centrifuge-js 5.8 (unchanged, in Node 20) with fossil delta compression and tags
filters (its ``delta: 'fossil'`` and ``tagsFilter`` subscription options), over JSON
and Protobuf, on the memory and the Redis engines: the same cases as
``test_delta_python.py``, whose configuration and documents these tests share.

The SDK's ``deltaStats()`` tells how many payloads came as deltas.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.interop.helpers import event
from tests.interop.test_delta_python import (
    DOC,
    LIVE_BEFORE,
    MISSED,
    PLAIN,
    QUOTES,
    VERSIONS,
    dashboard_versions,
    engine_configs,
    memory_config,
)
from tests.interop.test_features_js import FeaturesJsClient
from tests.interop.test_features_python import ENCODINGS, connection_token
from tests.interop.test_js_sdk import FAST_RECONNECT
from tests.support.inprocess import serve_node
from tests.support.proxy import TcpProxy
from wirehub import Config, Node

pytestmark = [pytest.mark.anyio, pytest.mark.interop]


@pytest.fixture(params=ENCODINGS)
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["memory", "redis"])
def engine_config(request: pytest.FixtureRequest) -> Iterator[Config]:
    yield from engine_configs(request.param)


async def test_delta_subscription_reconstructs_every_version_across_a_cut(
    encoding: str, engine_config: Config
) -> None:
    node = Node(engine_config)
    versions = dashboard_versions()
    async with (
        serve_node(node) as running,
        TcpProxy(running.port) as proxy,
        FeaturesJsClient(
            proxy.ws_url(running.ws_url),
            encoding,
            token=connection_token("42"),
            subscribe=[{"channel": DOC, "delta": "fossil"}],
            **FAST_RECONNECT,
        ) as js,
        FeaturesJsClient(
            running.ws_url,
            encoding,
            name="without delta",
            token=connection_token("43"),
            subscribe=[DOC],
        ) as plain,
    ):
        await js.log.wait_for(event("subscribed", channel=DOC))
        await plain.log.wait_for(event("subscribed", channel=DOC))
        for version in versions[:LIVE_BEFORE]:
            await node.publish(DOC, version)
        await js.log.wait_for(event("publication", channel=DOC), count=LIVE_BEFORE)

        with proxy.down():  # reset under both ends; these are recovered
            for version in versions[LIVE_BEFORE : LIVE_BEFORE + MISSED]:
                await node.publish(DOC, version)

        again = await js.log.wait_for(event("subscribed", channel=DOC), count=2)
        assert (again["wasRecovering"], again["recovered"]) == (True, True)
        for version in versions[LIVE_BEFORE + MISSED :]:
            await node.publish(DOC, version)
        await js.log.wait_for(event("publication", channel=DOC), count=VERSIONS)
        await plain.log.wait_for(event("publication", channel=DOC), count=VERSIONS)

        received = js.publications(DOC)
        assert [item["data"] for item in received] == versions
        assert [item["offset"] for item in received] == list(range(1, VERSIONS + 1))
        stats = await js.ok("deltaStats", channel=DOC)
        assert (stats["numPublications"], stats["numFullPayloads"]) == (VERSIONS, 2)
        assert stats["numDeltaPayloads"] == VERSIONS - 2
        assert stats["bytesReceived"] * 5 < stats["bytesDecoded"]
        assert [item["data"] for item in plain.publications(DOC)] == versions
        assert proxy.cuts == 1


async def test_tags_filter_lets_only_matching_publications_through(encoding: str) -> None:
    node = Node(memory_config())
    tags_filter = {
        "op": "and",
        "nodes": [
            {"key": "ticker", "cmp": "eq", "val": "AAPL"},
            {"op": "not", "nodes": [{"key": "venue", "cmp": "in", "vals": ["OTC"]}]},
        ],
    }
    async with (
        serve_node(node) as running,
        FeaturesJsClient(
            running.ws_url,
            encoding,
            token=connection_token("42"),
            subscribe=[{"channel": QUOTES, "tagsFilter": tags_filter}],
        ) as js,
    ):
        await js.log.wait_for(event("subscribed", channel=QUOTES))
        sent = [("AAPL", "NASDAQ"), ("MSFT", "NASDAQ"), ("AAPL", "OTC"), ("AAPL", "NYSE")]
        for n, (ticker, venue) in enumerate(sent):
            await node.publish(QUOTES, {"n": n}, tags={"ticker": ticker, "venue": venue})
        await node.publish(QUOTES, {"n": "last"}, tags={"ticker": "AAPL", "venue": "LSE"})
        last = await js.log.wait_for(event("publication", channel=QUOTES, data={"n": "last"}))
        assert last["tags"] == {"ticker": "AAPL", "venue": "LSE"}
        assert [item["data"]["n"] for item in js.publications(QUOTES)] == [0, 3, "last"]


@pytest.mark.parametrize(
    ("channel", "tags_filter"),
    [
        (PLAIN, {"key": "ticker", "cmp": "eq", "val": "AAPL"}),
        (QUOTES, {"key": "ticker", "cmp": "eq"}),
    ],
)
async def test_a_refused_tags_filter_is_error_107(
    encoding: str, channel: str, tags_filter: dict[str, Any]
) -> None:
    node = Node(memory_config())
    async with (
        serve_node(node) as running,
        FeaturesJsClient(
            running.ws_url,
            encoding,
            token=connection_token("42"),
            subscribe=[{"channel": channel, "tagsFilter": tags_filter}, "quotes:other"],
        ) as js,
    ):
        unsubscribed = await js.log.wait_for(event("unsubscribed", channel=channel))
        assert unsubscribed["code"] == 107
        await js.log.wait_for(event("subscribed", channel="quotes:other"))
