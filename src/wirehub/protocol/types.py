"""Messages of the Centrifugo client protocol v2, mirroring ``client.proto``.

Names and fields are the wire contract: they match ``client.proto`` exactly, so the
reference and the code can be grepped together. Payload fields (``data``, ``info``,
``conn_info``, ``chan_info``) are raw JSON values in the JSON protocol and raw bytes in
Protobuf; here they are :class:`msgspec.Raw`, which passes them through untouched.

Rules of the JSON shape (``centrifugo-protocol.md`` §1.2):

- a field holding its zero value is omitted (``omit_defaults``), except
  ``ClientInfo.user``/``client`` and the keys of presence and history results, which
  have no default and so are always written;
- an empty result object is still written: ``{"id":3,"publish":{}}``.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta, Raw

__all__ = [
    "EMPTY_RAW",
    "ClientInfo",
    "Command",
    "Connect",
    "ConnectRequest",
    "ConnectResult",
    "Disconnect",
    "EmulationRequest",
    "Error",
    "FilterNode",
    "HistoryRequest",
    "HistoryResult",
    "Join",
    "Leave",
    "Message",
    "PresenceRequest",
    "PresenceResult",
    "PresenceStatsRequest",
    "PresenceStatsResult",
    "Publication",
    "PublishRequest",
    "PublishResult",
    "Push",
    "RPCRequest",
    "RPCResult",
    "Refresh",
    "RefreshRequest",
    "RefreshResult",
    "Reply",
    "SendRequest",
    "StreamPosition",
    "SubRefreshRequest",
    "SubRefreshResult",
    "Subscribe",
    "SubscribeRequest",
    "SubscribeResult",
    "Unsubscribe",
    "UnsubscribeRequest",
    "UnsubscribeResult",
]

Uint32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
# msgspec bounds must fit an int64; offsets never come near 2**63.
Uint64 = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Int32 = Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]

# An absent payload. msgspec can't put Raw in a union, so "unset" is the empty Raw,
# which equals the default and is therefore left out when encoding.
EMPTY_RAW: Final = Raw()


class _Message(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """Base of every wire message: immutable, zero values left out."""


# Shared types.


class ClientInfo(_Message, frozen=True):
    user: str
    client: str
    conn_info: Raw = EMPTY_RAW
    chan_info: Raw = EMPTY_RAW


class StreamPosition(_Message, frozen=True):
    offset: Uint64 = 0
    epoch: str = ""


class Publication(_Message, frozen=True):
    data: Raw
    info: ClientInfo | None = None
    offset: Uint64 = 0
    tags: dict[str, str] | None = None
    delta: bool = False
    """On the wire: ``data`` is a fossil delta against the subscriber's previous
    payload. Between a publisher and the hub: the publisher allows deltas (the hub
    clears it before anything is encoded)."""


class FilterNode(_Message, frozen=True):
    """A publication tags filter: a leaf comparison (``op`` empty: ``key``, ``cmp``,
    ``val`` or ``vals``) or a logical node (``and``, ``or``, ``not`` over ``nodes``)."""

    op: str = ""
    key: str = ""
    cmp: str = ""
    val: str = ""
    vals: list[str] | None = None
    nodes: list[FilterNode] | None = None


# Requests (client to server).


class SubscribeRequest(_Message, frozen=True):
    channel: str = ""
    token: str = ""
    recover: bool = False
    epoch: str = ""
    offset: Uint64 = 0
    data: Raw = EMPTY_RAW
    positioned: bool = False
    recoverable: bool = False
    join_leave: bool = False
    delta: str = ""
    tf: FilterNode | None = None
    flag: Int64 = 0
    type: Int32 = 0


class ConnectRequest(_Message, frozen=True):
    token: str = ""
    data: Raw = EMPTY_RAW
    subs: dict[str, SubscribeRequest] | None = None
    name: str = ""
    version: str = ""
    headers: dict[str, str] | None = None


class UnsubscribeRequest(_Message, frozen=True):
    channel: str = ""


class PublishRequest(_Message, frozen=True):
    channel: str = ""
    data: Raw = EMPTY_RAW


class PresenceRequest(_Message, frozen=True):
    channel: str = ""


class PresenceStatsRequest(_Message, frozen=True):
    channel: str = ""


class HistoryRequest(_Message, frozen=True):
    channel: str = ""
    limit: Int32 = 0
    since: StreamPosition | None = None
    reverse: bool = False


class RPCRequest(_Message, frozen=True):
    data: Raw = EMPTY_RAW
    method: str = ""


class SendRequest(_Message, frozen=True):
    data: Raw = EMPTY_RAW


class RefreshRequest(_Message, frozen=True):
    token: str = ""


class SubRefreshRequest(_Message, frozen=True):
    channel: str = ""
    token: str = ""


class Command(_Message, frozen=True):
    """One client command. An empty command (id 0, nothing set) is a pong."""

    id: Uint32 = 0
    connect: ConnectRequest | None = None
    subscribe: SubscribeRequest | None = None
    unsubscribe: UnsubscribeRequest | None = None
    publish: PublishRequest | None = None
    presence: PresenceRequest | None = None
    presence_stats: PresenceStatsRequest | None = None
    history: HistoryRequest | None = None
    ping: dict[str, object] | None = None
    send: SendRequest | None = None
    rpc: RPCRequest | None = None
    refresh: RefreshRequest | None = None
    sub_refresh: SubRefreshRequest | None = None


# Results (server to client).


class Error(_Message, frozen=True):
    code: Uint32
    message: str
    temporary: bool = False


class SubscribeResult(_Message, frozen=True):
    expires: bool = False
    ttl: Uint32 = 0
    recoverable: bool = False
    epoch: str = ""
    publications: list[Publication] | None = None
    recovered: bool = False
    offset: Uint64 = 0
    positioned: bool = False
    data: Raw = EMPTY_RAW
    was_recovering: bool = False
    delta: bool = False


class ConnectResult(_Message, frozen=True):
    client: str = ""
    version: str = ""
    expires: bool = False
    ttl: Uint32 = 0
    data: Raw = EMPTY_RAW
    subs: dict[str, SubscribeResult] | None = None
    ping: Uint32 = 0
    pong: bool = False
    session: str = ""
    node: str = ""
    time: Int64 = 0


class UnsubscribeResult(_Message, frozen=True):
    pass


class PublishResult(_Message, frozen=True):
    pass


class PresenceResult(_Message, frozen=True):
    presence: dict[str, ClientInfo]


class PresenceStatsResult(_Message, frozen=True):
    num_clients: Uint32
    num_users: Uint32


class HistoryResult(_Message, frozen=True):
    publications: list[Publication]
    epoch: str
    offset: Uint64


class RPCResult(_Message, frozen=True):
    data: Raw = EMPTY_RAW


class RefreshResult(_Message, frozen=True):
    client: str = ""
    version: str = ""
    expires: bool = False
    ttl: Uint32 = 0


class SubRefreshResult(_Message, frozen=True):
    expires: bool = False
    ttl: Uint32 = 0


# Pushes (server to client, no id).


class Join(_Message, frozen=True):
    info: ClientInfo


class Leave(_Message, frozen=True):
    info: ClientInfo


class Unsubscribe(_Message, frozen=True):
    code: Uint32 = 0
    reason: str = ""


class Message(_Message, frozen=True):
    data: Raw


class Subscribe(_Message, frozen=True):
    """Push: the server subscribed this connection (server-side subscription)."""

    recoverable: bool = False
    epoch: str = ""
    offset: Uint64 = 0
    positioned: bool = False
    data: Raw = EMPTY_RAW


class Refresh(_Message, frozen=True):
    """Push: the server changed the connection's expiry (server API ``refresh``)."""

    expires: bool = False
    ttl: Uint32 = 0


class Disconnect(_Message, frozen=True):
    """Push, for emulation and unidirectional transports (WebSocket uses close frames)."""

    code: Uint32 = 0
    reason: str = ""


class Connect(_Message, frozen=True):
    """Push: the connect result of a unidirectional connection (its first message)."""

    client: str = ""
    version: str = ""
    data: Raw = EMPTY_RAW
    subs: dict[str, SubscribeResult] | None = None
    expires: bool = False
    ttl: Uint32 = 0
    ping: Uint32 = 0
    pong: bool = False
    session: str = ""
    node: str = ""
    time: Int64 = 0


class Push(_Message, frozen=True):
    channel: str = ""
    pub: Publication | None = None
    join: Join | None = None
    leave: Leave | None = None
    unsubscribe: Unsubscribe | None = None
    message: Message | None = None
    subscribe: Subscribe | None = None
    connect: Connect | None = None
    disconnect: Disconnect | None = None
    refresh: Refresh | None = None


class Reply(_Message, frozen=True):
    """An answer to a command (``id`` > 0) or a push. All fields unset = server ping."""

    id: Uint32 = 0
    error: Error | None = None
    push: Push | None = None
    connect: ConnectResult | None = None
    subscribe: SubscribeResult | None = None
    unsubscribe: UnsubscribeResult | None = None
    publish: PublishResult | None = None
    presence: PresenceResult | None = None
    presence_stats: PresenceStatsResult | None = None
    history: HistoryResult | None = None
    rpc: RPCResult | None = None
    refresh: RefreshResult | None = None
    sub_refresh: SubRefreshResult | None = None


# Emulation (HTTP-streaming and SSE clients' commands, ``POST /emulation``).


class EmulationRequest(_Message, frozen=True):
    """The body of ``POST /emulation``: commands for the session ``session`` on the node
    ``node``. ``data`` is the commands as a frame of the session's protocol (JSON: the
    newline-joined command text, carried as a JSON string; Protobuf: the
    varint-delimited commands)."""

    node: str = ""
    session: str = ""
    data: Raw = EMPTY_RAW
