"""Brokers, picked by name. Each loads only when chosen, with its own dependencies."""

from __future__ import annotations

import importlib

from wirehub.brokers.base import Broker, BrokerEventHandler, PublishOptions

__all__ = ["BACKENDS", "Broker", "BrokerEventHandler", "PublishOptions", "load_broker"]

BACKENDS = {
    "memory": "wirehub.brokers.memory:MemoryBroker",
}


def load_broker(name: str) -> Broker:
    """Create the broker registered as ``name``; ``ValueError`` for an unknown name."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown broker {name!r}; choose from {sorted(BACKENDS)}") from None
    module, _, attr = target.partition(":")
    broker: Broker = getattr(importlib.import_module(module), attr)()
    return broker
