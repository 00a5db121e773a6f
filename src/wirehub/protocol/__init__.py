"""The Centrifugo client protocol v2: pure, Sans-I/O. Bytes in, typed messages out.

Nothing here does I/O or imports asyncio, and nothing here imports the rest of wirehub.
"""

from __future__ import annotations

from wirehub.protocol.codec import Codec, get_codec
from wirehub.protocol.codes import DisconnectCode, ErrorCode, UnsubscribeCode
from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.json_codec import JSON_CODEC, json_payload

__all__ = [
    "JSON_CODEC",
    "Codec",
    "DisconnectCode",
    "ErrorCode",
    "ProtocolError",
    "UnsubscribeCode",
    "get_codec",
    "json_payload",
]
