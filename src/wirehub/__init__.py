"""wirehub: a real-time, bi-directional messaging server speaking the Centrifugo protocol."""

from __future__ import annotations

from wirehub._version import __version__
from wirehub.asgi import create_app
from wirehub.config import Config, ConfigError, load_config
from wirehub.core.events import (
    ConnectEvent,
    ConnectingEvent,
    ConnectingReply,
    Credentials,
    DisconnectEvent,
    PublishEvent,
    PublishReply,
    SubscribeEvent,
    SubscribeReply,
    TransportInfo,
)
from wirehub.core.node import Node
from wirehub.errors import ClientError, Disconnect

__all__ = [
    "ClientError",
    "Config",
    "ConfigError",
    "ConnectEvent",
    "ConnectingEvent",
    "ConnectingReply",
    "Credentials",
    "Disconnect",
    "DisconnectEvent",
    "Node",
    "PublishEvent",
    "PublishReply",
    "SubscribeEvent",
    "SubscribeReply",
    "TransportInfo",
    "__version__",
    "create_app",
    "load_config",
]
