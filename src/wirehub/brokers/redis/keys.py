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

A Redis Cluster with sharded PUB/SUB (``sharded_pub_sub_partitions``) names a channel's
publications, stream, position and results ``P.client.{T}.ch``, ``P.stream.{T}.ch``,
``P.stream.meta.{T}.ch`` and ``P.result.{T}.ch.<key>``, presence as in a Cluster, and
gives each partition ``T`` a service channel ``P.shard.0.{T}`` (SSUBSCRIBEd first).

The names are Centrifugo's (``centrifugo-server-side.md`` §1.3); the values are not (see
:mod:`wirehub.brokers.redis.codec`), hence wirehub's own default prefix. In a cluster the
channel is a hash tag, so that all of a channel's keys share a slot and one Lua script
can touch them. A channel starting with ``}`` would make an empty tag; it gets a tag
made from its hash instead, in front of the name.

With sharded PUB/SUB (``sharded_pub_sub_partitions`` = N) the tag is the channel's
partition ``T`` instead: the decimal index, 0 to N - 1, that the jump consistent hash of
:mod:`wirehub.brokers.redis.sharding` gives the channel among N. A partition's keys and
PUB/SUB channels (its service channel included) therefore share one slot, so one
SSUBSCRIBE connection to that slot's master carries all of them, and SPUBLISH from a
script touching the channel's keys passes Redis's slot check. The name after the tag is
the channel as it is (the tag comes first, so no channel name can break it). Presence
is not partitioned.
"""

from __future__ import annotations

import functools
import hashlib

from wirehub.brokers.redis.sharding import shard_index

__all__ = ["Keys", "partition_of"]


@functools.lru_cache(maxsize=65536)
def partition_of(channel: str, partitions: int) -> int:
    """The partition of ``channel`` among ``partitions`` (cached: several keys of one
    channel are named per publish)."""
    return shard_index(channel, partitions)


class Keys:
    """Names for one shard. ``partitions`` > 0 (Cluster only): sharded PUB/SUB."""

    def __init__(self, prefix: str, *, cluster: bool = False, partitions: int = 0) -> None:
        if partitions < 0:
            raise ValueError("partitions must not be negative")
        if partitions and not cluster:
            raise ValueError("sharded PUB/SUB partitions need Redis Cluster")
        self.prefix = prefix
        self.cluster = cluster
        self.partitions = partitions
        self.sharded = partitions > 0
        self.publish_command = "SPUBLISH" if self.sharded else "PUBLISH"
        self.control = f"{prefix}.control"

    def partition(self, channel: str) -> int:
        """The channel's partition (0 without sharded PUB/SUB)."""
        return partition_of(channel, self.partitions) if self.partitions else 0

    def _tag(self, channel: str) -> str:
        """The channel as a Cluster hash tag (as it is elsewhere)."""
        if not self.cluster:
            return channel
        if channel.startswith("}"):
            digest = hashlib.sha1(channel.encode()).hexdigest()[:16]
            return "{" + digest + "}" + channel
        return "{" + channel + "}"

    def _ch(self, channel: str) -> str:
        if self.partitions:
            return f"{{{partition_of(channel, self.partitions)}}}.{channel}"
        return self._tag(channel)

    def client_channel(self, channel: str) -> str:
        return f"{self.prefix}.client.{self._ch(channel)}"

    def stream(self, channel: str) -> str:
        return f"{self.prefix}.stream.{self._ch(channel)}"

    def meta(self, channel: str) -> str:
        return f"{self.prefix}.stream.meta.{self._ch(channel)}"

    def result(self, channel: str, idempotency_key: str) -> str:
        return f"{self.prefix}.result.{self._ch(channel)}.{idempotency_key}"

    def presence_data(self, channel: str) -> str:
        return f"{self.prefix}.presence.data.{self._tag(channel)}"

    def presence_expire(self, channel: str) -> str:
        return f"{self.prefix}.presence.expire.{self._tag(channel)}"

    def service_channel(self, partition: int) -> str:
        """The channel a partition's PUB/SUB connection subscribes first: it shares the
        partition's slot, so Redis unsubscribing it means the slot moved."""
        return f"{self.prefix}.shard.0.{{{partition}}}"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}.node.{node_id}"
