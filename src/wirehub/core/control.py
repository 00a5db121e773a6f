"""Node-to-node control messages: their types and their encoding. Pure.

Modelled on centrifuge's ``controlpb.Command`` (``centrifugo-server-side.md`` §1.13),
encoded as JSON with msgspec (payloads stay raw JSON) and checked against the schema
on decode; a message that fails the check is dropped by the caller, never half-applied.
Every message carries its sender's node id in ``uid``: a node drops its own broadcasts
(it applied them locally already).

Targeting is by user, as in Centrifugo: ``user`` "" is the bucket of anonymous
connections, ``client`` and ``session`` narrow within the user. ``user`` ``None``
(wirehub's in-process API only) means any user and needs a ``client``.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta, Raw

from wirehub.protocol.types import EMPTY_RAW, StreamPosition

__all__ = [
    "ControlMessage",
    "DisconnectCommand",
    "NodeInfo",
    "RefreshCommand",
    "SendCommand",
    "Shutdown",
    "SubscribeCommand",
    "SurveyRequest",
    "SurveyResponse",
    "Target",
    "UnsubscribeCommand",
    "decode",
    "encode",
]

Uint64 = Annotated[int, Meta(ge=0, le=2**63 - 1)]


class Target(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Which connections an action is for: ``user``'s, narrowed by ``client`` and
    ``session``; ``user`` ``None`` with a ``client``: that connection, whoever it is."""

    user: str | None = ""
    client: str = ""
    session: str = ""


class _Control(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    uid: str
    """The sender's node id."""


class NodeInfo(_Control, frozen=True, tag="node"):
    """Heartbeat: a node's identity and counters (also the ``info`` survey's answer)."""

    name: str
    version: str
    num_clients: Uint64 = 0
    num_users: Uint64 = 0
    num_channels: Uint64 = 0
    num_subs: Uint64 = 0
    uptime: Uint64 = 0


class Shutdown(_Control, frozen=True, tag="shutdown"):
    """The sender stops: forget it now rather than after its heartbeats stop."""


class SurveyRequest(_Control, frozen=True, tag="survey_request"):
    id: Uint64
    op: str
    data: Raw = EMPTY_RAW


class SurveyResponse(_Control, frozen=True, tag="survey_response"):
    id: Uint64
    code: int = 0
    """0: ``data`` is the answer; else a failure (1 internal, 2 invalid request,
    3 unknown op, as Centrifugo)."""
    data: Raw = EMPTY_RAW


class SubscribeCommand(_Control, frozen=True, tag="subscribe"):
    target: Target
    channel: str
    info: Raw = EMPTY_RAW
    data: Raw = EMPTY_RAW
    override: dict[str, bool] = msgspec.field(default_factory=dict)
    expire_at: Uint64 = 0
    recover_since: StreamPosition | None = None


class UnsubscribeCommand(_Control, frozen=True, tag="unsubscribe"):
    target: Target
    channel: str = ""
    """"": every channel of the targeted connections."""


class DisconnectCommand(_Control, frozen=True, tag="disconnect"):
    target: Target
    code: int
    reason: str
    whitelist: list[str] = msgspec.field(default_factory=list)


class RefreshCommand(_Control, frozen=True, tag="refresh"):
    target: Target
    expired: bool = False
    expire_at: Uint64 = 0
    info: Raw = EMPTY_RAW


class SendCommand(_Control, frozen=True, tag="send"):
    """A ``message`` push (``node.send``): ``data`` is JSON, checked by the sender."""

    target: Target
    data: Raw


ControlMessage = (
    NodeInfo
    | Shutdown
    | SurveyRequest
    | SurveyResponse
    | SubscribeCommand
    | UnsubscribeCommand
    | DisconnectCommand
    | RefreshCommand
    | SendCommand
)

_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(ControlMessage)


def encode(message: ControlMessage) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> ControlMessage:
    """Raises ``msgspec.DecodeError`` (or ``ValidationError``) for anything off-schema."""
    return _decoder.decode(data)
