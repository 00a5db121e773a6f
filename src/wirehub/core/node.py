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
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self, cast

from msgspec import Raw

from wirehub._version import __version__
from wirehub.brokers.base import (
    Broker,
    Controller,
    HistoryOptions,
    PresenceManager,
    PublishOptions,
)
from wirehub.config import Config, NamespaceOptions
from wirehub.core.channels import ChannelRules
from wirehub.core.client import Client
from wirehub.core.cluster import Cluster
from wirehub.core.connecting import NO_AUTH, Authenticator
from wirehub.core.delta import DeltaCache
from wirehub.core.emulation import EmulationRouter
from wirehub.core.events import (
    ConnectEvent,
    ConnectHandler,
    ConnectingHandler,
    DisconnectEvent,
    DisconnectHandler,
    MessageEvent,
    MessageHandler,
    PublishHandler,
    RefreshHandler,
    RPCEvent,
    RPCHandler,
    ServerSubscription,
    SubscribeHandler,
    TokenVerifier,
)
from wirehub.core.flusher import TickFlusher
from wirehub.core.hub import Hub
from wirehub.core.limits import CommandLimiter
from wirehub.core.metrics import NodeMetrics
from wirehub.core.payload import EMPTY, to_raw
from wirehub.core.positions import PositionChecker
from wirehub.core.presence import keep_presence
from wirehub.core.publish import check_protocol, client_publish
from wirehub.core.server_api import ServerAPI
from wirehub.core.subscriptions import (
    Subscribed,
    for_client,
    subscribe as subscribe_channel,
    unsubscribe_cleanup,
)
from wirehub.errors import (
    DISCONNECT_SHUTDOWN,
    ERROR_BAD_REQUEST,
    ERROR_INTERNAL,
    ERROR_METHOD_NOT_FOUND,
    ClientError,
    Disconnect,
)
from wirehub.protocol.codec import Codec
from wirehub.protocol.codes import ErrorCode
from wirehub.protocol.types import (
    ClientInfo,
    HistoryRequest,
    HistoryResult,
    PresenceResult,
    PresenceStatsResult,
    Publication,
    PublishRequest,
    RPCRequest,
    RPCResult,
    StreamPosition,
    SubscribeRequest,
)
from wirehub.proxy.proxies import Proxies
from wirehub.transports.base import Transport

__all__ = ["Node"]

logger = logging.getLogger("wirehub.node")


# How long close() waits for handler tasks before cancelling them.
_TASKS_GRACE = 5.0

_NO_VERIFIER: Any = object()


class Node(ServerAPI):
    """A wirehub server node.

    Use it as an async context manager; connections are accepted only while it runs::

        node = Node(config)

        @node.on_connecting
        async def authenticate(event: ConnectingEvent) -> ConnectingReply | None: ...

        async with node:
            await node.publish("news:feed", {"title": "hello"})

    Args:
        config: the configuration; defaults to every option's default.
        broker: where publications and history live; by default the one of
            ``config.engine`` (in memory unless ``engine.type`` says otherwise).
        presence_manager: where presence lives; by default the engine's when the broker
            is too, else in memory.
        token_verifier: checks connection tokens; by default a JWT verifier built from
            ``config.client.token`` (none when no key is configured).
        controller: carries messages to the other nodes (server actions on their
            connections, surveys, heartbeats); the broker when it is one, else none
            is needed (a node alone in its process).
        clock: seconds since the epoch, injectable for tests.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        broker: Broker | None = None,
        presence_manager: PresenceManager | None = None,
        token_verifier: TokenVerifier | None = _NO_VERIFIER,
        controller: Controller | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config if config is not None else Config.model_validate({})
        self.id = str(uuid.uuid4())
        self.version = __version__
        self.clock = clock
        self.rules = ChannelRules(self.config.channel)
        self.limiter = CommandLimiter(self.config.client.rate_limit.client_command)
        self.hub = Hub()
        self.hub.delta_cache = DeltaCache()
        engine_controller: Controller | None = None
        if broker is None:
            from wirehub.brokers import create_engine

            engine = create_engine(self.config)
            broker = engine.broker
            engine_controller = engine.controller
            if presence_manager is None:
                presence_manager = engine.presence_manager
        self.broker = broker
        if presence_manager is None:
            from wirehub.brokers.memory import MemoryPresenceManager

            presence_manager = MemoryPresenceManager()
        self.presence_manager = presence_manager
        if token_verifier is _NO_VERIFIER:
            from wirehub.auth.hooks import connect_verifier_from_config

            token_verifier = connect_verifier_from_config(self.config.client.token)
        self.auth = Authenticator(self, token_verifier)
        """Connect and refresh decisions: tokens, the connect proxy, handlers."""
        self._on_connect: ConnectHandler | None = None
        self._on_subscribe: SubscribeHandler | None = None
        self._on_publish: PublishHandler | None = None
        self._on_disconnect: DisconnectHandler | None = None
        self._on_rpc: RPCHandler | None = None
        self._on_message: MessageHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: TickFlusher | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.positions = PositionChecker(self)
        self._positions_task: asyncio.Task[None] | None = None
        self._presence_task: asyncio.Task[None] | None = None
        self._connecting: set[Client] = set()
        """Attached clients not yet in the hub (no connect yet), for close()."""
        self.shutting_down = False
        """Set once close() began (``/ready`` answers 503 from then on)."""
        self.metrics = NodeMetrics(self) if self.config.prometheus.enabled else None
        self.hub.metrics = None if self.metrics is None else self.metrics.hub
        self.controller = _controller(broker, controller or engine_controller)
        """Carries control messages to the other nodes (in-process only: nowhere)."""
        self.cluster = Cluster(self, self.controller, name=_node_name(self.config))
        self.emulation = EmulationRouter(self)
        """Delivers emulation requests to the node owning their session."""
        self.proxies = Proxies(self)
        """The event proxies of the configuration (``docs/proxies.md``)."""

    # Handlers, usable as decorators.

    def on_connecting(self, handler: ConnectingHandler) -> ConnectingHandler:
        """Authenticate connections in code (before, or instead of, tokens)."""
        self.auth.on_connecting = handler
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

    def on_rpc(self, handler: RPCHandler) -> RPCHandler:
        """Answer ``rpc`` commands; without a handler they get error 104."""
        self._on_rpc = handler
        return handler

    def on_message(self, handler: MessageHandler) -> MessageHandler:
        """Receive the clients' ``send`` messages (no reply)."""
        self._on_message = handler
        return handler

    def on_refresh(self, handler: RefreshHandler) -> RefreshHandler:
        """Refresh connections in code instead of with connection tokens."""
        self.auth.on_refresh = handler
        return handler

    @property
    def subscribe_handler(self) -> SubscribeHandler | None:
        return self._on_subscribe

    @property
    def publish_handler(self) -> PublishHandler | None:
        return self._on_publish

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
        budget = self.config.client.queue_max_size >> 2
        self._flusher = TickFlusher(self._loop, byte_budget=budget)
        if self.auth.refuses_everyone():
            logger.warning("every connection will be refused: %s", NO_AUTH)
        self.shutting_down = False
        await self.broker.start(self)
        await self.cluster.start()
        await self.proxies.start()
        delay = self.config.client.channel_position_check_delay
        if delay > 0:
            self._positions_task = self._loop.create_task(
                self.positions.run(delay), name="wirehub-position-checks"
            )
        self._presence_task = self._loop.create_task(
            keep_presence(self, self.config.client.presence_update_interval),
            name="wirehub-presence",
        )

    async def close(self, disconnect: Disconnect = DISCONNECT_SHUTDOWN) -> None:
        """Disconnect every client (3001 "shutdown" by default) and stop."""
        if self._loop is None:
            return
        self.shutting_down = True
        for client in [*self.hub.clients(), *self._connecting]:
            client.disconnect(disconnect)
        positions, self._positions_task = self._positions_task, None
        if positions is not None:
            positions.cancel()
            await asyncio.wait([positions])
        presence, self._presence_task = self._presence_task, None
        if presence is not None:
            presence.cancel()
            await asyncio.wait([presence])
        await self.cluster.close()
        if self._tasks:
            # Before the broker closes: the clients' cleanups remove presence entries.
            _, pending = await asyncio.wait(self._tasks, timeout=_TASKS_GRACE)
            for task in pending:
                task.cancel()
        await self.broker.close()
        await self.proxies.close()
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

    # Server API: publish, subscribe, history, ... come from ServerAPI (server_api.py).

    @property
    def num_clients(self) -> int:
        return self.hub.num_clients

    @property
    def num_nodes(self) -> int:
        """Nodes in the cluster's registry, this one included."""
        return self.cluster.num_nodes

    @property
    def num_connections(self) -> int:
        """Connections on this node: connected clients and those not yet connected."""
        return self.hub.num_clients + len(self._connecting)

    # Transport side.

    def attach(self, transport: Transport, codec: Codec) -> Client:
        """Create the client for a new connection; it must send connect in time."""
        if self._loop is None:
            raise RuntimeError("the node is not running: use `async with node:`")
        client = Client(self, transport, codec)
        self._connecting.add(client)
        return client

    # Broker side.

    def handle_publication(
        self, channel: str, publication: Publication, position: StreamPosition
    ) -> None:
        if self.metrics is not None:
            self.metrics.publication_received.inc()
        size, reached = self.hub.broadcast_publication(channel, publication, position)
        self.flusher.account(size, reached)

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        if self.metrics is not None:
            self.metrics.join_received.inc()
        self.hub.broadcast_join(channel, info)

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        if self.metrics is not None:
            self.metrics.leave_received.inc()
        self.hub.broadcast_leave(channel, info)

    def handle_gap(self, channels: Sequence[str]) -> None:
        told = self.hub.insufficient_state(channels)
        if told:
            logger.info("%d subscriber(s) told to recover after a broker gap", told)

    # Controller side.

    def handle_control(self, data: bytes) -> None:
        self.cluster.handle_control(data)

    # Client side: called by Client only.

    def client_connected(self, client: Client, name: str = "", version: str = "") -> None:
        self._connecting.discard(client)
        self.hub.add(client)
        info = client.transport.info
        logger.info(
            "client %s connected: user %s, transport %s, protocol %s",
            client.id,
            _printable(client.user),
            info.name,
            info.protocol,
            extra={"client": client.id, "user": client.user, "transport": info.name},
        )
        if self.metrics is not None:
            client.metric_labels = self.metrics.client_labels(name, version)
            self.metrics.connection_accepted(info.name, client.metric_labels)

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
        subscriptions = dict(client.channels)
        self.hub.remove(client)
        client.channels.clear()
        for channel, context in subscriptions.items():
            self._spawn(unsubscribe_cleanup(self, client, channel, context))
        logger.log(
            logging.INFO if was_connected else logging.DEBUG,
            "client %s closed: %d %s",
            client.id,
            disconnect.code,
            disconnect.reason,
            extra={"client": client.id, "code": disconnect.code},
        )
        if self.metrics is not None:
            self.metrics.connection_closed(
                client.transport.info.name,
                client.metric_labels if was_connected else None,
                disconnect.code,
                by_server=disconnect.code != _CONNECTION_CLOSED,
            )
        if was_connected and self._on_disconnect is not None:
            event = DisconnectEvent(client.id, client.user, disconnect.code, disconnect.reason)
            self._spawn(self._on_disconnect(event))

    async def subscribe_client(
        self,
        client: Client,
        request: SubscribeRequest,
        *,
        server_side: bool = False,
        options: ServerSubscription | None = None,
    ) -> Subscribed | None:
        return await subscribe_channel(
            self, client, request, server_side=server_side, options=options
        )

    async def after_subscribe(self, client: Client, channel: str) -> None:
        """Presence entry and join, once the subscribe reply is queued."""
        context = client.channels.get(channel)
        if context is None:
            return
        info = client.channel_info(channel, context)
        if context.presence:
            await self.presence_manager.add_presence(channel, info)
        if context.join_leave:
            await self.broker.publish_join(channel, info)
            if self.metrics is not None:
                self.metrics.join_sent.inc()

    async def unsubscribe_client(self, client: Client, channel: str) -> None:
        context = client.channels.pop(channel, None)
        if context is None:
            return
        self.hub.remove_subscriber(channel, client)
        await unsubscribe_cleanup(self, client, channel, context)

    def drop_subscription(self, client: Client, channel: str) -> None:
        """End a subscription now (gap, expiry); the cleanup runs in the background."""
        context = client.channels.pop(channel, None)
        if context is None:
            return
        self.hub.remove_subscriber(channel, client)
        self._spawn(unsubscribe_cleanup(self, client, channel, context))

    async def release_channel(self, channel: str) -> None:
        """Tell the broker this node no longer needs ``channel``, if nobody here does."""
        if not self.hub.has_subscribers(channel):
            await self.broker.unsubscribe(channel)

    async def client_publish(self, client: Client, request: PublishRequest) -> None:
        await client_publish(self, client, request)

    async def client_history(self, client: Client, request: HistoryRequest) -> HistoryResult:
        channel = request.channel
        options = self.rules.check_history(
            channel, client.user, subscribed=channel in client.channels
        )
        check_protocol(client.codec, options)
        since = request.since
        if request.reverse and since is not None and since.offset == 0:
            raise ERROR_BAD_REQUEST
        cap = self.config.client.history_max_publication_limit
        limit = cap if request.limit < 0 else min(request.limit, cap)
        meta_ttl = self.rules.history_meta_ttl(options)
        history = HistoryOptions(since, limit, request.reverse, meta_ttl)
        page = await self.broker.history(channel, history)
        if since is not None and since.epoch and since.epoch != page.position.epoch:
            raise ClientError(ErrorCode.UNRECOVERABLE_POSITION, "unrecoverable position")
        position = page.position
        try:
            publications = for_client(client, page.publications)
        except ValueError:
            logger.error("the history of %r holds a payload JSON clients can't parse", channel)
            raise ERROR_INTERNAL from None
        return HistoryResult(
            publications=publications,
            epoch=position.epoch,
            offset=position.offset,
        )

    async def client_presence(self, client: Client, channel: str) -> PresenceResult:
        self.rules.check_presence(channel, client.user, subscribed=channel in client.channels)
        return PresenceResult(presence=await self.presence_manager.presence(channel))

    async def client_presence_stats(self, client: Client, channel: str) -> PresenceStatsResult:
        self.rules.check_presence(channel, client.user, subscribed=channel in client.channels)
        stats = await self.presence_manager.presence_stats(channel)
        return PresenceStatsResult(num_clients=stats.num_clients, num_users=stats.num_users)

    async def client_rpc(self, client: Client, request: RPCRequest) -> RPCResult:
        proxy = self.proxies.rpc_proxy(request.method, handled=self._on_rpc is not None)
        proxied = None if proxy is None else await self.proxies.rpc(client, request, proxy)
        if self._on_rpc is None:
            if proxied is None:
                raise ERROR_METHOD_NOT_FOUND
            return RPCResult(data=proxied)
        result = None if proxied is None else bytes(proxied)
        event = RPCEvent(client.id, client.user, request.method, bytes(request.data), result)
        reply = await self._on_rpc(event)
        if reply is None or reply.data is None:
            return RPCResult(data=proxied or EMPTY)
        return RPCResult(data=to_raw(reply.data))

    async def client_message(self, client: Client, data: Raw) -> None:
        if self._on_message is not None:
            await self._on_message(MessageEvent(client.id, client.user, bytes(data)))

    def publish_options(self, options: NamespaceOptions) -> PublishOptions:
        """How the broker keeps a publication of a namespace (history size, TTLs)."""
        if not options.history_enabled:
            return _NO_HISTORY
        return PublishOptions(
            history_size=options.history_size,
            history_ttl=options.history_ttl,
            history_meta_ttl=self.rules.history_meta_ttl(options),
        )

    # Tasks.

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work, loop=self.loop)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception())


_NO_HISTORY = PublishOptions()


def _controller(broker: Broker, controller: Controller | None) -> Controller:
    if controller is not None:
        return controller
    if callable(getattr(broker, "publish_control", None)):
        return cast(Controller, broker)
    from wirehub.brokers.memory import MemoryController

    return MemoryController()


def _node_name(config: Config) -> str:
    return config.node.name or f"{socket.gethostname()}_{config.server.port}"


def _printable(text: str, limit: int = 100) -> str:
    """Attacker-influenced text (a user id) as a log shows it: quoted, escaped, bounded."""
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


_CONNECTION_CLOSED = 3000
