"""Log lines that an attacker can neither flood nor forge.

Text from the network (origins, paths, header values) is shown through :func:`shown`:
escaped as an ASCII Python literal (no newline, terminal escape or bidirectional
override survives) and cut to
:data:`SHOWN_LIMIT` characters. Lines that any client can trigger at will (refused
upgrades, refused requests) go through a :class:`LogThrottle`: at most one per interval,
the next one saying how many were held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["SHOWN_LIMIT", "LogThrottle", "shown"]

SHOWN_LIMIT = 200


def shown(text: str | bytes | None, limit: int = SHOWN_LIMIT) -> str:
    """``text`` safe for a log line: ``ascii``-escaped and quoted, at most ``limit``
    characters of escaped text, and the full length when it was cut."""
    if text is None:
        return "(none)"
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    escaped = ascii(text[: limit + 1])[1:-1]
    if len(text) <= limit and len(escaped) <= limit:
        return f"'{escaped}'"
    return f"'{escaped[:limit]}'... ({len(text)} characters in all)"


class LogThrottle:
    """Logs at most one line per ``interval`` seconds on ``logger``."""

    __slots__ = ("_clock", "_held", "_interval", "_logger", "_next")

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 3.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._next = 0.0
        self._held = 0

    def log(self, level: int, message: str, *args: object) -> None:
        """Log ``message % args`` now, or count it if a line went out less than
        ``interval`` ago."""
        if not self._logger.isEnabledFor(level):
            return
        now = self._clock()
        if now < self._next:
            self._held += 1
            return
        if self._held:
            message += " (and %d more like it since the previous line)"
            args = (*args, self._held)
        self._logger.log(level, message, *args)
        self._next = now + self._interval
        self._held = 0
