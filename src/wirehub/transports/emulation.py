"""``POST /emulation``: the commands of HTTP-streaming and SSE clients (``centrifugo-protocol.md``
§6.4), routed to the node that owns their session by :mod:`wirehub.core.emulation`.

Rules:

1. ``OPTIONS`` is a CORS preflight (204; 403 for a refused origin); other methods but
   ``POST`` get 405. The origin is checked as for every transport (403), and allowed
   cross-origin requests get CORS headers.
2. The body is at most ``emulation.max_request_body_size`` bytes (413), arrives within
   ``server.request_head_timeout`` (408), and decodes to ``{node, session, data}``
   (JSON, or Protobuf with ``Content-Type: application/octet-stream``), else 400.
3. The answer says what became of the commands, never what they answered (replies go
   out on the session's stream): 204 delivered, or for a session unknown on its node;
   404 for a node that is not in the cluster (the SDK reconnects); 429 when the
   session has too many requests waiting; 500 when the owning node did not answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from wirehub.core.emulation import Delivery
from wirehub.protocol.emulation import decode_emulation_request
from wirehub.protocol.errors import ProtocolError
from wirehub.transports.asgi_http import (
    BodyError,
    cors_headers,
    preflight_headers,
    read_body,
    respond,
)
from wirehub.transports.door import Door, header_values
from wirehub.transports.logtext import LogThrottle, shown

if TYPE_CHECKING:
    from wirehub.core.node import Node

__all__ = ["ENDPOINT", "serve_emulation"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ENDPOINT: Final = "/emulation"

logger = logging.getLogger("wirehub.transports")
_bad_request_log = LogThrottle(logger)

_STATUS: Final = {
    Delivery.DELIVERED: (204, ""),
    Delivery.UNKNOWN_NODE: (404, "unknown node"),
    Delivery.BUSY: (429, "too many requests waiting for this session"),
    Delivery.FAILED: (500, "the session's node did not take the request"),
}


async def serve_emulation(
    node: Node, door: Door, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve one request to the emulation endpoint (see the module's rules)."""
    method = scope.get("method", "GET")
    origins = header_values(scope, b"origin")
    origin = origins[0] if len(origins) == 1 else None
    if method not in ("POST", "OPTIONS"):
        await respond(send, 405, "Method Not Allowed", [(b"allow", b"POST, OPTIONS")])
        return
    refused = door.check(scope, kind="an emulation request", connection=False)
    if refused is not None:
        await respond(send, refused.status, refused.reason)
        return
    if method == "OPTIONS":
        requested = next(iter(header_values(scope, b"access-control-request-headers")), None)
        await respond(send, 204, headers=preflight_headers(origin, "POST, OPTIONS", requested))
        return
    cors = cors_headers(origin)
    limit = node.config.emulation.max_request_body_size
    try:
        body = await read_body(scope, receive, limit=limit, deadline=door.body_timeout)
    except BodyError as exc:
        if exc.status != 499:
            await respond(send, exc.status, exc.reason, cors)
        return
    content_type = (header_values(scope, b"content-type") or [""])[0]
    protobuf = content_type.split(";")[0].strip().lower() == "application/octet-stream"
    try:
        request = decode_emulation_request(body, protobuf=protobuf)
    except ProtocolError as exc:
        _bad_request_log.log(logging.INFO, "refused an emulation request: %s", shown(str(exc)))
        await respond(send, 400, "bad emulation request", cors)
        return
    delivery = await node.emulation.deliver(request.node, request.session, bytes(request.data))
    status, reason = _STATUS[delivery]
    await respond(send, status, reason, cors)
