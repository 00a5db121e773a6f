"""Events passed to the application's handlers, and the replies handlers return.

Handler triples: ``SubscribeEvent`` -> ``SubscribeReply`` with ``on_subscribe:
SubscribeHandler``. A handler may raise :class:`~wirehub.errors.ClientError` (error
reply, connection stays) or :class:`~wirehub.errors.Disconnect` (connection closes);
any other exception is logged with the client id and answered with error 100.

Payloads are JSON. In events they arrive as the raw JSON ``bytes`` the client sent
(``json.loads`` them if needed); in replies any JSON-serialisable value is accepted, and
``bytes`` are taken as already-encoded JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ConnectEvent",
    "ConnectHandler",
    "ConnectingEvent",
    "ConnectingHandler",
    "ConnectingReply",
    "Credentials",
    "DisconnectEvent",
    "DisconnectHandler",
    "PublishEvent",
    "PublishHandler",
    "PublishReply",
    "SubscribeEvent",
    "SubscribeHandler",
    "SubscribeReply",
    "TokenVerifier",
    "TransportInfo",
]


@dataclass(frozen=True, slots=True)
class TransportInfo:
    """What a transport tells the core about one connection."""

    name: str
    """``"websocket"`` today; ``"sse"``, ``"http_stream"`` later."""
    protocol: str
    """The codec in use: ``"json"`` or ``"protobuf"``."""
    remote: str = ""
    """Peer address as ``host:port``, for logs."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Request headers, lower-case names (cookies included, for cookie auth)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who a connection is: the outcome of authentication."""

    user: str
    """User id; ``""`` is the anonymous user."""
    info: Any = None
    """Connection info shown to others (presence, join/leave, publications)."""
    expire_at: int | None = None
    """Unix time the connection expires; ``None`` never."""


@dataclass(frozen=True, slots=True)
class ConnectingEvent:
    client_id: str
    transport: TransportInfo
    token: str
    data: bytes
    name: str
    version: str
    headers: Mapping[str, str]
    """Headers the client sent inside the connect command (emulated headers)."""


@dataclass(frozen=True, slots=True)
class ConnectingReply:
    credentials: Credentials | None = None
    """Set to authenticate the connection; ``None`` falls back to the token or to
    anonymous access as configured."""
    data: Any = None
    """Custom data for the client, sent in the connect result."""


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    client_id: str
    user: str
    transport: TransportInfo


@dataclass(frozen=True, slots=True)
class SubscribeEvent:
    """Called once namespace rules allowed the subscription; raise to deny it."""

    client_id: str
    user: str
    channel: str
    data: bytes


@dataclass(frozen=True, slots=True)
class SubscribeReply:
    channel_info: Any = None
    """Channel info attached to this subscriber's publications and presence."""
    data: Any = None
    """Custom data for the client, sent in the subscribe result."""


@dataclass(frozen=True, slots=True)
class PublishEvent:
    """Called once namespace rules allowed a client publication; raise to deny it."""

    client_id: str
    user: str
    channel: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PublishReply:
    data: Any = None
    """Replaces the published data when not ``None``."""


@dataclass(frozen=True, slots=True)
class DisconnectEvent:
    client_id: str
    user: str
    code: int
    reason: str


ConnectingHandler = Callable[[ConnectingEvent], Awaitable[ConnectingReply | None]]
ConnectHandler = Callable[[ConnectEvent], Awaitable[None]]
SubscribeHandler = Callable[[SubscribeEvent], Awaitable[SubscribeReply | None]]
PublishHandler = Callable[[PublishEvent], Awaitable[PublishReply | None]]
DisconnectHandler = Callable[[DisconnectEvent], Awaitable[None]]


class TokenVerifier(Protocol):
    """Turns a connection token into credentials (see :mod:`wirehub.auth`).

    Raises ``ClientError`` 109 for an expired token and ``Disconnect`` 3500 for an
    invalid one.
    """

    def verify_connect(self, token: str) -> Credentials: ...
