"""centrifuge-python 0.7 (unchanged) and the periodic position check, JSON and Protobuf.

The last publication of a recoverable channel is stored in the stream but lost on its
way to the node (``LossyBroker.drop()``, a lost PUB/SUB message); nothing is published
after it. The node's own check (``client.channel_position_check_delay``, 0.2 s here)
finds the subscriber behind the stream top and sends the unsubscribe push 2500; the SDK
resubscribes by itself with its last position and recovers the lost publication, on the
same connection. The node is served in-process (``serve_node``) for its broker.
"""

from __future__ import annotations

import tomllib

import pytest

from tests.interop.helpers import event
from tests.interop.test_features_python import (
    FEATURES_TOML,
    RECOVERABLE,
    connection_token,
    py_client,
)
from tests.support.brokers import LossyBroker
from tests.support.inprocess import serve_node
from wirehub import Node, load_config

pytestmark = [pytest.mark.anyio, pytest.mark.interop]


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_a_lost_last_publication_is_found_and_recovered(encoding: str) -> None:
    settings = tomllib.loads(FEATURES_TOML)
    settings["client"]["channel_position_check_delay"] = 0.2
    broker = LossyBroker()
    node = Node(load_config(None, settings, environ=False), broker=broker)
    async with (
        serve_node(node) as running,
        py_client(running.ws_url, encoding, token=connection_token("42")) as py,
    ):
        await py.connected()
        await py.subscribe(RECOVERABLE)
        await py.log.wait_for(event("subscribed", channel=RECOVERABLE))
        await node.publish(RECOVERABLE, {"n": 1})
        await py.log.wait_for(event("publication", channel=RECOVERABLE))

        broker.drop()
        lost = await node.publish(RECOVERABLE, {"n": 2})  # stored, never delivered
        assert [channel for channel, _ in broker.dropped] == [RECOVERABLE]

        told = await py.log.wait_for(event("subscribing", channel=RECOVERABLE, code=2500))
        assert told["reason"] == "insufficient state"
        again = await py.log.wait_for(event("subscribed", channel=RECOVERABLE), count=2)
        assert (again["was_recovering"], again["recovered"]) == (True, True)
        await py.log.wait_for(event("publication", channel=RECOVERABLE), count=2)
        publications = py.publications(RECOVERABLE)
        assert [(p["data"]["n"], p["offset"]) for p in publications] == [(1, 1), (2, lost.offset)]
        assert len(py.log.matching(event("connected"))) == 1  # no reconnect was needed
        assert py.log.matching(event("unsubscribed")) == []
