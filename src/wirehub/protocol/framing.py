"""Codecs of the HTTP-streaming, SSE and unidirectional transports. Pure.

Each wraps the JSON or Protobuf codec and adds what its transport puts around every
message, so that fan-out encodes a publication once per transport with its framing
included, and a stream's writer sends the queued bytes as they are
(``centrifugo-protocol.md`` §6):

1. ``http_stream``: JSON messages each followed by ``\\n``; Protobuf messages
   varint-prefixed, as on WebSocket.
2. ``sse``: every message is one event, ``data: <JSON>\\n\\n``. JSON holds no raw line
   break (payloads are stored without them, :mod:`wirehub.protocol.payload`), so an
   event is always one line of data.
3. Unidirectional transports carry bare :class:`Push` objects: a reply's push goes out
   without its ``Reply`` wrapper, a connect result becomes a ``connect`` push, and the
   server ping, an empty reply, is the empty push ``{}``. What such a client sends is
   one ``ConnectRequest`` (not a command); it decodes to a connect command with id 1,
   ``null`` or an empty body to an empty request. ``uni_websocket`` messages have no
   framing of their own (one push per WebSocket message): its frames join them with
   ``\\n`` like JSON frames and the transport sends each line as a message.

A codec's ``name`` keys fan-out's encode-once cache, and ``transport`` labels metrics.
"""

from __future__ import annotations

from typing import Final

import msgspec

from wirehub.protocol.codec import Codec
from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.json_codec import JSON_CODEC
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC
from wirehub.protocol.types import (
    Command,
    Connect,
    ConnectRequest,
    ConnectResult,
    Push,
    Reply,
)

__all__ = [
    "HTTP_STREAM_JSON",
    "HTTP_STREAM_PROTOBUF",
    "SSE_JSON",
    "UNI_HTTP_STREAM",
    "UNI_SSE",
    "UNI_WEBSOCKET",
    "FramedCodec",
    "UnidirectionalCodec",
    "connect_push",
]

_encode = msgspec.json.Encoder().encode
_decode_connect = msgspec.json.Decoder(ConnectRequest | None).decode

_SSE_PREFIX: Final = b"data: "
_SSE_SUFFIX: Final = b"\n\n"


class FramedCodec:
    """A bidirectional codec whose messages carry their transport's framing."""

    def __init__(
        self, base: Codec, *, transport: str, prefix: bytes = b"", suffix: bytes = b""
    ) -> None:
        self._base = base
        self.name = f"{base.name}/{transport}"
        self.transport = transport
        self.binary = base.binary
        self._prefix = prefix
        self._suffix = suffix
        self.ping = prefix + base.ping + suffix

    def decode_commands(self, frame: bytes) -> list[Command]:
        return self._base.decode_commands(frame)

    def encode_reply(self, reply: Reply) -> bytes:
        return self._prefix + self._base.encode_reply(reply) + self._suffix

    def join(self, messages: list[bytes]) -> bytes:
        return messages[0] if len(messages) == 1 else b"".join(messages)

    def delta_data(self, data: bytes) -> msgspec.Raw:
        return self._base.delta_data(data)


class UnidirectionalCodec:
    """JSON pushes without the reply wrapper; what the client sends is a
    ``ConnectRequest``."""

    binary: Final = False

    def __init__(self, *, transport: str, prefix: bytes = b"", suffix: bytes = b"") -> None:
        self.name = f"json/{transport}"
        self.transport = transport
        self._prefix = prefix
        self._suffix = suffix
        # Messages without framing of their own are joined like JSON frames.
        self._separator = b"" if suffix else b"\n"
        self.ping = prefix + b"{}" + suffix

    def decode_commands(self, frame: bytes) -> list[Command]:
        """The connect request a unidirectional client sent, as a connect command.

        Raises:
            ProtocolError: not one JSON ``ConnectRequest`` (or ``null``).
        """
        if not frame.strip():
            return [Command(id=1, connect=ConnectRequest())]
        try:
            frame.decode()
            request = _decode_connect(frame)
        except (UnicodeDecodeError, msgspec.DecodeError) as exc:
            raise ProtocolError(f"invalid connect request: {exc}") from None
        except RecursionError:
            raise ProtocolError("invalid connect request: nested too deeply") from None
        return [Command(id=1, connect=request or ConnectRequest())]

    def encode_reply(self, reply: Reply) -> bytes:
        if reply.push is not None:
            push = reply.push
        elif reply.connect is not None:
            push = Push(connect=connect_push(reply.connect))
        else:
            # The ping; the core sends these clients nothing else (a failed connect is
            # a disconnect for them, and they send no other command).
            push = _EMPTY_PUSH
        return self._prefix + _encode(push) + self._suffix

    def join(self, messages: list[bytes]) -> bytes:
        return messages[0] if len(messages) == 1 else self._separator.join(messages)

    def delta_data(self, data: bytes) -> msgspec.Raw:
        # Unidirectional clients never ask for deltas; JSON's form, for completeness.
        return JSON_CODEC.delta_data(data)


_EMPTY_PUSH: Final = Push()


def connect_push(result: ConnectResult) -> Connect:
    """A connect result as the ``connect`` push of a unidirectional stream."""
    return Connect(
        client=result.client,
        version=result.version,
        data=result.data,
        subs=result.subs,
        expires=result.expires,
        ttl=result.ttl,
        ping=result.ping,
        pong=result.pong,
        session=result.session,
        node=result.node,
        time=result.time,
    )


HTTP_STREAM_JSON: Final = FramedCodec(JSON_CODEC, transport="http_stream", suffix=b"\n")
HTTP_STREAM_PROTOBUF: Final = FramedCodec(PROTOBUF_CODEC, transport="http_stream")
SSE_JSON: Final = FramedCodec(JSON_CODEC, transport="sse", prefix=_SSE_PREFIX, suffix=_SSE_SUFFIX)
UNI_WEBSOCKET: Final = UnidirectionalCodec(transport="uni_websocket")
UNI_SSE: Final = UnidirectionalCodec(transport="uni_sse", prefix=_SSE_PREFIX, suffix=_SSE_SUFFIX)
UNI_HTTP_STREAM: Final = UnidirectionalCodec(transport="uni_http_stream", suffix=b"\n")
