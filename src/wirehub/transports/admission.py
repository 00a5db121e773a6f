"""Connection limits checked before a connection is accepted (``centrifugo-server-side.md``
§7.3): every transport asks :meth:`Admission.check` before its upgrade or stream starts.

Rules:

1. ``client.connection_rate_limit`` (0: off) is checked first: a token bucket holding at
   most that many tokens and refilled at that many per second. A new connection takes
   a token; with none left it is refused. Centrifugo documents the option as
   "connections per second" but refills one token per second (a burst of N, then 1/s);
   wirehub does what the documentation says.
2. ``client.connection_limit`` (0: off): with that many connections on the node
   (connected, or upgraded and not yet connected) a new one is refused.
3. A refusal is HTTP 503 with ``Retry-After`` (seconds: until the next token for the
   rate, :data:`RETRY_AFTER_LIMIT` for the limit) and a one-line body that names no
   setting; the SDKs back off and retry. Existing connections are untouched.
4. Refusals are counted (:attr:`Admission.refused`) and logged as a warning at most
   every 3 s, with how many were held back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wirehub.transports.logtext import LogThrottle

if TYPE_CHECKING:
    from wirehub.core.node import Node

__all__ = ["RETRY_AFTER_LIMIT", "Admission", "Refusal"]

logger = logging.getLogger("wirehub.admission")

RETRY_AFTER_LIMIT = 5


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection was refused, and what to answer."""

    reason: str
    """For logs: the option that refused, with its value (not told to the client)."""
    retry_after: int
    status: int = 503
    text: str = "too many connections; retry later"
    """The response body."""

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.retry_after))]


class Admission:
    """The connection limits of one node, shared by all of its transports."""

    def __init__(
        self,
        *,
        connection_limit: int,
        connection_rate_limit: int,
        count: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = connection_limit
        self._rate = connection_rate_limit
        self._count = count
        self._clock = clock
        self._tokens = float(connection_rate_limit)
        self._refilled = clock()
        self._log = LogThrottle(logger)
        self.refused = {"connection_limit": 0, "connection_rate_limit": 0}
        """Connections refused so far, by the option that refused them."""

    @classmethod
    def for_node(cls, node: Node) -> Admission:
        """The limits of ``node``'s configuration, counting its connections."""
        client = node.config.client
        return cls(
            connection_limit=client.connection_limit,
            connection_rate_limit=client.connection_rate_limit,
            count=lambda: node.num_connections,
        )

    def check(self) -> Refusal | None:
        """Take a place for a new connection, or say why there is none."""
        if self._rate and not self._take_token():
            wait = math.ceil((1 - self._tokens) / self._rate)
            return self._refuse("connection_rate_limit", self._rate, max(1, wait))
        if self._limit and self._count() >= self._limit:
            return self._refuse("connection_limit", self._limit, RETRY_AFTER_LIMIT)
        return None

    def _take_token(self) -> bool:
        now = self._clock()
        elapsed, self._refilled = now - self._refilled, now
        self._tokens = min(float(self._rate), self._tokens + elapsed * self._rate)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _refuse(self, option: str, value: int, retry_after: int) -> Refusal:
        self.refused[option] += 1
        reason = f"client.{option} ({value}) reached"
        self._log.log(logging.WARNING, "refused a connection: %s", reason)
        return Refusal(reason, retry_after)
