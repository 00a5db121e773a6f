"""The body of ``POST /emulation`` (``centrifugo-protocol.md`` §6.4). Pure.

JSON: ``{"node": "<node id>", "session": "<session>", "data": "<commands>"}``, where
``data`` is a JSON *string* holding the newline-joined command text. Protobuf
(``Content-Type: application/octet-stream``): an ``EmulationRequest`` message whose
``data`` bytes are varint-delimited commands. Either way the commands are a frame of
the session's own protocol, decoded later by the session's codec.
"""

from __future__ import annotations

import msgspec
from msgspec import Raw

from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.protobuf_codec import decode_emulation_request as _decode_protobuf
from wirehub.protocol.types import EMPTY_RAW, EmulationRequest

__all__ = ["decode_emulation_request"]


class _JsonEmulationRequest(msgspec.Struct, frozen=True):
    node: str = ""
    session: str = ""
    data: str = ""


_decode_json = msgspec.json.Decoder(_JsonEmulationRequest).decode


def decode_emulation_request(body: bytes, *, protobuf: bool = False) -> EmulationRequest:
    """Decode and check an emulation request: node, session and data all present.

    Raises:
        ProtocolError: undecodable, or a field missing.
    """
    if protobuf:
        request = _decode_protobuf(body)
    else:
        try:
            decoded = _decode_json(body)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"invalid emulation request: {exc}") from None
        data = Raw(decoded.data.encode()) if decoded.data else EMPTY_RAW
        request = EmulationRequest(node=decoded.node, session=decoded.session, data=data)
    if not request.node or not request.session or not request.data:
        raise ProtocolError("invalid emulation request: node, session and data are required")
    return request
