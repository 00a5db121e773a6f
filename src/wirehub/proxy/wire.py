"""Proxy request bodies and response shapes (``centrifugo-server-side.md`` §3.3-3.4).

Requests: payload fields (``data``, ``meta``) are the client's JSON embedded verbatim
(``Raw``), or ``b64data`` (standard base64) with ``encoding: "binary"`` when the proxy
has ``binary_encoding``. Empty fields are left out, except ``user``, always present
outside connect.

Responses: ``{"disconnect": {...}}`` wins over ``{"error": {...}}``, which wins over
``{"result": {...}}``. Payload fields are taken verbatim; their ``b64`` twins are
accepted too (preferred when non-empty, except publish, where ``data`` wins). Unknown
fields (PRO features: ``caps``, ``labels``, ``server_tags_filter``, ...) are ignored; a
known field of the wrong type makes the whole answer undecodable: error 100.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

import msgspec
from msgspec import Raw, Struct

__all__ = [
    "BoolValue",
    "ConnectResponse",
    "ConnectResult",
    "DisconnectObject",
    "ErrorObject",
    "PublishResponse",
    "PublishResult",
    "RPCResponse",
    "RPCResult",
    "RefreshResponse",
    "RefreshResult",
    "SubRefreshResponse",
    "SubscribeOptions",
    "SubscribeResponse",
    "SubscribeResult",
    "decode",
    "encode",
    "payload_fields",
    "pick",
]

_NULL = b"null"
_EMPTY = Raw()

_T = TypeVar("_T")


class ErrorObject(Struct, frozen=True):
    code: int
    message: str = ""
    temporary: bool = False


class DisconnectObject(Struct, frozen=True):
    code: int
    reason: str = ""


class BoolValue(Struct, frozen=True):
    value: bool = False


class Override(Struct, frozen=True):
    presence: BoolValue | None = None
    join_leave: BoolValue | None = None
    force_push_join_leave: BoolValue | None = None
    force_recovery: BoolValue | None = None
    force_positioning: BoolValue | None = None

    def flags(self) -> dict[str, bool]:
        return {
            name: value.value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not None
        }


class SubscribeOptions(Struct, frozen=True):
    """A ``subs`` entry of a connect result: one server-side subscription."""

    info: Raw = _EMPTY
    b64info: str = ""
    data: Raw = _EMPTY
    b64data: str = ""
    override: Override | None = None


class ConnectResult(Struct, frozen=True):
    user: str = ""
    expire_at: int = 0
    info: Raw = _EMPTY
    b64info: str = ""
    data: Raw = _EMPTY
    b64data: str = ""
    channels: list[str] | None = None
    subs: dict[str, SubscribeOptions] | None = None
    meta: Raw = _EMPTY


class RefreshResult(Struct, frozen=True):
    expired: bool = False
    expire_at: int = 0
    info: Raw = _EMPTY
    b64info: str = ""
    meta: Raw = _EMPTY


class SubscribeResult(Struct, frozen=True):
    expire_at: int = 0
    info: Raw = _EMPTY
    b64info: str = ""
    data: Raw = _EMPTY
    b64data: str = ""
    override: Override | None = None


class PublishResult(Struct, frozen=True):
    data: Raw = _EMPTY
    b64data: str = ""
    skip_history: bool = False
    tags: dict[str, str] | None = None
    idempotency_key: str = ""
    delta: bool = False


class RPCResult(Struct, frozen=True):
    data: Raw = _EMPTY
    b64data: str = ""


class _Envelope(Struct, frozen=True):
    error: ErrorObject | None = None
    disconnect: DisconnectObject | None = None


class ConnectResponse(_Envelope, frozen=True):
    result: ConnectResult | None = None


class RefreshResponse(_Envelope, frozen=True):
    result: RefreshResult | None = None


class SubscribeResponse(_Envelope, frozen=True):
    result: SubscribeResult | None = None


class PublishResponse(_Envelope, frozen=True):
    result: PublishResult | None = None


class SubRefreshResponse(_Envelope, frozen=True):
    result: RefreshResult | None = None


class RPCResponse(_Envelope, frozen=True):
    result: RPCResult | None = None


_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def encode(request: dict[str, Any]) -> bytes:
    return _encoder.encode(request)


def decode(body: bytes, response_type: type[_T]) -> _T:
    """The backend's answer.

    Raises:
        ValueError: not JSON, or not the shape of ``response_type``.
    """
    decoder = _decoders.get(response_type)
    if decoder is None:
        decoder = _decoders[response_type] = msgspec.json.Decoder(response_type)
    try:
        return decoder.decode(body)  # type: ignore[no-any-return]
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


def payload_fields(request: dict[str, Any], data: bytes, *, binary: bool) -> None:
    """Add ``data`` to ``request`` as ``data`` (verbatim JSON) or ``b64data``."""
    if not data:
        return
    if binary:
        request["b64data"] = base64.b64encode(data).decode()
    else:
        request["data"] = Raw(data)


def pick(raw: Raw, b64: str, *, raw_first: bool = False) -> bytes | None:
    """One payload of a result from its two forms; ``None`` when absent.

    Raises:
        ValueError: bad base64.
    """
    plain = bytes(raw) if raw and bytes(raw) != _NULL else None
    if b64 and not (raw_first and plain):
        try:
            return base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise ValueError("bad base64") from None
    return plain
