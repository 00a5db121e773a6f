"""Per-connection command rate limits, and connections per user.

Rules (``centrifugo-server-side.md`` §7.3-7.4, ``reliability.md`` P6, A3):

1. ``client.rate_limit.client_command`` holds token buckets, named as Centrifugo PRO
   names them: every command takes a token from each ``total`` bucket, and from each
   bucket of its own command (``publish``, ``subscribe``, ``rpc`` with
   ``method_overrides``, ...) or, when its command has none enabled, of ``default``.
   A bucket ``{interval, rate}`` lets ``rate`` commands through at once and one more
   every ``interval / rate`` seconds. A command goes through only if every bucket it
   draws from has a token; a refused command takes none.
2. A refused command gets error 111 "too many requests" (temporary: the SDKs retry
   with backoff); one without an id (``send``, a pong) is dropped. Each refusal takes
   a token from the ``refused`` bucket; when it has none, the connection is closed
   with 3013 "too many requests" (the SDKs reconnect with backoff).
3. Buckets are kept as GCRA "theoretical arrival times", one float each, in a list
   made at a connection's first command: an idle connection holds nothing.
4. ``client.user_connection_limit``: a connect that would exceed the user's
   connections on this node is closed with 3504 "connection limit"; the anonymous
   user is not counted.
"""

from __future__ import annotations

from typing import Final

from wirehub.config import ClientCommandRateLimit, CommandRateLimit
from wirehub.errors import DISCONNECT_CONNECTION_LIMIT
from wirehub.protocol.types import Command

__all__ = ["COMMANDS", "CommandLimiter", "check_user_connections", "command_name"]

COMMANDS: Final = (
    "subscribe",
    "unsubscribe",
    "publish",
    "history",
    "presence",
    "presence_stats",
    "refresh",
    "sub_refresh",
    "rpc",
    "send",
)
"""Commands with buckets of their own; ``connect`` and pongs take only ``total``."""

# Float rounding must not refuse the rate-th command of a burst.
_EPSILON = 1e-9

Plan = tuple[int, ...]


def command_name(command: Command) -> str:
    """The command's method (``""`` for a pong)."""
    for name in COMMANDS:
        if getattr(command, name) is not None:
            return name
    return "connect" if command.connect is not None else ""


class CommandLimiter:
    """The buckets of a node's configuration; the state lives in each connection."""

    def __init__(self, config: ClientCommandRateLimit) -> None:
        self._emission: list[float] = []
        self._tolerance: list[float] = []
        total = self._add(config.total) or ()
        default = self._add(config.default)
        self._plans: dict[str, Plan] = {}
        for name in COMMANDS:
            own = self._add(getattr(config, name))
            self._plans[name] = total + (own if own is not None else default or ())
        self._methods: dict[str, Plan] = {}
        for override in config.rpc.method_overrides:
            own = self._add(override)
            if own is not None:
                self._methods[override.method] = total + own
        self._total = total
        plans = {*self._plans.values(), total}
        self._uniform: Plan | None = total if len(plans) == 1 and not self._methods else None
        bucket = config.refused
        self._refused = len(self._emission)
        self._emission.append(bucket.interval / bucket.rate)
        self._tolerance.append(bucket.interval - self._emission[-1] + _EPSILON * bucket.interval)
        self.enabled = config.enabled and bool(total or self._methods or any(self._plans.values()))

    def _add(self, limit: CommandRateLimit) -> Plan | None:
        if not limit.enabled or not limit.buckets:
            return None
        start = len(self._emission)
        for bucket in limit.buckets:
            emission = bucket.interval / bucket.rate
            self._emission.append(emission)
            self._tolerance.append(bucket.interval - emission + _EPSILON * bucket.interval)
        return tuple(range(start, len(self._emission)))

    def new_state(self) -> list[float]:
        """The buckets of one connection, all full."""
        return [0.0] * len(self._emission)

    def allow(self, state: list[float], command: Command, now: float) -> bool:
        """Take a token from every bucket of ``command``, or from none and refuse."""
        plan = self._uniform if self._uniform is not None else self._plan(command)
        return self._take(state, plan, now)

    def tolerate(self, state: list[float], now: float) -> bool:
        """Count one refusal; ``False`` once the ``refused`` bucket is empty."""
        return self._take(state, (self._refused,), now)

    def _plan(self, command: Command) -> Plan:
        name = command_name(command)
        if name == "rpc" and self._methods:
            assert command.rpc is not None
            plan = self._methods.get(command.rpc.method)
            if plan is not None:
                return plan
        return self._plans.get(name, self._total)

    def _take(self, state: list[float], plan: Plan, now: float) -> bool:
        tolerance = self._tolerance
        for index in plan:
            if state[index] - now > tolerance[index]:
                return False
        emission = self._emission
        for index in plan:
            arrival = state[index]
            state[index] = (arrival if arrival > now else now) + emission[index]
        return True


def check_user_connections(connections: int, user: str, limit: int) -> None:
    """Refuse a connection of ``user`` who has ``connections`` here already.

    Raises:
        Disconnect: 3504 "connection limit" (the anonymous user is never refused).
    """
    if limit and user and connections >= limit:
        raise DISCONNECT_CONNECTION_LIMIT
