"""centrifuge-python 0.7 (unchanged) against a real wirehub server.

Most tests start ``wirehub serve`` in a subprocess (``server_factory``); the one that
needs ``Node.publish`` serves a node in-process instead. The SDK runs in the test's
event loop, so anything that blocks (stopping the server) runs in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ClientState,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    ErrorContext,
    PublicationContext,
    ReplyError,
    SubscribedContext,
    SubscribingContext,
    Subscription,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    SubscriptionState,
    UnsubscribedContext,
)

from tests.interop.helpers import (
    CHAT,
    LOCKED,
    SECRET,
    UNKNOWN,
    EventLog,
    config_toml,
    event,
    make_token,
    node_config,
    one_connection_only,
)
from tests.support.inprocess import serve_node
from tests.support.pysdk import disconnect
from tests.support.server import ServerProcess, timeout
from wirehub import Node

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

StartServer = Callable[[str], ServerProcess]


class _ClientEvents(ClientEventHandler):
    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self._log.add({"event": "connecting", "code": ctx.code, "reason": ctx.reason})

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self._log.add({"event": "connected", "client": ctx.client, "version": ctx.version})

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self._log.add({"event": "disconnected", "code": ctx.code, "reason": ctx.reason})

    async def on_error(self, ctx: ErrorContext) -> None:
        reply_code = ctx.error.code if isinstance(ctx.error, ReplyError) else None
        self._log.add(
            {"event": "error", "code": ctx.code, "reply_code": reply_code, "error": repr(ctx.error)}
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
        self._add("subscribed")

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self._add("unsubscribed", code=ctx.code, reason=ctx.reason)

    async def on_publication(self, ctx: PublicationContext) -> None:
        info = ctx.pub.info
        self._add(
            "publication",
            data=ctx.pub.data,
            user=None if info is None else info.user,
            client=None if info is None else info.client,
        )

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        self._add("sub_error", code=ctx.code, error=repr(ctx.error))


@dataclass
class PyClient:
    client: Client
    log: EventLog
    token_requests: list[str] = field(default_factory=list)

    async def connected(self) -> str:
        """Connect and wait for the connected event; return the client id."""
        await self.client.connect()
        return str((await self.log.wait_for(event("connected")))["client"])

    async def subscribe(self, channel: str) -> Subscription:
        sub = self.client.new_subscription(channel, events=_SubscriptionEvents(self.log, channel))
        await sub.subscribe()
        return sub


@asynccontextmanager
async def py_client(
    url: str,
    *,
    token: str = "",
    new_token: str | None = None,
    name: str = "centrifuge-python",
    **options: Any,
) -> AsyncIterator[PyClient]:
    """A centrifuge-python client recording its events; disconnected at the end.

    ``new_token``: the SDK gets a ``get_token`` callback returning it (calls are counted).
    ``options``: more ``Client`` options (``ssl_context``).
    """
    log = EventLog(name)
    requests: list[str] = []

    async def get_token() -> str:
        assert new_token is not None
        requests.append(new_token)
        log.add({"event": "get_token"})
        return new_token

    client = Client(
        url,
        events=_ClientEvents(log),
        token=token,
        get_token=get_token if new_token is not None else None,
        proxy=None,
        **options,
    )
    try:
        yield PyClient(client, log, requests)
    finally:
        with anyio.CancelScope(shield=True):
            await disconnect(client)


class _PingRecorder(logging.Handler):
    # centrifuge-python exposes no ping event; its debug log (0.7) names both halves. If
    # a newer SDK words them differently, the ping test fails waiting, with its events.
    _EVENTS: ClassVar[dict[str, str]] = {
        "received ping from server": "server_ping",
        "respond with pong": "pong_sent",
    }

    def __init__(self, log: EventLog) -> None:
        super().__init__(logging.DEBUG)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        name = self._EVENTS.get(record.getMessage())
        if name is not None:
            self._log.add({"event": name})


@contextmanager
def observe_pings(log: EventLog) -> Iterator[None]:
    """Record the SDK's server pings and pongs into ``log``."""
    logger = logging.getLogger("centrifuge")
    handler = _PingRecorder(log)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# 1. Token connect.


async def test_connects_with_a_hs256_token(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    async with py_client(server.ws_url, token=make_token("42")) as py:
        client_id = await py.connected()

        assert client_id
        assert py.client.state is ClientState.CONNECTED
        # The connection is user 42: its own publications say so.
        await py.subscribe(CHAT)
        await py.log.wait_for(event("subscribed", channel=CHAT))
        await py.client.publish(CHAT, {"hello": "world"})
        publication = await py.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"hello": "world"}
        assert (publication["user"], publication["client"]) == ("42", client_id)


# 2. Anonymous connections.


async def test_anonymous_refused_without_reconnecting(server_factory: StartServer) -> None:
    server = server_factory(config_toml(anonymous=False))
    async with py_client(server.ws_url) as py:
        await py.client.connect()

        disconnected = await py.log.wait_for(event("disconnected"))
        assert disconnected["code"] == 3501
        await one_connection_only(server, 3501)
        assert py.client.state is ClientState.DISCONNECTED
        assert not py.log.matching(event("connected"))


async def test_anonymous_allowed(server_factory: StartServer) -> None:
    server = server_factory(config_toml(anonymous=True))
    async with py_client(server.ws_url) as py:
        assert await py.connected()
        assert py.client.state is ClientState.CONNECTED


# 3. Publications reach subscribers.


async def test_publication_from_another_client_arrives(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    async with (
        py_client(server.ws_url, token=make_token("42"), name="subscriber") as subscriber,
        py_client(server.ws_url, token=make_token("43"), name="publisher") as publisher,
    ):
        await subscriber.connected()
        await subscriber.subscribe(CHAT)
        await subscriber.log.wait_for(event("subscribed", channel=CHAT))
        publisher_id = await publisher.connected()

        await publisher.client.publish(CHAT, {"text": "hi"})

        publication = await subscriber.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"text": "hi"}
        assert (publication["user"], publication["client"]) == ("43", publisher_id)


async def test_publication_from_node_publish_arrives() -> None:
    node = Node(node_config(config_toml()))
    async with serve_node(node) as running, py_client(running.ws_url, token=make_token("42")) as py:
        await py.connected()
        await py.subscribe(CHAT)
        await py.log.wait_for(event("subscribed", channel=CHAT))

        await node.publish(CHAT, {"text": "from the server"})

        publication = await py.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"text": "from the server"}
        assert publication["user"] is None  # server publications carry no publisher info


# 4. Permission errors.


async def test_permission_errors(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    async with py_client(server.ws_url, token=make_token("42")) as py:
        await py.connected()

        locked = await py.subscribe(LOCKED)
        unknown = await py.subscribe(UNKNOWN)
        assert (await py.log.wait_for(event("unsubscribed", channel=LOCKED)))["code"] == 103
        assert (await py.log.wait_for(event("unsubscribed", channel=UNKNOWN)))["code"] == 102
        assert locked.state is SubscriptionState.UNSUBSCRIBED
        assert unknown.state is SubscriptionState.UNSUBSCRIBED

        with pytest.raises(ReplyError) as denied:
            await py.client.publish(LOCKED, {"text": "no"})
        assert denied.value.code == 103

        # Error replies leave the connection alone.
        assert py.client.state is ClientState.CONNECTED
        assert len(py.log.matching(event("connected"))) == 1


# 5. Invalid token.


async def test_invalid_token_stops_the_sdk(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    forged = make_token("42", secret=SECRET[::-1])
    async with py_client(server.ws_url, token=forged) as py:
        await py.client.connect()

        disconnected = await py.log.wait_for(event("disconnected"))
        assert disconnected["code"] == 3500
        await one_connection_only(server, 3500)
        assert py.client.state is ClientState.DISCONNECTED
        assert not py.log.matching(event("connected"))


async def test_user_connection_limit_stops_the_sdk_with_3504(server_factory: StartServer) -> None:
    """client.user_connection_limit: the user's second connection is closed with 3504,
    terminal, so the SDK does not reconnect; the first connection is untouched."""
    server = server_factory(config_toml(user_connection_limit=1))
    async with (
        py_client(server.ws_url, token=make_token("42"), name="first") as first,
        py_client(server.ws_url, token=make_token("42"), name="second") as second,
    ):
        await first.client.connect()
        await first.log.wait_for(event("connected"))
        await second.client.connect()
        disconnected = await second.log.wait_for(event("disconnected"))
        assert (disconnected["code"], disconnected["reason"]) == (3504, "connection limit")
        await one_connection_only(server, 3504)
        assert second.client.state is ClientState.DISCONNECTED
        assert first.client.state is ClientState.CONNECTED
        assert not first.log.matching(event("disconnected"))


# 6. Expired token.


async def test_expired_token_is_refreshed_with_get_token(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    expired = make_token("42", ttl=-60)
    async with py_client(server.ws_url, token=expired, new_token=make_token("42")) as py:
        await py.client.connect()

        await py.log.wait_for(event("connected"))
        assert py.client.state is ClientState.CONNECTED
        assert py.log.matching(lambda e: e["event"] == "error" and e["reply_code"] == 109)
        assert len(py.token_requests) == 1
        assert not py.log.matching(event("disconnected"))


# 7. Idle connection survives pings.


async def test_idle_connection_stays_up_across_pings(server_factory: StartServer) -> None:
    server = server_factory(config_toml(ping_interval=1, pong_timeout=0.5))
    async with py_client(server.ws_url, token=make_token("42")) as py:
        with observe_pings(py.log):
            client_id = await py.connected()
            await py.subscribe(CHAT)
            await py.log.wait_for(event("subscribed", channel=CHAT))

            # Idle for three ping intervals: the server pings every second and wants
            # each pong within 0.5 s, else it closes with 3012 and the SDK reconnects.
            await py.log.wait_for(event("server_ping"), timeout(3 + 5), count=3)
            await py.log.wait_for(event("pong_sent"), count=3)

        assert py.client.state is ClientState.CONNECTED
        assert py.client.client_id == client_id
        assert len(py.log.matching(event("connected"))) == 1
        assert not py.log.matching(event("disconnected"))
        assert [e["code"] for e in py.log.matching(event("connecting"))] == [0]
        assert "closed: 3012" not in server.log

        await py.client.publish(CHAT, {"still": "here"})
        publication = await py.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"still": "here"}


# 8. Graceful shutdown.


async def test_graceful_shutdown_makes_the_sdk_reconnect(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    async with py_client(server.ws_url, token=make_token("42")) as py:
        await py.connected()

        # stop() blocks until the server exits, which it does once the SDK (running in
        # this loop) has answered the close frame: run it in a thread.
        status = await anyio.to_thread.run_sync(server.stop)

        assert status == 0
        connecting = await py.log.wait_for(event("connecting", code=3001))
        assert connecting["reason"] == "shutdown"
        assert py.client.state is ClientState.CONNECTING
        assert not py.log.matching(event("disconnected"))
