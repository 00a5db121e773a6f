"""The server API of one node acts on the connections of another, through Redis.

Two ``wirehub serve`` processes, A and B, share a Redis (each test its own key prefix);
the ``cent`` SDK from PyPI calls A's HTTP API only, and centrifuge-python clients
connected to B see the effects: the Controller (``core/cluster.py``) over the Redis
engine's control channels (``brokers/redis/controller.py``).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest
from cent import (
    AsyncClient,
    ChannelsRequest,
    DisconnectRequest,
    InfoRequest,
    PublishRequest,
    RefreshRequest,
    SubscribeRequest,
    UnsubscribeRequest,
)
from cent.dto import Disconnect as CentDisconnect, Node as NodeResult
from centrifuge import Client

from tests.api.test_server_api import Events, Sdk
from tests.interop.helpers import SECRET, EventLog, event, make_token
from tests.support.pysdk import disconnect
from tests.support.redis import delete_prefix, eventually, redis_url, require_redis, unique_prefix
from tests.support.server import ServerProcess
from wirehub.core.cluster import HEARTBEAT, STALE_AFTER

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

KEY = "cluster-api-key-0123456789"


def cluster_toml(url: str, prefix: str) -> str:
    return f"""
[server]
log_level = "debug"

[http_api]
key = "{KEY}"

[client.token]
hmac_secret_key = "{SECRET}"

[[channel.namespaces]]
name = "news"
allow_subscribe_for_client = true

[engine]
type = "redis"

[engine.redis]
address = "{url}"
prefix = "{prefix}"
"""


@dataclass
class Nodes:
    toml: str
    factory: Callable[..., ServerProcess]

    def start(self, name: str) -> ServerProcess:
        return self.factory(self.toml, env={"WIREHUB_NODE__NAME": name})


@pytest.fixture
def nodes(server_factory: Callable[..., ServerProcess]) -> Iterator[Nodes]:
    url = redis_url()
    require_redis(url)
    prefix = unique_prefix()
    yield Nodes(cluster_toml(url, prefix), server_factory)
    delete_prefix(url, prefix)


@asynccontextmanager
async def api(node: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"{node.http_url}/api", KEY) as cent:
        yield cent


@asynccontextmanager
async def sdk(node: ServerProcess, user: str) -> AsyncIterator[Sdk]:
    """A connected centrifuge-python client of ``user`` on ``node``."""
    log = EventLog(f"client of {user}")
    client = Client(node.ws_url, events=Events(log), token=make_token(user), proxy=None)
    try:
        await client.connect()
        connected = await log.wait_for(event("connected"))
        yield Sdk(client, log, str(connected["client"]))
    finally:
        with anyio.CancelScope(shield=True):
            await disconnect(client)


async def listed(cent: AsyncClient) -> dict[str, NodeResult]:
    return {node.name: node for node in (await cent.info(InfoRequest())).nodes}


async def test_the_api_of_one_node_acts_on_the_clients_of_another(nodes: Nodes) -> None:
    a, b = nodes.start("a"), nodes.start("b")
    async with api(a) as cent, sdk(a, "alice") as on_a, sdk(b, "bob") as on_b:

        async def both_listed() -> bool:
            found = await listed(cent)
            return set(found) == {"a", "b"} and found["b"].num_clients == 1

        await eventually(both_listed, "A's info to list B and B's client")
        found = await listed(cent)
        assert found["a"].uid != found["b"].uid
        assert (found["a"].num_clients, found["b"].num_users) == (1, 1)

        # Subscribe, publish, unsubscribe: B's client follows A's API.
        await cent.subscribe(SubscribeRequest(user="bob", channel="news:1"))
        await on_b.log.wait_for(event("server_subscribed", channel="news:1"))
        await cent.publish(PublishRequest(channel="news:1", data={"n": 1}))
        await on_b.log.wait_for(event("publication", channel="news:1", data={"n": 1}))

        # Channels add up the subscribers of both nodes.
        await on_a.subscribe("news:1")
        await on_b.subscribe("news:2")
        channels = (await cent.channels(ChannelsRequest(pattern="news:*"))).channels
        assert {name: c.num_clients for name, c in channels.items()} == {"news:1": 2, "news:2": 1}

        await cent.unsubscribe(UnsubscribeRequest(user="bob", channel="news:1"))
        await on_b.log.wait_for(event("server_unsubscribed", channel="news:1"))
        channels = (await cent.channels(ChannelsRequest())).channels
        assert {name: c.num_clients for name, c in channels.items()} == {"news:1": 1, "news:2": 1}

        # Refresh with expired: 3005, and the SDK reconnects (its token is still valid).
        await cent.refresh(RefreshRequest(user="bob", expired=True))
        await on_b.log.wait_for(event("connecting", code=3005))
        await on_b.log.wait_for(event("connected"), count=2)

        # Disconnect with a code of the app's own: terminal, the SDK stays away.
        goodbye = CentDisconnect(code=4507, reason="moved")
        await cent.disconnect(DisconnectRequest(user="bob", disconnect=goodbye))
        await on_b.log.wait_for(event("disconnected", code=4507, reason="moved"))
        assert not on_a.log.matching(event("disconnected"))


async def test_a_node_that_stops_leaves_info(nodes: Nodes) -> None:
    """SIGKILL: C says nothing; A answers ``info`` meanwhile, and forgets C once its
    heartbeats are stale (STALE_AFTER, checked every three heartbeats). SIGTERM: B says
    so (a shutdown message) and leaves A's info at once.

    C is killed as soon as A knows it, so that it goes at A's first prune (9 s after A
    started) on an unloaded machine; B comes and goes meanwhile."""
    c = nodes.start("c")
    a = nodes.start("a")
    async with api(a) as cent:

        async def names() -> set[str]:
            return set(await listed(cent))

        async def c_listed() -> bool:
            return await names() == {"a", "c"}

        await eventually(c_listed, "A's info to list C")
        c.stop(signal.SIGKILL)

        b = nodes.start("b")

        async def b_listed() -> bool:
            return "b" in await names()

        await eventually(b_listed, "A's info to list B")
        assert b.stop(signal.SIGTERM) == 0

        async def b_gone() -> bool:
            return "b" not in await names()

        # Its shutdown message: well before a prune could have dropped it.
        await eventually(b_gone, "A to forget B", wait=HEARTBEAT)

        async def c_gone() -> bool:
            return await names() == {"a"}

        await eventually(c_gone, "A to forget C", wait=STALE_AFTER + 4 * HEARTBEAT)
