"""The JSON encoding of the protocol: newline-joined objects in text frames.

Rules (``centrifugo-protocol.md`` §1.2):

1. A frame holds one or more JSON objects joined by a single ``\\n``; readers skip
   blank lines, writers never emit one (centrifuge-python would choke on it).
2. Keys are the snake_case ``client.proto`` names; 64-bit integers are plain numbers.
3. Payloads are embedded JSON values, passed through as :class:`msgspec.Raw`. A
   payload must hold no raw newline, since that is the frame delimiter; in valid JSON
   a newline can only be insignificant whitespace, so it is dropped.
4. Any line that is not a valid command is a :class:`ProtocolError`.
5. On a subscription that negotiated deltas, the ``data`` of every publication, full
   payload or fossil delta, is a JSON *string* holding its text
   (:meth:`JsonCodec.delta_data`; ``centrifugo-protocol.md`` §2.7).
"""

from __future__ import annotations

from typing import Final

import msgspec

from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.payload import check_payload
from wirehub.protocol.types import Command, Reply

__all__ = ["JSON_CODEC", "JsonCodec", "json_payload"]

_decode_command = msgspec.json.Decoder(Command).decode
_encode = msgspec.json.Encoder().encode


class JsonCodec:
    """Newline-delimited JSON, the protocol's default encoding."""

    name: Final = "json"
    transport: Final = "websocket"
    binary: Final = False
    ping: Final = b"{}"

    def decode_commands(self, frame: bytes) -> list[Command]:
        try:
            # JSON is UTF-8. msgspec checks strings it decodes but not Raw payloads,
            # which would reach other clients as text frames they must reject.
            frame.decode()
        except UnicodeDecodeError:
            raise ProtocolError("invalid command: not UTF-8") from None
        commands = []
        for line in frame.split(b"\n"):
            if not line or line.isspace():
                continue
            try:
                commands.append(_decode_command(line))
            except msgspec.DecodeError as exc:
                raise ProtocolError(f"invalid command: {exc}") from None
            except RecursionError:
                raise ProtocolError("invalid command: nested too deeply") from None
        if not commands:
            raise ProtocolError("empty frame")
        return commands

    def encode_reply(self, reply: Reply) -> bytes:
        return _encode(reply)

    def join(self, messages: list[bytes]) -> bytes:
        return messages[0] if len(messages) == 1 else b"\n".join(messages)

    def delta_data(self, data: bytes) -> msgspec.Raw:
        return msgspec.Raw(_encode(data.decode()))


JSON_CODEC: Final = JsonCodec()


def json_payload(data: bytes) -> msgspec.Raw:
    """Check that ``data`` is one JSON value a JSON client can parse, and return it
    ready to embed (:func:`wirehub.protocol.payload.check_payload`, format ``"json"``).

    Raises:
        PayloadError: a ``ValueError``; such bytes can't reach a JSON client.
    """
    return msgspec.Raw(check_payload(data, "json"))
