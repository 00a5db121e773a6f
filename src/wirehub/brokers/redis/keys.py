"""Redis key and PUB/SUB channel names (``P`` is the configured prefix).

=====================  ==========  ===============================  =====================
purpose                type        standalone, Sentinel             Redis Cluster
=====================  ==========  ===============================  =====================
publications           PUB/SUB     ``P.client.ch``                  ``P.client.{ch}``
history                STREAM      ``P.stream.ch``                  ``P.stream.{ch}``
stream position        HASH        ``P.stream.meta.ch`` (e, s)      ``P.stream.meta.{ch}``
idempotent publish     HASH        ``P.result.ch.<key>`` (e, s)     ``P.result.{ch}.<key>``
presence entries       HASH        ``P.presence.data.ch``           ``P.presence.data.{ch}``
presence expiry        ZSET        ``P.presence.expire.ch``         ``P.presence.expire.{ch}``
control, every node    PUB/SUB     ``P.control``                    same
control, one node      PUB/SUB     ``P.node.<node id>``             same
=====================  ==========  ===============================  =====================

The names are Centrifugo's (``centrifugo-server-side.md`` §1.3); the values are not (see
:mod:`wirehub.brokers.redis.codec`), hence wirehub's own default prefix. In a cluster the
channel is a hash tag, so that all of a channel's keys share a slot and one Lua script
can touch them. A channel starting with ``}`` would make an empty tag; it gets a tag
made from its hash instead, in front of the name.
"""

from __future__ import annotations

import hashlib

__all__ = ["Keys"]


class Keys:
    def __init__(self, prefix: str, *, cluster: bool = False) -> None:
        self.prefix = prefix
        self.cluster = cluster
        self.control = f"{prefix}.control"

    def _ch(self, channel: str) -> str:
        if not self.cluster:
            return channel
        if channel.startswith("}"):
            digest = hashlib.sha1(channel.encode()).hexdigest()[:16]
            return "{" + digest + "}" + channel
        return "{" + channel + "}"

    def client_channel(self, channel: str) -> str:
        return f"{self.prefix}.client.{self._ch(channel)}"

    def stream(self, channel: str) -> str:
        return f"{self.prefix}.stream.{self._ch(channel)}"

    def meta(self, channel: str) -> str:
        return f"{self.prefix}.stream.meta.{self._ch(channel)}"

    def result(self, channel: str, idempotency_key: str) -> str:
        return f"{self.prefix}.result.{self._ch(channel)}.{idempotency_key}"

    def presence_data(self, channel: str) -> str:
        return f"{self.prefix}.presence.data.{self._ch(channel)}"

    def presence_expire(self, channel: str) -> str:
        return f"{self.prefix}.presence.expire.{self._ch(channel)}"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}.node.{node_id}"
