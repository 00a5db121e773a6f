"""Durations in configuration: seconds as a number, or a duration string as Centrifugo's
configuration writes them (Go's ``time.ParseDuration``: ``"25s"``, ``"500ms"``,
``"1m30s"``, ``"720h"``), so options copied from a Centrifugo config keep their meaning.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field

__all__ = ["Duration", "Seconds", "WholeSeconds", "parse_duration"]

_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(value: Any) -> Any:
    """Seconds for a duration string; anything else is returned for the field's own
    validation (a number is seconds already).

    Raises:
        ValueError: a string that is neither a number nor a duration, naming the units.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.lstrip("+"))
    if body == "0":
        return 0.0
    total, position = 0.0, 0
    for match in _PART.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise ValueError(
            f"{value!r} is not a duration: give seconds as a number, or a string such as "
            '"25s", "500ms", "1m30s" or "720h" (units ns, us, ms, s, m, h)'
        )
    return sign * total


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds: a number, or a duration string (``"25s"``)."""
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
"""A positive :data:`Duration`."""
WholeSeconds = Annotated[int, BeforeValidator(parse_duration)]
"""A :data:`Duration` of whole seconds (``"25s"``, ``25``; not ``"1.5s"``)."""
