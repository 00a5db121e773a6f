"""centrifuge-python 0.7 (unchanged) and the protocol's features beyond publish/subscribe:
recovery after a network cut, presence and join/leave, RPC, connection token refresh
and expiry, subscription tokens, server-side subscriptions. Over JSON and Protobuf.

Every test serves a node in-process (``serve_node``): the tests need ``Node.publish``,
RPC handlers and the node's disconnect events. The SDK runs in the test's event loop.
Protobuf payloads are bytes: the tests send the bytes of JSON text (the server's
payloads are JSON) and parse what they receive.

The configuration, the tokens and the disconnect recorder are shared with
``test_features_js.py``.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import jwt
import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ClientState,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    ErrorContext,
    JoinContext,
    LeaveContext,
    PublicationContext,
    ReplyError,
    ServerPublicationContext,
    ServerSubscribedContext,
    SubscribedContext,
    SubscribingContext,
    Subscription,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    SubscriptionState,
    UnsubscribedContext,
)
from centrifuge.types import Publication

from tests.interop.helpers import SECRET, EventLog, event
from tests.support.inprocess import serve_node
from tests.support.proxy import TcpProxy
from tests.support.pysdk import disconnect
from tests.support.server import timeout
from wirehub import Config, Node, load_config
from wirehub.core.events import DisconnectEvent, RPCEvent, RPCReply
from wirehub.errors import ClientError

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

# Shared with test_features_js.py.

RECOVERABLE = "recover:feed"
"""History of 10 and forced recovery."""
SHORT = "short:feed"
"""History of 2 and forced recovery: too short for a gap of 5."""
ROOM = "room:lobby"
"""Presence and join/leave; subscribers may ask for presence."""
SECRET_A = "secret:a"
SECRET_B = "secret:b"
"""Channels of a namespace that allows nothing: only a subscription token gets in."""
NEWS = "news:x"
"""Only server-side subscriptions (connection token claim ``channels``)."""

EXPIRED_CLOSE_DELAY = 1.0
TOKEN_TTL = 3
"""Lifetime of the first token in the expiry tests: the SDKs refresh after the ttl the
server announces (whole seconds left, so 2), the server closes at exp + 1 s."""

FEATURES_TOML = f"""
[server]
log_level = "debug"

[client]
expired_close_delay = {EXPIRED_CLOSE_DELAY}

[client.token]
hmac_secret_key = "{SECRET}"

[[channel.namespaces]]
name = "recover"
allow_subscribe_for_client = true
history_size = 10
history_ttl = 300
force_recovery = true

[[channel.namespaces]]
name = "short"
allow_subscribe_for_client = true
history_size = 2
history_ttl = 300
force_recovery = true

[[channel.namespaces]]
name = "room"
allow_subscribe_for_client = true
presence = true
join_leave = true
allow_presence_for_subscriber = true

[[channel.namespaces]]
name = "secret"

[[channel.namespaces]]
name = "news"
"""

ENCODINGS = ["json", "protobuf"]


def features_config() -> Config:
    return load_config(None, tomllib.loads(FEATURES_TOML), environ=False)


def _exp(ttl: float, exp: int | None) -> int:
    return exp if exp is not None else int(time.time() + ttl)


def connection_token(
    user: str, *, ttl: float = 3600, exp: int | None = None, channels: list[str] | None = None
) -> str:
    """An HS256 connection token; ``exp`` (Unix seconds) wins over ``ttl``."""
    claims: dict[str, Any] = {"sub": user, "exp": _exp(ttl, exp)}
    if channels is not None:
        claims["channels"] = channels
    return jwt.encode(claims, SECRET, algorithm="HS256")


def subscription_token(
    user: str, channel: str, *, ttl: float = 3600, exp: int | None = None
) -> str:
    """An HS256 subscription token for ``channel``; a negative ``ttl`` gives an expired one."""
    claims = {"sub": user, "channel": channel, "exp": _exp(ttl, exp)}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def record_disconnects(node: Node) -> EventLog:
    """The node's closed connections, as ``{"event": "closed", "client", "code"}``."""
    log = EventLog("server")

    @node.on_disconnect
    async def closed(event: DisconnectEvent) -> None:
        log.add({"event": "closed", "client": event.client_id, "code": event.code})

    return log


async def echo_rpc(event: RPCEvent) -> RPCReply:
    """The RPC handler of the tests: ``echo`` answers; other methods are unknown."""
    if event.method != "echo":
        raise ClientError(104, "method not found")
    return RPCReply(data={"echo": json.loads(event.data), "user": event.user})


# The SDK, recording its events.


def _decode(value: Any) -> Any:
    """A received payload as a JSON value (Protobuf gives the bytes of JSON text)."""
    if isinstance(value, bytes | bytearray):
        return json.loads(value) if value else None
    return value


def _publication(pub: Publication) -> dict[str, Any]:
    info = pub.info
    return {
        "data": _decode(pub.data),
        "offset": pub.offset,
        "user": None if info is None else info.user,
        "tags": pub.tags,
        "delta": pub.delta,
    }


def _subscribed(ctx: SubscribedContext | ServerSubscribedContext) -> dict[str, Any]:
    position = ctx.stream_position
    return {
        "channel": ctx.channel,
        "recoverable": ctx.recoverable,
        "positioned": ctx.positioned,
        "was_recovering": ctx.was_recovering,
        "recovered": ctx.recovered,
        "offset": None if position is None else position.offset,
    }


class _ClientEvents(ClientEventHandler):
    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self._log.add({"event": "connecting", "code": ctx.code, "reason": ctx.reason})

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self._log.add({"event": "connected", "client": ctx.client})

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self._log.add({"event": "disconnected", "code": ctx.code, "reason": ctx.reason})

    async def on_error(self, ctx: ErrorContext) -> None:
        reply_code = ctx.error.code if isinstance(ctx.error, ReplyError) else None
        self._log.add({"event": "error", "code": ctx.code, "reply_code": reply_code})

    async def on_subscribed(self, ctx: ServerSubscribedContext) -> None:
        self._log.add({"event": "server_subscribed", **_subscribed(ctx)})

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        self._log.add(
            {"event": "server_publication", "channel": ctx.channel, **_publication(ctx.pub)}
        )


class _SubscriptionEvents(SubscriptionEventHandler):
    def __init__(self, log: EventLog, channel: str) -> None:
        self._log = log
        self._channel = channel

    def _add(self, name: str, **fields: Any) -> None:
        self._log.add({"event": name, "channel": self._channel, **fields})

    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        self._add("subscribing", code=ctx.code, reason=ctx.reason)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self._log.add({"event": "subscribed", **_subscribed(ctx)})

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self._add("unsubscribed", code=ctx.code, reason=ctx.reason)

    async def on_publication(self, ctx: PublicationContext) -> None:
        self._add("publication", **_publication(ctx.pub))

    async def on_join(self, ctx: JoinContext) -> None:
        self._add("join", user=ctx.info.user, client=ctx.info.client)

    async def on_leave(self, ctx: LeaveContext) -> None:
        self._add("leave", user=ctx.info.user, client=ctx.info.client)

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        reply_code = ctx.error.code if isinstance(ctx.error, ReplyError) else None
        self._add("sub_error", code=ctx.code, reply_code=reply_code)


@dataclass
class PyClient:
    client: Client
    log: EventLog
    protobuf: bool

    def payload(self, value: Any) -> Any:
        """``value`` as this encoding's SDK takes it: JSON text as bytes for Protobuf."""
        return json.dumps(value).encode() if self.protobuf else value

    async def connected(self) -> str:
        """Connect and wait for the connected event; return the client id."""
        await self.client.connect()
        return str((await self.log.wait_for(event("connected")))["client"])

    async def subscribe(
        self, channel: str, *, get_tokens: list[str] | None = None, **options: Any
    ) -> Subscription:
        """Subscribe (``options`` as ``new_subscription`` takes them); ``get_tokens``:
        the tokens a ``get_token`` callback returns, in order, then the last again."""
        get_token = None
        if get_tokens is not None:
            get_token = _get_token(get_tokens, self.log, "sub_get_token", channel=channel)
        sub = self.client.new_subscription(
            channel, events=_SubscriptionEvents(self.log, channel), get_token=get_token, **options
        )
        await sub.subscribe()
        return sub

    async def rpc(self, method: str, value: Any) -> Any:
        return _decode((await self.client.rpc(method, self.payload(value))).data)

    def publications(self, channel: str) -> list[dict[str, Any]]:
        return self.log.matching(event("publication", channel=channel))


def _get_token(
    tokens: list[str], log: EventLog, name: str, **fields: Any
) -> Callable[..., Awaitable[str]]:
    left = list(tokens)

    async def get_token(*_: Any) -> str:
        log.add({"event": name, **fields})
        return left.pop(0) if len(left) > 1 else left[0]

    return get_token


@asynccontextmanager
async def py_client(
    url: str,
    encoding: str,
    *,
    token: str = "",
    get_tokens: list[str] | None = None,
    name: str = "centrifuge-python",
) -> AsyncIterator[PyClient]:
    """A centrifuge-python client recording its events; disconnected at the end.

    ``get_tokens``: the connection tokens its ``get_token`` returns (none: no callback).
    Reconnects are quick (at most 0.5 s apart) so that the recovery tests run fast.
    """
    log = EventLog(f"{name} ({encoding})")
    client = Client(
        url,
        events=_ClientEvents(log),
        token=token,
        get_token=None if get_tokens is None else _get_token(get_tokens, log, "get_token"),
        use_protobuf=encoding == "protobuf",
        max_reconnect_delay=0.5,
        proxy=None,
    )
    try:
        yield PyClient(client, log, encoding == "protobuf")
    finally:
        with anyio.CancelScope(shield=True):
            await disconnect(client)


@pytest.fixture(params=ENCODINGS)
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _values(events: list[dict[str, Any]]) -> list[Any]:
    return [item["data"]["n"] for item in events]


def _index(log: EventLog, item: dict[str, Any]) -> int:
    return next(i for i, other in enumerate(log.events) if other is item)


# 1. Recovery after a network cut.


async def test_missed_publications_are_recovered_after_a_cut(encoding: str) -> None:
    node = Node(features_config())
    async with (
        serve_node(node) as running,
        TcpProxy(running.port) as proxy,
        py_client(proxy.ws_url(running.ws_url), encoding, token=connection_token("42")) as py,
    ):
        await py.connected()
        await py.subscribe(RECOVERABLE)
        first = await py.log.wait_for(event("subscribed", channel=RECOVERABLE))
        assert (first["recoverable"], first["was_recovering"]) == (True, False)
        for n in (1, 2):
            await node.publish(RECOVERABLE, {"n": n})
        await py.log.wait_for(event("publication", channel=RECOVERABLE), count=2)

        # The socket is reset under both ends (no close frame) while 3, 4, 5 go out.
        with proxy.down():
            for n in (3, 4, 5):
                await node.publish(RECOVERABLE, {"n": n})

        again = await py.log.wait_for(event("subscribed", channel=RECOVERABLE), count=2)
        assert (again["was_recovering"], again["recovered"]) == (True, True)
        await py.log.wait_for(event("publication", channel=RECOVERABLE), count=5)
        for n in (6, 7):
            await node.publish(RECOVERABLE, {"n": n})
        await py.log.wait_for(event("publication", channel=RECOVERABLE), count=7)

        publications = py.publications(RECOVERABLE)
        assert _values(publications) == [1, 2, 3, 4, 5, 6, 7]  # in order, once each
        assert [item["offset"] for item in publications] == [1, 2, 3, 4, 5, 6, 7]
        # The missed ones came with the resubscribe, before any live one.
        assert (
            _index(py.log, publications[1])
            < _index(py.log, again)
            < _index(py.log, publications[2])
        )
        assert len(py.log.matching(event("connected"))) == 2
        assert proxy.cuts == 1
        # The SDK saw the transport fail, not a server disconnect.
        assert py.log.matching(event("connecting", code=1, reason="transport closed"))


async def test_a_gap_longer_than_the_history_is_not_recovered(encoding: str) -> None:
    node = Node(features_config())
    async with (
        serve_node(node) as running,
        TcpProxy(running.port) as proxy,
        py_client(proxy.ws_url(running.ws_url), encoding, token=connection_token("42")) as py,
    ):
        await py.connected()
        await py.subscribe(SHORT)
        await py.log.wait_for(event("subscribed", channel=SHORT))
        await node.publish(SHORT, {"n": 1})
        await py.log.wait_for(event("publication", channel=SHORT))

        with proxy.down():
            for n in (2, 3, 4, 5, 6):  # the history keeps only 5 and 6
                await node.publish(SHORT, {"n": n})

        again = await py.log.wait_for(event("subscribed", channel=SHORT), count=2)
        assert (again["was_recovering"], again["recovered"]) == (True, False)
        assert again["offset"] == 6  # the stream's top: the client starts afresh from there
        await node.publish(SHORT, {"n": 7})
        await py.log.wait_for(event("publication", channel=SHORT), count=2)

        assert _values(py.publications(SHORT)) == [1, 7]


# 2. Presence, join and leave.


async def test_presence_and_join_leave(encoding: str) -> None:
    node = Node(features_config())
    async with (
        serve_node(node) as running,
        py_client(running.ws_url, encoding, token=connection_token("alice"), name="alice") as alice,
    ):
        alice_id = await alice.connected()
        await alice.subscribe(ROOM, join_leave=True)
        await alice.log.wait_for(event("subscribed", channel=ROOM))

        async with py_client(
            running.ws_url, encoding, token=connection_token("bob"), name="bob"
        ) as bob:
            bob_id = await bob.connected()
            await bob.subscribe(ROOM)  # join_leave not asked for
            await bob.log.wait_for(event("subscribed", channel=ROOM))

            join = await alice.log.wait_for(event("join", channel=ROOM, client=bob_id))
            assert join["user"] == "bob"
            presence = await alice.client.presence(ROOM)
            assert {c: info.user for c, info in presence.clients.items()} == {
                alice_id: "alice",
                bob_id: "bob",
            }
            stats = await alice.client.presence_stats(ROOM)
            assert (stats.num_clients, stats.num_users) == (2, 2)
            # Bob's presence reply follows any join push sent to him before it: none.
            assert len((await bob.client.presence(ROOM)).clients) == 2
            assert not bob.log.matching(event("join"))

        leave = await alice.log.wait_for(event("leave", channel=ROOM, client=bob_id))
        assert leave["user"] == "bob"
        presence = await alice.client.presence(ROOM)
        assert {c: info.user for c, info in presence.clients.items()} == {alice_id: "alice"}
        stats = await alice.client.presence_stats(ROOM)
        assert (stats.num_clients, stats.num_users) == (1, 1)


# 3. RPC.


async def test_rpc_round_trip_and_unknown_methods(encoding: str) -> None:
    node = Node(features_config())
    node.on_rpc(echo_rpc)
    bare = Node(features_config())  # no RPC handler at all
    async with (
        serve_node(node) as running,
        serve_node(bare) as bare_running,
        py_client(running.ws_url, encoding, token=connection_token("42")) as py,
        py_client(bare_running.ws_url, encoding, token=connection_token("42"), name="bare") as py2,
    ):
        await py.connected()
        await py2.connected()

        assert await py.rpc("echo", {"x": [1, "two"]}) == {"echo": {"x": [1, "two"]}, "user": "42"}
        for client in (py, py2):
            with pytest.raises(ReplyError) as unknown:
                await client.rpc("nope", {})
            assert unknown.value.code == 104
            assert client.client.state is ClientState.CONNECTED
        with pytest.raises(ReplyError) as no_handler:
            await py2.rpc("echo", {})
        assert no_handler.value.code == 104
        assert await py.rpc("echo", 5) == {"echo": 5, "user": "42"}


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
        py_client(
            running.ws_url,
            encoding,
            token=connection_token("42", exp=first_exp),
            get_tokens=[connection_token("42", exp=later_exp)],
            name="refreshing",
        ) as fresh,
        # No get_token: the SDK never sends a refresh.
        py_client(
            running.ws_url, encoding, token=connection_token("43", exp=first_exp), name="stale"
        ) as stale,
    ):
        fresh_id = await fresh.connected()
        stale_id = await stale.connected()
        # Its subscription token expires at the same time, and is refreshed too.
        await fresh.subscribe(
            SECRET_A,
            token=subscription_token("42", SECRET_A, exp=first_exp),
            get_tokens=[subscription_token("42", SECRET_A, exp=later_exp)],
        )
        await fresh.log.wait_for(event("subscribed", channel=SECRET_A))

        closed = await server.wait_for(
            event("closed", client=stale_id), timeout(TOKEN_TTL + EXPIRED_CLOSE_DELAY + 5)
        )
        assert closed["code"] == 3005
        await stale.log.wait_for(event("connecting", code=3005))
        # A bounded window on purpose: the refreshed connection must outlive its first
        # token's expiry plus the grace by a margin.
        await anyio.sleep(max(0.0, first_exp + EXPIRED_CLOSE_DELAY + 0.5 - time.time()))

        assert not server.matching(event("closed", client=fresh_id))
        assert fresh.client.state is ClientState.CONNECTED
        assert len(fresh.log.matching(event("get_token"))) == 1
        assert len(fresh.log.matching(event("sub_get_token", channel=SECRET_A))) == 1
        assert [e["code"] for e in fresh.log.matching(event("connecting"))] == [0]
        assert not fresh.log.matching(event("unsubscribed"))
        assert len(fresh.log.matching(event("subscribing", channel=SECRET_A))) == 1
        await node.publish(SECRET_A, {"still": "here"})
        publication = await fresh.log.wait_for(event("publication", channel=SECRET_A))
        assert publication["data"] == {"still": "here"}


# 5. Subscription tokens.


async def test_subscription_token_for_another_channel_is_refused(encoding: str) -> None:
    node = Node(features_config())
    server = record_disconnects(node)
    async with (
        serve_node(node) as running,
        py_client(running.ws_url, encoding, token=connection_token("42")) as py,
    ):
        client_id = await py.connected()

        wrong = await py.subscribe(SECRET_B, token=subscription_token("42", SECRET_A))

        # Refused with 103; wirehub keeps the connection (Centrifugo would close it
        # with 3500, see core/subscriptions.py).
        assert (await py.log.wait_for(event("unsubscribed", channel=SECRET_B)))["code"] == 103
        assert wrong.state is SubscriptionState.UNSUBSCRIBED
        assert not py.log.matching(event("subscribed"))
        # The connection is still usable: the right token still opens channel A.
        await py.subscribe(SECRET_A, token=subscription_token("42", SECRET_A))
        await py.log.wait_for(event("subscribed", channel=SECRET_A))
        assert py.client.state is ClientState.CONNECTED
        assert not py.log.matching(event("disconnected"))
        assert not server.matching(event("closed", client=client_id))


async def test_expired_subscription_token_is_replaced_through_get_token(encoding: str) -> None:
    node = Node(features_config())
    async with (
        serve_node(node) as running,
        py_client(running.ws_url, encoding, token=connection_token("42")) as py,
    ):
        await py.connected()

        sub = await py.subscribe(
            SECRET_A,
            token=subscription_token("42", SECRET_A, ttl=-60),
            get_tokens=[subscription_token("42", SECRET_A)],
        )

        await py.log.wait_for(event("subscribed", channel=SECRET_A))
        assert sub.state is SubscriptionState.SUBSCRIBED
        assert py.log.matching(event("sub_error", channel=SECRET_A, reply_code=109))
        assert len(py.log.matching(event("sub_get_token", channel=SECRET_A))) == 1
        await node.publish(SECRET_A, {"for": "a"})
        publication = await py.log.wait_for(event("publication", channel=SECRET_A))
        assert publication["data"] == {"for": "a"}
        assert py.client.state is ClientState.CONNECTED


# 6. Server-side subscriptions.


async def test_server_side_subscription_publications(encoding: str) -> None:
    node = Node(features_config())
    token = connection_token("42", channels=[NEWS])
    async with (
        serve_node(node) as running,
        py_client(running.ws_url, encoding, token=token) as py,
    ):
        await py.connected()
        await py.log.wait_for(event("server_subscribed", channel=NEWS))

        for n in (1, 2):
            await node.publish(NEWS, {"n": n})

        await py.log.wait_for(event("server_publication", channel=NEWS), count=2)
        assert _values(py.log.matching(event("server_publication", channel=NEWS))) == [1, 2]
        assert py.client.subscriptions() == {}  # the app subscribed to nothing
        assert not py.log.matching(event("publication"))
