"""wirehub's own WebSocket connection path: an ``asyncio.Protocol`` for uvicorn.

uvicorn parses the HTTP request; on an upgrade it hands the raw request and the socket
to the ``ws`` protocol class of its config. Ours runs the handshake, framing, limits
and closing handshake with websockets' Sans-I/O :class:`ServerProtocol`, and writes
outgoing frames straight to the socket: no ASGI messages and no task per message
(``DESIGN.md``, "Front doors").

Rules:

1. Only the connection path is served here; any other path gets 404. The request head
   was bounded and timed before it got here (:mod:`wirehub.transports.http`).
2. Before the upgrade, in this order: a repeated ``Host`` gets 400; the node's
   connection limits (:mod:`wirehub.transports.admission`) 503 with ``Retry-After``;
   the origin check (:mod:`wirehub.transports.origin`, against the address the
   connection arrived on) 403, a repeated ``Origin`` too. A
   ``Sec-WebSocket-Version`` other than 13 gets 426 naming version 13 (RFC 6455
   §4.2.2); websockets alone would answer 400. Refusals are logged at most every few
   seconds, with the client's text cut and escaped (:mod:`wirehub.transports.logtext`).
3. After the handshake the connection keeps only the headers of
   ``client.transport_headers`` (:mod:`wirehub.transports.headers`), and the client's
   address (``server.forwarded_allow_ips``: from ``X-Forwarded-For`` when the peer is
   a trusted proxy).
4. Until the connect command succeeded, incoming messages are bounded by
   ``websocket.pre_connect_message_size_limit`` (1009): it also bounds what an
   unauthenticated client can make the server inflate or keep as a pending fragmented
   message. Then by ``websocket.message_size_limit`` (1009, counted
   across fragments) and by :data:`MAX_FRAGMENTS` fragments (1009); text must be UTF-8
   (1007, checked fragment by fragment so the first bad byte fails; binary frames are
   the codec's to judge); protocol violations get 1002. All of these come from websockets except the fragment count
   and UTF-8, checked here. Nothing is read after a failure.
5. The codec is chosen at the handshake (``centrifugo-protocol.md`` §1.4): Protobuf
   when the client offers the ``centrifuge-protobuf`` subprotocol or asks for
   ``cf_protocol=protobuf`` (or ``format=protobuf``) in the query, JSON otherwise. An
   offered subprotocol we know is echoed, ``centrifuge-json`` first when both are.
6. Outgoing data frames are built here: one unmasked frame per flush, text for JSON,
   binary for Protobuf. Control frames (close, pong) go through websockets so its state
   stays right. So do data frames when permessage-deflate was negotiated
   (``websocket.compression``): websockets compresses them.
7. With permessage-deflate, the size limit in force bounds the *decompressed* size:
   websockets inflates at most what is left under the limit and closes with 1009 as
   soon as there is more (B6), so a deflate bomb never expands in memory. A compressed
   (RSV1) frame on a connection that negotiated no extension is a 1002 (B7).
8. After a close frame is sent, the peer has :data:`CLOSE_TIMEOUT` seconds to answer
   before the socket is dropped.
9. ``/connection/uni_websocket`` (when ``uni_websocket.enabled``), unidirectional
   (``centrifugo-server-side.md`` §8): the connect request comes from the query's
   ``cf_connect``, checked before the upgrade (400), or else from the first message
   (3501 if it does not decode), bounded by ``uni_websocket.message_size_limit``
   (1009); later messages are read and dropped. Pushes only, one per text frame
   (several joined by ``\n`` with ``uni_websocket.join_push_messages``); a
   ``disconnect`` push precedes the close frame. Besides the ``{}`` pushes, a
   WebSocket ping frame every ``client.ping_interval``; a peer that sent nothing at all
   (not even the pong browsers send by themselves) for ``ping_interval +
   pong_timeout`` is closed with 3012.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import parse_qsl

from websockets.exceptions import InvalidHeaderValue, PayloadTooBig
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.typing import BytesLike, Subprotocol

from wirehub.core.client import ClientState
from wirehub.core.events import TransportInfo
from wirehub.errors import DISCONNECT_NO_PONG, DISCONNECT_SHUTDOWN, Disconnect
from wirehub.protocol.codes import DisconnectCode
from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.framing import UNI_WEBSOCKET
from wirehub.protocol.json_codec import JSON_CODEC
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC
from wirehub.protocol.types import Command, Disconnect as DisconnectPush, Push, Reply
from wirehub.transports.admission import Admission
from wirehub.transports.asgi_http import CONNECT_PARAM
from wirehub.transports.forwarded import TrustedProxies
from wirehub.transports.headers import keep_headers
from wirehub.transports.logtext import LogThrottle, shown
from wirehub.transports.origin import OriginCheck

if TYPE_CHECKING:
    from websockets.http11 import Response

    from wirehub.config import WebSocketConfig
    from wirehub.core.client import Client
    from wirehub.core.node import Node
    from wirehub.protocol.codec import Codec

__all__ = [
    "CLOSE_TIMEOUT",
    "ENDPOINT",
    "JSON_SUBPROTOCOL",
    "MAX_FRAGMENTS",
    "PROTOBUF_SUBPROTOCOL",
    "UNI_ENDPOINT",
    "WebSocketProtocol",
    "make_protocol_class",
    "select_codec",
    "select_subprotocol",
]

logger = logging.getLogger("wirehub.websocket")

ENDPOINT = "/connection/websocket"
UNI_ENDPOINT = "/connection/uni_websocket"
CLOSE_TIMEOUT = 5.0
MAX_FRAGMENTS = 4096
JSON_SUBPROTOCOL = Subprotocol("centrifuge-json")
PROTOBUF_SUBPROTOCOL = Subprotocol("centrifuge-protobuf")
# In order of preference, as Centrifuge's upgrader lists them (it picks by its own order).
_SUBPROTOCOLS = (JSON_SUBPROTOCOL, PROTOBUF_SUBPROTOCOL)

# First byte of an unmasked final data frame: FIN + opcode.
_FIN_TEXT = 0x81
_FIN_BINARY = 0x82

# websockets logs every open and close at INFO; `wirehub serve` sets this to WARNING.
_websockets_logger = logging.getLogger("wirehub.websocket.protocol")
# Lines any client can cause at will: at most one per interval.
_refused_log = LogThrottle(logger)
_no_origin_log = LogThrottle(logger, interval=60.0)
_too_big_log = LogThrottle(logger)


def make_protocol_class(
    node: Node, *, path: str = ENDPOINT, admission: Admission | None = None
) -> type[WebSocketProtocol]:
    """A protocol class for ``uvicorn.Config(ws=...)`` that serves ``node`` at ``path``.

    ``admission``: the node's connection limits, when other transports share them
    (:func:`wirehub.asgi.create_app` exposes its own as ``app.admission``); by default
    this class keeps its own.
    """
    client = node.config.client
    uni = node.config.uni_websocket
    return type(
        "BoundWebSocketProtocol",
        (WebSocketProtocol,),
        {
            "node": node,
            "path": path,
            "uni_path": UNI_ENDPOINT if uni.enabled else None,
            "origins": OriginCheck(client.allowed_origins, allow_missing=client.allow_no_origin),
            "extensions": _extensions(node.config.websocket),
            "admission": admission or Admission.for_node(node),
            "kept_headers": node.config.kept_headers,
            "proxies": TrustedProxies(node.config.server.forwarded_allow_ips),
            "__slots__": (),
        },
    )


def _extensions(config: WebSocketConfig) -> tuple[ServerExtensionFactory, ...]:
    if not config.compression:
        return ()
    # uvicorn's settings: 12-bit windows and memLevel 5 keep the zlib state of a
    # connection under about 75 KiB, against about 300 KiB at zlib's defaults (the
    # client's window stays at 15 bits unless it offers client_max_window_bits).
    factory = ServerPerMessageDeflateFactory(
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"level": config.compression_level, "memLevel": 5},
    )
    return (factory,)


def select_subprotocol(offered: Sequence[str]) -> Subprotocol | None:
    """The subprotocol to echo among those the client offered, if any we know.

    centrifuge-js offers none for JSON; when one is offered it must be echoed, or
    browsers abort the handshake.
    """
    for subprotocol in _SUBPROTOCOLS:
        if subprotocol in offered:
            return subprotocol
    return None


def select_codec(subprotocol: str | None, query: str) -> Codec:
    """Protobuf for the ``centrifuge-protobuf`` subprotocol or a query asking for it
    (``cf_protocol=protobuf`` or ``format=protobuf``, as Centrifuge); JSON otherwise."""
    if subprotocol == PROTOBUF_SUBPROTOCOL or _query_wants_protobuf(query):
        return PROTOBUF_CODEC
    return JSON_CODEC


def _query_wants_protobuf(query: str) -> bool:
    if not query:
        return False
    first: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        first.setdefault(name, value)  # as Go's url.Values.Get: the first value counts
    return first.get("cf_protocol") == "protobuf" or first.get("format") == "protobuf"


def _select_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    return select_subprotocol(offered)


def frame_header(first: int, length: int) -> bytes:
    """The header of an unmasked frame whose first byte (FIN, RSV, opcode) is ``first``,
    carrying ``length`` bytes."""
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection; also the core's :class:`Transport` for it."""

    node: ClassVar[Node]
    path: ClassVar[str]
    uni_path: ClassVar[str | None] = None
    origins: ClassVar[OriginCheck]
    admission: ClassVar[Admission]
    kept_headers: ClassVar[frozenset[str]] = frozenset()
    proxies: ClassVar[TrustedProxies] = TrustedProxies(())
    extensions: ClassVar[Sequence[ServerExtensionFactory]] = ()
    _last_framed: ClassVar[tuple[bytes, int, bytes]] = (b"", 0, b"")

    # Slots: one of these per connection; thousands sit idle.
    __slots__ = (
        "_client",
        "_close_timer",
        "_closing",
        "_connections",
        "_first_byte",
        "_fragment_count",
        "_fragments",
        "_info",
        "_last_read",
        "_ping_timer",
        "_pre_connect",
        "_through_websockets",
        "_transport",
        "_uni",
        "_uni_connect",
        "_utf8",
        "_ws",
    )

    def __init__(self, config: Any, server_state: Any, app_state: Any = None, **_: Any) -> None:
        self._connections: set[Any] = server_state.connections
        self._ws = ServerProtocol(
            extensions=self.extensions,
            select_subprotocol=_select_subprotocol,
            max_size=self.node.config.websocket.pre_connect_message_size_limit,
            logger=_websockets_logger,
        )
        self._pre_connect = True  # the smaller size limit is in force
        self._transport: asyncio.Transport | None = None
        self._client: Client | None = None
        self._info = TransportInfo(name="websocket", protocol="json")
        self._first_byte = _FIN_TEXT
        self._through_websockets = False  # an extension (deflate) must see every frame
        # A fragmented message: its bytes so far in one buffer (a list of fragments
        # would cost an object each, and empty fragments are free to send).
        self._fragments = bytearray()
        self._fragment_count = 0
        self._utf8: codecs.IncrementalDecoder | None = None
        self._closing = False
        self._close_timer: asyncio.TimerHandle | None = None
        # uni_websocket: waiting for the connect request in a message; liveness.
        self._uni = False
        self._uni_connect = False
        self._last_read = 0.0
        self._ping_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._uni:
            self._last_read = self.node.loop.time()
        elif self._pre_connect and self._client is not None:
            self._leave_pre_connect()
        self._ws.receive_data(data)
        for event in self._ws.events_received():
            if isinstance(event, Request):
                self._on_request(event)
            elif isinstance(event, Frame):
                self._on_frame(event)
        if self._ws.state is not State.OPEN and self._client is not None:
            self._closed_by_websockets()
        self._send_pending()

    def _leave_pre_connect(self) -> None:
        """Once connected, the normal message size limit applies."""
        assert self._client is not None
        if self._client.state is ClientState.CONNECTED:
            self._pre_connect = False
            self._ws.max_message_size = self.node.config.websocket.message_size_limit

    def _closed_by_websockets(self) -> None:
        assert self._client is not None
        if self._pre_connect and isinstance(self._ws.parser_exc, PayloadTooBig):
            _too_big_log.log(
                logging.INFO,
                "closed a connection from %s with 1009: a message before connect larger"
                " than websocket.pre_connect_message_size_limit (%d bytes)",
                self._info.remote,
                self._ws.max_message_size,
            )
        self._client.transport_closed()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._send_pending()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self._client is not None:
            self._client.transport_closed()

    def pause_writing(self) -> None:
        if self._client is not None:
            self._client.pause_writing()

    def resume_writing(self) -> None:
        if self._client is not None:
            self._client.resume_writing()

    def shutdown(self) -> None:
        """Called by uvicorn when the server stops: tell the client to reconnect."""
        if self._client is not None and self._ws.state is State.OPEN:
            self._client.disconnect(DISCONNECT_SHUTDOWN)
        elif self._transport is not None:
            self._transport.close()

    # Transport.

    @property
    def info(self) -> TransportInfo:
        return self._info

    def write_frame(self, data: bytes) -> None:
        # _closing covers every state but OPEN once a client exists (see data_received).
        if self._closing or self._transport is None:
            return
        if self._uni and b"\n" in data and not self.node.config.uni_websocket.join_push_messages:
            for line in data.split(b"\n"):  # one push per message
                self._write_message(line)
            return
        self._write_message(data)

    def _write_message(self, data: bytes) -> None:
        assert self._transport is not None
        if self._through_websockets:
            self._write_through_websockets(data)
            return
        # Fan-out hands the same bytes object to every subscriber in a tick: frame it
        # once. The cache holds a reference, so an identical id means the same object.
        cached_data, cached_first, framed = self._last_framed
        if data is not cached_data or self._first_byte != cached_first:
            framed = frame_header(self._first_byte, len(data)) + data
            type(self)._last_framed = (data, self._first_byte, framed)
        self._transport.write(framed)

    def _write_through_websockets(self, data: bytes) -> None:
        if self._first_byte == _FIN_BINARY:
            self._ws.send_binary(data)
        else:
            self._ws.send_text(data)
        self._send_pending()

    def close(self, disconnect: Disconnect) -> None:
        if self._closing or self._transport is None:
            return
        if self._uni and disconnect.code != DisconnectCode.SLOW and self._ws.state is State.OPEN:
            push = Push(disconnect=DisconnectPush(code=disconnect.code, reason=disconnect.reason))
            self._write_message(UNI_WEBSOCKET.encode_reply(Reply(push=push)))
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        self._closing = True
        if self._ws.state is State.OPEN:
            self._ws.send_close(disconnect.code, disconnect.reason)
            self._send_pending()
        loop = self.node.loop
        self._close_timer = loop.call_later(CLOSE_TIMEOUT, self._transport.abort)

    def pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    # Handshake.

    def _on_request(self, request: Request) -> None:
        path = request.path.partition("?")[0]
        headers = request.headers
        # get_all: Headers.get raises on a repeated header, and nothing may raise here
        # (uvicorn calls us before handing over the transport; we would leak).
        origins, hosts = headers.get_all("Origin"), headers.get_all("Host")
        uni = path == self.uni_path
        connect: list[Command] | None = None
        if path != self.path and not uni:
            response = self._ws.reject(404, "Not Found\n")
        elif len(hosts) > 1:
            response = self._ws.reject(400, "More than one Host header\n")
        elif (refusal := self.admission.check()) is not None:
            response = self._ws.reject(refusal.status, f"{refusal.text}\n")
            for name, value in refusal.headers:
                response.headers[name] = value
        elif not self._origin_allowed(origins):
            response = self._ws.reject(403, "Origin not allowed\n")
        elif uni and (connect := _uni_connect(request.path.partition("?")[2])) is _BAD_CONNECT:
            response = self._ws.reject(400, "invalid connect request\n")
        else:
            response = self._accept(request)
        self._ws.send_response(response)
        if response.status_code != 101:
            return
        if uni:
            self._start_uni(request, connect)
            return
        codec = select_codec(self._ws.subprotocol, request.path.partition("?")[2])
        self._first_byte = _FIN_BINARY if codec.binary else _FIN_TEXT
        self._through_websockets = bool(self._ws.extensions)
        self._info = TransportInfo(
            name="websocket",
            protocol=codec.name,
            remote=self._remote(headers.get_all("X-Forwarded-For")),
            headers=keep_headers(headers.raw_items(), self.kept_headers),
        )
        self._client = self.node.attach(self, codec)
        _restart_frame_parser(self._ws)

    def _start_uni(self, request: Request, connect: list[Command] | None) -> None:
        self._uni = True
        self._pre_connect = False
        self._ws.max_message_size = self.node.config.uni_websocket.message_size_limit
        self._through_websockets = bool(self._ws.extensions)
        self._info = TransportInfo(
            name="uni_websocket",
            protocol="json",
            remote=self._remote(request.headers.get_all("X-Forwarded-For")),
            headers=keep_headers(request.headers.raw_items(), self.kept_headers),
            unidirectional=True,
        )
        client = self._client = self.node.attach(self, UNI_WEBSOCKET)
        _restart_frame_parser(self._ws)
        if connect is None:
            self._uni_connect = True
        else:
            client.handle_commands(connect)
        loop = self.node.loop
        self._last_read = loop.time()
        self._ping_timer = loop.call_later(self.node.config.client.ping_interval, self._uni_ping)

    def _uni_ping(self) -> None:
        """A ping frame; a peer silent since the last one plus ``pong_timeout`` is gone."""
        settings = self.node.config.client
        loop = self.node.loop
        if loop.time() - self._last_read > settings.ping_interval + settings.pong_timeout:
            self._ping_timer = None
            if self._client is not None:
                self._client.disconnect(DISCONNECT_NO_PONG)
            return
        if self._ws.state is State.OPEN:
            self._ws.send_ping(b"")
            self._send_pending()
        self._ping_timer = loop.call_later(settings.ping_interval, self._uni_ping)

    def _accept(self, request: Request) -> Response:
        response = self._ws.accept(request)
        if _bad_version(self._ws.handshake_exc):
            response = self._ws.reject(426, "Unsupported WebSocket version\n")
            response.headers["Sec-WebSocket-Version"] = "13"
        return response

    def _origin_allowed(self, origins: list[str]) -> bool:
        transport = self._transport
        origin = origins[0] if len(origins) == 1 else None
        if len(origins) <= 1 and transport is not None:
            local = _address(transport.get_extra_info("sockname"))
            tls = transport.get_extra_info("sslcontext") is not None
            if self.origins.allows(origin, local, tls=tls):
                if origin is None:
                    _no_origin_log.log(
                        logging.INFO,
                        "allowed a WebSocket without Origin from %s (client.allow_no_origin)",
                        self._remote(()),
                    )
                return True
        _refused_log.log(
            logging.INFO,
            "refused a WebSocket from %s: origin %s",
            self._remote(()),
            shown(", ".join(origins)) if origins else "missing",
        )
        return False

    def _remote(self, forwarded_for: Sequence[str]) -> str:
        """The client's address as ``host:port`` (port 0 when a proxy named it)."""
        peer = _address(self._transport.get_extra_info("peername")) if self._transport else None
        if peer is None:
            return ""
        if forwarded_for and self.proxies:
            host = self.proxies.client_host(peer[0], ", ".join(forwarded_for))
            if host != peer[0]:
                return f"{host}:0"
        return f"{peer[0]}:{peer[1]}"

    # Frames.

    def _on_frame(self, frame: Frame) -> None:
        if self._closing:
            return  # failed, or closing: the client is gone
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._on_message(bytes(frame.data), text=opcode is Opcode.TEXT)
                return
            self._fragments, self._fragment_count = bytearray(), 0
            self._utf8 = _Utf8Decoder() if opcode is Opcode.TEXT else None
        elif opcode is not Opcode.CONT:
            return
        fragment = frame.data
        self._fragments += fragment
        self._fragment_count += 1
        if self._fragment_count > MAX_FRAGMENTS:
            self._fail(1009, "too many fragments")
        elif self._utf8 is not None and not _utf8_ok(self._utf8, fragment, final=frame.fin):
            self._fail(1007, "invalid UTF-8")
        elif frame.fin:
            data = bytes(self._fragments)
            self._fragments, self._fragment_count = bytearray(), 0
            self._on_message(data, text=False)  # text already checked fragment by fragment

    def _on_message(self, data: bytes, *, text: bool) -> None:
        if text:
            try:
                data.decode()
            except UnicodeDecodeError:
                self._fail(1007, "invalid UTF-8")
                return
        if self._client is None:
            return
        if self._uni:
            if self._uni_connect:  # the connect request; then nothing is read any more
                self._uni_connect = False
                self._client.handle_frame(data)
            return
        self._client.handle_frame(data)

    def _fail(self, code: int, reason: str) -> None:
        self._closing = True
        self._fragments, self._fragment_count, self._utf8 = bytearray(), 0, None
        self._ws.fail(code, reason)
        if self._client is not None:
            self._client.transport_closed()

    def _send_pending(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for chunk in self._ws.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                # websockets asks for EOF: the server ends the TCP connection.
                transport.close()


_BAD_CONNECT: list[Command] = []


def _uni_connect(query: str) -> list[Command] | None:
    """The connect command of a uni_websocket's ``cf_connect``, ``None`` without one,
    :data:`_BAD_CONNECT` when it does not decode."""
    if not query:
        return None
    value = None
    try:
        for name, item in parse_qsl(query, keep_blank_values=True, errors="strict"):
            if name == CONNECT_PARAM:
                value = item
                break
        if value is None:
            return None
        return UNI_WEBSOCKET.decode_commands(value.encode())
    except (ValueError, ProtocolError):
        return _BAD_CONNECT


def _restart_frame_parser(ws: ServerProtocol) -> None:
    """Give ``ws`` a fresh frame parser, without the request.

    websockets' ``ServerProtocol.parse`` parses the request, then parses frames within
    the same generator: its frame keeps the whole request (every header) alive for the
    connection's life. Right after the handshake that generator has consumed exactly
    the request (uvicorn hands it over alone) and waits for more: an equivalent frame
    parser, :meth:`Protocol.parse`, takes its place. If bytes were already waiting (not
    through uvicorn), the original stays: correct, only larger.
    """
    if ws.reader.buffer:
        return
    ws.parser = Protocol.parse(ws)
    next(ws.parser)


_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


def _utf8_ok(decoder: codecs.IncrementalDecoder, data: BytesLike, *, final: bool) -> bool:
    """Feed one fragment; False at the first byte that can't be UTF-8."""
    try:
        decoder.decode(data, final)
    except UnicodeDecodeError:
        return False
    return True


def _bad_version(exc: Exception | None) -> bool:
    return isinstance(exc, InvalidHeaderValue) and exc.name == "Sec-WebSocket-Version"


def _address(info: object) -> tuple[str, int] | None:
    """``(host, port)`` of a socket address from ``get_extra_info``, if it is one."""
    if isinstance(info, tuple | list) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None
