"""The browser origin check, shared by every transport (cross-site WebSocket hijacking).

Rules:

1. No ``Origin`` header: not a browser (SDKs in Node or Python send none), allowed.
2. The same origin, ``Origin``'s host and port equal to ``Host``: allowed.
3. An origin equal to a configured one, or matching a configured pattern in full: allowed.
   In patterns ``*`` matches a run of host or port characters only (letters, digits,
   ``.``, ``-``, ``:``), and the match is anchored at both ends, so
   ``https://*.example.com`` does not match ``https://app.example.com.evil.com``. A lone
   ``*`` allows every origin.
4. Anything else, ``null`` included: refused with HTTP 403 before the upgrade.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["OriginCheck"]


class OriginCheck:
    def __init__(self, allowed: Sequence[str]) -> None:
        self._any = "*" in allowed
        self._patterns = [_compile(pattern.lower()) for pattern in allowed]

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None or self._any:
            return True
        origin = origin.strip().lower()
        if host and _netloc(origin) == host.strip().lower():
            return True
        return any(pattern.fullmatch(origin) for pattern in self._patterns)


def _netloc(origin: str) -> str | None:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.fragment:
        return None
    return parts.netloc


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("[a-z0-9.:-]*".join(re.escape(part) for part in pattern.split("*")))
