"""The browser origin check, shared by every transport (cross-site WebSocket hijacking).

Rules:

1. No ``Origin`` header: not a browser (browsers always send one on a WebSocket
   upgrade; the SDKs in Node or Python send none): allowed when
   ``client.allow_no_origin`` (the default), refused otherwise.
2. The connection's own origin: scheme, host and port equal to the address the
   connection actually arrived on (the local socket address; ``https`` when that listener
   speaks TLS; ``localhost`` for a loopback address): allowed. The ``Host`` header is
   never consulted, since the client writes it: a page on ``http://evil.example:8000``
   whose name an attacker rebinds to the server's address sends ``Host:
   evil.example:8000`` (DNS rebinding), and its origin names no address of ours.
   A public name (``https://app.example.com``, a TLS-terminating proxy in front) is
   listed in ``client.allowed_origins``.
3. An origin equal to a configured one, or matching a configured pattern in full:
   allowed. In patterns ``*`` matches a run of host or port characters only (letters,
   digits, ``.``, ``-``, ``:``), and the match is anchored at both ends, so
   ``https://*.example.com`` does not match ``https://app.example.com.evil.com``. A
   lone ``*`` allows every origin.
4. Anything else, ``null`` included: refused with HTTP 403 before the upgrade.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["OriginCheck"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginCheck:
    def __init__(self, allowed: Sequence[str], *, allow_missing: bool = True) -> None:
        self._any = "*" in allowed
        self._allow_missing = allow_missing
        self._patterns = [_compile(pattern.lower()) for pattern in allowed]

    def allows(
        self, origin: str | None, local: tuple[str, int] | None = None, *, tls: bool = False
    ) -> bool:
        """Whether a request with this ``Origin`` may open a connection that arrived on
        ``local`` (the server's socket address, as ``(host, port)``; ``None`` if unknown),
        over TLS or not."""
        if origin is None:
            return self._allow_missing
        if self._any:
            return True
        origin = origin.strip().lower()
        if local is not None and _is_own(origin, local, "https" if tls else "http"):
            return True
        return any(pattern.fullmatch(origin) for pattern in self._patterns)


def _is_own(origin: str, local: tuple[str, int], scheme: str) -> bool:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != scheme or parts.path or parts.query or parts.fragment:
        return False
    if parts.username is not None or parts.password is not None or parts.hostname is None:
        return False
    if (port if port is not None else _DEFAULT_PORTS[scheme]) != local[1]:
        return False
    address = _address(local[0])
    if address is None:
        return False
    if parts.hostname == "localhost":
        return address.is_loopback
    return _address(parts.hostname) == address


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("[a-z0-9.:-]*".join(re.escape(part) for part in pattern.split("*")))
