"""A PUB/SUB connection that stays subscribed: reconnects, resubscribes, and says when
messages may have been lost.

Rules:

1. One dedicated connection; messages are delivered in the order Redis sent them (so a
   channel's publications stay in publish order), from the callback that received them.
2. ``subscribe`` returns once Redis confirmed every channel on a live connection, and
   raises at once when there is none: the caller's subscribe fails rather than
   pretending. Subscribes issued in one tick leave as one SUBSCRIBE.
3. ``unsubscribe`` is lazy: the UNSUBSCRIBE leaves after ``unsubscribe_delay``, and
   only if nobody wanted the channel again meanwhile (churn costs nothing). A channel
   with a subscribe in progress is not released.
4. Liveness: after ``ping_interval`` of silence the connection is PINGed; silence for
   ``io_timeout`` more ends it.
5. When a live connection ends, ``on_lost`` is called at once with every channel it
   carried (publications may have been lost), pending subscribes fail, and the loop
   reconnects with jittered exponential backoff (reset once a connection is back),
   resubscribing every wanted channel before it takes new subscribes.
6. Sharded (SSUBSCRIBE, Redis Cluster 7+): the connection goes to the master of one
   slot, and its channels all live in that slot. A ``service`` channel is subscribed
   first on every connection. An ``sunsubscribe`` nobody asked for (Redis sends one per
   channel when their slot moves to another master) or an error reply (``MOVED``: the
   slot is not, or no longer, served there) ends the connection as in rule 5, and the
   reconnection asks where the slot lives now.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis

from wirehub.brokers.redis.resp import RespConnection

__all__ = ["Backoff", "PubSub", "PubSubUnavailable"]

logger = logging.getLogger("wirehub.redis")

_RESUBSCRIBE_BATCH = 512


@dataclass(frozen=True, slots=True)
class _Mode:
    """The commands and push kinds of classic or sharded PUB/SUB."""

    subscribe: bytes
    unsubscribe: bytes
    message: bytes
    subscribed: bytes
    unsubscribed: bytes
    sharded: bool


_CLASSIC = _Mode(b"SUBSCRIBE", b"UNSUBSCRIBE", b"message", b"subscribe", b"unsubscribe", False)
_SHARDED = _Mode(b"SSUBSCRIBE", b"SUNSUBSCRIBE", b"smessage", b"ssubscribe", b"sunsubscribe", True)


class PubSubUnavailable(ConnectionError):
    """There is no live PUB/SUB connection right now."""


class Backoff:
    """Exponential backoff with jitter: the n-th delay is drawn from [d/2, d], with
    d = min(cap, base * 2**n)."""

    def __init__(self, base: float = 0.25, cap: float = 5.0) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * float(1 << self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return delay / 2 + random.uniform(0, delay / 2)

    def reset(self) -> None:
        self.attempt = 0


class _Link:
    """One connection, and what was sent on it. Thrown away when it ends."""

    def __init__(self, on_message: Callable[[bytes, bytes], None], mode: _Mode = _CLASSIC) -> None:
        self.connection: RespConnection | None = None
        self.on_message = on_message
        self.mode = mode
        self.subscribed: set[bytes] = set()
        """Channels whose last command on this connection was SUBSCRIBE."""
        self.acks: dict[bytes, deque[asyncio.Future[None] | None]] = {}
        """Per channel, the confirmations still due: a future per SUBSCRIBE."""
        self.outbox: list[tuple[bytes, bytes]] = []
        self.flush_scheduled = False
        self.last_read = time.monotonic()
        self.broken: BaseException | None = None

    def subscribe(self, channel: bytes) -> asyncio.Future[None] | None:
        """Subscribe unless already; the future (None: done) resolves on confirmation."""
        if channel in self.subscribed:
            pending = [ack for ack in self.acks.get(channel, ()) if ack is not None]
            return pending[-1] if pending else None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self.subscribed.add(channel)
        self.acks.setdefault(channel, deque()).append(future)
        self._send(self.mode.subscribe, channel)
        return future

    def unsubscribe(self, channel: bytes) -> None:
        if channel not in self.subscribed:
            return
        self.subscribed.discard(channel)
        self.acks.setdefault(channel, deque()).append(None)
        self._send(self.mode.unsubscribe, channel)

    def _send(self, command: bytes, channel: bytes) -> None:
        self.outbox.append((command, channel))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Send what the tick queued, consecutive runs of one command together."""
        self.flush_scheduled = False
        outbox, self.outbox = self.outbox, []
        commands: list[list[bytes]] = []
        for command, channel in outbox:
            if commands and commands[-1][0] == command:
                commands[-1].append(channel)
            else:
                commands.append([command, channel])
        self.send(*commands)

    def send(self, *commands: Sequence[Any]) -> None:
        if self.broken is not None or self.connection is None:
            return
        try:
            self.connection.send(commands)
        except Exception as exc:
            self.break_(exc)

    def handle(self, response: Any) -> None:
        """A reply of the PUB/SUB connection, as it arrives."""
        self.last_read = time.monotonic()
        if self.broken is not None:
            return  # the connection is ending; its channels are reported lost
        mode = self.mode
        if not isinstance(response, list) or not response:
            if mode.sharded and isinstance(response, hiredis.ReplyError):
                self.end(ConnectionError(f"Redis refused a subscription: {response}"))
            return  # +PONG outside subscribed mode
        kind = response[0]
        if kind == mode.message and len(response) == 3:
            self.on_message(response[1], response[2])
        elif kind == mode.subscribed or kind == mode.unsubscribed:
            acks = self.acks.get(response[1])
            if mode.sharded and kind == mode.unsubscribed and not (acks and acks[0] is None):
                name = response[1].decode(errors="replace")
                self.end(ConnectionError(f"Redis unsubscribed {name!r}: its slot moved"))
                return
            if acks:
                ack = acks.popleft()
                if not acks:
                    del self.acks[response[1]]
                if ack is not None and not ack.done():
                    ack.set_result(None)

    async def watch(self, ping_interval: float, io_timeout: float) -> None:
        """Return when the connection has been silent too long."""
        while True:
            await asyncio.sleep(ping_interval / 2)
            if self.broken is not None:
                return
            silent = time.monotonic() - self.last_read
            if silent >= ping_interval + io_timeout:
                raise TimeoutError(f"no answer to PING within {io_timeout:g} s")
            if silent >= ping_interval:
                self.send((b"PING",))

    def end(self, exc: BaseException) -> None:
        """End the connection from here (what Redis sent says it is no good)."""
        self.break_(exc)
        if self.connection is not None:
            self.connection.abort(exc)

    def break_(self, exc: BaseException) -> None:
        """The connection is dead: fail every pending confirmation."""
        if self.broken is None:
            self.broken = exc
        for acks in self.acks.values():
            for ack in acks:
                if ack is not None and not ack.done():
                    ack.set_exception(PubSubUnavailable(f"PUB/SUB connection lost: {exc}"))
        self.acks.clear()


class PubSub:
    """Keeps a set of channels subscribed on one dedicated connection.

    Args:
        open_connection: makes a new connection, in PUB/SUB mode with the callback.
        name: for logs (which Redis).
        on_message: called with the Redis channel and the message, in order.
        on_lost: called with the channels a connection carried when it ended.
        sharded: SSUBSCRIBE (rule 6); every channel must be in one slot.
        service: subscribed first on every connection, never reported lost.
    """

    def __init__(
        self,
        open_connection: Callable[[Callable[[Any], None]], Awaitable[RespConnection]],
        *,
        name: str,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[list[bytes]], None],
        connect_timeout: float,
        io_timeout: float,
        ping_interval: float = 1.0,
        unsubscribe_delay: float = 1.0,
        sharded: bool = False,
        service: bytes = b"",
    ) -> None:
        self._open = open_connection
        self._mode = _SHARDED if sharded else _CLASSIC
        self._service = service
        self.name = name
        self._on_message = on_message
        self._on_lost = on_lost
        self._connect_timeout = connect_timeout
        self._io_timeout = io_timeout
        self._ping_interval = ping_interval
        self._unsubscribe_delay = unsubscribe_delay
        self._wanted: set[bytes] = set()
        self._holds: dict[bytes, int] = {}
        self._leaving: set[bytes] = set()
        self._leave_timer: asyncio.TimerHandle | None = None
        self._link: _Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()
        self._closing = False
        self.backoff = Backoff()

    @property
    def live(self) -> bool:
        return self._link is not None

    async def start(self, channels: Sequence[bytes] = ()) -> None:
        """Connect (waiting for the first attempt only) and keep connected."""
        self._wanted.update(channels)
        self._task = asyncio.create_task(self._run(), name=f"wirehub pubsub {self.name}")
        await self._first_attempt.wait()

    async def close(self) -> None:
        self._closing = True
        if self._leave_timer is not None:
            self._leave_timer.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def subscribe(self, channels: Sequence[bytes]) -> None:
        """Return once every channel is subscribed on a live connection.

        Raises:
            PubSubUnavailable: no live connection, or it ended meanwhile.
            TimeoutError: Redis did not confirm within ``io_timeout``.
        """
        for channel in channels:
            self._wanted.add(channel)
            self._leaving.discard(channel)
            self._holds[channel] = self._holds.get(channel, 0) + 1
        try:
            link = self._link
            if link is None:
                raise PubSubUnavailable(f"no PUB/SUB connection to {self.name}")
            pending = [f for f in map(link.subscribe, channels) if f is not None]
            if pending:
                async with asyncio.timeout(self._io_timeout):
                    await asyncio.gather(*(asyncio.shield(f) for f in pending))
        finally:
            for channel in channels:
                left = self._holds[channel] - 1
                if left:
                    self._holds[channel] = left
                else:
                    del self._holds[channel]

    def unsubscribe(self, channels: Sequence[bytes]) -> list[bytes]:
        """Stop wanting ``channels``; return those released (not held by a subscribe
        in progress). Their UNSUBSCRIBE leaves after the delay."""
        released = [channel for channel in channels if channel not in self._holds]
        for channel in released:
            self._wanted.discard(channel)
            self._leaving.add(channel)
        if released and self._leave_timer is None:
            loop = asyncio.get_running_loop()
            self._leave_timer = loop.call_later(self._unsubscribe_delay, self._leave)
        return released

    def _leave(self) -> None:
        self._leave_timer = None
        leaving, self._leaving = self._leaving, set()
        link = self._link
        if link is None:
            return
        for channel in leaving:
            if channel not in self._wanted:
                link.unsubscribe(channel)

    async def _run(self) -> None:
        while True:
            try:
                await self._connect_and_serve()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "PUB/SUB connection to %s: %s: %s", self.name, type(exc).__name__, exc
                )
            finally:
                self._first_attempt.set()
            await asyncio.sleep(self.backoff.next())

    async def _connect_and_serve(self) -> None:
        link = _Link(self._on_message, self._mode)
        async with asyncio.timeout(self._connect_timeout + self._io_timeout):
            connection = await self._open(link.handle)
        link.connection = connection
        closed = asyncio.ensure_future(_closed(connection))
        watchdog = asyncio.ensure_future(link.watch(self._ping_interval, self._io_timeout))
        try:
            await self._resubscribe(link, closed)
            self._link = link
            self.backoff.reset()
            self._first_attempt.set()
            logger.info("PUB/SUB connected to %s (%d channels)", self.name, len(self._wanted))
            done, _ = await asyncio.wait({closed, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises why the connection ended
            raise ConnectionError(f"connection closed: {connection.error or link.broken}")
        except BaseException as exc:
            link.break_(exc)
            raise
        finally:
            was_live = self._link is link
            self._link = None
            connection.abort(ConnectionError("PUB/SUB connection ended"))
            closed.cancel()
            watchdog.cancel()
            await asyncio.gather(closed, watchdog, return_exceptions=True)
            if was_live and not self._closing:
                lost = (link.subscribed | self._wanted) - {self._service}
                self._on_lost(sorted(lost))

    async def _resubscribe(self, link: _Link, closed: asyncio.Future[None]) -> None:
        wanted = list(self._wanted)
        if self._service:
            wanted.insert(0, self._service)  # first in the first SUBSCRIBE
        for start in range(0, len(wanted), _RESUBSCRIBE_BATCH):
            batch = wanted[start : start + _RESUBSCRIBE_BATCH]
            pending = [f for f in map(link.subscribe, batch) if f is not None]
            if not pending:
                continue
            confirmed: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*pending))
            waiting: set[asyncio.Future[Any]] = {closed, confirmed}
            try:
                async with asyncio.timeout(self._io_timeout):
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                confirmed.cancel()
            if closed.done():
                raise ConnectionError("connection closed while resubscribing")
            confirmed.result()
        # A PING proves the link works even with nothing to subscribe.
        link.send((b"PING",))


async def _closed(connection: RespConnection) -> None:
    await asyncio.shield(connection.closed)


def _retrieve(future: asyncio.Future[None]) -> None:
    # A confirmation nobody waits for any more (its subscribe timed out) may fail later.
    if not future.cancelled():
        future.exception()
