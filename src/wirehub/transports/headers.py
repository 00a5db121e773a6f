"""The request headers a connection keeps after its handshake (``TransportInfo.headers``).

A connection lives for hours; its request head is up to ``server.request_head_size_limit``
bytes and is needed once, by the ``on_connecting`` handler. Only the headers named in
``client.transport_headers`` are kept (by default what authentication reads: cookies,
``Authorization``, the user agent, the origin and the forwarding headers), so what an
idle connection holds does not grow with what its client chose to send. The kept copy
is at most the request head's size, and usually a few hundred bytes.

Rules:

1. Names are compared case-insensitively; the mapping's keys are lower case and lookups
   accept any case (``headers["Cookie"]``).
2. A repeated header's values are joined, with ``"; "`` for ``Cookie`` (RFC 6265 §5.4)
   and ``", "`` for the others (RFC 9110 §5.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

__all__ = ["HeaderMap", "keep_headers"]


class HeaderMap(Mapping[str, str]):
    """Read-only headers with lower-case names, looked up in any case."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str] | None = None) -> None:
        self._items = items or {}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"HeaderMap({self._items!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def keep_headers(pairs: Iterable[tuple[str, str]], names: frozenset[str]) -> HeaderMap:
    """The headers among ``pairs`` whose (lower-case) name is in ``names``."""
    kept: dict[str, str] = {}
    for name, value in pairs:
        lowered = name.lower()
        if lowered not in names:
            continue
        if lowered in kept:
            separator = "; " if lowered == "cookie" else ", "
            kept[lowered] = kept[lowered] + separator + value
        else:
            kept[lowered] = value
    return HeaderMap(kept)
