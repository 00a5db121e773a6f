"""Publication payloads: what each protocol can carry, checked once.

Rules (``centrifugo-protocol.md`` §1.2, ``centrifugo-server-side.md`` §4.3):

1. A namespace's ``publication_data_format`` decides what a payload may be:
   ``"json"`` (and ``""``, the default): one JSON value; ``"json_object"``: one JSON
   object; ``"binary"``: any bytes, the empty payload included. Centrifugo's ``""``
   accepts any non-empty bytes and leaves JSON subscribers to be closed with 3506 when
   a Protobuf client publishes binary data; wirehub's ``""`` is ``"json"``, so that a
   payload accepted once can be sent to every client that may subscribe.
2. "JSON" means JSON that every JSON client can parse back: UTF-8, no number out of
   the range of a double, no integer of more than 4300 digits (Python's own limit,
   which centrifuge-python hits), and nesting at most :data:`MAX_JSON_DEPTH` deep
   (independent of the stack depth at which it is checked, so a check made later,
   anywhere, gives the same answer).
3. A JSON payload is stored without raw line breaks (``\\n``, ``\\r``): in valid JSON
   they are insignificant whitespace; ``\\n`` separates the messages of a JSON frame,
   and either ends a line of an SSE event.
4. :func:`check_payload` is the one function that decides; anything that validates a
   payload (publish, the server API, proxies, a broker reading foreign data) calls it.

Pure: no I/O, nothing of wirehub's outside ``protocol``.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

__all__ = [
    "DATA_FORMATS",
    "MAX_JSON_DEPTH",
    "DataFormat",
    "PayloadError",
    "check_payload",
    "is_binary_format",
]

DataFormat = Literal["", "json", "json_object", "binary"]
DATA_FORMATS: Final = ("", "json", "json_object", "binary")

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of arrays and objects a JSON payload may have."""

_decode = msgspec.json.Decoder().decode


class PayloadError(ValueError):
    """A payload the namespace's format does not allow. The message is a fixed text,
    never a piece of the payload."""


def is_binary_format(data_format: str) -> bool:
    """Whether payloads of this format may be bytes a JSON client can't be sent."""
    return data_format == "binary"


def check_payload(data: bytes, data_format: str = "json") -> bytes:
    """Check ``data`` against ``data_format``; return it as it is to be stored.

    Raises:
        PayloadError: with a short reason (empty, not JSON, too deep, not an object).
    """
    if data_format == "binary":
        return data
    if not data:
        raise PayloadError("data required")
    try:
        value = _decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # DecodeError covers "Number out of range" and invalid UTF-8 too.
        raise PayloadError("data is not JSON every client can parse") from None
    if data_format == "json_object" and not isinstance(value, dict):
        raise PayloadError("data must be a JSON object")
    # Counting brackets is cheap and bounds the depth; walk the value only when needed.
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and _too_deep(value):
        raise PayloadError(f"data is nested deeper than {MAX_JSON_DEPTH} levels")
    if b"\n" in data:
        data = data.replace(b"\n", b"")
    return data.replace(b"\r", b"") if b"\r" in data else data


def _too_deep(value: object) -> bool:
    """Whether ``value`` nests lists and dicts deeper than MAX_JSON_DEPTH (iteratively:
    the check itself must not depend on the stack)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[dict[str, object] | list[object], int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False
