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
    "MessageEvent",
    "MessageHandler",
    "PublishEvent",
    "PublishHandler",
    "PublishReply",
    "RPCEvent",
    "RPCHandler",
    "RPCReply",
    "RefreshEvent",
    "RefreshHandler",
    "RefreshReply",
    "ServerSubscription",
    "SubscribeEvent",
    "SubscribeHandler",
    "SubscribeReply",
    "SubscriptionCredentials",
    "TokenVerifier",
    "TransportInfo",
]


@dataclass(frozen=True, slots=True)
class TransportInfo:
    """What a transport tells the core about one connection."""

    name: str
    """``"websocket"``, ``"http_stream"``, ``"sse"``, ``"uni_websocket"``, ``"uni_sse"``
    or ``"uni_http_stream"``."""
    protocol: str
    """The protocol spoken: ``"json"`` or ``"protobuf"``."""
    remote: str = ""
    """Peer address as ``host:port``, for logs."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Request headers, looked up case-insensitively (cookies included, for cookie auth)."""
    emulation: bool = False
    """A stream whose client sends its commands with ``POST /emulation`` (HTTP-streaming,
    SSE): the connect result names the session and the node."""
    unidirectional: bool = False
    """A push-only connection: no commands after connect, no pongs; a failed connect is
    a disconnect."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who a connection is: the outcome of authentication."""

    user: str
    """User id; ``""`` is the anonymous user."""
    info: Any = None
    """Connection info shown to others (presence, join/leave, publications)."""
    expire_at: int | None = None
    """Unix time the connection expires; ``None`` never."""
    channels: tuple[str, ...] = ()
    """Server-side subscriptions: channels this connection is subscribed to on connect."""
    subscriptions: Mapping[str, ServerSubscription] = field(default_factory=dict)
    """Options of some of those channels (a token's ``subs`` claim)."""
    meta: Any = None
    """Connection meta kept server-side (never sent to clients); proxies with
    ``include_connection_meta`` send it to the backend."""


@dataclass(frozen=True, slots=True)
class ServerSubscription:
    """Options of one server-side subscription."""

    info: Any = None
    """Channel info of this connection in the channel."""
    data: Any = None
    """Custom data sent in the subscription's result."""
    override: Mapping[str, bool] = field(default_factory=dict)
    """Namespace options overridden for this subscription (as for subscription tokens)."""
    expire_at: int | None = None
    """Unix time the subscription expires; ``None`` never."""


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
    credentials: Credentials | None = None
    """What the connect proxy decided, when it ran first (``docs/proxies.md``); a reply
    without credentials keeps them."""


@dataclass(frozen=True, slots=True)
class ConnectingReply:
    credentials: Credentials | None = None
    """Set to authenticate the connection; ``None`` falls back to the token or to
    anonymous access as configured."""
    data: Any = None
    """Custom data for the client, sent in the connect result."""
    channels: tuple[str, ...] = ()
    """Server-side subscriptions, added to those of the credentials."""


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


@dataclass(frozen=True, slots=True)
class RPCEvent:
    client_id: str
    user: str
    method: str
    data: bytes
    result: bytes | None = None
    """The rpc proxy's answer, when it ran first; a reply without data keeps it."""


@dataclass(frozen=True, slots=True)
class RPCReply:
    data: Any = None


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A ``send`` from a client: fire and forget, no reply."""

    client_id: str
    user: str
    data: bytes


@dataclass(frozen=True, slots=True)
class RefreshEvent:
    """The client refreshes its connection (it holds a new token, or other credentials)."""

    client_id: str
    user: str
    token: str


@dataclass(frozen=True, slots=True)
class RefreshReply:
    expire_at: int | None = None
    """The new expiry; ``None`` never expires."""
    expired: bool = False
    """The credentials are no longer valid: close with 3005."""


@dataclass(frozen=True, slots=True)
class SubscriptionCredentials:
    """What a valid subscription token grants."""

    user: str
    channel: str
    client: str = ""
    expire_at: int | None = None
    info: Any = None
    data: Any = None
    override: Mapping[str, bool] = field(default_factory=dict)
    """Namespace options overridden for this subscription: ``presence``, ``join_leave``,
    ``force_push_join_leave``, ``force_recovery``, ``force_positioning``."""


ConnectingHandler = Callable[[ConnectingEvent], Awaitable[ConnectingReply | None]]
ConnectHandler = Callable[[ConnectEvent], Awaitable[None]]
SubscribeHandler = Callable[[SubscribeEvent], Awaitable[SubscribeReply | None]]
PublishHandler = Callable[[PublishEvent], Awaitable[PublishReply | None]]
DisconnectHandler = Callable[[DisconnectEvent], Awaitable[None]]
RPCHandler = Callable[[RPCEvent], Awaitable[RPCReply | None]]
MessageHandler = Callable[[MessageEvent], Awaitable[None]]
RefreshHandler = Callable[[RefreshEvent], Awaitable[RefreshReply]]


class TokenVerifier(Protocol):
    """Turns a connection token into credentials (see :mod:`wirehub.auth`).

    Raises ``ClientError`` 109 for an expired token and ``Disconnect`` 3500 for an
    invalid one.
    """

    def verify_connect(self, token: str) -> Credentials: ...

    def verify_subscription(self, token: str) -> SubscriptionCredentials:
        """Raises ``ClientError`` 103 for an invalid token, 109 for an expired one."""
        ...
