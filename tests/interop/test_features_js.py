"""centrifuge-js 5.x (unchanged, in Node 20) and the protocol's features beyond
publish/subscribe: recovery after a network cut, presence and join/leave, RPC,
connection token refresh and expiry, subscription tokens, server-side subscriptions.
Over JSON (the SDK's default build) and Protobuf (``centrifuge/build/protobuf``).

Each client is a ``node js/features.mjs`` subprocess (see that script); the node is
served in-process, as in ``test_features_python.py``, whose configuration and tokens
these tests share.
"""

from __future__ import annotations

import json
import time
from typing import Any, Self

import anyio
import pytest

from tests.interop.helpers import EventLog, event
from tests.interop.test_features_python import (
    ENCODINGS,
    EXPIRED_CLOSE_DELAY,
    NEWS,
    RECOVERABLE,
    ROOM,
    SECRET_A,
    SECRET_B,
    SHORT,
    TOKEN_TTL,
    connection_token,
    echo_rpc,
    features_config,
    record_disconnects,
    subscription_token,
)
from tests.interop.test_js_sdk import FAST_RECONNECT, JS_DIR, JsClient, _node
from tests.support.inprocess import serve_node
from tests.support.proxy import TcpProxy
from tests.support.server import timeout
from wirehub import Node

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

FEATURES_SCRIPT = JS_DIR / "features.mjs"


class FeaturesJsClient(JsClient):
    """A :class:`JsClient` running ``js/features.mjs``; ``encoding`` picks the build."""

    def __init__(
        self, url: str, encoding: str, *, name: str = "centrifuge-js", **options: Any
    ) -> None:
        super().__init__(
            url, name=f"{name} ({encoding})", protobuf=encoding == "protobuf", **options
        )

    async def __aenter__(self) -> Self:
        command = [_node(), str(FEATURES_SCRIPT), json.dumps(self.options)]
        self._process = await anyio.open_process(command, cwd=JS_DIR)
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._read_events)
        self._tasks.start_soon(self._read_stderr)
        return self

    async def ok(self, op: str, **fields: Any) -> dict[str, Any]:
        """Run a command that must succeed; return its result."""
        result = await self.command(op, **fields)
        assert result["ok"], f"{op} failed: {result}\n{self.log.dump()}"
        return result

    def publications(self, channel: str) -> list[dict[str, Any]]:
        return self.log.matching(event("publication", channel=channel))


@pytest.fixture(params=ENCODINGS)
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _values(events: list[dict[str, Any]]) -> list[Any]:
    return [item["data"]["n"] for item in events]


def _index(log: EventLog, item: dict[str, Any]) -> int:
    return next(i for i, other in enumerate(log.events) if other is item)


def _check_encoding(js: FeaturesJsClient, encoding: str) -> None:
    """The client really spoke ``encoding`` (Protobuf: the subprotocol was agreed)."""
    opened = js.log.matching(event("ws_open"))
    assert opened, js.log.dump()
    expected = "centrifuge-protobuf" if encoding == "protobuf" else ""
    assert {item["protocol"] for item in opened} == {expected}


# 1. Recovery after a network cut.


async def test_missed_publications_are_recovered_after_a_cut(encoding: str) -> None:
    node = Node(features_config())
    async with (
        serve_node(node) as running,
        TcpProxy(running.port) as proxy,
        FeaturesJsClient(
            proxy.ws_url(running.ws_url),
            encoding,
            token=connection_token("42"),
            subscribe=[RECOVERABLE],
            **FAST_RECONNECT,
        ) as js,
    ):
        first = await js.log.wait_for(event("subscribed", channel=RECOVERABLE))
        assert (first["recoverable"], first["wasRecovering"]) == (True, False)
        for n in (1, 2):
            await node.publish(RECOVERABLE, {"n": n})
        await js.log.wait_for(event("publication", channel=RECOVERABLE), count=2)

        # The socket is reset under both ends (no close frame) while 3, 4, 5 go out.
        with proxy.down():
            for n in (3, 4, 5):
                await node.publish(RECOVERABLE, {"n": n})

        again = await js.log.wait_for(event("subscribed", channel=RECOVERABLE), count=2)
        assert (again["wasRecovering"], again["recovered"]) == (True, True)
        assert again["hasRecoveredPublications"] is True
        await js.log.wait_for(event("publication", channel=RECOVERABLE), count=5)
        for n in (6, 7):
            await node.publish(RECOVERABLE, {"n": n})
        await js.log.wait_for(event("publication", channel=RECOVERABLE), count=7)

        publications = js.publications(RECOVERABLE)
        assert _values(publications) == [1, 2, 3, 4, 5, 6, 7]  # in order, once each
        assert [item["offset"] for item in publications] == [1, 2, 3, 4, 5, 6, 7]
        # The missed ones came with the resubscribe, before any live one.
        assert (
            _index(js.log, publications[1])
            < _index(js.log, again)
            < _index(js.log, publications[2])
        )
        assert len(js.log.matching(event("connected"))) == 2
        # The SDK saw the transport fail (1006, no close frame), not a server disconnect.
        assert js.log.matching(event("ws_close", code=1006))
        assert js.log.matching(event("connecting", code=1, reason="transport closed"))
        _check_encoding(js, encoding)


async def test_a_gap_longer_than_the_history_is_not_recovered(encoding: str) -> None:
    node = Node(features_config())
    async with (
        serve_node(node) as running,
        TcpProxy(running.port) as proxy,
        FeaturesJsClient(
            proxy.ws_url(running.ws_url),
            encoding,
            token=connection_token("42"),
            subscribe=[SHORT],
            **FAST_RECONNECT,
        ) as js,
    ):
        await js.log.wait_for(event("subscribed", channel=SHORT))
        await node.publish(SHORT, {"n": 1})
        await js.log.wait_for(event("publication", channel=SHORT))

        with proxy.down():
            for n in (2, 3, 4, 5, 6):  # the history keeps only 5 and 6
                await node.publish(SHORT, {"n": n})

        again = await js.log.wait_for(event("subscribed", channel=SHORT), count=2)
        assert (again["wasRecovering"], again["recovered"]) == (True, False)
        assert again["offset"] == 6  # the stream's top: the client starts afresh from there
        await node.publish(SHORT, {"n": 7})
        await js.log.wait_for(event("publication", channel=SHORT), count=2)

        assert _values(js.publications(SHORT)) == [1, 7]
        _check_encoding(js, encoding)


# 2. Presence, join and leave.


async def test_presence_and_join_leave(encoding: str) -> None:
    node = Node(features_config())
    async with (
        serve_node(node) as running,
        FeaturesJsClient(
            running.ws_url,
            encoding,
            name="alice",
            token=connection_token("alice"),
            subscribe=[{"channel": ROOM, "joinLeave": True}],
        ) as alice,
    ):
        alice_id = await alice.connected()
        await alice.log.wait_for(event("subscribed", channel=ROOM))

        async with FeaturesJsClient(
            running.ws_url,
            encoding,
            name="bob",
            token=connection_token("bob"),
            subscribe=[ROOM],  # join_leave not asked for
        ) as bob:
            bob_id = await bob.connected()
            await bob.log.wait_for(event("subscribed", channel=ROOM))

            join = await alice.log.wait_for(
                lambda e: e["event"] == "join" and e["info"]["client"] == bob_id
            )
            assert join["info"]["user"] == "bob"
            presence = await alice.ok("presence", channel=ROOM)
            assert presence["clients"] == {alice_id: "alice", bob_id: "bob"}
            stats = await alice.ok("presenceStats", channel=ROOM)
            assert (stats["numClients"], stats["numUsers"]) == (2, 2)
            # Bob's presence reply follows any join push sent to him before it: none.
            assert len((await bob.ok("presence", channel=ROOM))["clients"]) == 2
            assert not bob.log.matching(event("join"))
            await bob.ok("disconnect")

        leave = await alice.log.wait_for(
            lambda e: e["event"] == "leave" and e["info"]["client"] == bob_id
        )
        assert leave["info"]["user"] == "bob"
        presence = await alice.ok("presence", channel=ROOM)
        assert presence["clients"] == {alice_id: "alice"}
        stats = await alice.ok("presenceStats", channel=ROOM)
        assert (stats["numClients"], stats["numUsers"]) == (1, 1)
        _check_encoding(alice, encoding)


# 3. RPC.


async def test_rpc_round_trip_and_unknown_methods(encoding: str) -> None:
    node = Node(features_config())
    node.on_rpc(echo_rpc)
    bare = Node(features_config())  # no RPC handler at all
    async with (
        serve_node(node) as running,
        serve_node(bare) as bare_running,
        FeaturesJsClient(running.ws_url, encoding, token=connection_token("42")) as js,
        FeaturesJsClient(
            bare_running.ws_url, encoding, name="bare", token=connection_token("42")
        ) as js2,
    ):
        await js.connected()
        await js2.connected()

        echoed = await js.ok("rpc", method="echo", data={"x": [1, "two"]})
        assert echoed["data"] == {"echo": {"x": [1, "two"]}, "user": "42"}
        for client in (js, js2):
            unknown = await client.command("rpc", method="nope", data={})
            assert (unknown["ok"], unknown["code"]) == (False, 104)
        no_handler = await js2.command("rpc", method="echo", data={})
        assert (no_handler["ok"], no_handler["code"]) == (False, 104)
        # Error replies leave the connections alone.
        assert (await js.ok("rpc", method="echo", data=5))["data"] == {"echo": 5, "user": "42"}
        for client in (js, js2):
            assert (await client.ok("snapshot"))["state"] == "connected"
            _check_encoding(client, encoding)


# 4. Connection token refresh and expiry.


async def test_refreshed_connection_outlives_its_token_and_stale_one_gets_3005(
    encoding: str,
) -> None:
    node = Node(features_config())
    server = record_disconnects(node)
    first_exp = int(time.time()) + TOKEN_TTL
    later_exp = first_exp + 60
    async with (
        serve_node(node) as running,
        FeaturesJsClient(
            running.ws_url,
            encoding,
            name="refreshing",
            token=connection_token("42", exp=first_exp),
            getTokens=[connection_token("42", exp=later_exp)],
            # Its subscription token expires at the same time, and is refreshed too.
            subscribe=[
                {
                    "channel": SECRET_A,
                    "token": subscription_token("42", SECRET_A, exp=first_exp),
                    "getTokens": [subscription_token("42", SECRET_A, exp=later_exp)],
                }
            ],
        ) as fresh,
        # getToken fails (the app's token endpoint is down): the SDK sends no refresh
        # (it retries only 5-10 s later).
        FeaturesJsClient(
            running.ws_url,
            encoding,
            name="stale",
            token=connection_token("43", exp=first_exp),
            getTokenFails=True,
        ) as stale,
    ):
        fresh_id = await fresh.connected()
        stale_id = await stale.connected()
        await fresh.log.wait_for(event("subscribed", channel=SECRET_A))

        closed = await server.wait_for(
            event("closed", client=stale_id), timeout(TOKEN_TTL + EXPIRED_CLOSE_DELAY + 5)
        )
        assert closed["code"] == 3005
        await stale.log.wait_for(event("connecting", code=3005))
        assert stale.log.matching(event("error", type="refreshToken"))
        # A bounded window on purpose: the refreshed connection must outlive its first
        # token's expiry plus the grace by a margin.
        await anyio.sleep(max(0.0, first_exp + EXPIRED_CLOSE_DELAY + 0.5 - time.time()))

        assert not server.matching(event("closed", client=fresh_id))
        assert len(fresh.log.matching(event("get_token"))) == 1
        assert len(fresh.log.matching(event("sub_get_token", channel=SECRET_A))) == 1
        assert [e["code"] for e in fresh.log.matching(event("connecting"))] == [0]
        assert not fresh.log.matching(event("unsubscribed"))
        assert len(fresh.log.matching(event("subscribing", channel=SECRET_A))) == 1
        assert not fresh.log.matching(event("error"))
        snapshot = await fresh.ok("snapshot")
        assert snapshot["state"] == "connected"
        assert len(fresh.log.matching(event("connected"))) == 1
        assert snapshot["subs"] == {SECRET_A: "subscribed"}
        await node.publish(SECRET_A, {"still": "here"})
        publication = await fresh.log.wait_for(event("publication", channel=SECRET_A))
        assert publication["data"] == {"still": "here"}
        _check_encoding(fresh, encoding)


# 5. Subscription tokens.


async def test_subscription_token_for_another_channel_is_refused(encoding: str) -> None:
    node = Node(features_config())
    server = record_disconnects(node)
    async with (
        serve_node(node) as running,
        FeaturesJsClient(
            running.ws_url,
            encoding,
            token=connection_token("42"),
            subscribe=[{"channel": SECRET_B, "token": subscription_token("42", SECRET_A)}],
            **FAST_RECONNECT,
        ) as js,
    ):
        client_id = await js.connected()

        # Refused with 103; wirehub keeps the connection (Centrifugo would close it
        # with 3500, see core/subscriptions.py).
        assert (await js.log.wait_for(event("unsubscribed", channel=SECRET_B)))["code"] == 103
        assert not js.log.matching(event("subscribed"))
        # The connection is still usable: the right token still opens channel A.
        await js.ok(
            "subscribe", channel=SECRET_A, options={"token": subscription_token("42", SECRET_A)}
        )
        await js.log.wait_for(event("subscribed", channel=SECRET_A))
        snapshot = await js.ok("snapshot")
        assert snapshot["state"] == "connected"
        assert snapshot["subs"] == {SECRET_A: "subscribed", SECRET_B: "unsubscribed"}
        assert len(js.log.matching(event("ws_created"))) == 1
        assert not js.log.matching(event("disconnected"))
        assert not server.matching(event("closed", client=client_id))
        _check_encoding(js, encoding)


async def test_expired_subscription_token_is_replaced_through_get_token(encoding: str) -> None:
    node = Node(features_config())
    async with (
        serve_node(node) as running,
        FeaturesJsClient(running.ws_url, encoding, token=connection_token("42")) as js,
    ):
        await js.connected()

        options = {
            "token": subscription_token("42", SECRET_A, ttl=-60),
            "getTokens": [subscription_token("42", SECRET_A)],
            "minResubscribeDelay": 100,
            "maxResubscribeDelay": 200,
        }
        await js.ok("subscribe", channel=SECRET_A, options=options)

        await js.log.wait_for(event("subscribed", channel=SECRET_A))
        assert js.log.matching(event("sub_error", channel=SECRET_A, code=109))
        assert len(js.log.matching(event("sub_get_token", channel=SECRET_A))) == 1
        await node.publish(SECRET_A, {"for": "a"})
        publication = await js.log.wait_for(event("publication", channel=SECRET_A))
        assert publication["data"] == {"for": "a"}
        snapshot = await js.ok("snapshot")
        assert (snapshot["state"], snapshot["subs"]) == ("connected", {SECRET_A: "subscribed"})
        _check_encoding(js, encoding)


# 6. Server-side subscriptions.


async def test_server_side_subscription_publications(encoding: str) -> None:
    node = Node(features_config())
    token = connection_token("42", channels=[NEWS])
    async with (
        serve_node(node) as running,
        FeaturesJsClient(running.ws_url, encoding, token=token) as js,
    ):
        await js.connected()
        await js.log.wait_for(event("server_subscribed", channel=NEWS))

        for n in (1, 2):
            await node.publish(NEWS, {"n": n})

        await js.log.wait_for(event("server_publication", channel=NEWS), count=2)
        assert _values(js.log.matching(event("server_publication", channel=NEWS))) == [1, 2]
        assert (await js.ok("snapshot"))["subs"] == {}  # the app subscribed to nothing
        assert not js.log.matching(event("publication"))
        _check_encoding(js, encoding)
