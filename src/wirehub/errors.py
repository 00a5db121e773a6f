"""Outcomes that handlers raise, and the well-known instances.

::

    Exception
    ├── ClientError          the command fails with an error reply; the connection stays
    │   └── InvalidPayload   error 107: a payload its namespace does not allow (also a
    │                        ValueError, through protocol.payload.PayloadError)
    ├── Disconnect           the connection closes with a code and a reason
    └── ProtocolError        the peer broke the wire protocol (-> DISCONNECT_BAD_REQUEST);
                             defined in :mod:`wirehub.protocol`, which imports nothing of ours

Misuse of wirehub's own API raises ``RuntimeError``, ``TypeError`` or ``ValueError``
with a precise message; those never reach a client.
"""

from __future__ import annotations

import logging
import sys

from wirehub.protocol.codes import DisconnectCode, ErrorCode
from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.payload import PayloadError

__all__ = [
    "DISCONNECT_BAD_REQUEST",
    "DISCONNECT_CONNECTION_LIMIT",
    "DISCONNECT_EXPIRED",
    "DISCONNECT_FORCE",
    "DISCONNECT_INSUFFICIENT_STATE",
    "DISCONNECT_INTERNAL",
    "DISCONNECT_INVALID_TOKEN",
    "DISCONNECT_NO_PONG",
    "DISCONNECT_SHUTDOWN",
    "DISCONNECT_SLOW",
    "DISCONNECT_STALE",
    "DISCONNECT_TOO_MANY_REQUESTS",
    "DISCONNECT_WRITE_ERROR",
    "ERROR_ALREADY_SUBSCRIBED",
    "ERROR_BAD_REQUEST",
    "ERROR_INTERNAL",
    "ERROR_LIMIT_EXCEEDED",
    "ERROR_METHOD_NOT_FOUND",
    "ERROR_NOT_AVAILABLE",
    "ERROR_PERMISSION_DENIED",
    "ERROR_TOKEN_EXPIRED",
    "ERROR_TOO_MANY_REQUESTS",
    "ERROR_UNKNOWN_CHANNEL",
    "ClientError",
    "Disconnect",
    "InvalidPayload",
    "ProtocolError",
    "log_failure",
]

# A WebSocket close reason must fit in a control frame (125 bytes minus the code).
MAX_REASON_BYTES = 123


class ClientError(Exception):
    """An error reply to one command. The connection stays open.

    Args:
        code: protocol error code; 100-399 are the protocol's, apps use 400-1999.
        message: short text sent to the client.
        temporary: tells the SDK to retry the operation with backoff.
    """

    def __init__(self, code: int, message: str, *, temporary: bool = False) -> None:
        super().__init__(code, message)
        self.code = int(code)
        self.message = message
        self.temporary = temporary

    def __repr__(self) -> str:
        return f"ClientError({self.code}, {self.message!r}, temporary={self.temporary})"


class InvalidPayload(ClientError, PayloadError):
    """Error 107 for a payload its namespace's ``publication_data_format`` does not
    allow: the publisher is told, nothing is stored or delivered. Also a ``ValueError``,
    so ``Node.publish`` callers may catch either."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorCode.BAD_REQUEST, f"bad request: {reason}")
        self.reason = reason


class Disconnect(Exception):
    """Close the connection with a code and a non-empty reason.

    Codes 3000-3499 and 4000-4499 advise the SDK to reconnect; 3500-3999 and
    4500-4999 are terminal. The reason must be non-empty (centrifuge-js ignores the
    code ranges otherwise) and fit a close frame.
    """

    def __init__(self, code: int, reason: str) -> None:
        if not reason:
            raise ValueError("a disconnect reason must not be empty")
        if len(reason.encode()) > MAX_REASON_BYTES:
            raise ValueError(f"a disconnect reason must fit in {MAX_REASON_BYTES} bytes")
        super().__init__(code, reason)
        self.code = int(code)
        self.reason = reason

    @property
    def reconnect(self) -> bool:
        """Whether the SDKs reconnect after this code."""
        return not (3500 <= self.code < 4000 or 4500 <= self.code < 5000)

    def __repr__(self) -> str:
        return f"Disconnect({self.code}, {self.reason!r})"


ERROR_INTERNAL = ClientError(ErrorCode.INTERNAL, "internal server error", temporary=True)
ERROR_UNKNOWN_CHANNEL = ClientError(ErrorCode.UNKNOWN_CHANNEL, "unknown channel")
ERROR_PERMISSION_DENIED = ClientError(ErrorCode.PERMISSION_DENIED, "permission denied")
ERROR_METHOD_NOT_FOUND = ClientError(ErrorCode.METHOD_NOT_FOUND, "method not found")
ERROR_ALREADY_SUBSCRIBED = ClientError(ErrorCode.ALREADY_SUBSCRIBED, "already subscribed")
ERROR_LIMIT_EXCEEDED = ClientError(ErrorCode.LIMIT_EXCEEDED, "limit exceeded")
ERROR_BAD_REQUEST = ClientError(ErrorCode.BAD_REQUEST, "bad request")
ERROR_NOT_AVAILABLE = ClientError(ErrorCode.NOT_AVAILABLE, "not available")
ERROR_TOKEN_EXPIRED = ClientError(ErrorCode.TOKEN_EXPIRED, "token expired")
ERROR_TOO_MANY_REQUESTS = ClientError(
    ErrorCode.TOO_MANY_REQUESTS, "too many requests", temporary=True
)

DISCONNECT_SHUTDOWN = Disconnect(DisconnectCode.SHUTDOWN, "shutdown")
DISCONNECT_INTERNAL = Disconnect(DisconnectCode.INTERNAL, "internal server error")
DISCONNECT_EXPIRED = Disconnect(DisconnectCode.EXPIRED, "connection expired")
DISCONNECT_SLOW = Disconnect(DisconnectCode.SLOW, "slow")
DISCONNECT_WRITE_ERROR = Disconnect(DisconnectCode.WRITE_ERROR, "write error")
DISCONNECT_INSUFFICIENT_STATE = Disconnect(DisconnectCode.INSUFFICIENT_STATE, "insufficient state")
DISCONNECT_NO_PONG = Disconnect(DisconnectCode.NO_PONG, "no pong")
DISCONNECT_INVALID_TOKEN = Disconnect(DisconnectCode.INVALID_TOKEN, "invalid token")
DISCONNECT_BAD_REQUEST = Disconnect(DisconnectCode.BAD_REQUEST, "bad request")
DISCONNECT_STALE = Disconnect(DisconnectCode.STALE, "stale")
DISCONNECT_FORCE = Disconnect(DisconnectCode.FORCE_DISCONNECT, "force disconnect")
DISCONNECT_TOO_MANY_REQUESTS = Disconnect(DisconnectCode.TOO_MANY_REQUESTS, "too many requests")
DISCONNECT_CONNECTION_LIMIT = Disconnect(DisconnectCode.CONNECTION_LIMIT, "connection limit")


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """Log the exception being handled: a broker that cannot be reached (a connection
    or timeout error, as while Redis restarts) as one warning line with the error, since
    every request fails the same way then; anything else with its traceback."""
    exc = sys.exc_info()[1]
    if isinstance(exc, (OSError, TimeoutError)):
        logger.warning(message + ": %s", *args, str(exc) or type(exc).__name__)
    else:
        logger.exception(message, *args)
