"""The Node: wirehub's facade, and the lifecycle of everything behind it.

The node owns the hub, the broker and the background tasks; it is the only holder of
the broker. Clients call it for everything that crosses connections (authentication,
subscriptions, publications); the broker calls it back through
:class:`~wirehub.brokers.base.BrokerEventHandler`.

Two nodes in one process are independent: there is no module-level state.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, NamedTuple, Self

from msgspec import Raw

from wirehub._version import __version__
from wirehub.brokers.base import Broker, PublishOptions
from wirehub.config import Config, NamespaceOptions
from wirehub.core.channels import ChannelRules
from wirehub.core.client import Client, ClientState
from wirehub.core.events import (
    ConnectEvent,
    ConnectHandler,
    ConnectingEvent,
    ConnectingHandler,
    Credentials,
    DisconnectEvent,
    DisconnectHandler,
    PublishEvent,
    PublishHandler,
    SubscribeEvent,
    SubscribeHandler,
    TokenVerifier,
)
from wirehub.core.flusher import TickFlusher
from wirehub.core.hub import Hub
from wirehub.core.payload import EMPTY, to_raw
from wirehub.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_INVALID_TOKEN,
    DISCONNECT_SHUTDOWN,
    ERROR_INTERNAL,
    Disconnect,
)
from wirehub.protocol.codec import Codec
from wirehub.protocol.types import (
    ConnectRequest,
    Publication,
    PublishRequest,
    StreamPosition,
    SubscribeRequest,
)
from wirehub.transports.base import Transport

__all__ = ["Node"]

logger = logging.getLogger("wirehub.node")


# How long close() waits for handler tasks before cancelling them.
_TASKS_GRACE = 5.0

_NO_VERIFIER: Any = object()


class Subscription(NamedTuple):
    """What authorising a subscribe produced."""

    channel_info: Raw = EMPTY
    data: Raw = EMPTY


class Node:
    """A wirehub server node.

    Use it as an async context manager; connections are accepted only while it runs::

        node = Node(config)

        @node.on_connecting
        async def authenticate(event: ConnectingEvent) -> ConnectingReply | None: ...

        async with node:
            await node.publish("news:feed", {"title": "hello"})

    Args:
        config: the configuration; defaults to every option's default.
        broker: where publications travel; the in-memory broker by default.
        token_verifier: checks connection tokens; by default a JWT verifier built from
            ``config.client.token`` (none when no key is configured).
        clock: seconds since the epoch, injectable for tests.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        broker: Broker | None = None,
        token_verifier: TokenVerifier | None = _NO_VERIFIER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config if config is not None else Config.model_validate({})
        self.id = str(uuid.uuid4())
        self.version = __version__
        self.clock = clock
        self.rules = ChannelRules(self.config.channel)
        self.hub = Hub()
        if broker is None:
            from wirehub.brokers.memory import MemoryBroker

            broker = MemoryBroker()
        self._broker = broker
        if token_verifier is _NO_VERIFIER:
            from wirehub.auth.hooks import connect_verifier_from_config

            token_verifier = connect_verifier_from_config(self.config.client.token)
        self._verifier: TokenVerifier | None = token_verifier
        self._on_connecting: ConnectingHandler | None = None
        self._on_connect: ConnectHandler | None = None
        self._on_subscribe: SubscribeHandler | None = None
        self._on_publish: PublishHandler | None = None
        self._on_disconnect: DisconnectHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: TickFlusher | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connecting: set[Client] = set()
        """Attached clients not yet in the hub (no connect yet), for close()."""

    # Handlers, usable as decorators.

    def on_connecting(self, handler: ConnectingHandler) -> ConnectingHandler:
        """Authenticate connections in code (before, or instead of, tokens)."""
        self._on_connecting = handler
        return handler

    def on_connect(self, handler: ConnectHandler) -> ConnectHandler:
        """Be told of every connection once it is established."""
        self._on_connect = handler
        return handler

    def on_subscribe(self, handler: SubscribeHandler) -> SubscribeHandler:
        """Check or enrich subscriptions that the namespace rules allowed."""
        self._on_subscribe = handler
        return handler

    def on_publish(self, handler: PublishHandler) -> PublishHandler:
        """Check or rewrite client publications that the namespace rules allowed."""
        self._on_publish = handler
        return handler

    def on_disconnect(self, handler: DisconnectHandler) -> DisconnectHandler:
        """Be told of every established connection that ends."""
        self._on_disconnect = handler
        return handler

    # Lifecycle.

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("this node is already running")
        self._loop = asyncio.get_running_loop()
        self._flusher = TickFlusher(self._loop)
        await self._broker.start(self)

    async def close(self, disconnect: Disconnect = DISCONNECT_SHUTDOWN) -> None:
        """Disconnect every client (3001 "shutdown" by default) and stop."""
        if self._loop is None:
            return
        for client in [*self.hub.clients(), *self._connecting]:
            client.disconnect(disconnect)
        await self._broker.close()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=_TASKS_GRACE)
            for task in pending:
                task.cancel()
        self._loop = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the node is not running: use `async with node:`")
        return self._loop

    @property
    def flusher(self) -> TickFlusher:
        if self._flusher is None:
            raise RuntimeError("the node is not running: use `async with node:`")
        return self._flusher

    # Server API.

    async def publish(
        self, channel: str, data: Any, *, tags: dict[str, str] | None = None
    ) -> StreamPosition:
        """Publish ``data`` (any JSON value, or ``bytes`` of JSON) into ``channel``.

        Raises:
            ClientError: 102 for an unknown namespace, 107 for an invalid name.
            ValueError: ``data`` is not JSON.
        """
        options = self.rules.namespace(channel)
        publication = Publication(data=to_raw(data), tags=tags or None)
        return await self._broker.publish(channel, publication, _publish_options(options))

    @property
    def num_clients(self) -> int:
        return self.hub.num_clients

    # Transport side.

    def attach(self, transport: Transport, codec: Codec) -> Client:
        """Create the client for a new connection; it must send connect in time."""
        if self._loop is None:
            raise RuntimeError("the node is not running: use `async with node:`")
        client = Client(self, transport, codec)
        self._connecting.add(client)
        return client

    # Broker side.

    def handle_publication(self, channel: str, publication: Publication) -> None:
        self.hub.broadcast_publication(channel, publication)

    # Client side: called by Client only.

    async def authenticate(
        self, client: Client, request: ConnectRequest
    ) -> tuple[Credentials, Raw | None]:
        credentials, data = None, None
        if self._on_connecting is not None:
            reply = await self._on_connecting(_connecting_event(client, request))
            if reply is not None:
                credentials = reply.credentials
                data = None if reply.data is None else to_raw(reply.data)
        if credentials is None:
            credentials = self._credentials_from_request(client, request)
        return credentials, data

    def _credentials_from_request(self, client: Client, request: ConnectRequest) -> Credentials:
        if request.token:
            if self._verifier is None:
                logger.info("client %s sent a token, but no token key is configured", client.id)
                raise DISCONNECT_INVALID_TOKEN
            return self._verifier.verify_connect(request.token)
        if self.config.client.allow_anonymous_connect_without_token:
            return Credentials(user="")
        logger.info("client %s sent no credentials", client.id)
        raise DISCONNECT_BAD_REQUEST

    def client_connected(self, client: Client) -> None:
        self._connecting.discard(client)
        self.hub.add(client)

    async def notify_connect(self, client: Client) -> None:
        if self._on_connect is None:
            return
        try:
            await self._on_connect(ConnectEvent(client.id, client.user, client.transport.info))
        except Disconnect as exc:
            client.disconnect(exc)
        except Exception:
            logger.exception("client %s: on_connect failed", client.id)

    def client_closed(self, client: Client, disconnect: Disconnect, *, was_connected: bool) -> None:
        self._connecting.discard(client)
        for channel in self.hub.remove(client):
            self._spawn(self._broker.unsubscribe(channel))
        logger.debug("client %s closed: %d %s", client.id, disconnect.code, disconnect.reason)
        if was_connected and self._on_disconnect is not None:
            event = DisconnectEvent(client.id, client.user, disconnect.code, disconnect.reason)
            self._spawn(self._on_disconnect(event))

    async def authorize_subscribe(self, client: Client, request: SubscribeRequest) -> Subscription:
        self.rules.check_subscribe(request.channel, client.user)
        if self._on_subscribe is None:
            return Subscription()
        event = SubscribeEvent(client.id, client.user, request.channel, bytes(request.data))
        reply = await self._on_subscribe(event)
        if reply is None:
            return Subscription()
        return Subscription(
            channel_info=EMPTY if reply.channel_info is None else to_raw(reply.channel_info),
            data=EMPTY if reply.data is None else to_raw(reply.data),
        )

    async def add_subscription(self, client: Client, channel: str, channel_info: Raw) -> None:
        if not self.hub.has_subscribers(channel):
            try:
                await self._broker.subscribe(channel)
            except Exception:
                logger.exception("broker failed to subscribe to %s", channel)
                raise ERROR_INTERNAL from None
        if client.state is ClientState.CLOSED:
            return
        client.channels[channel] = channel_info
        self.hub.add_subscriber(channel, client)

    async def remove_subscription(self, client: Client, channel: str) -> None:
        if client.channels.pop(channel, None) is None:
            return
        if self.hub.remove_subscriber(channel, client):
            await self._broker.unsubscribe(channel)

    async def client_publish(self, client: Client, request: PublishRequest) -> None:
        channel = request.channel
        options = self.rules.check_publish(
            channel, client.user, subscribed=channel in client.channels
        )
        data = request.data
        if self._on_publish is not None:
            event = PublishEvent(client.id, client.user, channel, bytes(data))
            reply = await self._on_publish(event)
            if reply is not None and reply.data is not None:
                data = to_raw(reply.data)
        publication = Publication(data=data, info=client.publication_info(channel))
        await self._broker.publish(channel, publication, _publish_options(options))

    # Tasks.

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work, loop=self.loop)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception())


def _connecting_event(client: Client, request: ConnectRequest) -> ConnectingEvent:
    return ConnectingEvent(
        client_id=client.id,
        transport=client.transport.info,
        token=request.token,
        data=bytes(request.data),
        name=request.name,
        version=request.version,
        headers=request.headers or {},
    )


def _publish_options(options: NamespaceOptions) -> PublishOptions:
    # History options arrive with the history feature; until then nothing is kept.
    return PublishOptions()
