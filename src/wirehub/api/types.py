"""Requests and results of the server API, as JSON objects (``centrifugo-protocol.md``
§9.2, ``centrifugo-server-side.md`` §4).

Requests ignore unknown fields (as Centrifugo does); a field of the wrong type is an
error naming it. Results leave out zero values, except the fields Centrifugo always
writes (presence and channels maps, history's publications/epoch/offset, a node's
ids and counts): those have no default here, so they are always encoded.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Raw

from wirehub.protocol.types import EMPTY_RAW, ClientInfo, StreamPosition

__all__ = [
    "METHODS",
    "BatchRequest",
    "BoolValue",
    "BroadcastRequest",
    "BroadcastResult",
    "ChannelInfo",
    "ChannelsRequest",
    "ChannelsResult",
    "DisconnectObject",
    "DisconnectRequest",
    "Empty",
    "ErrorBody",
    "HistoryPublication",
    "HistoryRemoveRequest",
    "HistoryRequest",
    "HistoryResult",
    "InfoRequest",
    "InfoResult",
    "NodeResult",
    "PresenceRequest",
    "PresenceResult",
    "PresenceStatsRequest",
    "PresenceStatsResult",
    "PublishRequest",
    "PublishResponse",
    "PublishResult",
    "RPCRequest",
    "RefreshRequest",
    "SubscribeOverride",
    "SubscribeRequest",
    "UnsubscribeRequest",
]

Int32 = Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)]
Uint64 = Annotated[int, Meta(ge=0, le=2**63 - 1)]


class _Request(msgspec.Struct, kw_only=True, frozen=True):
    """Base of every request: unknown fields are ignored."""


class _Result(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Base of every result: zero values with a default are left out."""


# Requests.


class PublishRequest(_Request, frozen=True):
    channel: str = ""
    data: Raw = EMPTY_RAW
    b64data: str = ""
    skip_history: bool = False
    tags: dict[str, str] | None = None
    idempotency_key: str = ""
    delta: bool = False
    """Delta subscribers may get this publication as a fossil delta."""


class BroadcastRequest(_Request, frozen=True):
    channels: list[str] = msgspec.field(default_factory=list)
    data: Raw = EMPTY_RAW
    b64data: str = ""
    skip_history: bool = False
    tags: dict[str, str] | None = None
    idempotency_key: str = ""
    delta: bool = False


class BoolValue(_Request, frozen=True):
    value: bool = False


class SubscribeOverride(_Request, frozen=True):
    presence: BoolValue | None = None
    join_leave: BoolValue | None = None
    force_push_join_leave: BoolValue | None = None
    force_positioning: BoolValue | None = None
    force_recovery: BoolValue | None = None


class SubscribeRequest(_Request, frozen=True):
    user: str = ""
    channel: str = ""
    info: Raw = EMPTY_RAW
    b64info: str = ""
    client: str = ""
    session: str = ""
    data: Raw = EMPTY_RAW
    b64data: str = ""
    recover_since: StreamPosition | None = None
    override: SubscribeOverride | None = None
    expire_at: Uint64 = 0


class UnsubscribeRequest(_Request, frozen=True):
    user: str = ""
    channel: str = ""
    client: str = ""
    session: str = ""


class DisconnectObject(_Request, frozen=True):
    code: Annotated[int, Meta(ge=0, le=2**32 - 1)] = 0
    reason: str = ""


class DisconnectRequest(_Request, frozen=True):
    user: str = ""
    client: str = ""
    session: str = ""
    whitelist: list[str] = msgspec.field(default_factory=list)
    disconnect: DisconnectObject | None = None


class RefreshRequest(_Request, frozen=True):
    user: str = ""
    client: str = ""
    session: str = ""
    expired: bool = False
    expire_at: Uint64 = 0
    info: Raw = EMPTY_RAW


class PresenceRequest(_Request, frozen=True):
    channel: str = ""


class PresenceStatsRequest(_Request, frozen=True):
    channel: str = ""


class HistoryRequest(_Request, frozen=True):
    channel: str = ""
    limit: Int32 = 0
    since: StreamPosition | None = None
    reverse: bool = False


class HistoryRemoveRequest(_Request, frozen=True):
    channel: str = ""


class ChannelsRequest(_Request, frozen=True):
    pattern: str = ""


class InfoRequest(_Request, frozen=True):
    pass


class RPCRequest(_Request, frozen=True):
    method: str = ""
    params: Raw = EMPTY_RAW


class BatchRequest(_Request, frozen=True):
    commands: list[dict[str, Raw] | None] = msgspec.field(default_factory=list)
    parallel: bool = False


# Results.


class ErrorBody(msgspec.Struct, frozen=True):
    code: int
    message: str


class Empty(_Result, frozen=True):
    pass


class PublishResult(_Result, frozen=True):
    offset: Uint64 = 0
    epoch: str = ""


class PublishResponse(_Result, frozen=True):
    error: ErrorBody | None = None
    result: PublishResult | None = None


class BroadcastResult(_Result, frozen=True):
    responses: list[PublishResponse]


class PresenceResult(_Result, frozen=True):
    presence: dict[str, ClientInfo]


class PresenceStatsResult(_Result, frozen=True):
    num_clients: int
    num_users: int


class HistoryPublication(_Result, frozen=True):
    data: Raw
    """JSON ``null`` for a binary payload, which ``b64data`` then carries."""
    b64data: str = ""
    offset: Uint64 = 0
    tags: dict[str, str] | None = None
    info: ClientInfo | None = None


class HistoryResult(_Result, frozen=True):
    publications: list[HistoryPublication]
    epoch: str
    offset: Uint64


class ChannelInfo(_Result, frozen=True):
    num_clients: int = 0


class ChannelsResult(_Result, frozen=True):
    channels: dict[str, ChannelInfo]


class NodeResult(_Result, frozen=True):
    uid: str
    name: str
    version: str
    num_clients: int
    num_users: int
    num_channels: int
    num_subs: int
    uptime: int = 0


class InfoResult(_Result, frozen=True):
    nodes: list[NodeResult]


METHODS: dict[str, type[_Request]] = {
    "publish": PublishRequest,
    "broadcast": BroadcastRequest,
    "subscribe": SubscribeRequest,
    "unsubscribe": UnsubscribeRequest,
    "disconnect": DisconnectRequest,
    "refresh": RefreshRequest,
    "presence": PresenceRequest,
    "presence_stats": PresenceStatsRequest,
    "history": HistoryRequest,
    "history_remove": HistoryRemoveRequest,
    "channels": ChannelsRequest,
    "info": InfoRequest,
    "rpc": RPCRequest,
    "batch": BatchRequest,
}
"""Every method of the API and its request type."""
