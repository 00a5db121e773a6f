"""The broker interface: how publications travel between nodes, and where history lives.

A broker never sees clients, hubs or nodes. It reports what arrives through the
narrow :class:`BrokerEventHandler` callback interface, with typed messages.

Semantics every implementation keeps (one contract suite, ``tests/brokers/``, checks
them all):

- ``publish`` hands the publication to every node subscribed to the channel, this one
  included, at most once each. When the channel keeps history, the offset is assigned
  atomically with the append and before any node sees the publication, so the
  publication a subscriber receives always carries its offset and the stream position.
- Publications of one channel reach a node in publish order.
- ``subscribe``/``unsubscribe`` are about this node's interest in a channel, not about
  any single client; the core calls them for the first and last local subscriber.
  ``subscribe`` returns once publications of the channel reach this node, and raises
  when they cannot (the broker is unreachable): the core then fails the client's
  subscribe with a temporary error, and the client retries.
- Delivery is at most once, never silently lossy: a broker that may have lost
  publications on their way to this node (a broken connection to Redis) says so with
  ``handle_gap``, and the core makes positioned subscribers of those channels recover.
- ``publish`` with an ``idempotency_key`` publishes at most once per key and channel
  within ``idempotent_result_ttl``: a repeat returns the first publish's position.
- A publication's ``delta`` flag (its publisher allows deltas) reaches every node with
  it; history never returns it (stored publications read ``delta=False``).

Streams (``centrifugo-protocol.md`` §5.1). A channel's stream is its publications plus
its **metadata**, the position ``{offset, epoch}``:

- The metadata is created by the first publish with history, or the first ``history``
  read, of a channel that has none: a new random epoch, offset 0. Offsets then grow by
  exactly 1 per stored publication.
- Retention of publications: at most ``history_size``; each one is gone (never returned
  again, and its memory or storage released without anyone reading it) once
  ``history_ttl`` has passed since the last publish into its stream. A broker may drop
  each one earlier, ``history_ttl`` after its own publish (the memory broker does;
  Redis expires the stream key as a whole, as Centrifugo does).
- Retention of metadata: every publish with history and every ``history`` read of the
  channel (the position checks included) is activity, and keeps the metadata for
  ``history_meta_ttl`` seconds from then (``<= 0``: forever). Past that with no
  activity, the metadata and whatever publications remain are gone: the next publish
  or read creates the metadata anew, with a **new epoch**, so a client holding an old
  position is told by recovery (``recovered: false``) or by the epoch of the next
  publication, never left with a silent gap. ``remove_history`` is not activity.
- ``remove_history`` drops the publications and keeps the metadata: the next publish
  continues the same epoch at the next offset.
- A restarted memory broker or a flushed Redis loses the metadata too: new epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

__all__ = [
    "DEFAULT_HISTORY_META_TTL",
    "IDEMPOTENT_RESULT_TTL",
    "Broker",
    "BrokerEventHandler",
    "ControlEventHandler",
    "Controller",
    "HistoryOptions",
    "HistoryPage",
    "Pingable",
    "PresenceManager",
    "PresenceStats",
    "PublishOptions",
]


DEFAULT_HISTORY_META_TTL = 30 * 24 * 3600.0
"""720 h, Centrifugo's ``channel.history_meta_ttl``."""


@dataclass(frozen=True, slots=True)
class PublishOptions:
    history_size: int = 0
    """Keep at most this many publications in the channel's stream; 0 keeps none."""
    history_ttl: float = 0.0
    """Seconds each kept publication lives."""
    history_meta_ttl: float = DEFAULT_HISTORY_META_TTL
    """Seconds the stream's position outlives its last activity (<= 0: forever). Used
    only when the publication is kept (history on)."""
    idempotency_key: str = ""
    """When set, a second publish with the same key into the same channel within
    :data:`IDEMPOTENT_RESULT_TTL` seconds publishes nothing and returns the first one's
    position."""


IDEMPOTENT_RESULT_TTL = 300.0
"""Seconds a publish is remembered by its idempotency key (Centrifugo's 5 minutes)."""


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    since: StreamPosition | None = None
    """Return publications after (or, reversed, before) this offset."""
    limit: int = 0
    """0: none, only the position; negative: all; positive: at most that many."""
    reverse: bool = False
    history_meta_ttl: float = DEFAULT_HISTORY_META_TTL
    """As :attr:`PublishOptions.history_meta_ttl`: a read is activity too."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    publications: list[Publication]
    position: StreamPosition
    """The top of the stream: its last offset and its epoch."""


class BrokerEventHandler(Protocol):
    """What a broker calls back. Implemented by the core; must not block."""

    def handle_publication(
        self, channel: str, publication: Publication, position: StreamPosition
    ) -> None:
        """``position`` is the stream's after this publication (offset 0 without history)."""
        ...

    def handle_join(self, channel: str, info: ClientInfo) -> None: ...

    def handle_leave(self, channel: str, info: ClientInfo) -> None: ...

    def handle_gap(self, channels: Sequence[str]) -> None:
        """Publications of ``channels`` may have been lost on their way to this node
        (its connection to the broker broke): their positioned subscribers must be told,
        so that they recover from history."""
        ...


class Broker(Protocol):
    async def start(self, handler: BrokerEventHandler) -> None:
        """Connect, and from now on report arrivals to ``handler``. Background work
        (expiry sweeps, reconnects) starts here, in the running event loop."""
        ...

    async def close(self) -> None:
        """Stop reporting, stop background work, release connections. Idempotent."""
        ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving publications of ``channel`` on this node."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving publications of ``channel`` on this node."""
        ...

    async def publish(
        self, channel: str, publication: Publication, options: PublishOptions
    ) -> StreamPosition:
        """Publish; return the stream position (offset 0, epoch "" without history)."""
        ...

    async def publish_join(self, channel: str, info: ClientInfo) -> None: ...

    async def publish_leave(self, channel: str, info: ClientInfo) -> None: ...

    async def history(self, channel: str, options: HistoryOptions) -> HistoryPage:
        """Read the channel's stream. A channel with no metadata gets it now: offset 0
        and a fresh epoch, kept for ``options.history_meta_ttl`` like any other.

        ``since`` forward: publications with a greater offset, oldest first (if the
        next one expired, the result simply starts later; callers check continuity);
        reversed: smaller offsets, newest first. The position is always the top."""
        ...

    async def remove_history(self, channel: str) -> None:
        """Drop the stream's publications, keeping its offset and epoch."""
        ...


@dataclass(frozen=True, slots=True)
class PresenceStats:
    num_clients: int
    num_users: int


class PresenceManager(Protocol):
    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """Client id -> info of everyone present in ``channel``."""
        ...

    async def presence_stats(self, channel: str) -> PresenceStats: ...

    async def add_presence(self, channel: str, info: ClientInfo) -> None: ...

    async def remove_presence(self, channel: str, client_id: str) -> None: ...


class ControlEventHandler(Protocol):
    """What a controller calls back. Implemented by the core; must not block."""

    def handle_control(self, data: bytes) -> None: ...


class Controller(Protocol):
    """Node-to-node messages: server-API actions on connections held by other nodes,
    surveys, node heartbeats. ``data`` is opaque here: the core encodes and checks it."""

    async def start(self, handler: ControlEventHandler, node_id: str) -> None:
        """Connect; from now on deliver control messages for this node (addressed to
        `node_id`, or broadcast) to `handler`."""
        ...

    async def close(self) -> None:
        """Stop delivering and release connections. Idempotent."""
        ...

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        """Send `data` to node `node_id`, or to every node when `node_id` is "".
        A broadcast may come back to the sender: the core drops messages whose sender id
        (inside `data`) is its own, and applies its own actions locally itself.
        At most once. Raises on failure (the caller turns that into an error)."""
        ...


@runtime_checkable
class Pingable(Protocol):
    """Optional capability of a broker or presence manager: a cheap liveness probe.

    ``/ready`` calls it (under a timeout) on every backend that has it; a backend
    without it counts as ready while the node runs.
    """

    async def ping(self) -> None:
        """Return once the backend answered; raise if it can't be reached."""
        ...
