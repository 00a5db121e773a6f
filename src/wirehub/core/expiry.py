"""Expiry times from tokens and handlers, made safe for timers and the wire.

Rules (``reliability.md`` A9):

1. An expiry is Unix seconds. Any finite number is accepted and clamped to
   [0, :data:`MAX_EXPIRE_AT`], so that ``exp = 10**30`` (or ``10**400``) means "far in
   the future" and arithmetic with the clock never overflows a float.
2. The ``ttl`` announced to clients is ``uint32`` on the wire: it is clamped to
   [0, :data:`MAX_TTL`] (about 136 years), never wrapped.
3. Timers are armed at most :data:`MAX_TIMER_DELAY` ahead and re-armed when they fire
   early, so no event loop is handed a delay it can't represent.
4. A non-finite number (NaN, infinity) or a non-number from application code is a
   ``ValueError``: the command fails with error 100, and the connection stays.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["MAX_EXPIRE_AT", "MAX_TIMER_DELAY", "MAX_TTL", "clamp_expire_at", "timer_delay", "ttl"]

MAX_TTL: Final = 2**32 - 1
"""The largest ``ttl`` the protocol can carry (``uint32``)."""
MAX_EXPIRE_AT: Final = 2**53
"""Latest expiry kept: exactly representable as a float, ~285 million years away."""
MAX_TIMER_DELAY: Final = 86_400.0
"""Longest delay given to the event loop; a timer further away is re-armed on firing."""


def clamp_expire_at(expire_at: float | None) -> int | None:
    """``expire_at`` in whole seconds within [0, MAX_EXPIRE_AT]; ``None`` stays ``None``.

    Raises:
        ValueError: not a finite number.
    """
    if expire_at is None:
        return None
    if isinstance(expire_at, bool) or not isinstance(expire_at, int | float):
        raise ValueError(f"expire_at must be a number of seconds, not {type(expire_at)!r}")
    if isinstance(expire_at, float):
        if not math.isfinite(expire_at):
            raise ValueError("expire_at must be finite")
        expire_at = math.floor(min(expire_at, MAX_EXPIRE_AT))
    return max(0, min(expire_at, MAX_EXPIRE_AT))


def ttl(expire_at: float, now: float) -> int:
    """Whole seconds left until ``expire_at`` (clamped), as the protocol's ``ttl``."""
    return min(MAX_TTL, max(0, int(expire_at - now)))


def timer_delay(expire_at: float, now: float, grace: float) -> float:
    """The delay to arm a timer for ``expire_at`` plus ``grace``, at most MAX_TIMER_DELAY."""
    return min(MAX_TIMER_DELAY, max(0.0, expire_at - now) + grace)
