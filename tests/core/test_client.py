"""Tests of the connection state machine (wirehub.core.client) driven through a Node.

centrifugo-protocol.md §3 (lifecycle, ping/pong, expiry), §4 (codes), §8.3
(permissions). Every test runs a real Node with the MemoryBroker and talks to it through
FakeTransport: frames in with ``client.handle_frame``, decoded messages out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import jwt
import pytest

from tests.core.fakes import (
    FakeClock,
    FakeTransport,
    FakeVerifier,
    connect,
    frame,
    make_config,
)
from tests.support.server import timeout
from wirehub import (
    ClientError,
    ConnectEvent,
    ConnectingEvent,
    ConnectingReply,
    Credentials,
    Disconnect,
    DisconnectEvent,
    Node,
    PublishEvent,
    PublishReply,
    SubscribeEvent,
    SubscribeReply,
    __version__,
)
from wirehub.config import Config
from wirehub.core.client import ClientState
from wirehub.protocol.json_codec import JSON_CODEC

pytestmark = pytest.mark.anyio

NAMESPACES: list[dict[str, Any]] = [
    # Subscribers talk; user-limited rooms allowed.
    {
        "name": "chat",
        "allow_subscribe_for_client": True,
        "allow_publish_for_subscriber": True,
        "allow_user_limited_channels": True,
    },
    # Authenticated users publish without subscribing; anonymous may only read.
    {
        "name": "feed",
        "allow_subscribe_for_client": True,
        "allow_subscribe_for_anonymous": True,
        "allow_publish_for_client": True,
    },
    # Everyone may do everything.
    {
        "name": "public",
        "allow_subscribe_for_client": True,
        "allow_subscribe_for_anonymous": True,
        "allow_publish_for_client": True,
        "allow_publish_for_anonymous": True,
    },
    # Nothing allowed.
    {"name": "locked"},
    {"name": "slug", "allow_subscribe_for_client": True, "channel_regex": "[a-z0-9-]+"},
]


def config(**client: Any) -> Config:
    return make_config(
        client={"allow_anonymous_connect_without_token": True, **client},
        channel={
            "namespaces": NAMESPACES,
            "without_namespace": {"allow_subscribe_for_client": True},
        },
    )


def make_node(**client: Any) -> Node:
    return Node(config(**client), token_verifier=FakeVerifier())


async def command(transport: FakeTransport, client: Any, **cmd: Any) -> dict[str, Any]:
    """Send one command and return the next message."""
    client.handle_frame(frame(cmd))
    return await transport.next_message()


# Connect.


async def test_connect_anonymous_allowed() -> None:
    """No token and anonymous access on: the exact ConnectResult, user ''."""
    async with make_node() as node:
        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(b'{"connect":{"name":"js"},"id":1}')
        reply = await transport.next_message()
        assert reply == {
            "id": 1,
            "connect": {"client": client.id, "version": __version__, "ping": 25, "pong": True},
        }
        assert client.user == ""
        assert client.state is ClientState.CONNECTED
        assert node.num_clients == 1


async def test_connect_anonymous_refused() -> None:
    """No token and anonymous access off: disconnect 3501, nothing written."""
    async with Node(make_config(), token_verifier=FakeVerifier()) as node:
        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(b'{"connect":{},"id":1}')
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3501, "bad request")
        assert transport.frames == []
        assert node.num_clients == 0


async def test_no_authentication_configured_is_logged_clearly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No key, no handler, no anonymous access: a warning at start and for each refusal
    says so and how to fix it; a node that can authenticate logs neither."""
    with caplog.at_level(logging.INFO, logger="wirehub.node"):
        async with Node(make_config()) as node:
            assert "every connection will be refused: no authentication is configured" in (
                caplog.text
            )
            transport = FakeTransport()
            client = node.attach(transport, JSON_CODEC)
            client.handle_frame(b'{"connect":{},"id":1}')
            assert (await transport.wait_closed()).code == 3501
        refused = [r for r in caplog.records if "refused with 3501" in r.getMessage()]
        assert len(refused) == 1
        assert refused[0].levelno == logging.WARNING
        assert "client.token.hmac_secret_key" in refused[0].getMessage()
        caplog.clear()
        async with Node(make_config(), token_verifier=FakeVerifier()):
            pass
        assert "no authentication is configured" not in caplog.text


async def test_connect_with_token() -> None:
    """The verifier's credentials become the client's user and conn_info."""
    async with Node(config(), token_verifier=FakeVerifier(info={"name": "Ann"})) as node:
        client, _transport = await connect(node, "user:42")
        assert client.user == "42"
        assert node.hub.user_clients("42") == [client]
        assert bytes(client.info.conn_info) == b'{"name":"Ann"}'


async def test_connect_token_expired_error_then_any_command_is_3501() -> None:
    """ClientError 109 from the verifier is an error reply; the connection is then dead."""
    async with make_node() as node:
        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(b'{"connect":{"token":"expired"},"id":1}')
        assert await transport.next_message() == {
            "id": 1,
            "error": {"code": 109, "message": "token expired"},
        }
        assert not transport.closed
        client.handle_frame(b'{"connect":{"token":"user:42"},"id":2}')
        closed = await transport.wait_closed()
        assert closed.code == 3501
        assert transport.unread == []


async def test_connect_failure_then_subscribe_is_3501() -> None:
    async with make_node() as node:
        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(b'{"connect":{"token":"expired"},"id":1}')
        await transport.next_message()
        client.handle_frame(b'{"subscribe":{"channel":"chat:1"},"id":2}')
        assert (await transport.wait_closed()).code == 3501


async def test_connect_internal_error_then_connect_again_is_3501() -> None:
    """A connect that failed with error 100 is a failed connect too (no second try)."""
    async with make_node() as node:

        @node.on_connecting
        async def broken(event: ConnectingEvent) -> ConnectingReply | None:
            raise RuntimeError("database down")

        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(b'{"connect":{},"id":1}')
        error = (await transport.next_message())["error"]
        assert error == {"code": 100, "message": "internal server error", "temporary": True}
        client.handle_frame(b'{"connect":{},"id":2}')
        assert (await transport.wait_closed()).code == 3501
        assert node.num_clients == 0


async def test_connect_invalid_token_disconnects_3500() -> None:
    async with make_node() as node:
        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(b'{"connect":{"token":"forged"},"id":1}')
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3500, "invalid token")
        assert transport.frames == []


async def test_token_without_a_configured_key_disconnects_3500() -> None:
    async with Node(config(), token_verifier=None) as node:
        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(b'{"connect":{"token":"user:42"},"id":1}')
        assert (await transport.wait_closed()).code == 3500


async def test_default_verifier_comes_from_config() -> None:
    """Without token_verifier=, the node verifies JWTs with client.token's key."""
    secret = "s" * 64
    cfg = make_config(client={"token": {"hmac_secret_key": secret}})
    token = jwt.encode({"sub": "42", "info": {"n": 1}}, secret, algorithm="HS256")
    async with Node(cfg) as node:
        client, _ = await connect(node, token)
        assert client.user == "42"
        assert bytes(client.info.conn_info) == b'{"n":1}'


@pytest.mark.parametrize(
    "first",
    [
        {"subscribe": {"channel": "chat:1"}, "id": 1},
        {"publish": {"channel": "public:1", "data": {}}, "id": 1},
        {"unsubscribe": {"channel": "chat:1"}, "id": 1},
        {"rpc": {"method": "m"}, "id": 1},
        {},  # a pong
    ],
)
async def test_command_before_connect_is_3501(first: dict[str, Any]) -> None:
    async with make_node() as node:
        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(frame(first))
        assert (await transport.wait_closed()).code == 3501
        assert transport.frames == []


async def test_second_connect_is_3501() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        client.handle_frame(b'{"connect":{"token":"user:42"},"id":2}')
        assert (await transport.wait_closed()).code == 3501
        assert transport.unread == []


async def test_bad_frame_is_3501() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        client.handle_frame(b'{"subscribe":')
        assert (await transport.wait_closed()).code == 3501


async def test_frames_after_close_are_ignored() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        client.handle_frame(b"not json")
        await transport.wait_closed()
        client.handle_frame(b'{"subscribe":{"channel":"chat:1"},"id":2}')
        assert client.state is ClientState.CLOSED
        assert transport.close_calls == 1
        assert transport.writes_after_close == 0


async def test_stale_connection_is_closed_3502() -> None:
    async with make_node(stale_close_delay=0.05) as node:
        transport = FakeTransport()
        node.attach(transport, JSON_CODEC)
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3502, "stale")


async def test_stale_timer_cancels_a_slow_connect() -> None:
    """A connect still in on_connecting when the stale delay ends is abandoned."""
    cancelled = asyncio.Event()
    async with make_node(stale_close_delay=0.05) as node:

        @node.on_connecting
        async def hang(event: ConnectingEvent) -> ConnectingReply | None:
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.set()
            return None

        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(b'{"connect":{},"id":1}')
        assert (await transport.wait_closed()).code == 3502
        async with asyncio.timeout(timeout(2)):
            await cancelled.wait()
        assert node.num_clients == 0


async def test_connect_and_subscribe_in_one_frame() -> None:
    """centrifuge-js sends connect and its subscribes in one frame (§2.8)."""
    async with make_node() as node:
        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(
            b'{"connect":{"token":"user:42","name":"js"},"id":1}\n'
            b'{"subscribe":{"channel":"news:feed","flag":1},"id":2}'
        )
        # "news" is not configured: the subscribe fails, in order, after the connect.
        assert "connect" in await transport.next_message()
        assert await transport.next_message() == {
            "id": 2,
            "error": {"code": 102, "message": "unknown channel"},
        }


async def test_several_commands_in_one_frame_answered_in_order() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        client.handle_frame(
            frame(
                {"subscribe": {"channel": "feed:1"}, "id": 2},
                {"subscribe": {"channel": "locked:1"}, "id": 3},
                {"publish": {"channel": "feed:2", "data": {"n": 1}}, "id": 4},
                {"unsubscribe": {"channel": "feed:1"}, "id": 5},
                {"history": {"channel": "feed:1"}, "id": 6},
            )
        )
        replies = [await transport.next_message() for _ in range(5)]
        assert replies == [
            {"id": 2, "subscribe": {}},
            {"id": 3, "error": {"code": 103, "message": "permission denied"}},
            {"id": 4, "publish": {}},
            {"id": 5, "unsubscribe": {}},
            {"id": 6, "error": {"code": 108, "message": "not available"}},
        ]


async def test_commands_of_successive_frames_run_one_at_a_time() -> None:
    """A publish after a slow subscribe waits for it, so it publishes as a subscriber."""
    gate = asyncio.Event()
    async with make_node() as node:

        @node.on_subscribe
        async def slow(event: SubscribeEvent) -> SubscribeReply | None:
            await gate.wait()
            return None

        client, transport = await connect(node)
        client.handle_frame(b'{"subscribe":{"channel":"chat:1"},"id":2}')
        client.handle_frame(b'{"publish":{"channel":"chat:1","data":{"n":1}},"id":3}')
        await asyncio.sleep(0)  # one tick: the subscribe is now waiting on the gate
        assert transport.unread == []
        gate.set()
        assert await transport.next_message() == {"id": 2, "subscribe": {}}
        push = await transport.next_message()
        assert push["push"]["pub"]["data"] == {"n": 1}
        assert await transport.next_message() == {"id": 3, "publish": {}}


async def test_inbound_backpressure_pauses_and_resumes_reading() -> None:
    """Past 256 waiting commands the transport stops reading until the inbox drains."""
    gate = asyncio.Event()
    async with make_node() as node:

        @node.on_subscribe
        async def slow(event: SubscribeEvent) -> SubscribeReply | None:
            await gate.wait()
            return None

        client, transport = await connect(node)
        client.handle_frame(b'{"subscribe":{"channel":"chat:1"},"id":2}')
        await asyncio.sleep(0)
        for _ in range(300):
            client.handle_frame(b"{}")  # stray pongs: harmless, answered by nothing
        assert transport.reading_paused
        assert transport.pause_reading_calls == 1
        gate.set()
        await transport.wait_for(lambda: not transport.reading_paused)
        assert transport.resume_reading_calls == 1
        assert await transport.next_message() == {"id": 2, "subscribe": {}}
        assert not transport.closed


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ({"rpc": {"method": "getUser"}, "id": 7}, {"code": 104, "message": "method not found"}),
        ({"presence": {"channel": "chat:1"}, "id": 7}, {"code": 108, "message": "not available"}),
        (
            {"presence_stats": {"channel": "chat:1"}, "id": 7},
            {"code": 108, "message": "not available"},
        ),
        ({"history": {"channel": "chat:1"}, "id": 7}, {"code": 108, "message": "not available"}),
        (
            {"sub_refresh": {"channel": "chat:1", "token": "t"}, "id": 7},
            {"code": 103, "message": "permission denied"},
        ),
    ],
)
async def test_commands_for_features_that_are_off_answer_errors(
    cmd: dict[str, Any], expected: dict[str, Any]
) -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        assert await command(transport, client, **cmd) == {"id": 7, "error": expected}
        assert not transport.closed


@pytest.mark.parametrize(
    "cmd",
    [
        {"id": 5},  # an id and nothing to do
        {"ping": {}},  # v1 ping: Centrifuge does not dispatch it
        {"subscribe": {"channel": "chat:1"}},  # a command needing a reply, without id
        {"subscribe": {"channel": ""}, "id": 2},
        {"unsubscribe": {"channel": ""}, "id": 2},
    ],
)
async def test_malformed_commands_are_3501(cmd: dict[str, Any]) -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        client.handle_frame(frame(cmd))
        assert (await transport.wait_closed()).code == 3501


async def test_send_is_accepted_without_reply() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        client.handle_frame(frame({"send": {"data": {"any": "thing"}}}))
        assert await command(transport, client, subscribe={"channel": "chat:1"}, id=2) == {
            "id": 2,
            "subscribe": {},
        }


# Ping, pong, expiry.


async def test_ping_pong_keeps_the_connection_and_no_pong_closes_3012() -> None:
    """Real timers: ping after ping_interval; a pong keeps it open; a missing one is 3012."""
    async with make_node(ping_interval=1, pong_timeout=0.05, stale_close_delay=0.05) as node:
        client, transport = await connect(node)
        assert transport.messages[0]["connect"]["ping"] == 1
        assert await transport.next_message(timeout(3)) == {}
        client.handle_frame(b"{}")
        # The second ping proves both that the pong was taken and that the connection
        # outlived pong_timeout (and stale_close_delay) after it.
        assert await transport.next_message(timeout(3)) == {}
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3012, "no pong")


async def test_stray_pong_is_tolerated() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        client.handle_frame(b"{}")
        assert await command(transport, client, subscribe={"channel": "chat:1"}, id=2) == {
            "id": 2,
            "subscribe": {},
        }


async def test_expiring_connection_reports_ttl() -> None:
    clock = FakeClock()
    expire_at = int(clock.now) + 100
    async with Node(config(), token_verifier=FakeVerifier(), clock=clock) as node:
        _client, transport = await connect(node, f"user:42:exp:{expire_at}")
        result = transport.messages[0]["connect"]
        assert (result["expires"], result["ttl"]) == (True, 100)


async def test_expired_connection_is_closed_3005() -> None:
    """With a wall-clock expiry less than a second away, 3005 comes after exp + delay."""
    expire_at = int(time.time()) + 1
    async with make_node(expired_close_delay=0.05) as node:
        _client, transport = await connect(node, f"user:42:exp:{expire_at}")
        closed = await transport.wait_closed(timeout(3))
        assert (closed.code, closed.reason) == (3005, "connection expired")
        assert time.time() >= expire_at


async def test_expiry_follows_the_node_clock() -> None:
    """Only node.clock decides: a check before exp keeps the connection, one after closes."""
    clock = FakeClock()
    expire_at = int(clock.now) + 60
    cfg = config(expired_close_delay=0.05)
    async with Node(cfg, token_verifier=FakeVerifier(), clock=clock) as node:
        client, transport = await connect(node, f"user:42:exp:{expire_at}")
        client._on_expire()  # the timer firing early, as a loop/wall-clock skew can make it
        assert not transport.closed
        clock.advance(60)
        client._on_expire()
        assert (await transport.wait_closed()).code == 3005


# Subscribe.


@pytest.mark.parametrize(
    ("token", "channel", "error"),
    [
        ("user:42", "chat:1", None),
        ("user:42", "room1", None),  # without namespace
        ("", "feed:1", None),  # anonymous allowed there
        ("", "chat:1", (103, "permission denied")),  # anonymous not allowed
        ("user:42", "locked:1", (103, "permission denied")),
        ("user:42", "$chat:secret", (103, "permission denied")),  # needs a sub token
        ("user:42", "nope:1", (102, "unknown channel")),
        ("user:42", "$nope:1", (102, "unknown channel")),
        ("user:42", "chat:" + "x" * 251, (107, "bad request")),  # 256 bytes
        ("user:42", "chat:é", (107, "bad request")),  # not ASCII
        ("user:42", "slug:my-room-1", None),
        ("user:42", "slug:My_Room", (107, "bad request")),  # regex mismatch
        ("user:42", "chat:room#42,56", None),  # user-limited, listed
        ("user:56", "chat:room#42,56", None),
        ("user:7", "chat:room#42,56", (103, "permission denied")),
        ("", "chat:room#42,56", (103, "permission denied")),
        ("user:42", "chat:#42", None),  # personal channel
        ("user:", "chat:#", (103, "permission denied")),  # empty user list
    ],
)
async def test_subscribe_permissions(
    token: str, channel: str, error: tuple[int, str] | None
) -> None:
    async with make_node() as node:
        client, transport = await connect(node, token)
        reply = await command(transport, client, subscribe={"channel": channel, "flag": 1}, id=2)
        if error is None:
            assert reply == {"id": 2, "subscribe": {}}
            assert channel in client.channels
            assert node.hub.has_subscribers(channel)
        else:
            assert reply == {"id": 2, "error": {"code": error[0], "message": error[1]}}
            assert client.channels == {}
        assert not transport.closed


async def test_subscribe_twice_is_105() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        reply = await command(transport, client, subscribe={"channel": "chat:1"}, id=3)
        assert reply == {"id": 3, "error": {"code": 105, "message": "already subscribed"}}


async def test_channel_limit_is_106() -> None:
    async with make_node(channel_limit=2) as node:
        client, transport = await connect(node)
        await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        await command(transport, client, subscribe={"channel": "chat:2"}, id=3)
        reply = await command(transport, client, subscribe={"channel": "chat:3"}, id=4)
        assert reply == {"id": 4, "error": {"code": 106, "message": "limit exceeded"}}
        # Room again after an unsubscribe.
        await command(transport, client, unsubscribe={"channel": "chat:1"}, id=5)
        reply = await command(transport, client, subscribe={"channel": "chat:3"}, id=6)
        assert reply == {"id": 6, "subscribe": {}}


async def test_unsubscribe_stops_publications() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        await command(transport, client, subscribe={"channel": "chat:2"}, id=3)
        reply = await command(transport, client, unsubscribe={"channel": "chat:1"}, id=4)
        assert reply == {"id": 4, "unsubscribe": {}}
        assert not node.hub.has_subscribers("chat:1")
        await node.publish("chat:1", {"n": 1})
        await node.publish("chat:2", {"n": 2})
        # The next message is the marker on chat:2: nothing came for chat:1.
        assert await transport.next_message() == {
            "push": {"channel": "chat:2", "pub": {"data": {"n": 2}}}
        }


async def test_unsubscribe_from_a_channel_never_subscribed() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        reply = await command(transport, client, unsubscribe={"channel": "chat:1"}, id=2)
        assert reply == {"id": 2, "unsubscribe": {}}


# Publish.


@pytest.mark.parametrize(
    ("token", "channel", "subscribe", "error"),
    [
        ("user:42", "feed:1", False, None),  # allow_publish_for_client
        ("", "feed:1", False, (103, "permission denied")),  # ... but not anonymous
        ("", "feed:1", True, (103, "permission denied")),
        ("user:42", "chat:1", True, None),  # allow_publish_for_subscriber
        ("user:42", "chat:1", False, (103, "permission denied")),
        ("", "public:1", False, None),  # allow_publish_for_anonymous
        ("user:42", "locked:1", False, (103, "permission denied")),
        ("user:42", "room1", True, (103, "permission denied")),  # without namespace
        ("user:42", "nope:1", False, (102, "unknown channel")),
        ("user:42", "feed:" + "x" * 300, False, (107, "bad request")),
    ],
)
async def test_publish_permissions(
    token: str, channel: str, subscribe: bool, error: tuple[int, str] | None
) -> None:
    async with make_node() as node:
        client, transport = await connect(node, token)
        if subscribe:
            await command(transport, client, subscribe={"channel": channel}, id=2)
        client.handle_frame(frame({"publish": {"channel": channel, "data": {"t": 1}}, "id": 3}))
        replies = [await transport.next_message()]
        if error is None and subscribe:
            replies.append(await transport.next_message())  # its own publication
        reply = next(m for m in replies if m.get("id") == 3)
        if error is None:
            assert reply == {"id": 3, "publish": {}}
        else:
            assert reply == {"id": 3, "error": {"code": error[0], "message": error[1]}}


async def test_publish_without_data_is_107() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        reply = await command(transport, client, publish={"channel": "feed:1"}, id=2)
        assert reply == {"id": 2, "error": {"code": 107, "message": "bad request"}}


async def test_publication_reaches_subscribers_with_info() -> None:
    async with Node(config(), token_verifier=FakeVerifier(info={"name": "Ann"})) as node:
        alice, alice_t = await connect(node, "user:42")
        bob, bob_t = await connect(node, "user:43")
        for client, transport in ((alice, alice_t), (bob, bob_t)):
            await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        alice.handle_frame(b'{"publish":{"channel":"chat:1","data":{"t":"hi"}},"id":3}')
        push = {
            "push": {
                "channel": "chat:1",
                "pub": {
                    "data": {"t": "hi"},
                    "info": {"user": "42", "client": alice.id, "conn_info": {"name": "Ann"}},
                },
            }
        }
        assert await bob_t.next_message() == push
        # The publisher is a subscriber too: it gets its publication, then the reply.
        assert [await alice_t.next_message(), await alice_t.next_message()] == [
            push,
            {"id": 3, "publish": {}},
        ]


async def test_anonymous_publication_info_has_empty_user() -> None:
    async with make_node() as node:
        client, transport = await connect(node, "")
        await command(transport, client, subscribe={"channel": "public:1"}, id=2)
        client.handle_frame(b'{"publish":{"channel":"public:1","data":"hi"},"id":3}')
        push = await transport.next_message()
        assert push == {
            "push": {
                "channel": "public:1",
                "pub": {"data": "hi", "info": {"user": "", "client": client.id}},
            }
        }


async def test_server_publication_has_no_info() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        await node.publish("chat:1", b'{"title":\n"x"}', tags={"k": "v"})
        assert await transport.next_message() == {
            "push": {"channel": "chat:1", "pub": {"data": {"title": "x"}, "tags": {"k": "v"}}}
        }
        assert b'{"title":"x"}' in transport.frames[-1]  # newline stripped from the payload


# Handlers.


async def test_on_connecting_returns_credentials_and_data() -> None:
    events: list[ConnectingEvent] = []
    async with Node(make_config(), token_verifier=None) as node:

        @node.on_connecting
        async def auth(event: ConnectingEvent) -> ConnectingReply | None:
            events.append(event)
            return ConnectingReply(Credentials(user="7", info={"role": "admin"}), data={"w": 1})

        transport = FakeTransport(headers={"cookie": "sid=1"})
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(
            b'{"connect":{"token":"t","data":{"a":1},"name":"js","version":"5.8",'
            b'"headers":{"x-app":"demo"}},"id":1}'
        )
        reply = await transport.next_message()
        assert reply["connect"]["data"] == {"w": 1}
        assert client.user == "7"
        assert bytes(client.info.conn_info) == b'{"role":"admin"}'
        (event,) = events
        assert (event.client_id, event.token, event.data) == (client.id, "t", b'{"a":1}')
        assert (event.name, event.version, event.headers) == ("js", "5.8", {"x-app": "demo"})
        assert event.transport.headers == {"cookie": "sid=1"}


async def test_on_connecting_returning_none_falls_back_to_the_token() -> None:
    async with make_node() as node:

        @node.on_connecting
        async def observe(event: ConnectingEvent) -> ConnectingReply | None:
            return None

        client, _ = await connect(node, "user:42")
        assert client.user == "42"


async def test_on_connecting_client_error() -> None:
    async with make_node() as node:

        @node.on_connecting
        async def deny(event: ConnectingEvent) -> ConnectingReply | None:
            raise ClientError(401, "go away")

        transport = FakeTransport()
        node.attach(transport, JSON_CODEC).handle_frame(b'{"connect":{},"id":1}')
        assert await transport.next_message() == {
            "id": 1,
            "error": {"code": 401, "message": "go away"},
        }


async def test_on_connect_is_told_and_may_disconnect() -> None:
    seen: list[ConnectEvent] = []
    async with make_node() as node:

        @node.on_connect
        async def connected(event: ConnectEvent) -> None:
            seen.append(event)
            if event.user == "13":
                raise Disconnect(4501, "unlucky")

        client, _transport = await connect(node, "user:42")
        assert [(e.client_id, e.user) for e in seen] == [(client.id, "42")]
        _, unlucky = await connect(node, "user:13")
        closed = await unlucky.wait_closed()
        assert (closed.code, closed.reason) == (4501, "unlucky")


async def test_on_subscribe_client_error_is_an_error_reply() -> None:
    async with make_node() as node:

        @node.on_subscribe
        async def check(event: SubscribeEvent) -> SubscribeReply | None:
            if event.channel == "chat:vip":
                raise ClientError(403, "members only", temporary=True)
            return None

        client, transport = await connect(node)
        reply = await command(transport, client, subscribe={"channel": "chat:vip"}, id=2)
        assert reply == {
            "id": 2,
            "error": {"code": 403, "message": "members only", "temporary": True},
        }
        assert not node.hub.has_subscribers("chat:vip")
        reply = await command(transport, client, subscribe={"channel": "chat:1"}, id=3)
        assert reply == {"id": 3, "subscribe": {}}


async def test_on_subscribe_is_not_asked_when_rules_deny() -> None:
    asked: list[str] = []
    async with make_node() as node:

        @node.on_subscribe
        async def check(event: SubscribeEvent) -> SubscribeReply | None:
            asked.append(event.channel)
            return None

        client, transport = await connect(node)
        await command(transport, client, subscribe={"channel": "locked:1"}, id=2)
        assert asked == []


async def test_on_subscribe_channel_info_and_data() -> None:
    async with make_node() as node:

        @node.on_subscribe
        async def enrich(event: SubscribeEvent) -> SubscribeReply | None:
            assert event.data == b'{"want":"in"}'
            return SubscribeReply(channel_info={"role": "mod"}, data={"motd": "hi"})

        client, transport = await connect(node)
        reply = await command(
            transport, client, subscribe={"channel": "chat:1", "data": {"want": "in"}}, id=2
        )
        assert reply == {"id": 2, "subscribe": {"data": {"motd": "hi"}}}
        client.handle_frame(b'{"publish":{"channel":"chat:1","data":1},"id":3}')
        push = await transport.next_message()
        assert push["push"]["pub"]["info"] == {
            "user": "42",
            "client": client.id,
            "chan_info": {"role": "mod"},
        }


async def test_on_publish_replaces_data() -> None:
    events: list[PublishEvent] = []
    async with make_node() as node:

        @node.on_publish
        async def clean(event: PublishEvent) -> PublishReply | None:
            events.append(event)
            text = json.loads(event.data)["text"]
            return PublishReply(data={"text": text.replace("darn", "****")})

        sub, sub_t = await connect(node, "user:43")
        await command(sub_t, sub, subscribe={"channel": "feed:1"}, id=2)
        pub, pub_t = await connect(node, "user:42")
        reply = await command(
            pub_t, pub, publish={"channel": "feed:1", "data": {"text": "darn it"}}, id=2
        )
        assert reply == {"id": 2, "publish": {}}
        push = await sub_t.next_message()
        assert push["push"]["pub"]["data"] == {"text": "**** it"}
        assert [(e.user, e.channel, e.data) for e in events] == [
            ("42", "feed:1", b'{"text":"darn it"}')
        ]


async def test_on_publish_client_error_publishes_nothing() -> None:
    async with make_node() as node:

        @node.on_publish
        async def deny(event: PublishEvent) -> PublishReply | None:
            raise ClientError(429, "slow down")

        client, transport = await connect(node)
        await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        reply = await command(transport, client, publish={"channel": "chat:1", "data": 1}, id=3)
        assert reply == {"id": 3, "error": {"code": 429, "message": "slow down"}}
        await node.publish("chat:1", "marker")
        assert (await transport.next_message())["push"]["pub"]["data"] == "marker"


async def test_handler_exception_is_error_100_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """RuntimeError in a handler: error 100 temporary, logged with the client id."""
    async with make_node() as node:

        @node.on_subscribe
        async def broken(event: SubscribeEvent) -> SubscribeReply | None:
            if event.channel == "chat:bug":
                raise RuntimeError("boom")
            return None

        client, transport = await connect(node)
        with caplog.at_level(logging.ERROR, logger="wirehub"):
            reply = await command(transport, client, subscribe={"channel": "chat:bug"}, id=2)
        assert reply == {
            "id": 2,
            "error": {"code": 100, "message": "internal server error", "temporary": True},
        }
        (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert client.id in record.getMessage()
        assert record.exc_info is not None
        assert record.exc_info[0] is RuntimeError
        # The connection survives: the next command works.
        reply = await command(transport, client, subscribe={"channel": "chat:1"}, id=3)
        assert reply == {"id": 3, "subscribe": {}}
        assert not transport.closed


async def test_disconnect_raised_from_a_handler_closes() -> None:
    async with make_node() as node:

        @node.on_subscribe
        async def kick(event: SubscribeEvent) -> SubscribeReply | None:
            if event.channel == "chat:2":
                raise Disconnect(4500, "banned")
            return None

        client, transport = await connect(node)
        await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        client.handle_frame(b'{"subscribe":{"channel":"chat:2"},"id":3}')
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (4500, "banned")
        assert client.state is ClientState.CLOSED
        assert node.num_clients == 0
        assert not node.hub.has_subscribers("chat:1")


async def test_on_disconnect_gets_the_code() -> None:
    events: list[DisconnectEvent] = []
    got = asyncio.Event()
    async with make_node() as node:

        @node.on_disconnect
        async def gone(event: DisconnectEvent) -> None:
            events.append(event)
            got.set()

        # Never connected: no event.
        node.attach(FakeTransport(), JSON_CODEC).handle_frame(b"garbage")
        client, _transport = await connect(node, "user:42")
        client.handle_frame(b"garbage")
        async with asyncio.timeout(timeout(2)):
            await got.wait()
        assert [(e.client_id, e.user, e.code, e.reason) for e in events] == [
            (client.id, "42", 3501, "bad request")
        ]
        got.clear()
        other, _ = await connect(node, "user:43")
        other.transport_closed()  # the peer went away
        async with asyncio.timeout(timeout(2)):
            await got.wait()
        assert (events[-1].user, events[-1].code) == ("43", 3000)


async def test_node_close_disconnects_with_3001() -> None:
    events: list[DisconnectEvent] = []
    async with make_node() as node:

        @node.on_disconnect
        async def gone(event: DisconnectEvent) -> None:
            events.append(event)

        client, transport = await connect(node)
        await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        pending = FakeTransport()
        node.attach(pending, JSON_CODEC)  # still connecting
    assert transport.closed_with is not None
    assert (transport.closed_with.code, transport.closed_with.reason) == (3001, "shutdown")
    assert pending.closed_with is not None
    assert pending.closed_with.code == 3001
    assert [e.code for e in events] == [3001]  # on_disconnect ran before close() returned
    assert node.num_clients == 0


async def test_attach_needs_a_running_node() -> None:
    node = make_node()
    with pytest.raises(RuntimeError, match="not running"):
        node.attach(FakeTransport(), JSON_CODEC)
