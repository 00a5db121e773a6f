"""Error, unsubscribe and disconnect codes of the Centrifugo client protocol v2.

The numbers are the wire contract (``centrifugo-protocol.md`` §4); the SDKs decide
whether to retry or reconnect from the code alone, so never renumber them.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["DisconnectCode", "ErrorCode", "UnsubscribeCode"]


class ErrorCode(IntEnum):
    """Codes of error replies: the command failed, the connection stays open."""

    INTERNAL = 100
    UNAUTHORIZED = 101
    UNKNOWN_CHANNEL = 102
    PERMISSION_DENIED = 103
    METHOD_NOT_FOUND = 104
    ALREADY_SUBSCRIBED = 105
    LIMIT_EXCEEDED = 106
    BAD_REQUEST = 107
    NOT_AVAILABLE = 108
    TOKEN_EXPIRED = 109
    EXPIRED = 110
    TOO_MANY_REQUESTS = 111
    UNRECOVERABLE_POSITION = 112


class UnsubscribeCode(IntEnum):
    """Codes of unsubscribe pushes: below 2500 terminal, from 2500 the SDK resubscribes."""

    SERVER = 2000
    INSUFFICIENT_STATE = 2500
    EXPIRED = 2501


class DisconnectCode(IntEnum):
    """Close codes: 3000-3499 advise a reconnect, 3500-3999 are terminal."""

    CONNECTION_CLOSED = 3000
    SHUTDOWN = 3001
    INTERNAL = 3004
    EXPIRED = 3005
    SUBSCRIPTION_EXPIRED = 3006
    SLOW = 3008
    WRITE_ERROR = 3009
    INSUFFICIENT_STATE = 3010
    FORCE_RECONNECT = 3011
    NO_PONG = 3012
    TOO_MANY_REQUESTS = 3013
    INVALID_TOKEN = 3500
    BAD_REQUEST = 3501
    STALE = 3502
    FORCE_DISCONNECT = 3503
    CONNECTION_LIMIT = 3504
    CHANNEL_LIMIT = 3505
    INAPPROPRIATE_PROTOCOL = 3506
    PERMISSION_DENIED = 3507
    NOT_AVAILABLE = 3508
    TOO_MANY_ERRORS = 3509
