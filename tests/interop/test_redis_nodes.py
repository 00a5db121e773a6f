"""Several wirehub nodes sharing Redis behave as one server, to both official SDKs.

Node A and node B are ``wirehub serve`` processes on their own ports; node C is a Node
in the test process on the same Redis and prefix, for the in-process API
(``node.publish``). centrifuge-js (JSON) connects to A, centrifuge-python (Protobuf) to
B. Each test has its own key prefix, removed afterwards.
"""

from __future__ import annotations

import asyncio
import signal
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.interop.helpers import SECRET, WAIT, event, server_log
from tests.interop.test_features_js import FeaturesJsClient
from tests.interop.test_features_python import (
    RECOVERABLE,
    ROOM,
    connection_token,
    py_client,
)
from tests.interop.test_js_sdk import FAST_RECONNECT
from tests.support.inprocess import serve_node
from tests.support.proxy import TcpProxy
from tests.support.redis import delete_prefix, redis_url, require_redis, unique_prefix
from tests.support.server import ServerProcess
from wirehub import Node, load_config

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

CHAT = "chat:x"

PRESENCE_TTL = 2.0


def redis_toml(url: str, prefix: str, *, history_size: int = 10) -> str:
    """Test namespaces on the Redis engine; presence refreshed every 0.5 s and expiring
    after 2 s, so a killed node's entries go quickly."""
    return f"""
[server]
log_level = "debug"

[client]
presence_update_interval = 0.5

[client.token]
hmac_secret_key = "{SECRET}"

[[channel.namespaces]]
name = "recover"
allow_subscribe_for_client = true
allow_history_for_subscriber = true
history_size = {history_size}
history_ttl = 300
force_recovery = true

[[channel.namespaces]]
name = "room"
allow_subscribe_for_client = true
presence = true
join_leave = true
allow_presence_for_subscriber = true

[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true

[engine]
type = "redis"

[engine.redis]
address = "{url}"
prefix = "{prefix}"
presence_ttl = {PRESENCE_TTL}
"""


class Cluster:
    def __init__(self, toml: str, start: Callable[..., ServerProcess]) -> None:
        self.toml = toml
        self.start = start

    def config(self) -> Any:
        return load_config(None, tomllib.loads(self.toml), environ=False)


@pytest.fixture
def cluster(server_factory: Callable[..., ServerProcess]) -> Iterator[Cluster]:
    url = redis_url()
    require_redis(url)
    prefix = unique_prefix()
    yield Cluster(redis_toml(url, prefix), server_factory)
    delete_prefix(url, prefix)


@asynccontextmanager
async def node_c(cluster: Cluster) -> AsyncIterator[Node]:
    """A node in this process on the same Redis: the in-process API."""
    async with serve_node(Node(cluster.config())) as running:
        yield running.node


def values(events: list[dict[str, Any]]) -> list[Any]:
    return [item["data"]["n"] for item in events]


async def test_two_nodes_behave_as_one_server(cluster: Cluster) -> None:
    a = cluster.start(cluster.toml)
    b = cluster.start(cluster.toml)
    async with (
        node_c(cluster) as c,
        FeaturesJsClient(
            a.ws_url,
            "json",
            token=connection_token("js"),
            subscribe=[CHAT, RECOVERABLE, {"channel": ROOM, "joinLeave": True}],
        ) as js,
        py_client(b.ws_url, "protobuf", token=connection_token("py")) as py,
    ):
        js_id = await js.connected()
        py_id = await py.connected()
        for channel in (CHAT, RECOVERABLE, ROOM):
            await js.log.wait_for(event("subscribed", channel=channel))
        await py.subscribe(CHAT)
        await py.subscribe(RECOVERABLE)
        await py.log.wait_for(event("subscribed", channel=RECOVERABLE))

        # A client's publication crosses nodes both ways.
        await js.ok("publish", channel=CHAT, data={"n": 1, "from": "a"})
        await py.client.publish(CHAT, py.payload({"n": 2, "from": "b"}))
        for log in (js.log, py.log):
            await log.wait_for(event("publication", channel=CHAT), count=2)
        assert sorted(values(js.publications(CHAT))) == [1, 2]
        assert sorted(values(py.publications(CHAT))) == [1, 2]

        # The in-process API of a third node reaches clients of both.
        for n in (1, 2, 3):
            await c.publish(RECOVERABLE, {"n": n})
        await js.log.wait_for(event("publication", channel=RECOVERABLE), count=3)
        await py.log.wait_for(event("publication", channel=RECOVERABLE), count=3)
        assert [p["offset"] for p in js.publications(RECOVERABLE)] == [1, 2, 3]
        assert [p["offset"] for p in py.publications(RECOVERABLE)] == [1, 2, 3]

        # History reads the same from every node.
        from_a = await js.ok("history", channel=RECOVERABLE, limit=-1)
        from_b = await py.client.history(RECOVERABLE, limit=-1)
        from_c = await c.history(RECOVERABLE, limit=-1)
        assert [p["offset"] for p in from_a["publications"]] == [1, 2, 3]
        assert [p.offset for p in from_b.publications] == [1, 2, 3]
        assert (from_a["epoch"], from_b.epoch) == (from_c.position.epoch,) * 2

        # Join crosses nodes; presence on A lists the client connected to B.
        await py.subscribe(ROOM)
        await js.log.wait_for(event("join", channel=ROOM, info={"user": "py", "client": py_id}))
        presence = await js.ok("presence", channel=ROOM)
        assert presence["clients"] == {js_id: "js", py_id: "py"}
        stats = await js.ok("presenceStats", channel=ROOM)
        assert (stats["numClients"], stats["numUsers"]) == (2, 2)
        assert set(await c.presence(ROOM)) == {js_id, py_id}

        # Leave crosses nodes too.
        sub = py.client.get_subscription(ROOM)
        assert sub is not None
        await sub.unsubscribe()
        await js.log.wait_for(event("leave", channel=ROOM, info={"user": "py", "client": py_id}))
        assert (await js.ok("presence", channel=ROOM))["clients"] == {js_id: "js"}


async def test_clients_of_a_killed_node_move_and_recover(cluster: Cluster) -> None:
    """Node B is SIGKILLed: its clients reconnect to A (the proxy stands in for a load
    balancer) and recover what was published meanwhile; B's presence entries vanish
    within the presence TTL, refreshed by nobody."""
    a = cluster.start(cluster.toml)
    b = cluster.start(cluster.toml)
    async with (
        node_c(cluster) as c,
        TcpProxy(b.port) as balancer,
        FeaturesJsClient(
            balancer.ws_url(b.ws_url),
            "protobuf",
            token=connection_token("js"),
            subscribe=[RECOVERABLE, ROOM],
            **FAST_RECONNECT,
        ) as js,
        py_client(balancer.ws_url(b.ws_url), "json", token=connection_token("py")) as py,
    ):
        old_js = await js.connected()
        old_py = await py.connected()
        await py.subscribe(RECOVERABLE)
        await py.subscribe(ROOM)
        for log in (js.log, py.log):
            await log.wait_for(event("subscribed", channel=ROOM))
            await log.wait_for(event("subscribed", channel=RECOVERABLE))
        await c.publish(RECOVERABLE, {"n": 1})
        for log in (js.log, py.log):
            await log.wait_for(event("publication", channel=RECOVERABLE))
        assert set(await c.presence(ROOM)) == {old_js, old_py}

        with balancer.down():
            b.stop(signal.SIGKILL)
            for n in (2, 3):
                await c.publish(RECOVERABLE, {"n": n})
            balancer.target_port = a.port

        new_js = (await js.log.wait_for(event("connected"), count=2))["client"]
        new_py = (await py.log.wait_for(event("connected"), count=2))["client"]
        for log in (js.log, py.log):
            again = await log.wait_for(event("subscribed", channel=RECOVERABLE), count=2)
            assert (
                again.get("recovered"),
                again.get("wasRecovering", again.get("was_recovering")),
            ) == (
                True,
                True,
            )
        await c.publish(RECOVERABLE, {"n": 4})
        await js.log.wait_for(event("publication", channel=RECOVERABLE), count=4)
        await py.log.wait_for(event("publication", channel=RECOVERABLE), count=4)
        assert values(js.publications(RECOVERABLE)) == [1, 2, 3, 4]
        assert values(py.publications(RECOVERABLE)) == [1, 2, 3, 4]

        # The new connections are present at once; the killed node's entries expire.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PRESENCE_TTL + WAIT
        while set(await c.presence(ROOM)) != {new_js, new_py}:
            assert loop.time() < deadline, await c.presence(ROOM)
            await asyncio.sleep(0.1)
        await server_log(a, "serving")  # A served on throughout
