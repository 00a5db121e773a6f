"""The Protobuf encoding of the protocol: varint-delimited records in binary frames.

Rules (``centrifugo-protocol.md`` §1.3):

1. Every message in a frame, even a lone one, is prefixed by its length as an unsigned
   varint; several records may follow each other in one frame.
2. Standard proto3 binary encoding of ``client.proto``; zero values are not written.
   The server ping is an empty Reply: the single byte ``0x00``. So is the client pong.
3. ``bytes`` fields (payloads) carry raw bytes; strings must be UTF-8.
4. Unknown fields are skipped, as proto3 requires; a truncated varint, a record longer
   than its frame, a wire type that does not match the field, invalid UTF-8, or
   messages nested more than :data:`MAX_DEPTH` deep is a :class:`ProtocolError`.
5. On a subscription that negotiated deltas, publication data is the bytes as they
   are (:meth:`ProtobufCodec.delta_data`), full payload or fossil delta.

The codec is schema-driven: the tables below give each message's field numbers, which
are the wire contract and match ``client.proto``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import Raw

from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.types import (
    EMPTY_RAW,
    ClientInfo,
    Command,
    Connect,
    ConnectRequest,
    ConnectResult,
    Disconnect,
    EmulationRequest,
    Error,
    FilterNode,
    HistoryRequest,
    HistoryResult,
    Join,
    Leave,
    Message,
    PresenceRequest,
    PresenceResult,
    PresenceStatsRequest,
    PresenceStatsResult,
    Publication,
    PublishRequest,
    PublishResult,
    Push,
    Refresh,
    RefreshRequest,
    RefreshResult,
    Reply,
    RPCRequest,
    RPCResult,
    SendRequest,
    StreamPosition,
    SubRefreshRequest,
    SubRefreshResult,
    Subscribe,
    SubscribeRequest,
    SubscribeResult,
    Unsubscribe,
    UnsubscribeRequest,
    UnsubscribeResult,
)

__all__ = [
    "MAX_DEPTH",
    "PROTOBUF_CODEC",
    "ProtobufCodec",
    "decode_emulation_request",
    "encode_message",
]

# Field kinds.
_UINT = "uint"  # varint: uint32, uint64, int32/int64 (two's complement), bool
_BOOL = "bool"
_STR = "str"
_BYTES = "bytes"  # payloads, as msgspec.Raw
_MSG = "msg"
_REPEATED = "repeated"  # repeated message
_REPEATED_STR = "repeated_str"  # repeated string
_MAP_MSG = "map_msg"  # map<string, message>
_MAP_STR = "map_str"  # map<string, string>

Field = tuple[int, str, str, Any]

_SCHEMA: Final[dict[type[msgspec.Struct], tuple[Field, ...]]] = {
    StreamPosition: ((1, "offset", _UINT, None), (2, "epoch", _STR, None)),
    ClientInfo: (
        (1, "user", _STR, None),
        (2, "client", _STR, None),
        (3, "conn_info", _BYTES, None),
        (4, "chan_info", _BYTES, None),
    ),
    Publication: (
        (4, "data", _BYTES, None),
        (5, "info", _MSG, ClientInfo),
        (6, "offset", _UINT, None),
        (7, "tags", _MAP_STR, None),
        (8, "delta", _BOOL, None),
    ),
    FilterNode: (
        (1, "op", _STR, None),
        (2, "key", _STR, None),
        (3, "cmp", _STR, None),
        (4, "val", _STR, None),
        (5, "vals", _REPEATED_STR, None),
        (6, "nodes", _REPEATED, FilterNode),
    ),
    SubscribeRequest: (
        (1, "channel", _STR, None),
        (2, "token", _STR, None),
        (3, "recover", _BOOL, None),
        (6, "epoch", _STR, None),
        (7, "offset", _UINT, None),
        (8, "data", _BYTES, None),
        (9, "positioned", _BOOL, None),
        (10, "recoverable", _BOOL, None),
        (11, "join_leave", _BOOL, None),
        (12, "delta", _STR, None),
        (13, "tf", _MSG, FilterNode),
        (14, "flag", _UINT, None),
        (15, "type", _UINT, None),
    ),
    ConnectRequest: (
        (1, "token", _STR, None),
        (2, "data", _BYTES, None),
        (3, "subs", _MAP_MSG, SubscribeRequest),
        (4, "name", _STR, None),
        (5, "version", _STR, None),
        (6, "headers", _MAP_STR, None),
    ),
    UnsubscribeRequest: ((1, "channel", _STR, None),),
    PublishRequest: ((1, "channel", _STR, None), (2, "data", _BYTES, None)),
    PresenceRequest: ((1, "channel", _STR, None),),
    PresenceStatsRequest: ((1, "channel", _STR, None),),
    HistoryRequest: (
        (1, "channel", _STR, None),
        (7, "limit", _UINT, None),
        (8, "since", _MSG, StreamPosition),
        (9, "reverse", _BOOL, None),
    ),
    RPCRequest: ((1, "data", _BYTES, None), (2, "method", _STR, None)),
    SendRequest: ((1, "data", _BYTES, None),),
    RefreshRequest: ((1, "token", _STR, None),),
    SubRefreshRequest: ((1, "channel", _STR, None), (2, "token", _STR, None)),
    Command: (
        (1, "id", _UINT, None),
        (4, "connect", _MSG, ConnectRequest),
        (5, "subscribe", _MSG, SubscribeRequest),
        (6, "unsubscribe", _MSG, UnsubscribeRequest),
        (7, "publish", _MSG, PublishRequest),
        (8, "presence", _MSG, PresenceRequest),
        (9, "presence_stats", _MSG, PresenceStatsRequest),
        (10, "history", _MSG, HistoryRequest),
        (12, "send", _MSG, SendRequest),
        (13, "rpc", _MSG, RPCRequest),
        (14, "refresh", _MSG, RefreshRequest),
        (15, "sub_refresh", _MSG, SubRefreshRequest),
    ),
    Error: ((1, "code", _UINT, None), (2, "message", _STR, None), (3, "temporary", _BOOL, None)),
    SubscribeResult: (
        (1, "expires", _BOOL, None),
        (2, "ttl", _UINT, None),
        (3, "recoverable", _BOOL, None),
        (6, "epoch", _STR, None),
        (7, "publications", _REPEATED, Publication),
        (8, "recovered", _BOOL, None),
        (9, "offset", _UINT, None),
        (10, "positioned", _BOOL, None),
        (11, "data", _BYTES, None),
        (12, "was_recovering", _BOOL, None),
        (13, "delta", _BOOL, None),
    ),
    ConnectResult: (
        (1, "client", _STR, None),
        (2, "version", _STR, None),
        (3, "expires", _BOOL, None),
        (4, "ttl", _UINT, None),
        (5, "data", _BYTES, None),
        (6, "subs", _MAP_MSG, SubscribeResult),
        (7, "ping", _UINT, None),
        (8, "pong", _BOOL, None),
        (9, "session", _STR, None),
        (10, "node", _STR, None),
        (11, "time", _UINT, None),
    ),
    UnsubscribeResult: (),
    PublishResult: (),
    Connect: (
        (1, "client", _STR, None),
        (2, "version", _STR, None),
        (3, "data", _BYTES, None),
        (4, "subs", _MAP_MSG, SubscribeResult),
        (5, "expires", _BOOL, None),
        (6, "ttl", _UINT, None),
        (7, "ping", _UINT, None),
        (8, "pong", _BOOL, None),
        (9, "session", _STR, None),
        (10, "node", _STR, None),
        (11, "time", _UINT, None),
    ),
    EmulationRequest: (
        (1, "node", _STR, None),
        (2, "session", _STR, None),
        (3, "data", _BYTES, None),
    ),
    Join: ((1, "info", _MSG, ClientInfo),),
    Leave: ((1, "info", _MSG, ClientInfo),),
    Unsubscribe: ((2, "code", _UINT, None), (3, "reason", _STR, None)),
    Message: ((1, "data", _BYTES, None),),
    Subscribe: (
        (1, "recoverable", _BOOL, None),
        (4, "epoch", _STR, None),
        (5, "offset", _UINT, None),
        (6, "positioned", _BOOL, None),
        (7, "data", _BYTES, None),
    ),
    Disconnect: ((1, "code", _UINT, None), (2, "reason", _STR, None)),
    Refresh: ((1, "expires", _BOOL, None), (2, "ttl", _UINT, None)),
    PresenceResult: ((1, "presence", _MAP_MSG, ClientInfo),),
    PresenceStatsResult: ((1, "num_clients", _UINT, None), (2, "num_users", _UINT, None)),
    HistoryResult: (
        (1, "publications", _REPEATED, Publication),
        (2, "epoch", _STR, None),
        (3, "offset", _UINT, None),
    ),
    RPCResult: ((1, "data", _BYTES, None),),
    RefreshResult: (
        (1, "client", _STR, None),
        (2, "version", _STR, None),
        (3, "expires", _BOOL, None),
        (4, "ttl", _UINT, None),
    ),
    SubRefreshResult: ((1, "expires", _BOOL, None), (2, "ttl", _UINT, None)),
    Push: (
        (2, "channel", _STR, None),
        (4, "pub", _MSG, Publication),
        (5, "join", _MSG, Join),
        (6, "leave", _MSG, Leave),
        (7, "unsubscribe", _MSG, Unsubscribe),
        (8, "message", _MSG, Message),
        (9, "subscribe", _MSG, Subscribe),
        (10, "connect", _MSG, Connect),
        (11, "disconnect", _MSG, Disconnect),
        (12, "refresh", _MSG, Refresh),
    ),
    Reply: (
        (1, "id", _UINT, None),
        (2, "error", _MSG, Error),
        (4, "push", _MSG, Push),
        (5, "connect", _MSG, ConnectResult),
        (6, "subscribe", _MSG, SubscribeResult),
        (7, "unsubscribe", _MSG, UnsubscribeResult),
        (8, "publish", _MSG, PublishResult),
        (9, "presence", _MSG, PresenceResult),
        (10, "presence_stats", _MSG, PresenceStatsResult),
        (11, "history", _MSG, HistoryResult),
        (13, "rpc", _MSG, RPCResult),
        (14, "refresh", _MSG, RefreshResult),
        (15, "sub_refresh", _MSG, SubRefreshResult),
    ),
}

_BY_NUMBER: Final = {cls: {f[0]: f for f in fields} for cls, fields in _SCHEMA.items()}
_WIRE_TYPE: Final = {
    _UINT: 0,
    _BOOL: 0,
    _STR: 2,
    _BYTES: 2,
    _MSG: 2,
    _REPEATED: 2,
    _REPEATED_STR: 2,
    _MAP_MSG: 2,
    _MAP_STR: 2,
}
_MASK64 = (1 << 64) - 1

MAX_DEPTH: Final = 100
"""Deepest nesting of messages a command may have (a tags filter is the only recursive
message): deeper is a :class:`ProtocolError`, before the decoder's own recursion could
exhaust the stack."""


# Encoding.


def _varint(value: int) -> bytes:
    value &= _MASK64  # negative int32/int64 go out as ten-byte two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _encode(message: msgspec.Struct) -> bytes:
    parts: list[bytes] = []
    for number, attr, kind, _sub in _SCHEMA[type(message)]:
        value = getattr(message, attr)
        if kind in (_UINT, _BOOL):
            if value:
                parts.append(_key(number, 0) + _varint(int(value)))
        elif kind == _STR:
            if value:
                parts.append(_length_delimited(number, value.encode()))
        elif kind == _BYTES:
            if len(value):
                parts.append(_length_delimited(number, bytes(value)))
        elif kind == _MSG:
            if value is not None:
                parts.append(_length_delimited(number, _encode(value)))
        elif kind == _REPEATED:
            parts.extend(_length_delimited(number, _encode(item)) for item in value or ())
        elif kind == _REPEATED_STR:
            parts.extend(_length_delimited(number, item.encode()) for item in value or ())
        else:
            parts.extend(_encode_map(number, kind, value or {}))
    return b"".join(parts)


def _encode_map(number: int, kind: str, mapping: dict[str, Any]) -> list[bytes]:
    entries = []
    for key, value in mapping.items():
        encoded = value.encode() if kind == _MAP_STR else _encode(value)
        entry = _length_delimited(1, key.encode()) + _length_delimited(2, encoded)
        entries.append(_length_delimited(number, entry))
    return entries


# Decoding.


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ProtocolError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _MASK64, pos
        shift += 7


def _skip(data: bytes, pos: int, end: int, wire_type: int) -> int:
    if wire_type == 0:
        return _read_varint(data, pos, end)[1]
    if wire_type == 1:
        pos += 8
    elif wire_type == 5:
        pos += 4
    elif wire_type == 2:
        length, pos = _read_varint(data, pos, end)
        pos += length
    else:
        raise ProtocolError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise ProtocolError("field runs past the end of its message")
    return pos


def _decode(cls: type[msgspec.Struct], data: bytes, pos: int, end: int, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ProtocolError("messages nested too deeply")
    fields = _BY_NUMBER[cls]
    values: dict[str, Any] = {}
    while pos < end:
        key, pos = _read_varint(data, pos, end)
        number, wire_type = key >> 3, key & 7
        field = fields.get(number)
        if field is None:
            pos = _skip(data, pos, end, wire_type)
            continue
        _, attr, kind, sub = field
        if wire_type != _WIRE_TYPE[kind]:
            raise ProtocolError(f"wrong wire type for {cls.__name__}.{attr}")
        if wire_type == 0:
            raw, pos = _read_varint(data, pos, end)
            values[attr] = bool(raw) if kind == _BOOL else _to_int(cls, attr, raw)
            continue
        length, pos = _read_varint(data, pos, end)
        stop = pos + length
        if stop > end:
            raise ProtocolError(f"{cls.__name__}.{attr} runs past the end of its message")
        _set_length_delimited(values, attr, kind, sub, data, pos, stop, depth)
        pos = stop
    return cls(**values)


def _set_length_delimited(
    values: dict[str, Any],
    attr: str,
    kind: str,
    sub: Any,
    data: bytes,
    pos: int,
    stop: int,
    depth: int,
) -> None:
    if kind == _STR:
        values[attr] = _text(data[pos:stop])
    elif kind == _BYTES:
        values[attr] = Raw(data[pos:stop]) if stop > pos else EMPTY_RAW
    elif kind == _MSG:
        values[attr] = _decode(sub, data, pos, stop, depth + 1)
    elif kind == _REPEATED:
        values.setdefault(attr, []).append(_decode(sub, data, pos, stop, depth + 1))
    elif kind == _REPEATED_STR:
        values.setdefault(attr, []).append(_text(data[pos:stop]))
    else:
        key, value = _decode_entry(kind, sub, data, pos, stop)
        values.setdefault(attr, {})[key] = value


def _decode_entry(kind: str, sub: Any, data: bytes, pos: int, end: int) -> tuple[str, Any]:
    key, value = "", "" if kind == _MAP_STR else sub()
    while pos < end:
        tag, pos = _read_varint(data, pos, end)
        if tag & 7 != 2:
            pos = _skip(data, pos, end, tag & 7)
            continue
        length, pos = _read_varint(data, pos, end)
        stop = pos + length
        if stop > end:
            raise ProtocolError("map entry runs past the end of its message")
        if tag >> 3 == 1:
            key = _text(data[pos:stop])
        elif tag >> 3 == 2:
            value = _text(data[pos:stop]) if kind == _MAP_STR else _decode(sub, data, pos, stop)
        pos = stop
    return key, value


def _text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ProtocolError("a string field is not valid UTF-8") from None


# Signed fields of requests, read as two's complement; every other varint is unsigned.
_SIGNED: Final = {(SubscribeRequest, "flag"), (SubscribeRequest, "type"), (HistoryRequest, "limit")}
_UINT32: Final = {(Command, "id")}


def _to_int(cls: type[msgspec.Struct], attr: str, raw: int) -> int:
    if (cls, attr) in _SIGNED:
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if (cls, attr) in _UINT32:
        return raw & 0xFFFFFFFF  # as a proto3 uint32 parser truncates
    if raw >= 1 << 63:
        raise ProtocolError(f"{cls.__name__}.{attr} is out of range")
    return raw


def decode_emulation_request(body: bytes) -> EmulationRequest:
    """The Protobuf body of ``POST /emulation`` (not length-prefixed).

    Raises:
        ProtocolError: the body is not an ``EmulationRequest``.
    """
    result: EmulationRequest = _decode(EmulationRequest, body, 0, len(body))
    return result


def encode_message(message: msgspec.Struct) -> bytes:
    """One message of the schema, without a length prefix (``Push`` on uni_grpc-like
    streams, ``EmulationRequest`` in tests)."""
    return _encode(message)


class ProtobufCodec:
    """Varint-delimited Protobuf, the ``centrifuge-protobuf`` subprotocol."""

    name: Final = "protobuf"
    transport: Final = "websocket"
    binary: Final = True
    ping: Final = b"\x00"

    def decode_commands(self, frame: bytes) -> list[Command]:
        commands = []
        pos, end = 0, len(frame)
        while pos < end:
            length, pos = _read_varint(frame, pos, end)
            stop = pos + length
            if stop > end:
                raise ProtocolError("a command runs past the end of the frame")
            commands.append(_decode(Command, frame, pos, stop))
            pos = stop
        if not commands:
            raise ProtocolError("empty frame")
        return commands

    def encode_reply(self, reply: Reply) -> bytes:
        body = _encode(reply)
        return _varint(len(body)) + body

    def join(self, messages: list[bytes]) -> bytes:
        return messages[0] if len(messages) == 1 else b"".join(messages)

    def delta_data(self, data: bytes) -> Raw:
        return Raw(data) if data else EMPTY_RAW


PROTOBUF_CODEC: Final = ProtobufCodec()
