"""What every ASGI connection request passes before it is accepted, for every transport.

Rules, in this order (the standalone WebSocket path, :mod:`wirehub.transports.websocket`,
applies the same ones):

1. The request head's limits (431/414; embedded, the host server parsed the head, so
   they bound what it hands over, not what it read).
2. The node's connection limits (:mod:`wirehub.transports.admission`): 503 with
   ``Retry-After``. Only for requests that open a connection.
3. The origin (:mod:`wirehub.transports.origin`), against the address the request
   arrived on (``scope["server"]``; ``https``/``wss`` meaning TLS): 403, also for a
   repeated ``Origin``. The HTTP transports answer allowed cross-origin requests with
   CORS headers (:mod:`wirehub.transports.cors`), the same allow-list.

Refusals are logged at most every few seconds, with the client's text cut and escaped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wirehub.transports.admission import Admission
from wirehub.transports.head import HeadLimits, check_scope, head_limits
from wirehub.transports.logtext import LogThrottle, shown
from wirehub.transports.origin import OriginCheck

if TYPE_CHECKING:
    from wirehub.core.node import Node

__all__ = ["Door", "Refused", "Scope", "client_address", "header_values", "request_headers"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("wirehub.transports")
_refused_log = LogThrottle(logger)
_no_origin_log = LogThrottle(logger, interval=60.0)


@dataclass(frozen=True, slots=True)
class Refused:
    """A refusal: status, one-line reason (the body) and extra headers."""

    status: int
    reason: str
    headers: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Door:
    """The checks of one node's transports, and what a connection keeps."""

    origins: OriginCheck
    admission: Admission
    limits: HeadLimits
    kept_headers: frozenset[str]
    body_timeout: float
    """Seconds a request body (a connect request, an emulation request) may take to
    arrive (``server.request_head_timeout``); then 408."""

    @classmethod
    def for_node(cls, node: Node, admission: Admission | None = None) -> Door:
        client = node.config.client
        return cls(
            origins=OriginCheck(client.allowed_origins, allow_missing=client.allow_no_origin),
            admission=admission or Admission.for_node(node),
            limits=head_limits(node.config.server),
            kept_headers=node.config.kept_headers,
            body_timeout=node.config.server.request_head_timeout,
        )

    def check(self, scope: Scope, *, kind: str, connection: bool = True) -> Refused | None:
        """Why the request in ``scope`` is refused (rules 1-3), or ``None``. ``kind``
        names it in logs ("a WebSocket", "an SSE stream"); ``connection``: it opens one
        (the connection limits apply)."""
        too_large = check_scope(scope, self.limits)
        if too_large is not None:
            _refused_log.log(
                logging.INFO,
                "refused %s from %s: %s",
                kind,
                client_address(scope),
                too_large.reason,
            )
            return Refused(too_large.status, too_large.reason, [])
        if connection:
            refusal = self.admission.check()
            if refusal is not None:
                return Refused(refusal.status, refusal.text, refusal.headers)
        origins = header_values(scope, b"origin")
        if self.origin_allowed(scope, origins):
            if not origins:
                _no_origin_log.log(
                    logging.INFO,
                    "allowed %s without Origin from %s (client.allow_no_origin)",
                    kind,
                    client_address(scope),
                )
            return None
        shown_origins = shown(", ".join(origins)) if origins else "missing"
        _refused_log.log(
            logging.INFO,
            "refused %s from %s: origin %s",
            kind,
            client_address(scope),
            shown_origins,
        )
        return Refused(403, "Origin not allowed", [])

    def origin_allowed(self, scope: Scope, origins: list[str]) -> bool:
        if len(origins) > 1:
            return False
        server = scope.get("server")
        local = (str(server[0]), int(server[1])) if server and server[1] is not None else None
        tls = scope.get("scheme") in ("https", "wss")
        return self.origins.allows(origins[0] if origins else None, local, tls=tls)


def header_values(scope: Scope, name: bytes) -> list[str]:
    """Every value of the request header ``name`` (lower case), in order."""
    return [v.decode("latin-1") for k, v in scope.get("headers") or [] if k.lower() == name]


def request_headers(scope: Scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers") or []]


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"
