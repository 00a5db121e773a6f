"""The codec interface: frames of bytes in, typed messages out, and back.

A frame is one WebSocket message (or one HTTP-stream chunk). It holds one or more
protocol messages: newline-joined JSON objects, or varint-prefixed Protobuf records.
"""

from __future__ import annotations

from typing import Protocol

from msgspec import Raw

from wirehub.protocol.types import Command, Reply

__all__ = ["Codec", "get_codec"]


class Codec(Protocol):
    """Turns frames into commands and replies into bytes. Stateless and pure."""

    @property
    def name(self) -> str:
        """``"json"`` or ``"protobuf"``: the key fan-out uses to encode once per codec."""
        ...

    @property
    def transport(self) -> str:
        """The transport whose framing this codec writes (a metrics label):
        ``"websocket"`` for the plain JSON and Protobuf codecs."""
        ...

    @property
    def binary(self) -> bool:
        """Whether frames go out as binary (Protobuf) or text (JSON) WebSocket messages."""
        ...

    @property
    def ping(self) -> bytes:
        """The encoded server ping, an empty Reply."""
        ...

    def decode_commands(self, frame: bytes) -> list[Command]:
        """Decode every command in a frame, in order.

        Raises:
            ProtocolError: the frame is empty or a message in it is not a valid command.
        """
        ...

    def encode_reply(self, reply: Reply) -> bytes:
        """Encode one reply as it goes into a frame."""
        ...

    def join(self, messages: list[bytes]) -> bytes:
        """Join encoded replies into one frame."""
        ...

    def delta_data(self, data: bytes) -> Raw:
        """``Publication.data`` on a subscription that negotiated deltas: ``data`` (a
        payload or a fossil delta) as this protocol carries it there.

        Raises:
            UnicodeDecodeError: JSON, and ``data`` is not UTF-8 (never the case for
                what a JSON client may receive, nor for deltas of it).
        """
        ...


def get_codec(name: str) -> Codec:
    """Return the codec called ``name``; ``ValueError`` for an unknown one."""
    if name == "json":
        from wirehub.protocol.json_codec import JSON_CODEC

        return JSON_CODEC
    if name == "protobuf":
        from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC

        return PROTOBUF_CODEC
    raise ValueError(f"unknown codec {name!r}; expected 'json' or 'protobuf'")
