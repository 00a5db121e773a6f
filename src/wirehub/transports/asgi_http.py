"""Small ASGI HTTP pieces the HTTP transports share: plain answers, bounded request
bodies, CORS headers, the connect request in a query.

CORS (``centrifugo-protocol.md`` §6.4): an allowed cross-origin request (the same
allow-list as WebSocket, :class:`~wirehub.transports.door.Door`) is answered with
``Access-Control-Allow-Origin: <its origin>``, ``Access-Control-Allow-Credentials:
true`` and ``Vary: Origin``; a preflight (``OPTIONS``) with 204, the methods, the
request headers it asked for when they are a plain list of names, and
``Access-Control-Max-Age: 300``. A refused origin gets 403, preflight included.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "CONNECT_PARAM",
    "BodyError",
    "cors_headers",
    "preflight_headers",
    "query_value",
    "read_body",
    "respond",
]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

CONNECT_PARAM = "cf_connect"
"""The query parameter of a connect request (SSE, uni_sse, uni_websocket)."""
MAX_AGE = b"300"
_HEADER_LIST = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
_MAX_REQUESTED_HEADERS = 512


class BodyError(Exception):
    """A request body that can't be taken: ``status`` 413 (too large), 408 (too slow),
    or 499 (the client went away)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(
    scope: MutableMapping[str, Any], receive: Receive, *, limit: int, deadline: float
) -> bytes:
    """The request body, at most ``limit`` bytes, within ``deadline`` seconds.

    Raises:
        BodyError: 413 past ``limit`` (a ``Content-Length`` above it is refused before
            anything is read), 408 past ``deadline``, 499 if the client disconnected.
    """
    for name, value in scope.get("headers") or []:
        if name.lower() == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyError(413, "request body too large")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BodyError(499, "client disconnected")
                chunk = message.get("body") or b""
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, "request body too large")
                chunks.append(chunk)
                if not message.get("more_body"):
                    return b"".join(chunks)
    except TimeoutError:
        raise BodyError(408, "request body not complete in time") from None


async def respond(
    send: Send, status: int, text: str = "", headers: RawHeaders | None = None
) -> None:
    """A complete plain-text answer (none for 204)."""
    body = f"{text}\n".encode() if text and status != 204 else b""
    raw = list(headers or [])
    if body:
        raw += [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def cors_headers(origin: str | None) -> RawHeaders:
    """The headers of an answer to an allowed request from ``origin`` (none without)."""
    if origin is None:
        return []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", b"Origin"),
    ]


def preflight_headers(origin: str | None, methods: str, requested: str | None) -> RawHeaders:
    """The headers of a 204 answer to an allowed preflight."""
    headers = [
        *cors_headers(origin),
        (b"access-control-allow-methods", methods.encode()),
        (b"access-control-max-age", MAX_AGE),
    ]
    wanted = (requested or "").encode("latin-1").strip()
    if wanted and len(wanted) <= _MAX_REQUESTED_HEADERS and _HEADER_LIST.fullmatch(wanted):
        headers.append((b"access-control-allow-headers", wanted))
    else:
        headers.append((b"access-control-allow-headers", b"Content-Type"))
    return headers


def query_value(scope: MutableMapping[str, Any], name: str) -> str | None:
    """The first value of ``name`` in the query string (URL-decoded as UTF-8), or
    ``None``.

    Raises:
        ValueError: the query is not valid UTF-8 once decoded.
    """
    query = (scope.get("query_string") or b"").decode("latin-1")
    if not query:
        return None
    for key, value in parse_qsl(query, keep_blank_values=True, errors="strict"):
        if key == name:
            return str(value)
    return None
