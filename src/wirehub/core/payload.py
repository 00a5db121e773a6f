"""Application values to protocol payloads."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import Raw

from wirehub.protocol.json_codec import json_payload
from wirehub.protocol.types import EMPTY_RAW, Publication

__all__ = ["EMPTY", "json_publications", "to_raw"]

EMPTY: Final = EMPTY_RAW
"""The unset payload (the protocol's own instance, which encoding leaves out)."""

_encode = msgspec.json.Encoder().encode


def to_raw(value: Any) -> Raw:
    """Encode a payload once, for every subscriber.

    ``bytes`` are taken as already-encoded JSON and checked; :class:`msgspec.Raw`
    passes through; anything else is serialised to JSON.

    Raises:
        ValueError: ``bytes`` that are not JSON, or a value JSON can't represent.
    """
    if isinstance(value, Raw):
        return value if len(value) else EMPTY
    if isinstance(value, bytes | bytearray | memoryview):
        return json_payload(bytes(value))
    try:
        return Raw(_encode(value))
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"payload is not JSON-serialisable: {exc}") from None


def json_publications(publications: list[Publication]) -> list[Publication]:
    """``publications`` as a JSON client may be sent them (history, recovery).

    Publications from Protobuf clients are stored as sent: their data may hold raw
    newlines, which would split a JSON frame, or not be JSON at all.

    Raises:
        ValueError: a payload is not JSON; the JSON client can't be sent it.
    """
    result = publications
    for index, publication in enumerate(publications):
        data = publication.data
        if not data:
            continue
        checked = json_payload(bytes(data))
        if len(checked) != len(data):  # newlines dropped
            if result is publications:
                result = list(publications)
            result[index] = msgspec.structs.replace(publication, data=checked)
    return result
