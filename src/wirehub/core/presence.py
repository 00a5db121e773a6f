"""Presence upkeep: a node keeps its clients' presence entries alive.

A presence manager shared by several nodes (Redis) expires every entry that is not
refreshed in time, so that the entries of a node that died vanish by themselves. The
owning node re-adds each of its clients' entries every
``client.presence_update_interval`` seconds (Centrifugo: 27 s against a 60 s TTL).

Rules:

1. One round re-adds every (client, channel) entry this node holds, ``_BATCH`` at a
   time: the Redis client pipelines a batch into a few round trips.
2. An entry whose subscription ended after the round began is skipped, checked right
   before its add is issued; the removal that ended it is issued after, on the same
   ordered lane, so no entry outlives its subscription.
3. Failures are logged once per round, and the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wirehub.core.client import Client
    from wirehub.core.node import Node
    from wirehub.core.subscriptions import ChannelContext

__all__ = ["keep_presence", "refresh_presence"]

logger = logging.getLogger("wirehub.node")

_BATCH = 500


async def keep_presence(node: Node, interval: float) -> None:
    """Refresh every ``interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        await refresh_presence(node)


async def refresh_presence(node: Node) -> int:
    """Re-add the presence entries of this node's clients; return how many failed."""
    entries = [
        (client, channel, context)
        for client in node.hub.clients()
        for channel, context in client.channels.items()
        if context.presence
    ]
    failed = 0
    for start in range(0, len(entries), _BATCH):
        batch = entries[start : start + _BATCH]
        results = await asyncio.gather(
            *(_refresh(node, *entry) for entry in batch), return_exceptions=True
        )
        failed += sum(1 for result in results if isinstance(result, Exception))
    if failed:
        logger.warning("presence refresh: %d of %d entries failed", failed, len(entries))
    return failed


async def _refresh(node: Node, client: Client, channel: str, context: ChannelContext) -> None:
    if client.closed or client.channels.get(channel) is not context:
        return
    await node.presence_manager.add_presence(channel, client.channel_info(channel, context))
