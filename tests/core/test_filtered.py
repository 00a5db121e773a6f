"""Subscriptions with a tags filter, through a Node (``centrifugo-server-side.md``
§9.2): who may have one, what arrives, one evaluation per distinct filter, positions
of filtered subscribers, recovery, the dropped-publications metric."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.core.fakes import FakeVerifier, connect, frame, make_config
from tests.core.test_delta import pubs, subscribe, wait_pubs
from wirehub import Node

pytestmark = pytest.mark.anyio

HISTORY = {"history_size": 100, "history_ttl": 300}
NAMESPACES: list[dict[str, Any]] = [
    {"name": "t", "allow_subscribe_for_client": True, "allow_tags_filter": True},
    {"name": "tr", **HISTORY, "allow_subscribe_for_client": True, "allow_tags_filter": True,
     "force_recovery": True},
    {"name": "closed", "allow_subscribe_for_client": True},
]  # fmt: skip

AAPL = {"key": "ticker", "cmp": "eq", "val": "AAPL"}
CHEAP = {"key": "price", "cmp": "lt", "val": "100"}


def make_node(**config: Any) -> Node:
    return Node(
        make_config(channel={"namespaces": NAMESPACES}, **config), token_verifier=FakeVerifier()
    )


async def test_who_may_filter() -> None:
    node = make_node()
    async with node:
        client, transport = await connect(node)
        reply = await subscribe(client, transport, "closed:1", tf=AAPL)
        assert reply["error"] == {"code": 107, "message": "bad request: tags filter not allowed"}
        reply = await subscribe(client, transport, "t:1", 3, tf={"key": "x", "cmp": "eq"})
        assert reply["error"]["code"] == 107
        assert "invalid tags filter" in reply["error"]["message"]
        assert "t:1" not in client.channels
        assert "subscribe" in await subscribe(client, transport, "t:1", 4, tf=AAPL)


async def test_only_matching_publications_arrive() -> None:
    node = make_node(prometheus={"enabled": True})
    async with node:
        client, transport = await connect(node)
        await subscribe(client, transport, "t:1", tf={"op": "and", "nodes": [AAPL, CHEAP]})
        other, everything = await connect(node)
        await subscribe(other, everything, "t:1")
        sent = [
            ({"ticker": "AAPL", "price": "99.5"}, True),
            ({"ticker": "AAPL", "price": "120"}, False),
            ({"ticker": "MSFT", "price": "10"}, False),
            (None, False),
            ({"ticker": "AAPL", "price": "1"}, True),
        ]
        for n, (tags, _) in enumerate(sent):
            await node.publish("t:1", {"n": n}, tags=tags)
        assert [p["data"]["n"] for p in await wait_pubs(everything, 5)] == [0, 1, 2, 3, 4]
        matched = await wait_pubs(transport, 2)
        assert [p["data"]["n"] for p in matched] == [0, 4]
        assert matched[0]["tags"] == {"ticker": "AAPL", "price": "99.5"}
        assert pubs(transport) == []
        assert node.metrics is not None
        assert node.metrics.tags_filter_dropped.value("") == 3


async def test_a_filter_is_evaluated_once_per_publication_however_many_share_it() -> None:
    node = make_node()
    async with node:
        subscribers = []
        for k in range(30):
            client, transport = await connect(node)
            tf = [AAPL, CHEAP, {"key": "ticker", "cmp": "ex"}][k % 3]
            await subscribe(client, transport, "t:1", tf=tf)
            subscribers.append(transport)
        groups = node.hub._variants["t:1"].filters
        assert len(groups) == 3
        evaluations = 0
        for group in groups.values():
            match = group.filter.match

            def counting(tags: Any, match: Any = match) -> bool:
                nonlocal evaluations
                evaluations += 1
                return bool(match(tags))

            group.filter = dataclasses.replace(group.filter, match=counting)
        for n in range(4):
            await node.publish("t:1", {"n": n}, tags={"ticker": "AAPL", "price": str(n * 60)})
        counts = [
            len(await wait_pubs(t, 4 if k % 3 != 1 else 2)) for k, t in enumerate(subscribers)
        ]
        assert counts == [4, 2, 4] * 10
        assert evaluations == 4 * 3


async def test_filtered_out_publications_do_not_look_like_gaps() -> None:
    """A positioned subscriber's position moves with every publication, matching or
    not: no 2500 for what its filter held back, and the position check finds it in step."""
    node = make_node()
    async with node:
        client, transport = await connect(node)
        reply = await subscribe(client, transport, "tr:1", tf=AAPL)
        epoch = reply["subscribe"]["epoch"]
        for n in range(6):
            await node.publish("tr:1", {"n": n}, tags={"ticker": "AAPL" if n in (1, 5) else "X"})
        assert [p["data"]["n"] for p in await wait_pubs(transport, 2)] == [1, 5]
        assert "tr:1" in client.channels
        assert node.hub.positions("tr:1")[client].offset == 6
        assert await node.positions.check() == 0
        # Recovery returns only matching publications.
        client.handle_frame(frame({"unsubscribe": {"channel": "tr:1"}, "id": 3}))
        await transport.next_message()
        for n in range(6, 10):
            await node.publish("tr:1", {"n": n}, tags={"ticker": "AAPL" if n == 8 else "X"})
        reply = await subscribe(
            client, transport, "tr:1", 4, tf=AAPL, recover=True, offset=2, epoch=epoch
        )
        result = reply["subscribe"]
        assert result["recovered"]
        assert [p["data"]["n"] for p in result["publications"]] == [5, 8]
