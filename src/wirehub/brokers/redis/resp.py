"""A lean Redis connection: RESP2 parsed by hiredis in ``data_received``, commands
pipelined without waiting, replies matched to their commands in order.

redis-py's connections read each reply with a coroutine (and, for commands, a timer);
at tens of thousands of replies per second that is most of the cost. Here a reply
costs a ``hiredis.Reader.gets()`` and a ``Future.set_result``, and a PUB/SUB message a
callback, in the event-loop callback that received the bytes. redis-py still finds the
address (Sentinel, Cluster topology) and routes Cluster commands.

Rules:

1. Commands are written as they are sent (the caller batches them); each gets a future,
   resolved in the order Redis answers, which is the order they were sent.
2. An error reply fails only its own command (``ResponseError``, ``NoScriptError``,
   ``AuthenticationError``); the connection stays in step.
3. In PUB/SUB mode every reply goes to ``on_push`` instead: the caller matches
   confirmations itself.
4. The connection ending, for any reason, fails every pending future with
   ``ConnectionError`` and resolves :attr:`RespConnection.closed`; it is never reused.
5. No per-command timer: the owner bounds waits as a whole (``oldest_pending``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoScriptError,
    RedisError,
    ResponseError,
)

from wirehub.brokers.redis.addresses import ShardSpec, TLSOptions

__all__ = ["Prefix", "RespConnection", "open_connection", "ssl_context"]

Args = Sequence[Any]


def _error(reply: hiredis.ReplyError) -> RedisError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith(("NOAUTH", "WRONGPASS")):
        return AuthenticationError(message)
    return ResponseError(message)


class RespConnection(asyncio.Protocol):
    def __init__(self, on_push: Callable[[Any], None] | None = None) -> None:
        self._on_push = on_push
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._writes: deque[tuple[int, float]] = deque()
        """Per write with commands still unanswered: how many commands had been sent
        once it was written, and when (monotonic)."""
        self._sent = 0
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        """Resolved (never failed) when the connection has ended."""
        self.error: BaseException | None = None
        """Why it ended."""
        self.address: tuple[str, int] | None = None
        """Where it goes (None: a Unix socket)."""

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            on_push = self._on_push
            if on_push is not None:
                while (reply := reader.gets()) is not False:
                    on_push(reply)
                return
            pending = self._pending
            while (reply := reader.gets()) is not False:
                if not pending:
                    self.abort(ConnectionError("a reply nobody asked for"))
                    return
                future = pending.popleft()
                if future.done():
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(_error(reply))
                else:
                    future.set_result(reply)
        except hiredis.ProtocolError as exc:
            self.abort(ConnectionError(f"protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.error is None:
            self.error = exc or ConnectionError("connection closed by the server")
        pending, self._pending = self._pending, deque()
        self._writes.clear()
        for future in pending:
            if not future.done():
                future.set_exception(ConnectionError(f"connection lost: {self.error}"))
        if not self.closed.done():
            self.closed.set_result(None)

    # Use.

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def send(
        self,
        commands: Sequence[Args],
        futures: Sequence[asyncio.Future[Any]] | None = None,
    ) -> Sequence[asyncio.Future[Any]]:
        """Write ``commands`` at once; return one future per command for its reply
        (``futures``: resolve these instead). In PUB/SUB mode replies go to ``on_push``
        and no future is returned."""
        data = b"".join([hiredis.pack_command(tuple(args)) for args in commands])
        if self._on_push is not None:
            self._transport_or_raise().write(data)
            return ()
        if futures is None:
            loop = asyncio.get_running_loop()
            futures = [loop.create_future() for _ in commands]
        self.write(data, futures)
        return futures

    def write(self, data: bytes, futures: Sequence[asyncio.Future[Any]]) -> None:
        """Write commands packed already (``hiredis.pack_command``), one future per
        command for its reply."""
        self._transport_or_raise().write(data)
        self._pending.extend(futures)
        self._sent += len(futures)
        self._writes.append((self._sent, time.monotonic()))

    def _transport_or_raise(self) -> asyncio.Transport:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionError(f"connection closed: {self.error}")
        return transport

    async def call(self, *args: Any) -> Any:
        """One command and its reply (setup commands; the hot path uses :meth:`write`)."""
        (future,) = self.send([args])
        return await future

    def oldest_pending(self) -> float | None:
        """When the oldest unanswered command was sent (monotonic), if any."""
        writes = self._writes
        answered = self._sent - len(self._pending)
        while writes and writes[0][0] <= answered:
            writes.popleft()
        return writes[0][1] if writes else None

    def abort(self, error: BaseException) -> None:
        """End the connection now (a timeout, a protocol error, closing)."""
        if self.error is None:
            self.error = error
        if self._transport is not None:
            self._transport.abort()


def _bulk(value: bytes | str | int) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Prefix:
    """A command whose arguments but the last two are always the same: they are packed
    once, and ``pack`` adds the last two for the price of one format (where
    ``hiredis.pack_command`` of the whole command converts and copies every argument
    again: 2 µs for a publish script call, against 0.4)."""

    __slots__ = ("_head", "args")

    def __init__(self, *args: bytes | str | int) -> None:
        self.args = args
        self._head = b"*%d\r\n" % (len(args) + 2) + b"".join(map(_bulk, args))

    def pack(self, first: bytes, second: bytes) -> bytes:
        return b"%s$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            self._head,
            len(first),
            first,
            len(second),
            second,
        )


def ssl_context(tls: TLSOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file or None, cadata=tls.ca_data or None)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.certfile:
        context.load_cert_chain(tls.certfile, tls.keyfile or None)
    return context


async def open_connection(
    spec: ShardSpec,
    host: str,
    port: int,
    *,
    on_push: Callable[[Any], None] | None = None,
) -> RespConnection:
    """Connect to ``host:port`` (or ``spec.unix_path``) and authenticate, select the
    database and name the connection as ``spec`` says; within the timeouts."""
    loop = asyncio.get_running_loop()
    context = None if spec.tls is None else ssl_context(spec.tls)
    async with asyncio.timeout(spec.connect_timeout):
        if spec.unix_path:
            _, connection = await loop.create_unix_connection(
                lambda: RespConnection(), spec.unix_path
            )
        else:
            _, connection = await loop.create_connection(
                lambda: RespConnection(), host, port, ssl=context
            )
    try:
        async with asyncio.timeout(spec.io_timeout):
            if spec.password:
                auth = ("AUTH", spec.username, spec.password) if spec.username else None
                await connection.call(*(auth or ("AUTH", spec.password)))
            if spec.db and spec.kind != "cluster":
                await connection.call("SELECT", spec.db)
            if spec.client_name:
                await connection.call("CLIENT", "SETNAME", spec.client_name)
    except BaseException:
        connection.abort(ConnectionError("setup failed"))
        raise
    connection._on_push = on_push  # from now on, in PUB/SUB mode when asked
    connection.address = None if spec.unix_path else (host, port)
    return connection
