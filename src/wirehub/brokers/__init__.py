"""Brokers, picked by name. Each loads only when chosen, with its own dependencies."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wirehub.brokers.base import (
    Broker,
    BrokerEventHandler,
    Controller,
    PresenceManager,
    PublishOptions,
)

if TYPE_CHECKING:
    from wirehub.config import Config

__all__ = [
    "BACKENDS",
    "ENGINES",
    "Broker",
    "BrokerEventHandler",
    "Engine",
    "PublishOptions",
    "create_engine",
    "load_broker",
]

BACKENDS = {
    "memory": "wirehub.brokers.memory:MemoryBroker",
}

# engine.type -> a function building the engine from the whole configuration.
ENGINES = {
    "memory": "wirehub.brokers.memory:engine_from_config",
    "redis": "wirehub.brokers.redis.engine:engine_from_config",
}


@dataclass(frozen=True, slots=True)
class Engine:
    """What ``engine.type`` gives a node."""

    broker: Broker
    presence_manager: PresenceManager
    controller: Controller | None = None
    """None: the node uses its in-process controller."""


def _load(table: dict[str, str], name: str, what: str) -> Any:
    try:
        target = table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; choose from {sorted(table)}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_broker(name: str) -> Broker:
    """Create the broker registered as ``name``; ``ValueError`` for an unknown name."""
    broker: Broker = _load(BACKENDS, name, "broker")()
    return broker


def create_engine(config: Config) -> Engine:
    """Build the engine ``config.engine.type`` names (importing only what it needs)."""
    factory = _load(ENGINES, config.engine.type, "engine type")
    engine: Engine = factory(config)
    return engine
