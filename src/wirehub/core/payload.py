"""Application values to protocol payloads, checked once (``protocol/payload.py``).

Every payload that reaches clients goes through :func:`checked`: publications (client
publish, ``Node.publish``, later the server API and proxies), ``Node.send``, and the
payloads of handlers and tokens (connection and channel info, connect, subscribe and
RPC data). What it accepts, every client allowed to receive it can parse.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import Raw

from wirehub.errors import InvalidPayload
from wirehub.protocol.payload import PayloadError, check_payload
from wirehub.protocol.types import EMPTY_RAW, Publication

__all__ = ["EMPTY", "checked", "encode", "for_json", "payload", "to_raw"]

EMPTY: Final = EMPTY_RAW
"""The unset payload (the protocol's own instance, which encoding leaves out)."""

_encode = msgspec.json.Encoder().encode


def checked(data: bytes, data_format: str = "json") -> bytes:
    """``data`` as it is to be stored and sent, once ``data_format`` allows it.

    Raises:
        InvalidPayload: error 107 (and a ``ValueError``), with the reason.
    """
    try:
        return check_payload(data, data_format)
    except PayloadError as exc:
        raise InvalidPayload(str(exc)) from None


def encode(value: Any) -> bytes:
    """Bytes-like values as they are (already encoded); anything else as JSON.

    Raises:
        InvalidPayload: JSON can't represent the value.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, Raw | bytearray | memoryview):
        return bytes(value)
    try:
        return _encode(value)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError):
        raise InvalidPayload("data is not JSON-serialisable") from None


def payload(value: Any, data_format: str = "json") -> Raw:
    """A payload that must be there (a publication, a message), checked.

    ``bytes`` and :class:`msgspec.Raw` are taken as already-encoded JSON, or as they
    are in a ``"binary"`` namespace; anything else is serialised to JSON.

    Raises:
        InvalidPayload: error 107 (and a ``ValueError``): empty, or not allowed by
            ``data_format``.
    """
    data = checked(encode(value), data_format)
    return Raw(data) if data else EMPTY


def to_raw(value: Any) -> Raw:
    """An optional JSON payload (info, connect/subscribe/RPC data), checked; an empty
    :class:`msgspec.Raw` means absent.

    Raises:
        InvalidPayload: as for :func:`payload`.
    """
    if isinstance(value, Raw) and not value:
        return EMPTY
    return Raw(checked(encode(value)))


def for_json(publications: list[Publication]) -> list[Publication]:
    """Stored ``publications`` as a JSON client may be sent them (history, recovery).

    Publications were checked when published; this second look guards against what a
    broker holds from elsewhere, with the same function.

    Raises:
        InvalidPayload: a payload a JSON client can't parse.
    """
    result = publications
    for index, publication in enumerate(publications):
        data = bytes(publication.data)
        if not data:
            continue
        normal = checked(data)
        if len(normal) != len(data):  # newlines dropped
            if result is publications:
                result = list(publications)
            result[index] = msgspec.structs.replace(publication, data=Raw(normal))
    return result
