"""Emulation across two ``wirehub serve`` nodes on Redis, behind a round-robin TCP
balancer, no sticky sessions: a client's stream lives on one node while its emulation
requests, each on a TCP connection of its own, alternate between both; the node that
does not own the session forwards them to the owner through the Controller. Killing the
owner makes the client reconnect (to the survivor) and recover what it missed.

centrifuge-js (Node 20): HTTP-streaming in JSON and Protobuf, SSE in JSON. A third node
in the test process, on the same Redis and prefix, publishes (``node.publish``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest

from tests.interop.helpers import event, server_log
from tests.interop.test_emulation_js import check_emulation, emulated
from tests.interop.test_features_python import RECOVERABLE, ROOM, connection_token
from tests.interop.test_js_sdk import FAST_RECONNECT
from tests.interop.test_redis_nodes import CHAT, Cluster, node_c, redis_toml, values
from tests.support.proxy import TcpProxy
from tests.support.redis import delete_prefix, redis_url, require_redis, unique_prefix
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

EMULATION = """
[http_stream]
enabled = true

[sse]
enabled = true
"""


@pytest.fixture
def cluster(server_factory: Callable[..., ServerProcess]) -> Iterator[Cluster]:
    url = redis_url()
    require_redis(url)
    prefix = unique_prefix()
    yield Cluster(redis_toml(url, prefix) + EMULATION, server_factory)
    delete_prefix(url, prefix)


async def test_emulation_requests_alternate_between_nodes(cluster: Cluster) -> None:
    a = cluster.start(cluster.toml)
    b = cluster.start(cluster.toml)
    # A balancer per client, so that each one's requests alternate (with one shared
    # balancer, two clients in lockstep could each keep hitting their own node). Each
    # stream is its client's first connection: alice's on A, bob's on B.
    async with (
        node_c(cluster) as c,
        TcpProxy([a.port, b.port]) as to_a_first,
        TcpProxy([b.port, a.port]) as to_b_first,
        emulated(
            f"http://127.0.0.1:{to_a_first.port}",
            ("http_stream", "json"),
            name="alice",
            token=connection_token("alice"),
            subscribe=[CHAT, RECOVERABLE, {"channel": ROOM, "joinLeave": True}],
            freshConnections=True,
        ) as alice,
        emulated(
            f"http://127.0.0.1:{to_b_first.port}",
            ("sse", "json"),
            name="bob",
            token=connection_token("bob"),
            subscribe=[CHAT, ROOM],
            freshConnections=True,
        ) as bob,
    ):
        alice_id = await alice.connected()
        bob_id = await bob.connected()
        for channel in (CHAT, RECOVERABLE, ROOM):
            await alice.log.wait_for(event("subscribed", channel=channel))
        for channel in (CHAT, ROOM):
            await bob.log.wait_for(event("subscribed", channel=channel))

        # Publications cross, whichever node each stream and each request is on.
        await alice.ok("publish", channel=CHAT, data={"n": 1})
        await bob.ok("publish", channel=CHAT, data={"n": 2})
        for js in (alice, bob):
            await js.log.wait_for(event("publication", channel=CHAT), count=2)
            assert sorted(values(js.publications(CHAT))) == [1, 2]
        for n in (1, 2, 3):
            await c.publish(RECOVERABLE, {"n": n})
        await alice.log.wait_for(event("publication", channel=RECOVERABLE), count=3)
        history = await alice.ok("history", channel=RECOVERABLE, limit=-1)
        assert [p["offset"] for p in history["publications"]] == [1, 2, 3]
        presence = await bob.ok("presence", channel=ROOM)
        assert presence["clients"] == {alice_id: "alice", bob_id: "bob"}
        stats = await alice.ok("presenceStats", channel=ROOM)
        assert (stats["numClients"], stats["numUsers"]) == (2, 2)
        # No RPC handler on these nodes: the error answer still comes back.
        rpc = await bob.command("rpc", method="echo", data={})
        assert (rpc["ok"], rpc["code"]) == (False, 104)

        for js, transport in ((alice, "http_stream"), (bob, "sse")):
            check_emulation(js, transport)
        # Each stream on the node its balancer tried first; each client's requests
        # alternated, so every node forwarded the other's requests to it.
        assert f"client {alice_id} connected" in a.log
        assert f"client {bob_id} connected" in b.log
        for balancer in (to_a_first, to_b_first):
            assert min(balancer.connections_to[a.port], balancer.connections_to[b.port]) >= 2
        for server in (a, b):
            await server_log(server, "forwarding an emulation request to node ")


async def test_killing_the_owning_node_moves_the_session_and_recovers(cluster: Cluster) -> None:
    a = cluster.start(cluster.toml)
    b = cluster.start(cluster.toml)
    async with (
        node_c(cluster) as c,
        TcpProxy([a.port, b.port]) as balancer,
        emulated(
            f"http://127.0.0.1:{balancer.port}",
            ("http_stream", "protobuf"),
            name="reader",
            token=connection_token("42"),
            subscribe=[RECOVERABLE],
            freshConnections=True,
            **FAST_RECONNECT,
        ) as js,
    ):
        first = await js.connected()
        await js.log.wait_for(event("subscribed", channel=RECOVERABLE))
        await c.publish(RECOVERABLE, {"n": 1})
        await js.log.wait_for(event("publication", channel=RECOVERABLE))

        owner, survivor = (a, b) if f"client {first} connected" in a.log else (b, a)
        owner.stop(signal.SIGKILL)
        for n in (2, 3):
            await c.publish(RECOVERABLE, {"n": n})

        second = (await js.log.wait_for(event("connected"), count=2))["client"]
        again = await js.log.wait_for(event("subscribed", channel=RECOVERABLE), count=2)
        assert (again["wasRecovering"], again["recovered"]) == (True, True)
        await c.publish(RECOVERABLE, {"n": 4})
        await js.log.wait_for(event("publication", channel=RECOVERABLE), count=4)
        assert values(js.publications(RECOVERABLE)) == [1, 2, 3, 4]
        assert f"client {second} connected" in survivor.log
        # Commands work on the new session: an answer comes back over the stream.
        history = await js.ok("history", channel=RECOVERABLE, limit=-1)
        assert [p["offset"] for p in history["publications"]] == [1, 2, 3, 4]
