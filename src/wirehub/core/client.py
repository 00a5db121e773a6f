"""One connection's state machine: commands in, replies and pushes out.

Rules (``centrifugo-protocol.md`` §3, §8):

1. States: CONNECTING -> CONNECTED -> CLOSED, never backwards.
2. In CONNECTING only ``connect`` is allowed; anything else, a second connect, or any
   command after a failed connect -> disconnect 3501. No connect within
   ``stale_close_delay`` -> 3502.
3. The commands of a frame, and of successive frames, are handled strictly in order,
   one at a time; each is answered by its id. An empty command is a pong.
   Backpressure (``reliability.md`` A3): reading pauses while more than
   ``_INBOX_HIGH`` commands wait; command handling waits while the connection's own
   output is not written (more than a quarter of ``queue_max_size`` queued, or the
   socket's buffer full) and resumes once its reader took it; and it yields to the
   event loop when the publications it fanned out call for it
   (:meth:`TickFlusher.should_yield`: a quarter of ``queue_max_size`` of them, or
   enough deliveries per waiting connection) or after ``_SLICE`` seconds without.
   Commands are rate limited per connection (:mod:`wirehub.core.limits`): 111, then
   3013.
4. Errors: a :class:`ClientError` becomes an error reply and the connection stays; a
   :class:`Disconnect` closes it; anything else from application code is logged with
   the client id and becomes error 100 (temporary).
5. Output goes through one bounded queue, written once per event-loop tick. A push
   (fan-out) that finds more than ``queue_max_size`` bytes queued closes the client
   with 3008 "slow", and nothing else waits on it. The connection's own replies never
   do (rule 3 bounds them: one reply beyond the threshold at most); a reply to history,
   presence or RPC larger than ``queue_max_size`` is replaced by error 106.
6. Every ``ping_interval`` the server sends a ping; the pong is due within
   ``pong_timeout``, else 3012. Unidirectional connections are pinged and never
   asked for a pong.
7. Emulation and unidirectional connections have a ``session``, a random secret
   distinct from the client id (which others see in presence and join/leave): the
   emulation endpoint finds a connection by it. Their connect result names it (and,
   for emulation, the node). A unidirectional connection's failed connect is a
   disconnect (:func:`~wirehub.core.unidirectional.unidirectional_disconnect`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from msgspec import Raw

from wirehub.core import expiry
from wirehub.core.events import ServerSubscription
from wirehub.core.flusher import YIELD_DELIVERIES
from wirehub.core.limits import check_user_connections
from wirehub.core.metrics import command_method, reply_type
from wirehub.core.payload import EMPTY, to_raw
from wirehub.core.subscriptions import ChannelContext
from wirehub.core.unidirectional import unidirectional_disconnect
from wirehub.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_EXPIRED,
    DISCONNECT_INSUFFICIENT_STATE,
    DISCONNECT_INTERNAL,
    DISCONNECT_NO_PONG,
    DISCONNECT_SLOW,
    DISCONNECT_STALE,
    DISCONNECT_TOO_MANY_REQUESTS,
    DISCONNECT_WRITE_ERROR,
    ERROR_ALREADY_SUBSCRIBED,
    ERROR_BAD_REQUEST,
    ERROR_INTERNAL,
    ERROR_LIMIT_EXCEEDED,
    ERROR_PERMISSION_DENIED,
    ERROR_TOO_MANY_REQUESTS,
    ClientError,
    Disconnect,
    log_failure,
)
from wirehub.protocol.codes import DisconnectCode, UnsubscribeCode
from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.types import (
    ClientInfo,
    Command,
    ConnectResult,
    Error,
    PublishResult,
    Push,
    Refresh,
    RefreshResult,
    Reply,
    SubRefreshResult,
    SubscribeRequest,
    SubscribeResult,
    Unsubscribe,
    UnsubscribeResult,
)

if TYPE_CHECKING:
    from wirehub.core.node import Node
    from wirehub.protocol.codec import Codec
    from wirehub.transports.base import Transport

__all__ = ["Client", "ClientState"]

logger = logging.getLogger("wirehub.client")

DISCONNECT_CLOSED = Disconnect(DisconnectCode.CONNECTION_CLOSED, "connection closed")
DISCONNECT_SUBSCRIPTION_EXPIRED = Disconnect(
    DisconnectCode.SUBSCRIPTION_EXPIRED, "subscription expired"
)

# Frames waiting to be handled before the transport stops reading, and where it resumes.
_INBOX_HIGH = 256
_INBOX_LOW = 64
# Longest run of one connection's commands in one event-loop turn, seconds: a backstop
# for commands that are slow without fanning out much (RPC or history handlers); fan-out
# yields by TickFlusher.should_yield, whose rules cost less throughput than a time slice.
_SLICE = 0.05


class ClientState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class Client:
    """A connection as the core sees it. Created by :meth:`Node.attach`."""

    # Slots: thousands of idle connections each hold one of these.
    __slots__ = (
        "_conn_info",
        "_connect_failed",
        "_drain_waiter",
        "_emulation",
        "_expire_at",
        "_expire_timer",
        "_flush_scheduled",
        "_held",
        "_inbox",
        "_node",
        "_ping_timer",
        "_pong_timer",
        "_queue",
        "_queued",
        "_rate",
        "_reading_paused",
        "_settings",
        "_stale_timer",
        "_task",
        "_unidirectional",
        "_writable",
        "channels",
        "codec",
        "emulated_headers",
        "id",
        "meta",
        "metric_labels",
        "session",
        "state",
        "transport",
        "user",
    )

    def __init__(self, node: Node, transport: Transport, codec: Codec) -> None:
        self.id = str(uuid.uuid4())
        self.codec = codec
        self.transport = transport
        info = transport.info
        self._emulation = info.emulation
        self._unidirectional = info.unidirectional
        self.session = secrets.token_urlsafe(24) if self._emulation or self._unidirectional else ""
        """The secret an emulation endpoint request names (empty on WebSocket)."""
        self.user = ""
        self.state = ClientState.CONNECTING
        self.channels: dict[str, ChannelContext] = {}
        """Subscribed channels, with this client's state in each."""
        self._node = node
        self._settings = node.config.client
        self._conn_info: Raw | None = None
        self.emulated_headers: dict[str, str] | None = None
        """The connect command's headers some proxy forwards (``emulated_headers``)."""
        self.meta: Raw | None = None
        """Connection meta (connect proxy, refresh proxy): kept server-side, sent to
        proxies with ``include_connection_meta``."""
        self._connect_failed = False
        # A list, not a deque: an empty deque costs 600 bytes per idle connection.
        self._inbox: list[Command] = []
        self._task: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._queue: list[bytes] = []
        self._queued = 0
        self._flush_scheduled = False
        self._writable = True
        self._held: list[bytes] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._rate: list[float] | None = None
        """Rate-limit buckets, made at the first command."""
        self._expire_at: int | None = None
        loop = node.loop
        self._stale_timer: asyncio.TimerHandle | None = loop.call_later(
            self._settings.stale_close_delay, self._on_stale
        )
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._expire_timer: asyncio.TimerHandle | None = None
        self.metric_labels: tuple[str, str] | None = None
        """(client_name, client_version) labels of this connection's metrics."""

    def __repr__(self) -> str:
        return f"<Client {self.id} user={self.user!r} {self.state.value}>"

    @property
    def closed(self) -> bool:
        return self.state is ClientState.CLOSED

    @property
    def reading_paused(self) -> bool:
        """Whether the transport was told to stop reading (too many commands waiting)."""
        return self._reading_paused

    @property
    def info(self) -> ClientInfo:
        """This client as others see it, without channel info."""
        return ClientInfo(user=self.user, client=self.id, conn_info=self._conn_info or EMPTY)

    # Transport side.

    def handle_frame(self, frame: bytes) -> None:
        """Take one frame from the transport; its commands run in order, later."""
        if self.state is ClientState.CLOSED:
            return
        try:
            commands = self.codec.decode_commands(frame)
        except ProtocolError as exc:
            logger.info("client %s sent a bad frame: %s", self.id, exc)
            self.disconnect(DISCONNECT_BAD_REQUEST)
            return
        self.handle_commands(commands, len(frame))

    def handle_commands(self, commands: list[Command], size: int = 0) -> None:
        """Take commands the transport decoded itself (``size``: their frame's bytes, for
        metrics); they run in order, later."""
        if self.state is ClientState.CLOSED:
            return
        self._inbox.extend(commands)
        metrics = self._node.metrics
        if metrics is not None:
            methods = (command_method(command) for command in commands)
            metrics.frames_received(self.transport.info.name, methods, size)
        if len(self._inbox) > _INBOX_HIGH and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        if self._task is None:
            self._task = self._node.loop.create_task(self._run_inbox())

    def transport_closed(self) -> None:
        """The connection ended from the other side or the network."""
        if self.state is not ClientState.CLOSED:
            self._close(DISCONNECT_CLOSED, flush=False)

    def pause_writing(self) -> None:
        """The transport's buffer is full: keep output queued (bounded) until resumed."""
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        if self._queue and not self._flush_scheduled:
            self._flush_scheduled = True
            self._node.flusher.schedule(self)
        self._wake_drained()

    # Output.

    def enqueue(self, data: bytes) -> None:
        """Queue one encoded push; it is written at the end of this tick. Past
        ``queue_max_size`` bytes queued, the client is closed with 3008."""
        if self.state is ClientState.CLOSED:
            return
        if self._held is not None:
            self._held.append(data)
            return
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > self._settings.queue_max_size:
            logger.info("client %s is too slow: %d bytes queued", self.id, self._queued)
            self.disconnect(DISCONNECT_SLOW)
        elif not self._flush_scheduled and self._writable:
            self._flush_scheduled = True
            self._node.flusher.schedule(self)

    def _enqueue_own(self, data: bytes) -> None:
        """Queue a reply to this client's own command: never a 3008 (the command loop
        stops while its output waits, which bounds it)."""
        if self.state is ClientState.CLOSED:
            return
        self._queue.append(data)
        self._queued += len(data)
        if not self._flush_scheduled and self._writable:
            self._flush_scheduled = True
            self._node.flusher.schedule(self)

    @property
    def queued_messages(self) -> int:
        return len(self._queue)

    def flush(self) -> None:
        """Write everything queued as one frame."""
        self._flush_scheduled = False
        if not self._queue or not self._writable:
            return
        frame = self.codec.join(self._queue)
        self._queue.clear()
        self._queued = 0
        try:
            self.transport.write_frame(frame)
        except Exception:
            # Raising here would also skip every other connection flushed this tick.
            logger.warning("client %s: write failed", self.id, exc_info=True)
            self.disconnect(DISCONNECT_WRITE_ERROR)
            return
        self._wake_drained()

    def _output_waiting(self) -> bool:
        """Whether this client's own output is too far behind to handle more commands."""
        return not self._writable or self._queued > self._settings.queue_max_size >> 2

    async def _drained(self) -> None:
        """Wait until the reader took enough of this client's output."""
        waiter = self._node.loop.create_future()
        self._drain_waiter = waiter
        try:
            await waiter
        finally:
            self._drain_waiter = None

    def _wake_drained(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done() and not self._output_waiting():
            waiter.set_result(None)

    def disconnect(self, disconnect: Disconnect) -> None:
        """Close the connection with ``disconnect``'s code and reason. Idempotent."""
        if self.state is ClientState.CLOSED:
            return
        self._close(disconnect, flush=disconnect.code != DisconnectCode.SLOW)
        self.transport.close(disconnect)

    def _close(self, disconnect: Disconnect, *, flush: bool) -> None:
        was_connected = self.state is ClientState.CONNECTED
        # CLOSED first: a write error while flushing must not close a second time.
        self.state = ClientState.CLOSED
        if flush:
            self._writable = True
            self.flush()
        self._queue = []
        self._queued = 0
        self._inbox.clear()
        for timer in (self._stale_timer, self._ping_timer, self._pong_timer, self._expire_timer):
            if timer is not None:
                timer.cancel()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._node.client_closed(self, disconnect, was_connected=was_connected)

    def push(self, push: Push) -> None:
        """Queue one push for this connection."""
        self._send(Reply(push=push))

    def _send(self, reply: Reply, frame_type: str = "") -> None:
        data = self.codec.encode_reply(reply)
        metrics = self._node.metrics
        if metrics is not None:
            metrics.sent(self.transport.info.name, frame_type or reply_type(reply), len(data))
        if not reply.id:
            self.enqueue(data)
        elif self._held is not None:
            self._held.insert(0, data)  # replies go ahead of held pushes
        else:
            self._enqueue_own(data)

    # Timers.

    def _on_stale(self) -> None:
        self._stale_timer = None
        if self.state is ClientState.CONNECTING:
            logger.info("client %s sent no connect in time", self.id)
            self.disconnect(DISCONNECT_STALE)

    def _on_ping(self) -> None:
        self.enqueue(self.codec.ping)
        metrics = self._node.metrics
        if metrics is not None:
            metrics.sent(self.transport.info.name, "server_ping", len(self.codec.ping))
        if self._pong_timer is None and not self._unidirectional:
            self._pong_timer = self._node.loop.call_later(
                self._settings.pong_timeout, self._on_no_pong
            )
        self._ping_timer = self._node.loop.call_later(self._settings.ping_interval, self._on_ping)

    def _on_no_pong(self) -> None:
        self._pong_timer = None
        logger.info("client %s did not answer a ping", self.id)
        self.disconnect(DISCONNECT_NO_PONG)

    def _on_pong(self) -> None:
        # A stray pong is tolerated: neither SDK sends one, and dropping a client for it
        # would punish a harmless bug.
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None

    def _on_expire(self) -> None:
        self._expire_timer = None
        if self._expire_at is None or self.state is ClientState.CLOSED:
            return
        if self._expire_at <= self._node.clock():
            if self._node.proxies.refresh_enabled:
                self._node.proxies.refresh_later(self)  # extends, or disconnects 3005
            else:
                self.disconnect(DISCONNECT_EXPIRED)
        else:
            self._schedule_expire()  # fired early (loop vs wall clock): check again

    def _schedule_expire(self) -> None:
        assert self._expire_at is not None
        # A refresh proxy is asked at the expiry itself; a client refreshes in the grace.
        grace = 0.0 if self._node.proxies.refresh_enabled else self._settings.expired_close_delay
        delay = expiry.timer_delay(self._expire_at, self._node.clock(), grace)
        self._expire_timer = self._node.loop.call_later(delay, self._on_expire)

    # Commands.

    async def _run_inbox(self) -> None:
        loop = self._node.loop
        flusher = self._node.flusher
        try:
            deadline = loop.time() + _SLICE
            while self._inbox and self.state is not ClientState.CLOSED:
                await self._handle(self._inbox.pop(0))
                if self._reading_paused and len(self._inbox) <= _INBOX_LOW:
                    self._reading_paused = False
                    self.transport.resume_reading()
                if not self._inbox:
                    break
                if self._output_waiting():
                    await self._drained()
                elif flusher.should_yield() or (
                    loop.time() > deadline and flusher.delivered < YIELD_DELIVERIES
                ):
                    await asyncio.sleep(0)  # the flusher writes what was queued
                else:
                    continue
                deadline = loop.time() + _SLICE
        finally:
            self._task = None

    async def _handle(self, command: Command) -> None:
        limiter = self._node.limiter
        if limiter.enabled and not self._allowed(command):
            return
        started = time.perf_counter()
        error: int | None = None
        try:
            await self._dispatch(command)
        except ClientError as exc:
            error = exc.code
            self._reply_error(command, exc)
        except Disconnect as exc:
            exc.__traceback__ = None  # a shared instance: keep no frames alive
            self.disconnect(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log_failure(logger, "client %s: error handling command %d", self.id, command.id)
            error = ERROR_INTERNAL.code
            self._reply_error(command, ERROR_INTERNAL)
        metrics = self._node.metrics
        if metrics is not None:
            metrics.command_done(command_method(command), time.perf_counter() - started, error)

    def _allowed(self, command: Command) -> bool:
        """Take the command's rate-limit tokens; refuse it (111, or 3013) without."""
        limiter = self._node.limiter
        if self._rate is None:
            self._rate = limiter.new_state()
        now = self._node.loop.time()
        if limiter.allow(self._rate, command, now):
            return True
        if limiter.tolerate(self._rate, now):
            self._reply_error(command, ERROR_TOO_MANY_REQUESTS)
        else:
            logger.info("client %s keeps exceeding its command rate limit", self.id)
            self.disconnect(DISCONNECT_TOO_MANY_REQUESTS)
        return False

    def _reply_error(self, command: Command, exc: ClientError) -> None:
        # Drop the traceback: well-known errors are shared instances, and a kept
        # traceback would grow with every raise and pin frames in memory.
        exc.__traceback__ = None
        exc.__context__ = None
        if self._unidirectional:
            configured = self._node.config.client.connect_code_to_unidirectional_disconnect
            self.disconnect(unidirectional_disconnect(exc, configured))
            return
        if command.id == 0:
            return
        error = Error(code=exc.code, message=exc.message, temporary=exc.temporary)
        self._send(Reply(id=command.id, error=error), command_method(command))

    async def _dispatch(self, command: Command) -> None:
        if command.connect is not None:
            await self._handle_connect(command)
            return
        if self.state is not ClientState.CONNECTED:
            raise DISCONNECT_BAD_REQUEST
        if command.id == 0:
            if command.send is not None:
                await self._node.client_message(self, command.send.data)
            elif command == _PONG:
                self._on_pong()
            else:
                raise DISCONNECT_BAD_REQUEST
            return
        reply = await self._answer(command)
        if reply is not None:
            self._send_answer(reply)

    def _send_answer(self, reply: Reply) -> None:
        data = self.codec.encode_reply(reply)
        if len(data) > self._settings.queue_max_size:
            # A read (history, presence, RPC) too large to queue: refused, not a 3008.
            logger.info("client %s: a %d-byte reply exceeds queue_max_size", self.id, len(data))
            error = Error(code=ERROR_LIMIT_EXCEEDED.code, message=ERROR_LIMIT_EXCEEDED.message)
            reply = Reply(id=reply.id, error=error)
            data = self.codec.encode_reply(reply)
        metrics = self._node.metrics
        if metrics is not None:
            metrics.sent(self.transport.info.name, reply_type(reply), len(data))
        self._enqueue_own(data)

    async def _answer(self, command: Command) -> Reply | None:
        """Handle one command that expects a reply; ``None`` when answered already."""
        node, cid = self._node, command.id
        if command.subscribe is not None:
            await self._handle_subscribe(command.id, command.subscribe)
            return None
        if command.unsubscribe is not None:
            await node.unsubscribe_client(self, _channel(command.unsubscribe.channel))
            return Reply(id=cid, unsubscribe=UnsubscribeResult())
        if command.publish is not None:
            request = command.publish
            if not request.channel or not request.data:
                raise ERROR_BAD_REQUEST
            await node.client_publish(self, request)
            return Reply(id=cid, publish=PublishResult())
        if command.presence is not None:
            channel = _channel(command.presence.channel)
            return Reply(id=cid, presence=await node.client_presence(self, channel))
        if command.presence_stats is not None:
            channel = _channel(command.presence_stats.channel)
            return Reply(id=cid, presence_stats=await node.client_presence_stats(self, channel))
        if command.history is not None:
            _channel(command.history.channel)
            return Reply(id=cid, history=await node.client_history(self, command.history))
        if command.rpc is not None:
            return Reply(id=cid, rpc=await node.client_rpc(self, command.rpc))
        if command.refresh is not None:
            return Reply(id=cid, refresh=await self._handle_refresh(command.refresh.token))
        if command.sub_refresh is not None:
            sub_refresh = command.sub_refresh
            result = self._handle_sub_refresh(sub_refresh.channel, sub_refresh.token)
            return Reply(id=cid, sub_refresh=result)
        raise DISCONNECT_BAD_REQUEST

    async def _handle_connect(self, command: Command) -> None:
        request = command.connect
        if self.state is not ClientState.CONNECTING or self._connect_failed or request is None:
            raise DISCONNECT_BAD_REQUEST
        try:
            self.emulated_headers = self._node.proxies.emulated_headers(request)
            credentials, data, channels = await self._node.auth.authenticate(self, request)
            expire_at = expiry.clamp_expire_at(credentials.expire_at)  # bad: nothing done yet
            proxied = self._node.proxies.proxies_connect(request)
            if self._unidirectional and request.subs and not proxied:
                channels = self._requested_channels(channels, request.subs, credentials.user)
        except Exception:
            # The SDK closes and retries; any further command from here is a 3501.
            self._connect_failed = True
            raise
        if self.closed:  # the connection ended while the handler ran
            return
        # No await from here to the hub's add: the count can't change in between.
        check_user_connections(
            self._node.hub.user_count(credentials.user),
            credentials.user,
            self._settings.user_connection_limit,
        )
        self.user = credentials.user
        self._conn_info = _payload_or_none(credentials.info)
        self.meta = _payload_or_none(credentials.meta)
        self.state = ClientState.CONNECTED
        if self._stale_timer is not None:
            self._stale_timer.cancel()
            self._stale_timer = None
        self._node.client_connected(self, request.name, request.version)
        # Pushes of server-side subscriptions wait until the connect reply is queued.
        self._held = []
        try:
            subs = await self._subscribe_server_side(
                channels, request.subs or {}, credentials.subscriptions
            )
        except Disconnect:
            raise
        except Exception:
            # Connected already, with output held for the reply: an error reply would
            # never leave. The SDK reconnects after 3004.
            logger.warning("client %s: server-side subscription failed", self.id, exc_info=True)
            raise DISCONNECT_INTERNAL from None
        if self.closed:
            return
        result = self._connect_result(expire_at, data, subs)
        held, self._held = self._held, None
        self._send(Reply(id=command.id, connect=result))
        for data_held in held:
            self.enqueue(data_held)
        self._ping_timer = self._node.loop.call_later(self._settings.ping_interval, self._on_ping)
        for channel in subs:
            await self._node.after_subscribe(self, channel)
        await self._node.notify_connect(self)

    def _requested_channels(
        self, channels: tuple[str, ...], subs: Mapping[str, SubscribeRequest], user: str
    ) -> tuple[str, ...]:
        """A unidirectional client names channels in its connect request's ``subs``: they
        are subscribed server-side if the namespace rules let the user subscribe (else
        the connect fails: 103, 102)."""
        for channel in subs:
            self._node.rules.check_subscribe(_channel(channel), user)
        return tuple(dict.fromkeys((*channels, *subs)))

    async def _subscribe_server_side(
        self,
        channels: tuple[str, ...],
        positions: dict[str, SubscribeRequest],
        options: Mapping[str, ServerSubscription],
    ) -> dict[str, SubscribeResult]:
        results: dict[str, SubscribeResult] = {}
        for channel in channels:
            known = positions.get(channel)
            request = SubscribeRequest(
                channel=channel,
                recover=known.recover if known else False,
                offset=known.offset if known else 0,
                epoch=known.epoch if known else "",
            )
            subscribed = await self._node.subscribe_client(
                self, request, server_side=True, options=options.get(channel)
            )
            if subscribed is None:
                break
            results[channel] = subscribed.result
            for publication in subscribed.live:
                self._send(Reply(push=Push(channel=channel, pub=publication)))
        return results

    def _connect_result(
        self, expire_at: int | None, data: Raw | None, subs: dict[str, SubscribeResult]
    ) -> ConnectResult:
        ttl = self._set_expiry(expire_at)
        if self._node.proxies.refresh_enabled:
            ttl = None  # the server refreshes through the proxy: the client never does
        return ConnectResult(
            client=self.id,
            version=self._node.version,
            expires=ttl is not None,
            ttl=ttl or 0,
            data=data or EMPTY,
            subs=subs or None,
            ping=self._settings.ping_interval,
            pong=not self._unidirectional,
            session=self.session,
            node=self._node.id if self._emulation else "",
        )

    def _set_expiry(self, expire_at: float | None) -> int | None:
        """Arm (or disarm) the connection's expiry; return the ttl to announce."""
        clamped = expiry.clamp_expire_at(expire_at)  # ValueError first: nothing changes
        if self._expire_timer is not None:
            self._expire_timer.cancel()
            self._expire_timer = None
        self._expire_at = clamped
        if clamped is None:
            return None
        self._schedule_expire()
        return expiry.ttl(clamped, self._node.clock())

    def server_refresh(self, expire_at: int | None, info: Raw | None) -> None:
        """The server API's refresh: a new expiry (``None``: never) and maybe new
        connection info; the client is told with a ``refresh`` push."""
        if self.state is not ClientState.CONNECTED:
            return
        if info is not None:
            self._conn_info = info
        ttl = self._set_expiry(expire_at)
        self.push(Push(refresh=Refresh(expires=ttl is not None, ttl=ttl or 0)))

    def proxy_refreshed(self, expire_at: int, info: Raw | None) -> None:
        """The refresh proxy moved the expiry (and maybe replaced the info); the client
        is not told, as it does not refresh itself."""
        if self.state is not ClientState.CONNECTED:
            return
        if info is not None:
            self._conn_info = info
        self._set_expiry(expire_at)

    async def _handle_refresh(self, token: str) -> RefreshResult:
        expire_at = await self._node.auth.refresh(self, token)
        ttl = self._set_expiry(expire_at)
        return RefreshResult(
            client=self.id, version=self._node.version, expires=ttl is not None, ttl=ttl or 0
        )

    async def _handle_subscribe(self, command_id: int, request: SubscribeRequest) -> None:
        channel = _channel(request.channel)
        if channel in self.channels:
            raise ERROR_ALREADY_SUBSCRIBED
        if len(self.channels) >= self._settings.channel_limit:
            raise ERROR_LIMIT_EXCEEDED
        subscribed = await self._node.subscribe_client(self, request)
        if subscribed is None or self.closed:
            return
        # No await since the hub took the subscription: the reply precedes every push.
        self._send(Reply(id=command_id, subscribe=subscribed.result))
        for publication in subscribed.live:
            self._send(Reply(push=Push(channel=channel, pub=publication)))
        await self._node.after_subscribe(self, channel)

    def _handle_sub_refresh(self, channel: str, token: str) -> SubRefreshResult:
        context = self.channels.get(_channel(channel))
        if context is None:
            raise ERROR_PERMISSION_DENIED
        if not token:
            raise ERROR_BAD_REQUEST
        credentials = self._node.auth.verify_subscription(token)
        # A token for another channel, user or connection: refused, as on subscribe.
        if credentials.channel != channel or credentials.user != self.user:
            raise ERROR_PERMISSION_DENIED
        if credentials.client and credentials.client != self.id:
            raise ERROR_PERMISSION_DENIED
        context.expire_at = expiry.clamp_expire_at(credentials.expire_at)
        self.schedule_subscription_expiry(channel, context)
        if context.expire_at is None:
            return SubRefreshResult()
        return SubRefreshResult(expires=True, ttl=expiry.ttl(context.expire_at, self._node.clock()))

    # Subscription events, from the hub and the timers.

    def channel_info(self, channel: str, context: ChannelContext | None = None) -> ClientInfo:
        """This client as seen in ``channel``: presence, join/leave, publications."""
        chan_info = context.info if context is not None else EMPTY
        return ClientInfo(
            user=self.user, client=self.id, conn_info=self._conn_info or EMPTY, chan_info=chan_info
        )

    def insufficient_state(self, channel: str) -> None:
        """The hub saw a gap in ``channel``: make the client recover it."""
        context = self.channels.get(channel)
        if context is None:
            return
        if context.server_side:
            self.disconnect(DISCONNECT_INSUFFICIENT_STATE)
            return
        self._unsubscribe_push(channel, UnsubscribeCode.INSUFFICIENT_STATE, "insufficient state")

    def schedule_subscription_expiry(self, channel: str, context: ChannelContext) -> None:
        if context.expire_timer is not None:
            context.expire_timer.cancel()
            context.expire_timer = None
        if context.expire_at is None:
            return
        grace = self._settings.expired_close_delay
        delay = expiry.timer_delay(context.expire_at, self._node.clock(), grace)
        context.expire_timer = self._node.loop.call_later(
            delay, self._on_subscription_expired, channel, context
        )

    def _on_subscription_expired(self, channel: str, context: ChannelContext) -> None:
        context.expire_timer = None
        if self.channels.get(channel) is not context or context.expire_at is None:
            return
        if context.expire_at > self._node.clock():
            self.schedule_subscription_expiry(channel, context)
        elif context.proxy_refresh:
            self._node.proxies.refresh_subscription_later(self, channel, context)
        else:
            self.expire_subscription(channel, context)

    def expire_subscription(self, channel: str, context: ChannelContext) -> None:
        """End an expired subscription: unsubscribe 2501, or 3006 for a server-side one."""
        if self.channels.get(channel) is not context:
            return
        if context.server_side:
            self.disconnect(DISCONNECT_SUBSCRIPTION_EXPIRED)
        else:
            self._unsubscribe_push(channel, UnsubscribeCode.EXPIRED, "subscription expired")

    def _unsubscribe_push(self, channel: str, code: int, reason: str) -> None:
        self._node.drop_subscription(self, channel)
        self._send(
            Reply(push=Push(channel=channel, unsubscribe=Unsubscribe(code=code, reason=reason)))
        )


_PONG = Command()


def _channel(channel: str) -> str:
    """A command naming no channel is malformed."""
    if not channel:
        raise DISCONNECT_BAD_REQUEST
    return channel


def _payload_or_none(value: Any) -> Raw | None:
    return None if value is None else to_raw(value)
