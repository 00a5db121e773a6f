"""How a failed connect ends a unidirectional connection.

A unidirectional client (uni_websocket, uni_sse, uni_http_stream) reads pushes only:
an error reply to its connect request would mean nothing to it. The connect's error
becomes a disconnect instead (``centrifugo-protocol.md`` §6.6, Centrifugo's default
mapping), which the client sees as a ``disconnect`` push before its stream ends:

- 109 token expired, 110 expired -> 3005 "expired": get a new token, connect again;
- 111 too many requests -> 3013 "too many requests";
- 103 permission denied -> 3507 "permission denied" (terminal);
- anything else -> 3004 "internal server error".

``client.connect_code_to_unidirectional_disconnect`` (Centrifugo's option), when
enabled, is looked up first: an error code listed there ends the connection with its
configured disconnect (for example a connect proxy's own error codes).

:func:`unidirectional_disconnect` is the one place the mapping lives, for every path
that decides a connect's outcome (tokens, ``on_connecting``, proxies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from wirehub.errors import ClientError, Disconnect
from wirehub.protocol.codes import DisconnectCode, ErrorCode

if TYPE_CHECKING:
    from wirehub.config import ConnectCodeToUnidirectionalDisconnect

__all__ = ["unidirectional_disconnect"]

_EXPIRED: Final = Disconnect(DisconnectCode.EXPIRED, "expired")
_TOO_MANY_REQUESTS: Final = Disconnect(DisconnectCode.TOO_MANY_REQUESTS, "too many requests")
_PERMISSION_DENIED: Final = Disconnect(DisconnectCode.PERMISSION_DENIED, "permission denied")
_INTERNAL: Final = Disconnect(DisconnectCode.INTERNAL, "internal server error")

_BY_ERROR: Final[dict[int, Disconnect]] = {
    ErrorCode.TOKEN_EXPIRED: _EXPIRED,
    ErrorCode.EXPIRED: _EXPIRED,
    ErrorCode.TOO_MANY_REQUESTS: _TOO_MANY_REQUESTS,
    ErrorCode.PERMISSION_DENIED: _PERMISSION_DENIED,
}


def unidirectional_disconnect(
    error: ClientError, configured: ConnectCodeToUnidirectionalDisconnect | None = None
) -> Disconnect:
    """The disconnect that ends a unidirectional connection whose connect failed with
    ``error``: the ``configured`` transform for its code, else the default mapping."""
    if configured is not None and configured.enabled:
        for transform in configured.transforms:
            if transform.code == error.code:
                return Disconnect(transform.to.code, transform.to.reason)
    return _BY_ERROR.get(error.code, _INTERNAL)
