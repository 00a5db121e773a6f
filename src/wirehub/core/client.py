"""One connection's state machine: commands in, replies and pushes out.

Rules (``centrifugo-protocol.md`` §3, §8):

1. States: CONNECTING -> CONNECTED -> CLOSED, never backwards.
2. In CONNECTING only ``connect`` is allowed; anything else, a second connect, or any
   command after a failed connect -> disconnect 3501. No connect within
   ``stale_close_delay`` -> 3502.
3. The commands of a frame, and of successive frames, are handled strictly in order,
   one at a time; each is answered by its id. An empty command is a pong.
4. Errors: a :class:`ClientError` becomes an error reply and the connection stays; a
   :class:`Disconnect` closes it; anything else from application code is logged with
   the client id and becomes error 100 (temporary).
5. Output goes through one bounded queue, written once per event-loop tick. Past
   ``queue_max_size`` bytes the client is closed with 3008 "slow" and nothing else
   waits on it.
6. Every ``ping_interval`` the server sends a ping; the pong is due within
   ``pong_timeout``, else 3012.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from msgspec import Raw

from wirehub.core.payload import EMPTY, to_raw
from wirehub.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_EXPIRED,
    DISCONNECT_NO_PONG,
    DISCONNECT_SLOW,
    DISCONNECT_STALE,
    DISCONNECT_WRITE_ERROR,
    ERROR_ALREADY_SUBSCRIBED,
    ERROR_BAD_REQUEST,
    ERROR_INTERNAL,
    ERROR_LIMIT_EXCEEDED,
    ERROR_METHOD_NOT_FOUND,
    ERROR_NOT_AVAILABLE,
    ClientError,
    Disconnect,
)
from wirehub.protocol.codes import DisconnectCode
from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.types import (
    ClientInfo,
    Command,
    ConnectResult,
    Error,
    PublishResult,
    Reply,
    SubscribeResult,
    UnsubscribeResult,
)

if TYPE_CHECKING:
    from wirehub.core.node import Node
    from wirehub.protocol.codec import Codec
    from wirehub.transports.base import Transport

__all__ = ["Client", "ClientState"]

logger = logging.getLogger("wirehub.client")

DISCONNECT_CLOSED = Disconnect(DisconnectCode.CONNECTION_CLOSED, "connection closed")

# Frames waiting to be handled before the transport stops reading, and where it resumes.
_INBOX_HIGH = 256
_INBOX_LOW = 64


class ClientState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class Client:
    """A connection as the core sees it. Created by :meth:`Node.attach`."""

    def __init__(self, node: Node, transport: Transport, codec: Codec) -> None:
        self.id = str(uuid.uuid4())
        self.codec = codec
        self.transport = transport
        self.user = ""
        self.state = ClientState.CONNECTING
        self.channels: dict[str, Raw] = {}
        """Subscribed channels and this client's channel info in each."""
        self._node = node
        self._settings = node.config.client
        self._conn_info: Raw | None = None
        self._connect_failed = False
        self._inbox: deque[Command] = deque()
        self._task: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._queue: list[bytes] = []
        self._queued = 0
        self._flush_scheduled = False
        self._writable = True
        self._expire_at: float | None = None
        loop = node.loop
        self._stale_timer: asyncio.TimerHandle | None = loop.call_later(
            self._settings.stale_close_delay, self._on_stale
        )
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._expire_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Client {self.id} user={self.user!r} {self.state.value}>"

    @property
    def closed(self) -> bool:
        return self.state is ClientState.CLOSED

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
        self._inbox.extend(commands)
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

    # Output.

    def enqueue(self, data: bytes) -> None:
        """Queue one encoded reply or push; it is written at the end of this tick."""
        if self.state is ClientState.CLOSED:
            return
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > self._settings.queue_max_size:
            logger.info("client %s is too slow: %d bytes queued", self.id, self._queued)
            self.disconnect(DISCONNECT_SLOW)
        elif not self._flush_scheduled and self._writable:
            self._flush_scheduled = True
            self._node.flusher.schedule(self)

    def flush(self) -> None:
        """Write everything queued as one frame."""
        self._flush_scheduled = False
        if not self._queue or not self._writable:
            return
        frame = self.codec.join(self._queue)
        self._queue = []
        self._queued = 0
        try:
            self.transport.write_frame(frame)
        except Exception:
            # Raising here would also skip every other connection flushed this tick.
            logger.warning("client %s: write failed", self.id, exc_info=True)
            self.disconnect(DISCONNECT_WRITE_ERROR)

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

    def _send(self, reply: Reply) -> None:
        self.enqueue(self.codec.encode_reply(reply))

    # Timers.

    def _on_stale(self) -> None:
        self._stale_timer = None
        if self.state is ClientState.CONNECTING:
            logger.info("client %s sent no connect in time", self.id)
            self.disconnect(DISCONNECT_STALE)

    def _on_ping(self) -> None:
        self.enqueue(self.codec.ping)
        if self._pong_timer is None:
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
            self.disconnect(DISCONNECT_EXPIRED)
        else:
            self._schedule_expire()  # fired early (loop vs wall clock): check again

    def _schedule_expire(self) -> None:
        assert self._expire_at is not None
        left = max(0.0, self._expire_at - self._node.clock())
        delay = left + self._settings.expired_close_delay
        self._expire_timer = self._node.loop.call_later(delay, self._on_expire)

    # Commands.

    async def _run_inbox(self) -> None:
        try:
            while self._inbox and self.state is not ClientState.CLOSED:
                await self._handle(self._inbox.popleft())
                if self._reading_paused and len(self._inbox) <= _INBOX_LOW:
                    self._reading_paused = False
                    self.transport.resume_reading()
        finally:
            self._task = None

    async def _handle(self, command: Command) -> None:
        try:
            await self._dispatch(command)
        except ClientError as exc:
            self._reply_error(command.id, exc)
        except Disconnect as exc:
            self.disconnect(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("client %s: error handling command %d", self.id, command.id)
            self._reply_error(command.id, ERROR_INTERNAL)

    def _reply_error(self, command_id: int, exc: ClientError) -> None:
        # Drop the traceback: well-known errors are shared instances, and a kept
        # traceback would grow with every raise and pin frames in memory.
        exc.__traceback__ = None
        exc.__context__ = None
        if command_id == 0:
            return
        error = Error(code=exc.code, message=exc.message, temporary=exc.temporary)
        self._send(Reply(id=command_id, error=error))

    async def _dispatch(self, command: Command) -> None:
        if command.connect is not None:
            await self._handle_connect(command)
            return
        if self.state is not ClientState.CONNECTED:
            raise DISCONNECT_BAD_REQUEST
        if command.id == 0:
            if command.send is not None:
                return  # client-to-server messages get a handler with the RPC work
            if command == _PONG:
                self._on_pong()
                return
            raise DISCONNECT_BAD_REQUEST
        if command.subscribe is not None:
            await self._handle_subscribe(command)
        elif command.unsubscribe is not None:
            await self._handle_unsubscribe(command)
        elif command.publish is not None:
            await self._handle_publish(command)
        elif (
            command.presence is not None
            or command.presence_stats is not None
            or command.history is not None
        ):
            raise ERROR_NOT_AVAILABLE
        elif command.rpc is not None:
            raise ERROR_METHOD_NOT_FOUND
        elif command.refresh is not None or command.sub_refresh is not None:
            raise ERROR_NOT_AVAILABLE
        else:
            raise DISCONNECT_BAD_REQUEST

    async def _handle_connect(self, command: Command) -> None:
        request = command.connect
        if self.state is not ClientState.CONNECTING or self._connect_failed or request is None:
            raise DISCONNECT_BAD_REQUEST
        try:
            credentials, data = await self._node.authenticate(self, request)
        except Exception:
            # The SDK closes and retries; any further command from here is a 3501.
            self._connect_failed = True
            raise
        if self.closed:  # the connection ended while the handler ran
            return
        self.user = credentials.user
        self._conn_info = _payload_or_none(credentials.info)
        self.state = ClientState.CONNECTED
        if self._stale_timer is not None:
            self._stale_timer.cancel()
            self._stale_timer = None
        self._node.client_connected(self)
        self._send(Reply(id=command.id, connect=self._connect_result(credentials.expire_at, data)))
        self._ping_timer = self._node.loop.call_later(self._settings.ping_interval, self._on_ping)
        await self._node.notify_connect(self)

    def _connect_result(self, expire_at: int | None, data: Raw | None) -> ConnectResult:
        result = ConnectResult(
            client=self.id,
            version=self._node.version,
            ping=self._settings.ping_interval,
            pong=True,
            data=data or EMPTY,
        )
        if expire_at is None:
            return result
        self._expire_at = expire_at
        ttl = max(0, int(expire_at - self._node.clock()))
        self._schedule_expire()
        return ConnectResult(
            client=result.client,
            version=result.version,
            expires=True,
            ttl=ttl,
            ping=result.ping,
            pong=True,
            data=result.data,
        )

    async def _handle_subscribe(self, command: Command) -> None:
        request = command.subscribe
        assert request is not None
        channel = request.channel
        if not channel:
            raise DISCONNECT_BAD_REQUEST
        if channel in self.channels:
            raise ERROR_ALREADY_SUBSCRIBED
        if len(self.channels) >= self._settings.channel_limit:
            raise ERROR_LIMIT_EXCEEDED
        reply = await self._node.authorize_subscribe(self, request)
        if self.state is ClientState.CLOSED or channel in self.channels:
            return
        await self._node.add_subscription(self, channel, reply.channel_info)
        self._send(Reply(id=command.id, subscribe=SubscribeResult(data=reply.data)))

    async def _handle_unsubscribe(self, command: Command) -> None:
        request = command.unsubscribe
        assert request is not None
        if not request.channel:
            raise DISCONNECT_BAD_REQUEST
        await self._node.remove_subscription(self, request.channel)
        self._send(Reply(id=command.id, unsubscribe=UnsubscribeResult()))

    async def _handle_publish(self, command: Command) -> None:
        request = command.publish
        assert request is not None
        if not request.channel or not request.data:
            raise ERROR_BAD_REQUEST
        await self._node.client_publish(self, request)
        self._send(Reply(id=command.id, publish=PublishResult()))

    def publication_info(self, channel: str) -> ClientInfo:
        """The ``info`` attached to this client's publications into ``channel``."""
        chan_info = self.channels.get(channel)
        if not chan_info:
            return self.info
        return ClientInfo(
            user=self.user, client=self.id, conn_info=self._conn_info or EMPTY, chan_info=chan_info
        )


_PONG = Command()


def _payload_or_none(value: Any) -> Raw | None:
    return None if value is None else to_raw(value)
