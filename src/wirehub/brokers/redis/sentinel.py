"""Following a Sentinel-managed master through failovers.

Redis's Sentinels elect a new master when the old one fails (or on ``SENTINEL
FAILOVER``) and announce it on their ``+switch-master`` PUB/SUB channel. The old master
keeps accepting writes until the Sentinels reconfigure it as a replica, which takes
seconds; whatever it accepts meanwhile is lost. So a shard listens to the Sentinels
itself, and asks them again every few seconds (an announcement can be missed while no
Sentinel connection is up): when the master moved, every connection to the old one is
ended at once, so that commands and PUB/SUB reconnect to the new master, PUB/SUB
reporting its channels as a gap as after any lost connection.

The answer also carries the master's configuration epoch, which each failover
increments: it is the shard's *generation*, sent with every script call that creates
or reads a stream position (:mod:`wirehub.brokers.redis.scripts`), so that a stream
first touched after a failover starts a new epoch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from wirehub.brokers.redis.addresses import ShardSpec
from wirehub.brokers.redis.pubsub import PubSub
from wirehub.brokers.redis.resp import RespConnection, open_connection

__all__ = ["SWITCH_MASTER", "SentinelWatch", "locate"]

logger = logging.getLogger("wirehub.redis")

SWITCH_MASTER = b"+switch-master"
CHECK_INTERVAL = 5.0
"""Seconds between two questions to the Sentinels, besides their announcements."""


async def locate(sentinel: Sentinel, name: str) -> tuple[tuple[str, int], str]:
    """The master's address and configuration epoch, from the first Sentinel that knows
    a healthy master by ``name`` (it is asked first next time).

    Raises:
        MasterNotFoundError: no Sentinel answered with one.
    """
    errors = []
    for index, one in enumerate(sentinel.sentinels):
        try:
            masters = cast(dict[str, dict[str, Any]], await one.sentinel_masters())
        except (ConnectionError, ResponseError, TimeoutError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        state = masters.get(name)
        if state and sentinel.check_master_state(state, name):
            sentinels = sentinel.sentinels
            sentinels[0], sentinels[index] = one, sentinels[0]
            address = (str(state["ip"]), int(state["port"]))
            return address, str(int(state.get("config-epoch", 0)))
    detail = f": {'; '.join(errors)}" if errors else ""
    raise MasterNotFoundError(f"no Sentinel knows a master {name!r}{detail}")


class SentinelWatch:
    """Calls ``on_switch`` when a Sentinel announces that the master ``spec`` names
    moved, and every :data:`CHECK_INTERVAL` seconds besides.

    Its PUB/SUB connection goes to the Sentinels in turn, one at a time, with the
    Sentinel credentials and TLS of ``spec``.
    """

    def __init__(self, spec: ShardSpec, on_switch: Callable[[], None]) -> None:
        self._name = spec.master_name.encode()
        self._hosts = spec.hosts
        self._spec = dataclasses.replace(
            spec,
            username=spec.sentinel_username,
            password=spec.sentinel_password,
            tls=spec.sentinel_tls,
            db=0,
            client_name="",
            unix_path="",
        )
        self._on_switch = on_switch
        self._attempts = 0
        self._pubsub = PubSub(
            self._open,
            name=f"the Sentinels of {spec.master_name}",
            on_message=self._on_message,
            on_lost=lambda _: None,
            connect_timeout=spec.connect_timeout,
            io_timeout=spec.io_timeout,
        )
        self._checks: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        await self._pubsub.start([SWITCH_MASTER])
        if not self._closed:  # closed while it connected
            self._checks = asyncio.create_task(self._check(), name="wirehub sentinel checks")

    async def close(self) -> None:
        self._closed = True
        if self._checks is not None:
            self._checks.cancel()
            await asyncio.gather(self._checks, return_exceptions=True)
        await self._pubsub.close()

    async def _open(self, on_push: Callable[[Any], None]) -> RespConnection:
        host, port = self._hosts[self._attempts % len(self._hosts)]
        self._attempts += 1
        return await open_connection(self._spec, host, port, on_push=on_push)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        # "<master name> <old ip> <old port> <new ip> <new port>"
        if channel == SWITCH_MASTER and data.split(b" ", 1)[0] == self._name:
            logger.warning("Sentinel announced +switch-master %s", data.decode(errors="replace"))
            self._on_switch()

    async def _check(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            self._on_switch()
