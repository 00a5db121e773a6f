"""The client's address behind trusted proxies (``server.forwarded_allow_ips``).

A TLS-terminating proxy connects on the client's behalf and names the client in
``X-Forwarded-For``. That header is believed only when the connection comes from a
trusted proxy, the way uvicorn's ``--forwarded-allow-ips`` works (uvicorn applies it to
the HTTP routes; wirehub's own WebSocket protocol applies it here):

1. The peer is not trusted (or nothing is configured): the peer's address is the client.
2. The peer is trusted: walk ``X-Forwarded-For`` from the right (the nearest hop) and
   take the first address that is not itself a trusted proxy; if all are, the leftmost.
3. ``*`` trusts every peer; otherwise entries are addresses or networks
   (``10.0.0.0/8``).
4. What is taken from the header must be an IP address, else the peer's address is
   kept: the header's text never reaches a log line as such.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = ["TrustedProxies"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, entries: Sequence[str]) -> None:
        self._any = "*" in entries
        self._networks: list[_Network] = [
            ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*"
        ]

    def __bool__(self) -> bool:
        return self._any or bool(self._networks)

    def trusts(self, host: str) -> bool:
        if self._any:
            return True
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client_host(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address for a connection from ``peer``."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        client = next((hop for hop in reversed(hops) if not self.trusts(hop)), None)
        if client is None and hops:
            client = hops[0]
        return client if client is not None and _is_address(client) else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
