"""wirehub: a real-time, bi-directional messaging server speaking the Centrifugo protocol.

Everything an application needs is importable from here: the :class:`Node`, the ASGI app,
configuration, and the whole handler API (every event, reply and handler type, and the
two outcomes a handler may raise).
"""

from __future__ import annotations

from wirehub._version import __version__
from wirehub.asgi import create_app
from wirehub.config import Config, ConfigError, load_config
from wirehub.core.events import (
    ConnectEvent,
    ConnectHandler,
    ConnectingEvent,
    ConnectingHandler,
    ConnectingReply,
    Credentials,
    DisconnectEvent,
    DisconnectHandler,
    MessageEvent,
    MessageHandler,
    PublishEvent,
    PublishHandler,
    PublishReply,
    RefreshEvent,
    RefreshHandler,
    RefreshReply,
    RPCEvent,
    RPCHandler,
    RPCReply,
    ServerSubscription,
    SubscribeEvent,
    SubscribeHandler,
    SubscribeReply,
    SubscriptionCredentials,
    TokenVerifier,
    TransportInfo,
)
from wirehub.core.node import Node
from wirehub.errors import ClientError, Disconnect, InvalidPayload
from wirehub.protocol.codes import DisconnectCode, ErrorCode

__all__ = [
    "ClientError",
    "Config",
    "ConfigError",
    "ConnectEvent",
    "ConnectHandler",
    "ConnectingEvent",
    "ConnectingHandler",
    "ConnectingReply",
    "Credentials",
    "Disconnect",
    "DisconnectCode",
    "DisconnectEvent",
    "DisconnectHandler",
    "ErrorCode",
    "InvalidPayload",
    "MessageEvent",
    "MessageHandler",
    "Node",
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
    "__version__",
    "create_app",
    "load_config",
]
