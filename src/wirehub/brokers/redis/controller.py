"""Node-to-node control messages over Redis PUB/SUB.

Two channels, on the first shard: ``P.control`` reaches every node, ``P.node.<id>`` one
node. The messages are the core's opaque bytes; delivery is at most once (a node cut
off from Redis misses what was sent meanwhile, and the core's heartbeats repair its
view of the cluster). The controller has its own PUB/SUB connection, so a burst of
channel subscriptions never delays control traffic.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wirehub.brokers.base import ControlEventHandler, Controller
from wirehub.brokers.redis.pubsub import PubSub

if TYPE_CHECKING:
    from wirehub.brokers.redis.engine import ShardSet

__all__ = ["RedisController"]

logger = logging.getLogger("wirehub.redis")


class RedisController:
    def __init__(self, shards: ShardSet) -> None:
        self._shards = shards
        self._shard = shards[0]
        self._handler: ControlEventHandler | None = None
        self._pubsub: PubSub | None = None

    async def start(self, handler: ControlEventHandler, node_id: str) -> None:
        if self._pubsub is not None:
            raise RuntimeError("this controller is already running")
        if not node_id:
            raise ValueError("a node id is needed")
        self._handler = handler
        self._shards.acquire()
        keys = self._shard.keys
        self._pubsub = PubSub(
            self._shard.open_connection,
            name=f"{self._shard.label} (control)",
            on_message=self._on_message,
            on_lost=self._on_lost,
            connect_timeout=self._shard.spec.connect_timeout,
            io_timeout=self._shard.spec.io_timeout,
        )
        await self._pubsub.start([keys.control.encode(), keys.node(node_id).encode()])

    async def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._handler = None
        if pubsub is not None:
            await pubsub.close()
            await self._shards.release()

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        if self._pubsub is None:
            raise RuntimeError("the controller is not running")
        keys = self._shard.keys
        channel = keys.node(node_id) if node_id else keys.control
        await self._shard.call("PUBLISH", channel, data)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        if self._handler is not None:
            self._handler.handle_control(data)

    def _on_lost(self, channels: list[bytes]) -> None:
        logger.warning("control messages may have been lost while cut off from Redis")


_: type[Controller] = RedisController
