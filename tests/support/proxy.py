"""A TCP proxy in the test's event loop, for cutting connections as a network would.

``cut()`` resets every connection going through the proxy, on both sides at once: the
peers get a TCP RST, no FIN and no WebSocket close frame, so the server and the SDK
both see an abnormal end (1006), not a clean close. ``down()`` also refuses new
connections (reset right after accept) until its block ends, so that what the test
does inside it surely happens while the client is cut off::

    async with TcpProxy(server_port) as proxy:
        client = Client(proxy.ws_url(server_url))
        ...
        with proxy.down():
            await node.publish(...)  # missed by the client
        # the SDK reconnects through the proxy now

With several target ports it is a round-robin balancer: each new connection goes to
the next target, and to the one after when that refuses it (a dead node), as a load
balancer with passive health checks does; ``connections_to`` counts them by port.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

__all__ = ["TcpProxy"]

_CHUNK = 65536
# SO_LINGER on, timeout 0: close() sends RST at once and drops unsent data.
_RESET = struct.pack("ii", 1, 0)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    writer.transport.abort()


class _Pair:
    """One proxied connection: the client's socket and ours to the target."""

    def __init__(self, downstream: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.writers = (downstream, upstream)
        self.pumps_left = 2

    def reset(self) -> None:
        for writer in self.writers:
            _reset(writer)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class TcpProxy:
    """Listens on 127.0.0.1 and a free port; forwards each connection to
    ``target_host:target_port``."""

    def __init__(self, target_port: int | Sequence[int], target_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        ports = [target_port] if isinstance(target_port, int) else list(target_port)
        self.target_port = ports[0]
        """Where connections go (with one target; set it to move the proxy)."""
        self.round_robin = ports if len(ports) > 1 else None
        self._next = 0
        self.connections_to: Counter[int] = Counter()
        """Connections forwarded, by target port."""
        self.port = 0
        self.accepted = 0
        """Connections accepted so far (refused ones included)."""
        self.cuts = 0
        """Connections reset by :meth:`cut`."""
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refusing = False

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def ws_url(self, url: str) -> str:
        """``url`` (a server's ws:// URL) with this proxy's address instead."""
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    def cut(self) -> int:
        """Reset every connection now open through the proxy; return how many."""
        pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            pair.reset()
        self.cuts += len(pairs)
        return len(pairs)

    @contextmanager
    def down(self) -> Iterator[None]:
        """Cut every connection, and reset new ones as soon as they arrive, until the
        block ends."""
        self._refusing = True
        self.cut()
        try:
            yield
        finally:
            self._refusing = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refusing:
            _reset(writer)
            return
        upstream = await self._connect_upstream()
        if upstream is None:
            _reset(writer)
            return
        up_reader, up_writer = upstream
        pair = _Pair(writer, up_writer)
        if self._refusing:  # went down while connecting to the target
            pair.reset()
            return
        self._pairs.add(pair)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, pair))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect_upstream(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        ports = [self.target_port]
        if self.round_robin is not None:
            start, count = self._next, len(self.round_robin)
            self._next = (start + 1) % count
            ports = [self.round_robin[(start + i) % count] for i in range(count)]
        for port in ports:
            try:
                upstream = await asyncio.open_connection(self.target_host, port)
            except OSError:
                continue
            self.connections_to[port] += 1
            return upstream
        return None

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, pair: _Pair
    ) -> None:
        try:
            while data := await source.read(_CHUNK):
                sink.write(data)
                await sink.drain()
            # A clean end of one direction: pass the FIN on.
            if not sink.is_closing() and sink.can_write_eof():
                sink.write_eof()
        except (ConnectionError, OSError):
            # One side reset, or was reset by cut(): so is the other.
            if pair in self._pairs:
                self._pairs.discard(pair)
                pair.reset()
            return
        pair.pumps_left -= 1
        if pair.pumps_left == 0 and pair in self._pairs:
            self._pairs.discard(pair)
            pair.close()
