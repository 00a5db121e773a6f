"""wirehub's own compact encoding of what it stores in Redis and sends over PUB/SUB.

MessagePack arrays (msgspec, schema-checked on decode), never pickle:

- a publication is ``[data, info, tags, delta]``: ``data`` the payload bytes, ``info``
  the publisher's client info or nil, ``tags`` a map or nil, ``delta`` whether its
  publisher allows deltas (live delivery only: read from history it is dropped; a
  three-element array, as earlier versions wrote, reads as false); its offset is not
  inside (a history entry's ID is its offset; a PUB/SUB message carries it in its
  header);
- a client info is ``[user, client, conn_info, chan_info]``.

PUB/SUB messages on a channel's ``P.client.ch`` start with one ASCII letter:

==============================  ===================================================
``P`` + publication             a publication of a channel without history
``H<offset>:<epoch>:`` + pub    a publication with history: header written by the
                                publish script, which assigns offset and epoch
``J`` + client info             join
``L`` + client info             leave
==============================  ===================================================

Anything else, or a body that does not decode, is malformed: the receiver logs it
(truncated) and drops it. Control messages are the core's opaque bytes, sent as they are.
"""

from __future__ import annotations

import msgspec
from msgspec import Raw

from wirehub.protocol.types import EMPTY_RAW, ClientInfo, Publication, StreamPosition

__all__ = [
    "JOIN",
    "LEAVE",
    "MalformedMessage",
    "decode_history_entry",
    "decode_info",
    "decode_message",
    "encode_info",
    "encode_join",
    "encode_leave",
    "encode_publication",
    "encode_publication_message",
]

PUBLICATION = ord("P")
HISTORY_PUBLICATION = ord("H")
JOIN = ord("J")
LEAVE = ord("L")


class MalformedMessage(ValueError):
    """Bytes read from Redis that are not wirehub's encoding."""


class _Info(msgspec.Struct, array_like=True, frozen=True):
    user: str
    client: str
    conn_info: bytes = b""
    chan_info: bytes = b""


class _Pub(msgspec.Struct, array_like=True, frozen=True):
    data: bytes
    info: _Info | None = None
    tags: dict[str, str] | None = None
    delta: bool = False


_encoder = msgspec.msgpack.Encoder()
_pub_decoder = msgspec.msgpack.Decoder(_Pub)
_info_decoder = msgspec.msgpack.Decoder(_Info)


def _wire_info(info: ClientInfo) -> _Info:
    return _Info(info.user, info.client, bytes(info.conn_info), bytes(info.chan_info))


def _client_info(info: _Info) -> ClientInfo:
    conn_info, chan_info = info.conn_info, info.chan_info
    return ClientInfo(
        info.user,
        info.client,
        Raw(conn_info) if conn_info else EMPTY_RAW,
        Raw(chan_info) if chan_info else EMPTY_RAW,
    )


def encode_publication(publication: Publication) -> bytes:
    """A publication without its offset, as history entries and PUB/SUB bodies hold it."""
    info = None if publication.info is None else _wire_info(publication.info)
    return _encoder.encode(_Pub(bytes(publication.data), info, publication.tags, publication.delta))


def encode_publication_message(body: bytes) -> bytes:
    """The PUB/SUB message of a publication without history."""
    return b"P" + body


def encode_info(info: ClientInfo) -> bytes:
    return _encoder.encode(_wire_info(info))


def encode_join(info: ClientInfo) -> bytes:
    return b"J" + encode_info(info)


def encode_leave(info: ClientInfo) -> bytes:
    return b"L" + encode_info(info)


def decode_publication(body: bytes | memoryview, offset: int, *, live: bool = True) -> Publication:
    """``live``: keep the publisher's ``delta`` flag (a history entry drops it)."""
    try:
        pub = _pub_decoder.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:
        raise MalformedMessage(f"bad publication: {exc}") from None
    info = pub.info
    return Publication(
        Raw(pub.data) if pub.data else EMPTY_RAW,
        None if info is None else _client_info(info),
        offset,
        pub.tags,
        live and pub.delta,
    )


def decode_info(body: bytes | memoryview) -> ClientInfo:
    try:
        return _client_info(_info_decoder.decode(body))
    except (msgspec.DecodeError, ValueError) as exc:
        raise MalformedMessage(f"bad client info: {exc}") from None


_NO_POSITION = StreamPosition()


def decode_message(data: bytes) -> tuple[int, Publication | ClientInfo, StreamPosition]:
    """Split a PUB/SUB message into its kind (``P``, ``J`` or ``L``), its content and,
    for a publication, the stream position it carries.

    Raises:
        MalformedMessage: not a message wirehub writes.
    """
    if not data:
        raise MalformedMessage("empty message")
    kind = data[0]
    if kind == HISTORY_PUBLICATION:
        offset, epoch, body = _history_header(data)
        publication = decode_publication(body, offset)
        return PUBLICATION, publication, StreamPosition(offset, epoch)
    view = memoryview(data)[1:]
    if kind == PUBLICATION:
        return PUBLICATION, decode_publication(view, 0), _NO_POSITION
    if kind in (JOIN, LEAVE):
        return kind, decode_info(view), _NO_POSITION
    raise MalformedMessage(f"unknown message kind {data[:1]!r}")


def _history_header(data: bytes) -> tuple[int, str, bytes]:
    """``H<offset>:<epoch>:<body>`` split (the body may hold colons; the rest not)."""
    parts = data.split(b":", 2)
    if len(parts) != 3 or not 1 < len(parts[0]) <= 20 or len(parts[1]) > 64:
        raise MalformedMessage("bad history publication header")
    head, epoch, body = parts
    digits = head[1:]
    if not digits.isdigit() or not epoch.isascii():
        raise MalformedMessage("bad history publication header")
    offset = int(digits)
    if offset <= 0 or offset >= 2**63:
        raise MalformedMessage("bad offset in history publication header")
    return offset, epoch.decode("ascii"), body


def decode_history_entry(entry: object) -> Publication:
    """A history stream entry ``[b"<offset>-0", [b"d", publication]]``.

    Raises:
        MalformedMessage: an entry wirehub did not write.
    """
    if not isinstance(entry, list | tuple) or len(entry) != 2:
        raise MalformedMessage("not a stream entry")
    entry_id, fields = entry
    if not isinstance(entry_id, bytes) or not isinstance(fields, list | tuple):
        raise MalformedMessage("not a stream entry")
    offset_text, _, _ = entry_id.partition(b"-")
    if not offset_text.isdigit():
        raise MalformedMessage(f"bad entry id {entry_id[:32]!r}")
    if len(fields) != 2 or fields[0] != b"d" or not isinstance(fields[1], bytes):
        raise MalformedMessage(f"entry {entry_id[:32]!r} is not a publication")
    return decode_publication(fields[1], int(offset_text), live=False)
