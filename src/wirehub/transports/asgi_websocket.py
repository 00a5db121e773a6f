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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wirehub.core.events import TransportInfo
from wirehub.errors import Disconnect
from wirehub.transports.admission import Admission
from wirehub.transports.head import HeadLimits, check_scope, head_limits
from wirehub.transports.headers import keep_headers
from wirehub.transports.logtext import LogThrottle, shown
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

__all__ = ["AsgiWebSocketTransport", "Door", "serve_websocket"]

logger = logging.getLogger("wirehub.websocket")
_refused_log = LogThrottle(logger)
_no_origin_log = LogThrottle(logger, interval=60.0)

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


@dataclass(frozen=True, slots=True)
class Door:
    """What an ASGI WebSocket must pass before it is accepted, and what it keeps."""

    origins: OriginCheck
    admission: Admission
    limits: HeadLimits
    kept_headers: frozenset[str]

    @classmethod
    def for_node(cls, node: Node, admission: Admission | None = None) -> Door:
        client = node.config.client
        return cls(
            origins=OriginCheck(client.allowed_origins, allow_missing=client.allow_no_origin),
            admission=admission or Admission.for_node(node),
            limits=head_limits(node.config.server),
            kept_headers=frozenset(client.transport_headers),
        )


async def serve_websocket(
    node: Node, door: Door, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one ASGI WebSocket connection against ``node``.

    Before accepting, as the standalone path: the request head's limits (431/414:
    here the host server parsed it, so they bound what it hands over, not what it
    read), the node's connection limits (503 with ``Retry-After``), the origin against
    the address the connection arrived on (``scope["server"]``, ``wss`` meaning TLS)
    (403). A refusal is an HTTP response when the server supports the ASGI denial
    response extension (uvicorn does), else a close before accepting (uvicorn: 403).
    """
    if (await receive())["type"] != "websocket.connect":
        return
    raw = scope.get("headers") or []
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
    origins = [v for k, v in pairs if k.lower() == "origin"]
    refusal = _refusal(door, scope, origins)
    if refusal is not None:
        await _deny(scope, send, *refusal)
        return
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


def _refusal(
    door: Door, scope: Scope, origins: list[str]
) -> tuple[int, str, list[tuple[str, str]]] | None:
    """Status, reason and headers of a refusal, or ``None`` to accept."""
    too_large = check_scope(scope, door.limits)
    if too_large is not None:
        _refused_log.log(
            logging.INFO, "refused a WebSocket from %s: %s", _client(scope), too_large.reason
        )
        return too_large.status, too_large.reason, []
    refusal = door.admission.check()
    if refusal is not None:
        return refusal.status, refusal.text, refusal.headers
    server = scope.get("server")
    local = (str(server[0]), int(server[1])) if server and server[1] is not None else None
    tls = scope.get("scheme") == "wss"
    origin = origins[0] if len(origins) == 1 else None
    if len(origins) <= 1 and door.origins.allows(origin, local, tls=tls):
        if origin is None:
            _no_origin_log.log(
                logging.INFO,
                "allowed a WebSocket without Origin from %s (client.allow_no_origin)",
                _client(scope),
            )
        return None
    shown_origins = shown(", ".join(origins)) if origins else "missing"
    _refused_log.log(
        logging.INFO, "refused a WebSocket from %s: origin %s", _client(scope), shown_origins
    )
    return 403, "Origin not allowed", []


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


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


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
