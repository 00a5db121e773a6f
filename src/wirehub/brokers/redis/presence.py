"""Presence in Redis: who is subscribed to a channel, across every node.

Per channel, a HASH (client id -> client info) and a ZSET (client id -> expiry time,
unix ms). An entry lives ``presence_ttl`` seconds unless its node refreshes it (the
core re-adds its clients' entries every ``client.presence_update_interval``), so the
entries of a node that died vanish within ``presence_ttl``. Reads drop expired entries
first, in the same script.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from wirehub.brokers.base import PresenceManager, PresenceStats
from wirehub.brokers.redis import codec
from wirehub.brokers.redis.codec import MalformedMessage
from wirehub.brokers.redis.scripts import ADD_PRESENCE, PRESENCE, REMOVE_PRESENCE
from wirehub.protocol.types import ClientInfo

if TYPE_CHECKING:
    from wirehub.brokers.redis.engine import ShardSet

__all__ = ["RedisPresenceManager"]

logger = logging.getLogger("wirehub.redis")


class RedisPresenceManager:
    """Args:
    shards: the Redis shards, shared with the broker.
    presence_ttl: seconds an entry lives unless refreshed.
    clock: unix time in seconds (expiry times are compared across nodes).
    """

    def __init__(
        self,
        shards: ShardSet,
        *,
        presence_ttl: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._shards = shards
        self._ttl_ms = max(1, round(presence_ttl * 1000))
        self._clock = clock

    @property
    def presence_ttl(self) -> float:
        return self._ttl_ms / 1000

    async def add_presence(self, channel: str, info: ClientInfo) -> None:
        shard = self._shards.for_channel(channel)
        keys = (shard.keys.presence_data(channel), shard.keys.presence_expire(channel))
        expires_at = round(self._clock() * 1000) + self._ttl_ms
        args = (info.client, codec.encode_info(info), expires_at, self._ttl_ms)
        await shard.call_script(ADD_PRESENCE, keys, args, channel=channel)

    async def remove_presence(self, channel: str, client_id: str) -> None:
        shard = self._shards.for_channel(channel)
        keys = (shard.keys.presence_data(channel), shard.keys.presence_expire(channel))
        await shard.call_script(REMOVE_PRESENCE, keys, (client_id,), channel=channel)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        shard = self._shards.for_channel(channel)
        keys = (shard.keys.presence_data(channel), shard.keys.presence_expire(channel))
        now = round(self._clock() * 1000)
        flat = await shard.call_script(PRESENCE, keys, (now,), channel=channel)
        entries: dict[str, ClientInfo] = {}
        for i in range(0, len(flat) - 1, 2):
            try:
                info = codec.decode_info(flat[i + 1])
            except MalformedMessage as exc:
                logger.warning("dropped a malformed presence entry of %r: %s", channel, exc)
                continue
            entries[info.client] = info
        return entries

    async def presence_stats(self, channel: str) -> PresenceStats:
        entries = await self.presence(channel)
        users = {info.user for info in entries.values()}
        return PresenceStats(num_clients=len(entries), num_users=len(users))

    async def ping(self) -> None:
        """Raise unless every shard answers a PING."""
        for shard in self._shards:
            await shard.ping()


_: type[PresenceManager] = RedisPresenceManager
