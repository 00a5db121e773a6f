"""RPC, send, connection refresh and subscription tokens through a Node.

centrifugo-protocol.md §2.4 (rpc, send), §3.3 (connection expiry and refresh), §3.4
(subscription expiry and sub_refresh), §7.2 (subscription token claims), §8.3 (RPC
without a handler: 104; a ``$`` channel needs a token).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from tests.core.fakes import (
    WAIT,
    FakeClock,
    FakeTransport,
    FakeVerifier,
    connect,
    frame,
    make_config,
)
from tests.support.server import timeout
from wirehub import ClientError, Disconnect, Node, __version__
from wirehub.core.client import Client
from wirehub.core.events import (
    MessageEvent,
    RefreshEvent,
    RefreshReply,
    RPCEvent,
    RPCReply,
    SubscriptionCredentials,
)
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC

pytestmark = pytest.mark.anyio

NAMESPACES: list[dict[str, Any]] = [
    {"name": "chat", "allow_subscribe_for_client": True, "allow_publish_for_subscriber": True},
    # "$private:..." channels: only a subscription token opens them.
    {
        "name": "private",
        "allow_publish_for_subscriber": True,
        "presence": True,
        "allow_presence_for_subscriber": True,
    },
    {"name": "locked"},
]


def make_node(
    verifier: FakeVerifier | None = None, clock: FakeClock | None = None, **client: Any
) -> Node:
    config = make_config(
        client={"allow_anonymous_connect_without_token": True, **client},
        channel={"namespaces": NAMESPACES},
    )
    return Node(config, token_verifier=verifier or FakeVerifier(), clock=clock or FakeClock())


async def command(transport: FakeTransport, client: Client, **cmd: Any) -> dict[str, Any]:
    client.handle_frame(frame(cmd))
    return await transport.next_message()


# RPC.


async def test_rpc_round_trip() -> None:
    events: list[RPCEvent] = []
    async with make_node() as node:

        @node.on_rpc
        async def answer(event: RPCEvent) -> RPCReply | None:
            events.append(event)
            return RPCReply(data={"method": event.method, "got": json.loads(event.data)})

        client, transport = await connect(node)
        reply = await command(transport, client, rpc={"method": "getUser", "data": {"id": 1}}, id=2)
        assert reply == {"id": 2, "rpc": {"data": {"method": "getUser", "got": {"id": 1}}}}
        assert events == [RPCEvent(client.id, "42", "getUser", b'{"id":1}')]


async def test_rpc_data_passes_through() -> None:
    async with make_node() as node:

        @node.on_rpc
        async def echo(event: RPCEvent) -> RPCReply | None:
            return RPCReply(data=event.data)  # bytes: already JSON

        client, transport = await connect(node, "")
        reply = await command(transport, client, rpc={"data": [1, "two", {"3": None}]}, id=2)
        assert reply == {"id": 2, "rpc": {"data": [1, "two", {"3": None}]}}


async def test_rpc_handler_returning_nothing() -> None:
    async with make_node() as node:

        @node.on_rpc
        async def nothing(event: RPCEvent) -> RPCReply | None:
            return None

        client, transport = await connect(node)
        assert await command(transport, client, rpc={"method": "m"}, id=2) == {"id": 2, "rpc": {}}


async def test_rpc_without_handler_is_104() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        reply = await command(transport, client, rpc={"method": "m", "data": {}}, id=2)
        assert reply == {"id": 2, "error": {"code": 104, "message": "method not found"}}
        assert not transport.closed


async def test_rpc_handler_errors() -> None:
    async with make_node() as node:

        @node.on_rpc
        async def fail(event: RPCEvent) -> RPCReply | None:
            if event.method == "client":
                raise ClientError(404, "no such user")
            if event.method == "temporary":
                raise ClientError(503, "busy", temporary=True)
            if event.method == "bug":
                raise RuntimeError("boom")
            raise Disconnect(4501, "go away")

        client, transport = await connect(node)
        assert await command(transport, client, rpc={"method": "client"}, id=2) == {
            "id": 2,
            "error": {"code": 404, "message": "no such user"},
        }
        assert await command(transport, client, rpc={"method": "temporary"}, id=3) == {
            "id": 3,
            "error": {"code": 503, "message": "busy", "temporary": True},
        }
        assert await command(transport, client, rpc={"method": "bug"}, id=4) == {
            "id": 4,
            "error": {"code": 100, "message": "internal server error", "temporary": True},
        }
        client.handle_frame(frame({"rpc": {"method": "kick"}, "id": 5}))
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (4501, "go away")


# Send, and messages from the server.


async def test_send_reaches_on_message_without_reply() -> None:
    events: list[MessageEvent] = []
    got = asyncio.Event()
    async with make_node() as node:

        @node.on_message
        async def received(event: MessageEvent) -> None:
            events.append(event)
            got.set()

        client, transport = await connect(node)
        client.handle_frame(frame({"send": {"data": {"any": "thing"}}}))
        async with asyncio.timeout(WAIT):
            await got.wait()
        assert events == [MessageEvent(client.id, "42", b'{"any":"thing"}')]
        # Nothing was answered: the next message is the reply to the next command.
        reply = await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        assert reply == {"id": 2, "subscribe": {}}


async def test_send_handler_error_answers_nothing_and_keeps_the_connection() -> None:
    async with make_node() as node:

        @node.on_message
        async def fail(event: MessageEvent) -> None:
            raise ClientError(400, "bad message")

        client, transport = await connect(node)
        client.handle_frame(frame({"send": {"data": 1}}))
        reply = await command(transport, client, subscribe={"channel": "chat:1"}, id=2)
        assert reply == {"id": 2, "subscribe": {}}
        assert not transport.closed


async def test_node_send_to_one_client() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        _other, other_transport = await connect(node, "user:42")
        assert node.send({"hi": 1}, client=client.id) == 1
        assert await transport.next_message() == {"push": {"message": {"data": {"hi": 1}}}}
        await asyncio.sleep(0)  # one tick: anything queued is written
        assert other_transport.unread == []


async def test_node_send_to_every_connection_of_a_user() -> None:
    async with make_node() as node:
        _a, a_transport = await connect(node, "user:42")
        _b, b_transport = await connect(node, "user:42")
        _c, c_transport = await connect(node, "user:43")
        _p, p_transport = await connect(node, "user:42", codec=PROTOBUF_CODEC)
        assert node.send(b'{"n":\n1}', user="42") == 3
        for transport in (a_transport, b_transport):
            assert await transport.next_message() == {"push": {"message": {"data": {"n": 1}}}}
        reply = await p_transport.next_reply()  # type: ignore[attr-defined]
        assert reply.push.message.data == b'{"n":1}'
        await asyncio.sleep(0)
        assert c_transport.unread == []


async def test_node_send_to_nobody() -> None:
    async with make_node() as node:
        await connect(node, "")
        assert node.send("x", client="no-such-client") == 0
        assert node.send("x", user="nobody") == 0


async def test_node_send_takes_exactly_one_target() -> None:
    async with make_node() as node:
        with pytest.raises(TypeError):
            node.send("x")
        with pytest.raises(TypeError):
            node.send("x", client="a", user="b")


# Connection refresh (§3.3).


async def test_refresh_extends_the_connection() -> None:
    clock = FakeClock()
    now = int(clock.now)
    async with make_node(clock=clock, expired_close_delay=25) as node:
        loop = asyncio.get_running_loop()
        client, transport = await connect(node, f"user:42:exp:{now + 10}")
        result = transport.messages[0]["connect"]
        assert (result["expires"], result["ttl"]) == (True, 10)
        timer = client._expire_timer
        assert timer is not None
        assert timer.when() - loop.time() == pytest.approx(10 + 25, abs=1)
        reply = await command(
            transport, client, refresh={"token": f"user:42:exp:{now + 100}"}, id=2
        )
        assert reply == {
            "id": 2,
            "refresh": {"client": client.id, "version": __version__, "expires": True, "ttl": 100},
        }
        assert timer.cancelled()
        assert client._expire_timer is not None
        assert client._expire_timer.when() - loop.time() == pytest.approx(100 + 25, abs=1)
        # Past the first expiry and its grace: the timer firing then keeps the connection.
        clock.advance(10 + 25 + 1)
        client._on_expire()
        assert not transport.closed
        # Past the new expiry, without another refresh: 3005.
        clock.advance(100)
        client._on_expire()
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3005, "connection expired")


async def test_refreshed_connection_outlives_its_first_expiry() -> None:
    """Real timers, bounded to about a second: expiry now plus 0.2 s grace; a refresh
    right away; the ping one second later finds the connection open."""
    clock = FakeClock()
    now = int(clock.now)
    cfg = {"expired_close_delay": 0.2, "ping_interval": 1, "pong_timeout": 0.5}
    async with make_node(clock=clock, **cfg) as node:
        client, transport = await connect(node, f"user:42:exp:{now}")
        assert transport.messages[0]["connect"]["expires"] is True
        reply = await command(
            transport, client, refresh={"token": f"user:42:exp:{now + 100}"}, id=2
        )
        assert reply["refresh"]["ttl"] == 100
        assert await transport.next_message(timeout(3)) == {}  # the ping, after 1 s
        assert not transport.closed


async def test_no_refresh_closes_3005() -> None:
    clock = FakeClock()
    async with make_node(clock=clock, expired_close_delay=0.05) as node:
        _client, transport = await connect(node, f"user:42:exp:{int(clock.now)}")
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3005, "connection expired")


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("user:43:exp:1800000000", 3500),  # another user
        ("forged", 3500),  # invalid
        ("expired", 3005),
    ],
)
async def test_refresh_with_a_bad_token_closes(token: str, code: int) -> None:
    clock = FakeClock()
    async with make_node(clock=clock) as node:
        client, transport = await connect(node, f"user:42:exp:{int(clock.now) + 10}")
        client.handle_frame(frame({"refresh": {"token": token}, "id": 2}))
        assert (await transport.wait_closed()).code == code
        assert transport.unread == []


async def test_refresh_without_token_is_107() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        reply = await command(transport, client, refresh={}, id=2)
        assert reply == {"id": 2, "error": {"code": 107, "message": "bad request"}}


async def test_refresh_without_a_token_verifier_is_3500() -> None:
    config = make_config(client={"allow_anonymous_connect_without_token": True})
    async with Node(config, token_verifier=None) as node:
        client, transport = await connect(node, "")
        client.handle_frame(frame({"refresh": {"token": "t"}, "id": 2}))
        assert (await transport.wait_closed()).code == 3500


async def test_on_refresh_handler() -> None:
    clock = FakeClock()
    now = int(clock.now)
    events: list[RefreshEvent] = []
    async with make_node(clock=clock) as node:

        @node.on_refresh
        async def refresh(event: RefreshEvent) -> RefreshReply:
            events.append(event)
            if event.token == "later":
                return RefreshReply(expire_at=now + 50)
            if event.token == "forever":
                return RefreshReply()
            return RefreshReply(expired=True)

        client, transport = await connect(node, f"user:42:exp:{now + 10}")
        reply = await command(transport, client, refresh={"token": "later"}, id=2)
        assert reply["refresh"] == {
            "client": client.id,
            "version": __version__,
            "expires": True,
            "ttl": 50,
        }
        assert events == [RefreshEvent(client.id, "42", "later")]
        reply = await command(transport, client, refresh={"token": "forever"}, id=3)
        assert reply["refresh"] == {"client": client.id, "version": __version__}
        assert client._expire_timer is None
        client.handle_frame(frame({"refresh": {"token": "revoked"}, "id": 4}))
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3005, "connection expired")


# Subscription tokens (§7.2) and sub_refresh (§3.4).


def sub_token(
    channel: str = "$private:1",
    user: str = "42",
    *,
    client: str = "",
    expire_at: int | None = None,
) -> SubscriptionCredentials:
    return SubscriptionCredentials(
        user=user,
        channel=channel,
        client=client,
        expire_at=expire_at,
        info={"role": "vip"},
        data={"motd": "hi"},
    )


async def test_private_channel_without_token_is_103() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        reply = await command(transport, client, subscribe={"channel": "$private:1"}, id=2)
        assert reply == {"id": 2, "error": {"code": 103, "message": "permission denied"}}


async def test_valid_token_subscribes_with_data_and_channel_info() -> None:
    verifier = FakeVerifier(subscriptions={"t1": sub_token()})
    async with make_node(verifier) as node:
        client, transport = await connect(node)
        reply = await command(
            transport, client, subscribe={"channel": "$private:1", "token": "t1"}, id=2
        )
        assert reply == {"id": 2, "subscribe": {"data": {"motd": "hi"}}}
        client.handle_frame(frame({"publish": {"channel": "$private:1", "data": "yo"}, "id": 3}))
        push = await transport.next_message()
        assert push == {
            "push": {
                "channel": "$private:1",
                "pub": {
                    "data": "yo",
                    "info": {"user": "42", "client": client.id, "chan_info": {"role": "vip"}},
                },
            }
        }
        assert await transport.next_message() == {"id": 3, "publish": {}}
        reply = await command(transport, client, presence={"channel": "$private:1"}, id=4)
        assert reply["presence"]["presence"][client.id]["chan_info"] == {"role": "vip"}


async def test_token_grants_what_the_namespace_does_not() -> None:
    verifier = FakeVerifier(subscriptions={"t": sub_token("locked:1")})
    async with make_node(verifier) as node:
        client, transport = await connect(node)
        reply = await command(
            transport, client, subscribe={"channel": "locked:1", "token": "t"}, id=2
        )
        assert "subscribe" in reply


@pytest.mark.parametrize(
    "credentials",
    [
        sub_token("$private:2"),  # another channel
        sub_token(user="43"),  # another user
        sub_token(user=""),  # anonymous token, authenticated connection
        sub_token(client="another-connection"),
    ],
)
async def test_token_for_another_channel_user_or_client_is_refused_with_103(
    credentials: SubscriptionCredentials,
) -> None:
    """The issue: a token for channel A is refused on channel B with 103 (Centrifugo
    disconnects with 3500; wirehub keeps the connection)."""
    verifier = FakeVerifier(subscriptions={"t": credentials})
    async with make_node(verifier) as node:
        client, transport = await connect(node)
        reply = await command(
            transport, client, subscribe={"channel": "$private:1", "token": "t"}, id=2
        )
        assert reply == {"id": 2, "error": {"code": 103, "message": "permission denied"}}
        assert not transport.closed
        assert not node.hub.has_subscribers("$private:1")


async def test_token_bound_to_this_connection() -> None:
    verifier = FakeVerifier()
    async with make_node(verifier) as node:
        client, transport = await connect(node)
        verifier.subscriptions["t"] = sub_token(client=client.id)
        reply = await command(
            transport, client, subscribe={"channel": "$private:1", "token": "t"}, id=2
        )
        assert "subscribe" in reply


@pytest.mark.parametrize(
    ("token", "error"),
    [("forged", (103, "permission denied")), ("expired", (109, "token expired"))],
)
async def test_invalid_or_expired_subscription_token(token: str, error: tuple[int, str]) -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        reply = await command(
            transport, client, subscribe={"channel": "$private:1", "token": token}, id=2
        )
        assert reply == {"id": 2, "error": {"code": error[0], "message": error[1]}}
        assert not transport.closed
        assert client.channels == {}


async def test_sub_refresh_extends_the_subscription() -> None:
    clock = FakeClock()
    now = int(clock.now)
    verifier = FakeVerifier(
        subscriptions={
            "t1": sub_token(expire_at=now + 60),
            "t2": sub_token(expire_at=now + 600),
        }
    )
    async with make_node(verifier, clock, expired_close_delay=25) as node:
        loop = asyncio.get_running_loop()
        client, transport = await connect(node)
        reply = await command(
            transport, client, subscribe={"channel": "$private:1", "token": "t1"}, id=2
        )
        assert reply == {"id": 2, "subscribe": {"expires": True, "ttl": 60, "data": {"motd": "hi"}}}
        context = client.channels["$private:1"]
        first = context.expire_timer
        assert first is not None
        assert first.when() - loop.time() == pytest.approx(60 + 25, abs=1)
        reply = await command(
            transport, client, sub_refresh={"channel": "$private:1", "token": "t2"}, id=3
        )
        assert reply == {"id": 3, "sub_refresh": {"expires": True, "ttl": 600}}
        assert first.cancelled()
        assert context.expire_at == now + 600
        assert context.expire_timer is not None
        assert context.expire_timer.when() - loop.time() == pytest.approx(600 + 25, abs=1)
        # The old expiry and its grace pass: still subscribed.
        clock.advance(60 + 25 + 1)
        client._on_subscription_expired("$private:1", context)
        assert "$private:1" in client.channels
        assert transport.unread == []


async def test_subscription_expiry_without_sub_refresh_is_2501() -> None:
    clock = FakeClock()
    verifier = FakeVerifier(subscriptions={"t": sub_token(expire_at=int(clock.now))})
    async with make_node(verifier, clock, expired_close_delay=0.05) as node:
        client, transport = await connect(node)
        reply = await command(
            transport, client, subscribe={"channel": "$private:1", "token": "t"}, id=2
        )
        assert reply["subscribe"]["expires"] is True
        assert await transport.next_message() == {
            "push": {
                "channel": "$private:1",
                "unsubscribe": {"code": 2501, "reason": "subscription expired"},
            }
        }
        assert client.channels == {}
        assert not node.hub.has_subscribers("$private:1")
        assert not transport.closed


async def test_sub_refresh_for_a_channel_not_subscribed_is_103() -> None:
    verifier = FakeVerifier(subscriptions={"t": sub_token()})
    async with make_node(verifier) as node:
        client, transport = await connect(node)
        reply = await command(
            transport, client, sub_refresh={"channel": "$private:1", "token": "t"}, id=2
        )
        assert reply == {"id": 2, "error": {"code": 103, "message": "permission denied"}}


@pytest.mark.parametrize(
    ("token", "outcome"),
    [
        ("", {"code": 107, "message": "bad request"}),
        ("forged", {"code": 103, "message": "permission denied"}),
        ("expired", {"code": 109, "message": "token expired"}),
        ("other-channel", {"code": 103, "message": "permission denied"}),
        ("other-user", {"code": 103, "message": "permission denied"}),
    ],
)
async def test_sub_refresh_with_a_bad_token(token: str, outcome: dict[str, Any] | int) -> None:
    verifier = FakeVerifier(
        subscriptions={
            "t": sub_token(),
            "other-channel": sub_token("$private:2"),
            "other-user": sub_token(user="43"),
        }
    )
    async with make_node(verifier) as node:
        client, transport = await connect(node)
        await command(transport, client, subscribe={"channel": "$private:1", "token": "t"}, id=2)
        client.handle_frame(
            frame({"sub_refresh": {"channel": "$private:1", "token": token}, "id": 3})
        )
        if isinstance(outcome, int):
            assert (await transport.wait_closed()).code == outcome
        else:
            assert await transport.next_message() == {"id": 3, "error": outcome}
            assert "$private:1" in client.channels


async def test_token_override_changes_namespace_options_for_that_subscription() -> None:
    """A subscription token's ``override`` claim changes the namespace's options for
    that subscription only: here presence, on in the namespace, off for one token."""
    verifier = FakeVerifier(
        subscriptions={
            "plain": sub_token(),
            "hidden": dataclasses.replace(sub_token(user="43"), override={"presence": False}),
        }
    )
    async with make_node(verifier) as node:
        seen, seen_transport = await connect(node, "user:42")
        hidden, hidden_transport = await connect(node, "user:43")
        for client, transport, token in (
            (seen, seen_transport, "plain"),
            (hidden, hidden_transport, "hidden"),
        ):
            reply = await command(
                transport, client, subscribe={"channel": "$private:1", "token": token}, id=2
            )
            assert "error" not in reply
        presence = await node.presence_manager.presence("$private:1")
        assert list(presence) == [seen.id]
