"""The WebSocket connection path through the ASGI interface (embedded mode).

Portable to any ASGI server, at about half the fan-out speed of the standalone path:
each frame is an ASGI ``websocket.send`` message, written by one writer task per
connection so that fan-out itself never awaits.

The codec is chosen as in the standalone path (:func:`~wirehub.transports.websocket.
select_codec`): Protobuf frames go out as ``bytes`` (binary frames), JSON as ``text``.

permessage-deflate is the ASGI server's business here, not ours (uvicorn:
``ws_per_message_deflate``, on by default; ``websocket.compression`` only applies to
``wirehub serve``). The server's own ``ws_max_size`` bounds what it inflates before
``message_size_limit`` is checked below.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from wirehub.core.events import TransportInfo
from wirehub.errors import Disconnect
from wirehub.transports.origin import OriginCheck
from wirehub.transports.websocket import select_codec, select_subprotocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from wirehub.core.client import Client
    from wirehub.core.node import Node

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

__all__ = ["AsgiWebSocketTransport", "serve_websocket"]

# Bytes handed to the ASGI server but not yet sent, before the client is told to hold
# its output (and to disconnect as slow once its own bounded queue fills).
_HIGH_WATER = 64 * 1024
_LOW_WATER = 16 * 1024

_CLOSE_TIMEOUT = 5.0


class AsgiWebSocketTransport:
    """The core's :class:`Transport` over an ASGI ``send`` callable."""

    def __init__(self, send: Send, info: TransportInfo, *, binary: bool = False) -> None:
        self.client: Client | None = None
        self._send = send
        self._info = info
        self._binary = binary
        self._frames: deque[bytes] = deque()
        self._pending = 0
        self._paused = False
        self._wakeup = asyncio.Event()
        self._readable = asyncio.Event()
        self._readable.set()
        self._close: Disconnect | None = None

    @property
    def info(self) -> TransportInfo:
        return self._info

    def write_frame(self, data: bytes) -> None:
        if self._close is not None:
            return
        self._frames.append(data)
        self._pending += len(data)
        self._wakeup.set()
        if self._pending > _HIGH_WATER and not self._paused and self.client is not None:
            self._paused = True
            self.client.pause_writing()

    def close(self, disconnect: Disconnect) -> None:
        if self._close is None:
            self._close = disconnect
            self._wakeup.set()

    @property
    def closing(self) -> bool:
        return self._close is not None

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    async def run_writer(self) -> None:
        """Send frames as they come; after a close, send the close and stop."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._frames:
                frame = self._frames.popleft()
                if self._binary:
                    await self._send({"type": "websocket.send", "bytes": frame})
                else:
                    await self._send({"type": "websocket.send", "text": frame.decode()})
                self._pending -= len(frame)
                self._maybe_resume()
            if self._close is not None:
                message = {"type": "websocket.close", "code": self._close.code}
                await self._send({**message, "reason": self._close.reason})
                return

    async def wait_readable(self) -> None:
        await self._readable.wait()

    def _maybe_resume(self) -> None:
        if self._paused and self._pending <= _LOW_WATER and self.client is not None:
            self._paused = False
            self.client.resume_writing()


async def serve_websocket(
    node: Node, origins: OriginCheck, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one ASGI WebSocket connection against ``node``."""
    if (await receive())["type"] != "websocket.connect":
        return
    pairs = [
        (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])
    ]
    headers = dict(pairs)
    repeated_origin = sum(name == "origin" for name, _ in pairs) > 1
    if repeated_origin or not origins.allows(headers.get("origin"), headers.get("host")):
        # Closing before accepting makes the server answer the handshake with 403.
        await send({"type": "websocket.close", "code": 1008})
        return
    subprotocol = select_subprotocol(scope.get("subprotocols") or ())
    codec = select_codec(subprotocol, scope.get("query_string", b"").decode("latin-1"))
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    client_addr = scope.get("client")
    remote = f"{client_addr[0]}:{client_addr[1]}" if client_addr else ""
    info = TransportInfo("websocket", codec.name, remote, headers)
    transport = AsgiWebSocketTransport(send, info, binary=codec.binary)
    client = transport.client = node.attach(transport, codec)
    writer = asyncio.create_task(transport.run_writer())
    try:
        await _read(transport, client, receive, node.config.websocket.message_size_limit)
    finally:
        client.transport_closed()
        if transport.closing:
            # Our close frame is on its way: give the writer the time to send it.
            await asyncio.wait({writer}, timeout=_CLOSE_TIMEOUT)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def _read(
    transport: AsgiWebSocketTransport, client: Client, receive: Receive, limit: int
) -> None:
    while True:
        await transport.wait_readable()
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        data = message.get("bytes")
        if data is None:
            data = (message.get("text") or "").encode()
        if len(data) > limit:
            transport.close(Disconnect(1009, "message too big"))
            return
        client.handle_frame(data)
