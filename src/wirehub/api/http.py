"""The server API over HTTP: ``POST <http_api.handler_prefix>/<method>``, JSON in and out.

A thin ASGI adapter in front of :class:`~wirehub.api.executor.ApiExecutor`. Rules, in
the order they are checked (``centrifugo-server-side.md`` §4.2):

1. The API is off (404, with a message saying how to turn it on) unless
   ``http_api.key`` is set or ``http_api.insecure`` is true.
2. A path that is no method -> 404; a method other than POST -> 405.
3. The key: ``X-API-Key: <key>``, else ``Authorization: apikey <key>`` (scheme in any
   case), compared in constant time; missing or wrong -> 401 with an empty body.
   (Centrifugo also takes an ``api_key`` query parameter; wirehub does not: keys in
   URLs end up in access logs.)
4. ``Content-Type`` must be ``application/json`` when present -> else 415. (A browser
   can send a cross-site form POST without preflight only with form or text types.)
5. The body is bounded by ``http_api.max_body_size`` -> 413; it must be JSON -> 400
   (plain text, as Centrifugo); an empty body counts as ``{}``.
6. Success and API errors -> 200 with ``{"result": ..}`` or ``{"error": {code,
   message}}``. With ``http_api.error_mode = "transport"`` or the request header
   ``X-Centrifugo-Error-Mode: transport``, errors get an HTTP status instead (100 ->
   500, 102/104 -> 404, 107/108 -> 400, 112 -> 416, 113 -> 409, others 500) and the
   body ``{"code": N, "message": ".."}``; ``batch`` is always 200.
7. ``batch`` answers ``{"replies": [...]}`` without the ``result`` envelope (as
   Centrifugo's ``BatchResponse``, and as ``cent`` reads it).

The key is never logged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import msgspec

from wirehub.api.executor import ApiError, ApiExecutor, MalformedJSON
from wirehub.core.node import Node

__all__ = ["ApiApp", "error_status"]

logger = logging.getLogger("wirehub.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON: Final = [(b"content-type", b"application/json")]
_TEXT: Final = [(b"content-type", b"text/plain; charset=utf-8")]
_STATUS = {100: 500, 102: 404, 104: 404, 107: 400, 108: 400, 112: 416, 113: 409}
_encode = msgspec.json.Encoder().encode


def error_status(code: int) -> int:
    """The HTTP status of an API error code in the transport error mode."""
    return _STATUS.get(code, 500)


class _Result(msgspec.Struct, frozen=True):
    result: Any


class _Error(msgspec.Struct, frozen=True):
    error: Any


class ApiApp:
    """The ASGI app of the API; :mod:`wirehub.asgi` routes ``<prefix>/...`` to it."""

    def __init__(self, node: Node) -> None:
        config = node.config.http_api
        self.prefix = config.handler_prefix
        self._key = config.key.encode()
        self._insecure = config.insecure
        self._transport_errors = config.error_mode == "transport"
        self._max_body = config.max_body_size
        self._executor = ApiExecutor(node)
        if not self.enabled:
            logger.info(
                "HTTP API off: set http_api.key (or http_api.insecure = true) to serve %s/",
                self.prefix,
            )
        elif not self._key:
            logger.warning(
                "HTTP API without a key (http_api.insecure): whoever reaches %s/ can use it",
                self.prefix,
            )

    @property
    def enabled(self) -> bool:
        return bool(self._key) or self._insecure

    def handles(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """Serve one request to ``path`` (below the app's mount point)."""
        method = path[len(self.prefix) + 1 :]
        if not self.enabled:
            message = "the HTTP API is off: set http_api.key (or http_api.insecure = true)\n"
            await _respond(send, 404, message.encode(), _TEXT)
        elif method not in self._executor:
            await _respond(send, 404, b"Not Found\n", _TEXT)
        elif scope.get("method") != "POST":
            await _respond(send, 405, b"Method Not Allowed\n", [*_TEXT, (b"allow", b"POST")])
        elif not self._authorized(scope):
            logger.info("api %s: unauthorized request from %s", method, _peer(scope))
            await _respond(send, 401, b"", [])
        elif not _json_content(scope):
            await _respond(send, 415, b"Content-Type must be application/json\n", _TEXT)
        else:
            await self._call(method, scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        if self._insecure:
            return True
        given = _header(scope, b"x-api-key")
        if given is None:
            scheme, _, value = (_header(scope, b"authorization") or b"").partition(b" ")
            if scheme.lower() != b"apikey":
                return False
            given = value.strip()
        return hmac.compare_digest(given, self._key)

    async def _call(self, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(scope, receive, self._max_body)
        except _Gone:
            return
        if body is None:
            await _respond(send, 413, b"Request Entity Too Large\n", _TEXT)
            return
        try:
            result = await self._executor.execute(method, body)
        except MalformedJSON:
            await _respond(send, 400, b"Bad Request\n", _TEXT)
            return
        except ApiError as exc:
            if method != "batch" and (self._transport_errors or _wants_transport_errors(scope)):
                await _respond(send, error_status(exc.code), _encode(exc.body), _JSON)
            else:
                await _respond(send, 200, _encode(_Error(exc.body)), _JSON)
            return
        # batch answers {"replies": [...]} itself, with no result envelope (as cent reads it).
        answer = result if method == "batch" else _Result(result)
        await _respond(send, 200, _encode(answer), _JSON)


class _Gone(Exception):
    """The client went away before its body arrived: nothing to answer."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _json_content(scope: Scope) -> bool:
    content_type = _header(scope, b"content-type")
    if content_type is None:
        return True
    return content_type.partition(b";")[0].strip().lower() == b"application/json"


def _wants_transport_errors(scope: Scope) -> bool:
    mode = _header(scope, b"x-centrifugo-error-mode")
    return mode is not None and mode.strip().lower() == b"transport"


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body; ``None`` when it is larger than ``limit`` bytes."""
    length = _header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"
