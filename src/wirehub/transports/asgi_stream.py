"""HTTP-streaming and SSE connections over ASGI: the emulation transports (``http_stream``,
``sse``) and the unidirectional ones (``uni_http_stream``, ``uni_sse``).

Rules (``centrifugo-protocol.md`` §6, ``centrifugo-server-side.md`` §8):

1. Methods: ``OPTIONS`` is a CORS preflight (204, or 403 for a refused origin); then
   per endpoint ``POST`` (the connect request in the body, at most the endpoint's
   ``max_request_body_size`` bytes, else 413; within ``server.request_head_timeout``,
   else 408) and, for SSE, ``GET`` (the connect request URL-encoded in ``cf_connect``;
   required by ``sse``, optional for ``uni_sse``); anything else is 405.
2. Before the stream starts, :meth:`Door.check` (head limits, connection limits 503,
   origin 403), and the connect request must decode (400): for emulation the frame of
   commands the SDK sends (JSON, or Protobuf when the request's ``Content-Type`` is
   ``application/octet-stream``, HTTP-streaming only), for unidirectional transports a
   JSON ``ConnectRequest``.
3. The response is 200 with no-cache headers and the CORS headers of an allowed origin;
   SSE first writes ``\\r\\n``. Every message is written with its framing, which the
   codec adds when it encodes (:mod:`wirehub.protocol.framing`): once per publication
   and transport, not per stream.
4. Output, one write per flush. Under ``wirehub serve`` (or any uvicorn given wirehub's
   HTTP protocol class, :data:`~wirehub.transports.http.STREAM_EXTENSION`), each flush
   is one chunk written straight to the connection (:class:`DirectStreamTransport`),
   and a full socket buffer makes the client hold its output in its own queue. Under
   any other ASGI server, one writer task per stream sends one ``http.response.body``
   per flush (several flushes waiting are joined into one) (:class:`StreamTransport`);
   past :data:`HIGH_WATER` bytes handed to the server and not yet sent, the client
   holds its output. Either way that queue is bounded by ``client.queue_max_size``
   (3008 beyond).
5. The server ends a stream with a ``disconnect`` push, then the end of the response
   (the peer then has :data:`CLOSE_TIMEOUT` seconds to take it). A slow reader (3008)
   gets nothing more: what was queued is dropped and the connection is aborted at once
   (with wirehub's HTTP protocol class; elsewhere the stream's task gives up after
   :data:`CLOSE_TIMEOUT` seconds and the server closes the connection). The client
   going away ends the connection (3000).
6. On a server shutdown (wirehub's HTTP protocol class), streams end with 3001 at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from wirehub.core.events import TransportInfo
from wirehub.errors import DISCONNECT_SHUTDOWN, Disconnect
from wirehub.protocol.codes import DisconnectCode
from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.framing import (
    HTTP_STREAM_JSON,
    HTTP_STREAM_PROTOBUF,
    SSE_JSON,
    UNI_HTTP_STREAM,
    UNI_SSE,
)
from wirehub.protocol.types import Disconnect as DisconnectPush, Push, Reply
from wirehub.transports.asgi_http import (
    CONNECT_PARAM,
    BodyError,
    cors_headers,
    preflight_headers,
    query_value,
    read_body,
    respond,
)
from wirehub.transports.door import Door, header_values, request_headers
from wirehub.transports.headers import keep_headers
from wirehub.transports.http import STREAM_EXTENSION, StreamControl
from wirehub.transports.logtext import LogThrottle, shown

if TYPE_CHECKING:
    from wirehub.config import Config
    from wirehub.core.client import Client
    from wirehub.core.node import Node
    from wirehub.protocol.codec import Codec

__all__ = [
    "CLOSE_TIMEOUT",
    "HIGH_WATER",
    "DirectStreamTransport",
    "StreamEndpoint",
    "StreamTransport",
    "serve_stream",
    "stream_endpoints",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("wirehub.transports")
_bad_request_log = LogThrottle(logger)

HIGH_WATER: Final = 64 * 1024
LOW_WATER: Final = 16 * 1024
CLOSE_TIMEOUT: Final = 5.0
OCTET_STREAM: Final = b"application/octet-stream"

_NO_CACHE: Final = [
    (b"cache-control", b"private, no-cache, no-store, must-revalidate, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
    (b"x-accel-buffering", b"no"),
    (b"x-content-type-options", b"nosniff"),
]


@dataclass(frozen=True, slots=True)
class StreamEndpoint:
    """One streaming endpoint: its transport's name and rules."""

    transport: str
    methods: tuple[str, ...]
    max_body: int
    unidirectional: bool = False
    connect_required: bool = True
    """Whether a GET must carry ``cf_connect`` (``sse``; ``uni_sse`` may omit it)."""

    @property
    def sse(self) -> bool:
        return self.transport.endswith("sse")

    def codec(self, content_type: bytes) -> Codec:
        if self.transport == "http_stream":
            return HTTP_STREAM_PROTOBUF if content_type == OCTET_STREAM else HTTP_STREAM_JSON
        if self.transport == "sse":
            return SSE_JSON
        return UNI_SSE if self.sse else UNI_HTTP_STREAM

    def content_type(self, codec: Codec) -> bytes:
        if self.sse:
            return b"text/event-stream; charset=utf-8"
        return OCTET_STREAM if codec.binary else b"application/json"


def stream_endpoints(config: Config) -> dict[str, StreamEndpoint]:
    """The enabled streaming endpoints of ``config``, by path."""
    endpoints: dict[str, StreamEndpoint] = {}
    if config.http_stream.enabled:
        limit = config.http_stream.max_request_body_size
        endpoints["/connection/http_stream"] = StreamEndpoint("http_stream", ("POST",), limit)
    if config.sse.enabled:
        limit = config.sse.max_request_body_size
        endpoints["/connection/sse"] = StreamEndpoint("sse", ("GET", "POST"), limit)
    if config.uni_sse.enabled:
        limit = config.uni_sse.max_request_body_size
        endpoints["/connection/uni_sse"] = StreamEndpoint(
            "uni_sse", ("GET", "POST"), limit, unidirectional=True, connect_required=False
        )
    if config.uni_http_stream.enabled:
        limit = config.uni_http_stream.max_request_body_size
        endpoints["/connection/uni_http_stream"] = StreamEndpoint(
            "uni_http_stream", ("POST",), limit, unidirectional=True
        )
    return endpoints


class StreamTransport:
    """The core's :class:`Transport` over an ASGI streaming response (any ASGI server)."""

    def __init__(self, send: Send, info: TransportInfo, codec: Codec) -> None:
        self.client: Client | None = None
        self._send = send
        self._info = info
        self._codec = codec
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

    @property
    def closing(self) -> bool:
        return self._close is not None

    def write_frame(self, data: bytes) -> None:
        if self._close is not None:
            return
        self._frames.append(data)
        self._pending += len(data)
        self._wakeup.set()
        if self._pending > HIGH_WATER and not self._paused and self.client is not None:
            self._paused = True
            self.client.pause_writing()

    def close(self, disconnect: Disconnect) -> None:
        if self._close is not None:
            return
        self._close = disconnect
        self._wakeup.set()
        if disconnect.code == DisconnectCode.SLOW:
            # It does not read: what waits is dropped (the stream's task gives up on the
            # rest after CLOSE_TIMEOUT).
            self._frames.clear()
            self._pending = 0
            return
        push = Push(disconnect=DisconnectPush(code=disconnect.code, reason=disconnect.reason))
        self._frames.append(self._codec.encode_reply(Reply(push=push)))

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    async def wait_readable(self) -> None:
        """Wait until the client takes commands again (the emulation endpoint waits)."""
        await self._readable.wait()

    async def run_writer(self) -> None:
        """Send what is written as it comes; after a close, end the response."""
        send, frames = self._send, self._frames
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while frames:
                body = frames.popleft() if len(frames) == 1 else _take_all(frames)
                await send({"type": "http.response.body", "body": body, "more_body": True})
                self._pending = max(0, self._pending - len(body))
                if self._paused and self._pending <= LOW_WATER and self.client is not None:
                    self._paused = False
                    self.client.resume_writing()
            if self._close is not None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return


class DirectStreamTransport:
    """The core's :class:`Transport` writing chunks straight to the connection, through
    wirehub's HTTP protocol class (:class:`StreamControl`)."""

    # Fan-out hands the same bytes to every subscriber of a tick: frame them once. The
    # cache holds a reference, so an identical id means the same object.
    _last_chunk: ClassVar[tuple[bytes, bytes]] = (b"", b"")

    __slots__ = ("_close_timer", "_closing", "_codec", "_control", "_info", "_readable", "client")

    def __init__(self, info: TransportInfo, codec: Codec, control: StreamControl) -> None:
        self.client: Client | None = None
        self._info = info
        self._codec = codec
        self._control = control
        self._closing = False
        self._close_timer: asyncio.TimerHandle | None = None
        # Made when reading is paused (rare): an idle stream does without.
        self._readable: asyncio.Event | None = None
        control.on_pause = self._paused
        control.on_resume = self._resumed

    @property
    def info(self) -> TransportInfo:
        return self._info

    def write_frame(self, data: bytes) -> None:
        if self._closing or self._control.closing:
            return
        cached, chunk = DirectStreamTransport._last_chunk
        if data is not cached:
            chunk = b"%x\r\n%b\r\n" % (len(data), data)
            DirectStreamTransport._last_chunk = (data, chunk)
        self._control.write(chunk)

    def close(self, disconnect: Disconnect) -> None:
        if self._closing:
            return
        self._closing = True
        control = self._control
        if disconnect.code == DisconnectCode.SLOW:
            control.abort()  # it does not read: what waits is dropped, and so is it
            return
        push = Push(disconnect=DisconnectPush(code=disconnect.code, reason=disconnect.reason))
        data = self._codec.encode_reply(Reply(push=push))
        if not control.closing:
            control.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(data), data))
            control.close()
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(CLOSE_TIMEOUT, control.abort)

    def pause_reading(self) -> None:
        if self._readable is None:
            self._readable = asyncio.Event()
        self._readable.clear()

    def resume_reading(self) -> None:
        if self._readable is not None:
            self._readable.set()

    async def wait_readable(self) -> None:
        if self._readable is not None:
            await self._readable.wait()

    def released(self) -> None:
        """The request is over: the connection calls nothing of it any more (an abort
        armed by :meth:`close` stays, for a peer that does not take our last bytes)."""
        control = self._control
        control.on_pause = control.on_resume = control.on_shutdown = None

    def _paused(self) -> None:
        if self.client is not None:
            self.client.pause_writing()

    def _resumed(self) -> None:
        if self.client is not None:
            self.client.resume_writing()


def _take_all(frames: deque[bytes]) -> bytes:
    body = b"".join(frames)
    frames.clear()
    return body


async def serve_stream(
    node: Node, door: Door, endpoint: StreamEndpoint, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve one request to a streaming endpoint (see the module's rules)."""
    method = scope.get("method", "GET")
    origins = header_values(scope, b"origin")
    origin = origins[0] if len(origins) == 1 else None
    kind = f"an {endpoint.transport} stream"
    if method == "OPTIONS":
        await _preflight(door, endpoint, scope, send, kind, origin)
        return
    if method not in endpoint.methods:
        allow = ", ".join((*endpoint.methods, "OPTIONS")).encode()
        await respond(send, 405, "Method Not Allowed", [(b"allow", allow)])
        return
    refused = door.check(scope, kind=kind)
    if refused is not None:
        headers = [(k.lower().encode(), v.encode()) for k, v in refused.headers]
        await respond(send, refused.status, refused.reason, headers)
        return
    cors = cors_headers(origin)
    try:
        data = await _connect_data(door, endpoint, scope, receive, method)
    except BodyError as exc:
        if exc.status != 499:
            await respond(send, exc.status, exc.reason, cors)
        return
    content_type = (header_values(scope, b"content-type") or [""])[0].encode("latin-1")
    codec = endpoint.codec(content_type.split(b";")[0].strip().lower())
    try:
        commands = codec.decode_commands(data)
    except ProtocolError as exc:
        _bad_request_log.log(logging.INFO, "refused %s: %s", kind, shown(str(exc)))
        await respond(send, 400, "bad connect request", cors)
        return
    stream = _stream(node, door, endpoint, scope, receive, send, codec, commands, len(data), cors)
    del data, commands  # a stream lives for hours: keep nothing of its request here
    await stream


async def _preflight(
    door: Door,
    endpoint: StreamEndpoint,
    scope: Scope,
    send: Send,
    kind: str,
    origin: str | None,
) -> None:
    refused = door.check(scope, kind=kind, connection=False)
    if refused is not None:
        await respond(send, refused.status, refused.reason)
        return
    requested = next(iter(header_values(scope, b"access-control-request-headers")), None)
    methods = ", ".join((*endpoint.methods, "OPTIONS"))
    await respond(send, 204, headers=preflight_headers(origin, methods, requested))


async def _connect_data(
    door: Door, endpoint: StreamEndpoint, scope: Scope, receive: Receive, method: str
) -> bytes:
    """The connect request: the query's ``cf_connect`` for GET, else the body."""
    if method == "POST":
        return await read_body(scope, receive, limit=endpoint.max_body, deadline=door.body_timeout)
    try:
        value = query_value(scope, CONNECT_PARAM)
    except ValueError:
        raise BodyError(400, f"{CONNECT_PARAM} is not UTF-8") from None
    if value is None:
        if endpoint.connect_required:
            raise BodyError(400, f"{CONNECT_PARAM} required")
        return b""
    return value.encode()


async def _stream(
    node: Node,
    door: Door,
    endpoint: StreamEndpoint,
    scope: Scope,
    receive: Receive,
    send: Send,
    codec: Codec,
    commands: list[Any],
    size: int,
    cors: list[tuple[bytes, bytes]],
) -> None:
    control = (scope.get("extensions") or {}).get(STREAM_EXTENSION)
    if not isinstance(control, StreamControl):
        control = None
    client_addr = scope.get("client")
    info = TransportInfo(
        endpoint.transport,
        "protobuf" if codec.binary else "json",
        f"{client_addr[0]}:{client_addr[1]}" if client_addr else "",
        keep_headers(request_headers(scope), door.kept_headers),
        emulation=not endpoint.unidirectional,
        unidirectional=endpoint.unidirectional,
    )
    headers = [(b"content-type", endpoint.content_type(codec)), *_NO_CACHE, *cors]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if endpoint.sse:
        await send({"type": "http.response.body", "body": b"\r\n", "more_body": True})
    if control is not None:
        # The request's headers were read: uvicorn's list of them (the scope's, shared
        # with its protocol object) would otherwise live as long as the stream.
        scope_headers = scope.get("headers")
        if isinstance(scope_headers, list):
            scope_headers.clear()
        direct = DirectStreamTransport(info, codec, control)
        client = direct.client = node.attach(direct, codec)
        control.on_shutdown = lambda: client.disconnect(DISCONNECT_SHUTDOWN)
        client.handle_commands(commands, size)
        del commands
        try:
            await _disconnected(receive)
        finally:
            client.transport_closed()
            direct.released()
        return
    transport = StreamTransport(send, info, codec)
    client = transport.client = node.attach(transport, codec)
    client.handle_commands(commands, size)
    del commands
    writer = asyncio.create_task(transport.run_writer())
    gone = asyncio.create_task(_disconnected(receive))
    try:
        await asyncio.wait({writer, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        client.transport_closed()
        if transport.closing and not writer.done() and not gone.done():
            # Our disconnect push and the end of the response are on their way.
            await asyncio.wait({writer, gone}, timeout=CLOSE_TIMEOUT)
        for task in (writer, gone):
            task.cancel()
        await asyncio.gather(writer, gone, return_exceptions=True)


async def _disconnected(receive: Receive) -> None:
    """Return once the client went away (the request's body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
