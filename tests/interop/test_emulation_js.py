"""centrifuge-js 5.x (unchanged, in Node 20) over HTTP-streaming and SSE, WebSocket
nowhere: the stream carries every reply and push, every command after connect is a
``POST /emulation`` (absolute ``emulationEndpoint``). HTTP-streaming in JSON and
Protobuf, SSE in JSON (the SDK's SSE is JSON only; ``eventsource`` package).

Each variant: connect with a token that expires and is refreshed through the stream,
subscribe, publish, history, presence and join/leave, RPC, server pings answered by
pongs over emulation; and recovery after the stream is cut under both ends.
"""

from __future__ import annotations

import time
import tomllib
from typing import Any

import anyio
import pytest

from tests.interop.helpers import SECRET, event
from tests.interop.test_features_js import FeaturesJsClient
from tests.interop.test_features_python import connection_token, echo_rpc, record_disconnects
from tests.interop.test_js_sdk import FAST_RECONNECT
from tests.support.inprocess import serve_node
from tests.support.proxy import TcpProxy
from wirehub import Config, Node, load_config

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

ROOM = "chat:room"
EXPIRED_CLOSE_DELAY = 1.0
TOKEN_TTL = 3
PING_INTERVAL = 2

EMULATION_TOML = f"""
[server]
log_level = "debug"

[client]
expired_close_delay = {EXPIRED_CLOSE_DELAY}
ping_interval = {PING_INTERVAL}
pong_timeout = 1.5

[client.token]
hmac_secret_key = "{SECRET}"

[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_history_for_subscriber = true
allow_presence_for_subscriber = true
presence = true
join_leave = true
history_size = 10
history_ttl = 300
force_recovery = true

[http_stream]
enabled = true

[sse]
enabled = true
"""

VARIANTS = [("http_stream", "json"), ("http_stream", "protobuf"), ("sse", "json")]


def emulation_config() -> Config:
    return load_config(None, tomllib.loads(EMULATION_TOML), environ=False)


@pytest.fixture(params=VARIANTS, ids=["-".join(v) for v in VARIANTS])
def variant(request: pytest.FixtureRequest) -> tuple[str, str]:
    transport, encoding = request.param
    return str(transport), str(encoding)


def emulated(base: str, variant: tuple[str, str], *, name: str, **options: Any) -> FeaturesJsClient:
    """A centrifuge-js client on ``base`` (http://host:port) over ``variant`` only."""
    transport, encoding = variant
    return FeaturesJsClient(
        f"{base}/connection/{transport}",
        encoding,
        name=name,
        transport=transport,
        emulationEndpoint=f"{base}/emulation",
        **options,
    )


def check_emulation(js: FeaturesJsClient, transport: str) -> None:
    """Only the emulation transport was used, and every emulation request was taken."""
    assert {e["transport"] for e in js.log.matching(event("connected"))} == {transport}
    assert {e["transport"] for e in js.log.matching(event("stream_open"))} == {transport}
    assert not js.log.matching(event("ws_created"))
    statuses = [e["status"] for e in js.log.matching(event("emulation_post"))]
    assert statuses, js.log.dump()
    assert set(statuses) == {204}, js.log.dump()


async def test_commands_pushes_and_refresh_over_emulation(variant: tuple[str, str]) -> None:
    transport, _ = variant
    node = Node(emulation_config())
    node.on_rpc(echo_rpc)
    server = record_disconnects(node)
    first_exp = int(time.time()) + TOKEN_TTL
    async with (
        serve_node(node) as running,
        emulated(
            running.http_url,
            variant,
            name="alice",
            token=connection_token("alice", exp=first_exp),
            getTokens=[connection_token("alice")],
            subscribe=[{"channel": ROOM, "joinLeave": True}],
        ) as alice,
    ):
        alice_id = await alice.connected()
        await alice.log.wait_for(event("subscribed", channel=ROOM))
        async with emulated(
            running.http_url, variant, name="bob", token=connection_token("bob"), subscribe=[ROOM]
        ) as bob:
            bob_id = await bob.connected()
            await bob.log.wait_for(event("subscribed", channel=ROOM))
            spoken = {
                (c.transport.info.name, c.transport.info.protocol) for c in node.hub.clients()
            }
            assert spoken == {variant}
            join = await alice.log.wait_for(
                lambda e: e["event"] == "join" and e["info"]["client"] == bob_id
            )
            assert join["info"]["user"] == "bob"
            await _exchange(alice, bob, alice_id, bob_id)

            # Past the first token's expiry and grace: refreshed over emulation, still
            # here (a bounded wait on purpose), and the pings of the interval answered.
            await alice.log.wait_for(event("get_token"), TOKEN_TTL + 5)
            await anyio.sleep(max(0.0, first_exp + EXPIRED_CLOSE_DELAY + 0.5 - time.time()))
            assert not server.matching(event("closed"))
            for js in (alice, bob):
                assert (await js.ok("snapshot"))["state"] == "connected"
                assert len(js.log.matching(event("connected"))) == 1
                assert not js.log.matching(event("error"))
                check_emulation(js, transport)
            await node.publish(ROOM, {"n": 3})
            await alice.log.wait_for(event("publication", channel=ROOM), count=3)


async def _exchange(
    alice: FeaturesJsClient, bob: FeaturesJsClient, alice_id: str, bob_id: str
) -> None:
    """Publish, history, presence, RPC: every command a POST, every answer on a stream."""
    await alice.ok("publish", channel=ROOM, data={"n": 1})
    await bob.ok("publish", channel=ROOM, data={"n": 2})
    for js in (alice, bob):
        await js.log.wait_for(event("publication", channel=ROOM), count=2)
        got = js.publications(ROOM)
        assert [(p["data"]["n"], p["info"]["user"]) for p in got] == [(1, "alice"), (2, "bob")]
    history = await bob.ok("history", channel=ROOM, limit=10)
    assert [p["data"] for p in history["publications"]] == [{"n": 1}, {"n": 2}]
    assert history["offset"] == 2
    presence = await alice.ok("presence", channel=ROOM)
    assert presence["clients"] == {alice_id: "alice", bob_id: "bob"}
    stats = await bob.ok("presenceStats", channel=ROOM)
    assert (stats["numClients"], stats["numUsers"]) == (2, 2)
    echoed = await alice.ok("rpc", method="echo", data={"x": [1, "two"]})
    assert echoed["data"] == {"echo": {"x": [1, "two"]}, "user": "alice"}
    unknown = await alice.command("rpc", method="nope", data={})
    assert (unknown["ok"], unknown["code"]) == (False, 104)


async def test_missed_publications_are_recovered_after_the_stream_is_cut(
    variant: tuple[str, str],
) -> None:
    transport, _ = variant
    node = Node(emulation_config())
    async with serve_node(node) as running, TcpProxy(running.port) as proxy:
        base = f"http://127.0.0.1:{proxy.port}"
        async with emulated(
            base,
            variant,
            name="reader",
            token=connection_token("42"),
            subscribe=[ROOM],
            **FAST_RECONNECT,
        ) as js:
            first = await js.log.wait_for(event("subscribed", channel=ROOM))
            assert (first["recoverable"], first["wasRecovering"]) == (True, False)
            for n in (1, 2):
                await node.publish(ROOM, {"n": n})
            await js.log.wait_for(event("publication", channel=ROOM), count=2)

            # The stream (and any emulation request) is reset under both ends.
            with proxy.down():
                for n in (3, 4, 5):
                    await node.publish(ROOM, {"n": n})

            again = await js.log.wait_for(event("subscribed", channel=ROOM), count=2)
            assert (again["wasRecovering"], again["recovered"]) == (True, True)
            await js.log.wait_for(event("publication", channel=ROOM), count=5)
            await node.publish(ROOM, {"n": 6})
            await js.log.wait_for(event("publication", channel=ROOM), count=6)
            publications = js.publications(ROOM)
            assert [p["data"]["n"] for p in publications] == [1, 2, 3, 4, 5, 6]
            assert [p["offset"] for p in publications] == [1, 2, 3, 4, 5, 6]
            assert len(js.log.matching(event("connected"))) == 2
            assert js.log.matching(event("connecting", code=1, reason="transport closed"))
            assert {e["transport"] for e in js.log.matching(event("connected"))} == {transport}
