"""wirehub's HTTP/1.1 protocol for ``wirehub serve``: uvicorn's, behind a request-head guard.

uvicorn's httptools protocol keeps the URL and every header line whole however large
they grow (the URL by repeated concatenation: quadratic), and waits for a request head
as long as the client likes. This subclass looks at the bytes before the parser does
(:class:`~wirehub.transports.head.HeadScanner`) and times the head. Every route goes
through it, the WebSocket upgrade included: uvicorn parses the upgrade request before
handing the socket to :mod:`wirehub.transports.websocket`.

Rules:

1. Every request head is scanned before the parser gets its bytes. Past a limit
   (``server.request_line_size_limit``, ``header_line_size_limit``,
   ``header_count_limit``, ``request_head_size_limit``) the client gets 414 or 431 with
   ``Connection: close`` and the connection is closed: nothing more is read.
2. A request head must be complete within ``server.request_head_timeout`` of its first
   byte, and the first one within that time of the accept; else 408 (or, if nothing
   came, a plain close). Between requests uvicorn's keep-alive timeout
   (``server.keep_alive_timeout``) closes an idle connection.
3. The parser gets a head up to its exact end, and a body of known length
   (``Content-Length``) exactly, so the scan of a pipelined head starts at its first
   byte. A chunked body is fed as it comes; the head after it, if it shares a read with
   the body's end, is scanned from the next read on: undercounted by at most one read
   (uvloop reads at most 256 KiB at a time), still bounded.
4. A refusal comes after the responses to the requests before it (pipelining keeps
   responses in order): until they are sent, reading stops and what arrives is dropped.
5. After a WebSocket upgrade, bytes that came after the head go to the WebSocket
   protocol (uvicorn would drop them), and this object lets go of the request.
6. Every HTTP request's scope carries the extension :data:`STREAM_EXTENSION`, a
   :class:`StreamControl` for wirehub's streaming responses (HTTP-streaming, SSE):
   once the response head is sent, the stream writes its chunks straight to the
   connection (no ASGI message, no task per write) and hears when the socket's buffer
   fills and drains; it can close the connection, or abort it (a reader that stopped
   reading, 3008: its buffers are freed, nothing more is sent); and it hears of the
   server's shutdown, so that a stream ends with 3001 at once rather than holding the
   shutdown up.

What this relies on in uvicorn's ``HttpToolsProtocol`` (pinned by
``tests/transports/test_http_limits.py``): its constructor; ``data_received`` feeding
``self.parser`` and, on an upgrade, switching ``self.transport`` to the WebSocket
protocol; the parser callbacks ``on_headers_complete`` and ``on_message_complete``;
``self.headers``, the lower-cased header pairs of the request being parsed;
``self.cycle``, the latest request's cycle, and ``on_response_complete``, called once
its response is complete.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from wirehub.transports.head import HeadLimits, HeadScanner, HeadTooLarge, head_limits
from wirehub.transports.logtext import LogThrottle

if TYPE_CHECKING:
    from wirehub.config import ServerConfig

__all__ = ["STREAM_EXTENSION", "HttpProtocol", "StreamControl", "make_http_protocol_class"]

STREAM_EXTENSION = "wirehub.stream"
"""The ASGI scope extension holding the request's :class:`StreamControl`."""


class StreamControl:
    """What a streaming response may ask of the connection it is sent on.

    Writing is for a response whose head went out with chunked transfer coding (no
    ``Content-Length``): the caller writes whole chunks, the last one included, then
    closes the connection; uvicorn sees a client that went away.
    """

    __slots__ = ("_transport", "on_pause", "on_resume", "on_shutdown")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.on_shutdown: Callable[[], None] | None = None
        """Called once when the server begins to shut down (set by the stream)."""
        self.on_pause: Callable[[], None] | None = None
        """Called when the socket's buffer is full (``pause_writing``)."""
        self.on_resume: Callable[[], None] | None = None
        """Called when it drained (``resume_writing``)."""

    @property
    def closing(self) -> bool:
        return self._transport.is_closing()

    def write(self, data: bytes) -> None:
        """Write bytes of the response body, as they are (chunk framing included)."""
        self._transport.write(data)

    def close(self) -> None:
        """Close the connection once what was written is sent."""
        self._transport.close()

    def abort(self) -> None:
        """Drop the connection now, and whatever it still had to send."""
        self._transport.abort()


logger = logging.getLogger("wirehub.http")


def make_http_protocol_class(config: ServerConfig) -> type[HttpProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing ``config``'s limits.

    Use it with any uvicorn serving wirehub (or anything else): it is uvicorn's httptools
    protocol with bounded, timed request heads.
    """
    return type(
        "BoundHttpProtocol",
        (HttpProtocol,),
        {
            "limits": head_limits(config),
            "head_timeout": config.request_head_timeout,
            "refusals": LogThrottle(logger),
        },
    )


class HttpProtocol(HttpToolsProtocol):
    """One HTTP connection; see the module's rules."""

    limits: ClassVar[HeadLimits] = HeadLimits()
    head_timeout: ClassVar[float] = 10.0
    refusals: ClassVar[LogThrottle] = LogThrottle(logger)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scanner = HeadScanner(self.limits)
        self._in_head = True
        # Body bytes still due to the parser; None: unknown (chunked), the parser says.
        self._body_left: int | None = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._deferred: tuple[int, str] | None = None  # a refusal waiting its turn
        self._stream: StreamControl | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deferred is not None:
            return  # refused: only earlier responses still go out
        pos, end = 0, len(data)
        while pos < end and not self.transport.is_closing():
            pos = self._receive_head(data, pos) if self._in_head else self._receive_body(data, pos)

    def pause_writing(self) -> None:
        super().pause_writing()
        stream = self._stream
        if stream is not None and stream.on_pause is not None:
            stream.on_pause()

    def resume_writing(self) -> None:
        super().resume_writing()
        stream = self._stream
        if stream is not None and stream.on_resume is not None:
            stream.on_resume()

    def shutdown(self) -> None:
        stream = self._stream
        if stream is not None and stream.on_shutdown is not None:
            on_shutdown, stream.on_shutdown = stream.on_shutdown, None
            on_shutdown()
        super().shutdown()

    # Parser callbacks (called from within the parser, during _feed).

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._stream = StreamControl(self.transport)
        self.scope["extensions"] = {STREAM_EXTENSION: self._stream}  # type: ignore[dict-item]

    def on_headers_complete(self) -> None:
        self._body_left = _body_length(self.headers)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._scanner.reset()

    def on_response_complete(self) -> None:
        if self._deferred is None or self._busy():
            super().on_response_complete()
        elif not self.transport.is_closing():
            status, reason = self._deferred
            self._send_refusal(status, reason)

    # Guard.

    def _receive_head(self, data: bytes, pos: int) -> int:
        """Scan and feed head bytes from ``pos``; return where to go on from."""
        if not self._scanner.started and self._head_timer is None:
            self._arm_head_timer()
        try:
            end = self._scanner.feed(data, pos)
        except HeadTooLarge as exc:
            self._refuse(exc.status, exc.reason)
            return len(data)
        if end < 0:
            self._feed(data[pos:] if pos else data)
            return len(data)
        self._cancel_head_timer()
        self._in_head = False  # until on_message_complete, maybe within this very feed
        self._feed(data[pos:end])
        if self.transport.get_protocol() is not self:
            self._upgraded(data[end:])
            return len(data)
        return end

    def _receive_body(self, data: bytes, pos: int) -> int:
        left = self._body_left
        if not left:  # chunked, or a parser that disagrees: it decides where the end is
            self._feed(data[pos:] if pos else data)
            return len(data)
        piece = data[pos : pos + left]
        self._body_left = left - len(piece)
        self._feed(piece)
        return pos + len(piece)

    def _feed(self, data: bytes) -> None:
        super().data_received(data)

    def _upgraded(self, rest: bytes) -> None:
        protocol = cast(asyncio.Protocol, self.transport.get_protocol())
        # The request (URL, headers, scope) goes with this object; parser and protocol
        # refer to each other, so break the cycle rather than wait for the collector.
        self.parser = None  # type: ignore[assignment]
        self.scope = self.headers = None  # type: ignore[assignment]
        self._stream = None
        if rest:
            protocol.data_received(rest)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._on_head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._scanner.started:
            self._refuse(408, "request head not complete in time")
        else:
            self.transport.close()

    def _refuse(self, status: int, reason: str) -> None:
        self._cancel_head_timer()
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        self.refusals.log(logging.INFO, "refused a request from %s: %s (%d)", peer, reason, status)
        if self._busy():
            self._deferred = (status, reason)
            self.flow.pause_reading()
        else:
            self._send_refusal(status, reason)

    def _busy(self) -> bool:
        """A response is still to be sent (requests complete in order: the latest's
        completion means all are)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _send_refusal(self, status: int, reason: str) -> None:
        self.transport.write(_response(status, reason, self.server_state.default_headers))
        self.transport.close()


def _body_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """Body bytes of a request: Content-Length, 0 without one, None if chunked/unsure."""
    length = 0
    for name, value in headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            if not value.isdigit() or length:
                return None
            length = int(value)
    return length


def _response(status: int, reason: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = f"{reason}\n".encode()
    phrase = http.HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {phrase}\r\n".encode()]
    lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
    lines.append(b"content-type: text/plain; charset=utf-8\r\n")
    lines.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return b"".join(lines) + body
