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
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from wirehub.core.events import TransportInfo
from wirehub.errors import Disconnect
from wirehub.protocol.codes import DisconnectCode
from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.framing import UNI_WEBSOCKET
from wirehub.protocol.types import Disconnect as DisconnectPush, Push, Reply
from wirehub.transports.asgi_http import CONNECT_PARAM, query_value
from wirehub.transports.door import Door, request_headers
from wirehub.transports.headers import keep_headers
from wirehub.transports.websocket import select_codec, select_subprotocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from wirehub.core.client import Client
    from wirehub.core.node import Node
    from wirehub.protocol.codec import Codec

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

__all__ = ["AsgiWebSocketTransport", "serve_uni_websocket", "serve_websocket"]

logger = logging.getLogger("wirehub.websocket")

# Bytes handed to the ASGI server but not yet sent, before the client is told to hold
# its output (and to disconnect as slow once its own bounded queue fills).
_HIGH_WATER = 64 * 1024
_LOW_WATER = 16 * 1024

_CLOSE_TIMEOUT = 5.0


class AsgiWebSocketTransport:
    """The core's :class:`Transport` over an ASGI ``send`` callable."""

    def __init__(
        self,
        send: Send,
        info: TransportInfo,
        *,
        binary: bool = False,
        uni_codec: Codec | None = None,
        join_pushes: bool = False,
    ) -> None:
        self.client: Client | None = None
        self._send = send
        self._info = info
        self._binary = binary
        # uni_websocket: a disconnect push before the close frame, and one push per
        # message unless they may be joined.
        self._uni_codec = uni_codec
        self._split = uni_codec is not None and not join_pushes
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
            if self._uni_codec is not None and disconnect.code != DisconnectCode.SLOW:
                push = Push(
                    disconnect=DisconnectPush(code=disconnect.code, reason=disconnect.reason)
                )
                self._frames.append(self._uni_codec.encode_reply(Reply(push=push)))

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
                elif self._split:
                    for line in frame.split(b"\n"):
                        await self._send({"type": "websocket.send", "text": line.decode()})
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
    node: Node, door: Door, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one ASGI WebSocket connection against ``node``.

    Before accepting, as the standalone path: :meth:`Door.check` (head limits 431/414,
    connection limits 503, origin 403). A refusal is an HTTP response when the server
    supports the ASGI denial response extension (uvicorn does), else a close before
    accepting (uvicorn: 403).
    """
    if (await receive())["type"] != "websocket.connect":
        return
    refusal = door.check(scope, kind="a WebSocket")
    if refusal is not None:
        await _deny(scope, send, refusal.status, refusal.reason, refusal.headers)
        return
    pairs = request_headers(scope)
    subprotocol = select_subprotocol(scope.get("subprotocols") or ())
    codec = select_codec(subprotocol, scope.get("query_string", b"").decode("latin-1"))
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    client_addr = scope.get("client")
    remote = f"{client_addr[0]}:{client_addr[1]}" if client_addr else ""
    info = TransportInfo("websocket", codec.name, remote, keep_headers(pairs, door.kept_headers))
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


async def serve_uni_websocket(
    node: Node, door: Door, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one unidirectional WebSocket connection (``centrifugo-server-side.md`` §8):
    the connect request from the query's ``cf_connect`` (checked before the upgrade:
    400) or else the first message (3501 if it does not decode), pushes only, one per
    message unless ``uni_websocket.join_push_messages``; what the client sends later is
    read and dropped."""
    if (await receive())["type"] != "websocket.connect":
        return
    refusal = door.check(scope, kind="a uni_websocket")
    if refusal is not None:
        await _deny(scope, send, refusal.status, refusal.reason, refusal.headers)
        return
    try:
        query = query_value(scope, CONNECT_PARAM)
        commands = None if query is None else UNI_WEBSOCKET.decode_commands(query.encode())
    except (ValueError, ProtocolError):
        await _deny(scope, send, 400, "invalid connect request", [])
        return
    await send({"type": "websocket.accept"})
    client_addr = scope.get("client")
    remote = f"{client_addr[0]}:{client_addr[1]}" if client_addr else ""
    headers = keep_headers(request_headers(scope), door.kept_headers)
    info = TransportInfo("uni_websocket", "json", remote, headers, unidirectional=True)
    config = node.config.uni_websocket
    transport = AsgiWebSocketTransport(
        send, info, uni_codec=UNI_WEBSOCKET, join_pushes=config.join_push_messages
    )
    client = transport.client = node.attach(transport, UNI_WEBSOCKET)
    if commands is not None:
        client.handle_commands(commands)
    writer = asyncio.create_task(transport.run_writer())
    try:
        await _read_uni(transport, client, receive, config.message_size_limit, commands is None)
    finally:
        client.transport_closed()
        if transport.closing:
            await asyncio.wait({writer}, timeout=_CLOSE_TIMEOUT)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


async def _read_uni(
    transport: AsgiWebSocketTransport,
    client: Client,
    receive: Receive,
    limit: int,
    awaiting_connect: bool,
) -> None:
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if not awaiting_connect:
            continue  # read only to see the connection end
        data = message.get("bytes")
        if data is None:
            data = (message.get("text") or "").encode()
        if len(data) > limit:
            transport.close(Disconnect(1009, "message too big"))
            return
        awaiting_connect = False
        client.handle_frame(data)


async def _deny(
    scope: Scope, send: Send, status: int, reason: str, headers: list[tuple[str, str]]
) -> None:
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        # Closing before accepting makes the server answer the handshake with 403.
        await send({"type": "websocket.close", "code": 1008})
        return
    body = f"{reason}\n".encode()
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers]
    raw_headers += [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "websocket.http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "websocket.http.response.body", "body": body})


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
