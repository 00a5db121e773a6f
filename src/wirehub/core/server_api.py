"""The server API of a node: publish, broadcast, subscribe, unsubscribe, disconnect,
refresh, presence, history, channels, info.

One implementation behind the HTTP API (:mod:`wirehub.api`), the in-process API
(``await node.publish(...)``) and, for publish, the client command. :class:`Node`
inherits these methods; their targeting and error semantics are Centrifugo's
(``centrifugo-server-side.md`` §4.3, §1.13):

- actions on connections (subscribe, unsubscribe, disconnect, refresh, send) target a user's
  connections (``""``: the anonymous ones) on every node, narrowed by ``client``;
- reads (history, presence) go to the shared broker and presence manager;
- ``channels`` asks every node (a survey, 10 s at most); ``info`` reads the registry
  of nodes, which their heartbeats keep.

Errors are :class:`~wirehub.errors.ClientError` with the API's codes: 102 unknown
namespace, 107 bad request, 108 not available, 112 unrecoverable position.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import msgspec
from msgspec import Raw

from wirehub.brokers.base import HistoryOptions, HistoryPage, PresenceStats, PublishOptions
from wirehub.config import NamespaceOptions
from wirehub.core import actions
from wirehub.core.control import (
    DisconnectCommand,
    NodeInfo,
    RefreshCommand,
    SendCommand,
    SubscribeCommand,
    Target,
    UnsubscribeCommand,
)
from wirehub.core.glob import compile_glob
from wirehub.core.payload import EMPTY, encode, payload, to_raw
from wirehub.core.publish import publish
from wirehub.errors import DISCONNECT_FORCE, ERROR_NOT_AVAILABLE, ClientError, Disconnect
from wirehub.protocol.codes import ErrorCode
from wirehub.protocol.types import ClientInfo, StreamPosition

if TYPE_CHECKING:
    from wirehub.brokers.base import Broker, PresenceManager
    from wirehub.core.channels import ChannelRules
    from wirehub.core.cluster import Cluster
    from wirehub.core.metrics import NodeMetrics
    from wirehub.core.node import Node

__all__ = ["NO_HISTORY", "ServerAPI"]

logger = logging.getLogger("wirehub.node")

_BROADCAST_CONCURRENCY = 1024


class ServerAPI:
    """The server API's methods of :class:`~wirehub.core.node.Node`."""

    id: str
    rules: ChannelRules
    broker: Broker
    presence_manager: PresenceManager
    cluster: Cluster
    metrics: NodeMetrics | None

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        tags: dict[str, str] | None = None,
        idempotency_key: str = "",
        skip_history: bool = False,
        delta: bool = False,
    ) -> StreamPosition:
        """Publish ``data`` into ``channel``: any JSON value, or ``bytes`` (or
        ``msgspec.Raw``) of JSON; in a namespace with ``publication_data_format =
        "binary"``, ``bytes`` are sent as they are (what the HTTP API's ``b64data``
        carries).

        The payload is checked against the namespace before anything is stored or sent
        (:mod:`wirehub.core.publish`, the one publish path).

        Args:
            tags: string pairs delivered with the publication.
            idempotency_key: a publish into the same channel with the same key within
                5 minutes is not published again; it returns the first one's position.
            skip_history: don't keep this publication in the channel's history.
            delta: subscribers that negotiated fossil deltas may receive it as a delta
                against the previous publication (also on for every publish where the
                namespace has ``delta_publish``).

        Returns the stream position: the publication's offset and the epoch when it was
        kept in history, offset 0 otherwise.

        Raises:
            ClientError: 102 for an unknown namespace, 107 for an invalid name.
            InvalidPayload: error 107, a ``ClientError`` and a ``ValueError``: the
                namespace does not allow ``data`` (not JSON a JSON client can parse,
                not an object for ``json_object``, empty).
        """
        return await publish(
            cast("Node", self),
            channel,
            data,
            tags=tags,
            idempotency_key=idempotency_key,
            skip_history=skip_history,
            delta=delta,
        )

    async def broadcast(
        self,
        channels: Sequence[str],
        data: Any,
        *,
        tags: dict[str, str] | None = None,
        idempotency_key: str = "",
        skip_history: bool = False,
        delta: bool = False,
    ) -> list[StreamPosition | ClientError]:
        """Publish the same ``data`` into every channel of ``channels``, concurrently.

        Returns, per channel and in order, the stream position or the error of that
        channel (one channel failing, its payload refused by its namespace included,
        does not stop the others; a broker failure is error 100). Arguments as
        :meth:`publish`.

        Raises:
            ClientError: 107 when ``channels`` is empty.
            InvalidPayload: ``data`` is not serialisable at all.
        """
        if not channels:
            raise ClientError(ErrorCode.BAD_REQUEST, "channels required")
        encoded = encode(data)
        limit = asyncio.Semaphore(_BROADCAST_CONCURRENCY)

        async def one(channel: str) -> StreamPosition | ClientError:
            async with limit:
                try:
                    return await self.publish(
                        channel,
                        encoded,
                        tags=tags,
                        idempotency_key=idempotency_key,
                        skip_history=skip_history,
                        delta=delta,
                    )
                except ClientError as exc:
                    return exc
                except Exception:
                    logger.exception("broadcast: publish into %r failed", channel)
                    return ClientError(ErrorCode.INTERNAL, "internal server error")

        return list(await asyncio.gather(*(one(channel) for channel in channels)))

    async def subscribe(
        self,
        channel: str,
        user: str | None = None,
        *,
        client: str = "",
        session: str = "",
        info: Any = None,
        data: Any = None,
        override: Mapping[str, bool] | None = None,
        expire_at: int | None = None,
        recover_since: StreamPosition | None = None,
    ) -> int:
        """Subscribe connections to ``channel`` from the server (a server-side
        subscription), on every node: they get a ``subscribe`` push, then its
        publications.

        Targets ``user``'s connections (``""``: anonymous connections), narrowed to one
        connection by ``client`` (with ``user=None``: that connection whoever its user);
        ``session`` matches no connection yet (wirehub has no emulation sessions).

        Args:
            info: channel info of the subscribers (presence, join/leave, publications).
            data: custom data sent in the ``subscribe`` push.
            override: namespace options for these subscriptions: ``presence``,
                ``join_leave``, ``force_push_join_leave``, ``force_recovery``,
                ``force_positioning``.
            expire_at: Unix time the subscriptions expire.
            recover_since: recover the publications after this position.

        Returns how many connections of this node were subscribed.

        Raises:
            ClientError: 102 for an unknown namespace, 107 for an invalid name.
            TypeError: neither ``user`` nor ``client`` given.
        """
        self.rules.namespace(channel)
        command = SubscribeCommand(
            uid=self.id,
            target=_target("subscribe", user, client, session),
            channel=channel,
            info=_raw(info),
            data=_raw(data),
            override=dict(override or {}),
            expire_at=expire_at or 0,
            recover_since=recover_since,
        )
        return await self.cluster.act(command)

    async def unsubscribe(
        self, channel: str = "", user: str | None = None, *, client: str = "", session: str = ""
    ) -> int:
        """Unsubscribe connections from ``channel`` (``""``: from every channel), on
        every node: they get an ``unsubscribe`` push with code 2000 (terminal). Targets
        as :meth:`subscribe`; returns how many subscriptions of this node ended."""
        if channel:
            self.rules.namespace(channel)
        target = _target("unsubscribe", user, client, session)
        return await self.cluster.act(
            UnsubscribeCommand(uid=self.id, target=target, channel=channel)
        )

    async def disconnect(
        self,
        user: str | None = None,
        *,
        client: str = "",
        session: str = "",
        whitelist: Sequence[str] = (),
        disconnect: Disconnect = DISCONNECT_FORCE,
    ) -> int:
        """Close connections on every node with ``disconnect`` (3503 "force disconnect",
        terminal, by default), except those in ``whitelist`` (client ids). Targets as
        :meth:`subscribe`; returns how many connections of this node were closed."""
        command = DisconnectCommand(
            uid=self.id,
            target=_target("disconnect", user, client, session),
            code=disconnect.code,
            reason=disconnect.reason,
            whitelist=list(whitelist),
        )
        return await self.cluster.act(command)

    def send(self, data: Any, *, client: str | None = None, user: str | None = None) -> int:
        """Push a ``message`` (the client's ``on_message`` / ``message`` event) to one
        connection, or to every connection of ``user`` (``""``: the anonymous ones),
        on every node. Like Socket.IO's ``emit``, it does not wait: this node's
        connections get it at once, the other nodes' through the broker in the
        background. Returns how many connections of this node got it.

        Raises:
            InvalidPayload: ``data`` is not JSON every client can parse (a ValueError).
            TypeError: not exactly one of ``client=`` and ``user=``.
        """
        if (client is None) == (user is None):
            raise TypeError("send() takes exactly one of client= or user=")
        target = Target(user=user, client=client or "")
        command = SendCommand(uid=self.id, target=target, data=payload(data))
        count = actions.send(cast("Node", self), command)
        self.cluster.tell(command)
        return count

    async def refresh(
        self,
        user: str | None = None,
        *,
        client: str = "",
        session: str = "",
        expired: bool = False,
        expire_at: int | None = None,
        info: Any = None,
    ) -> int:
        """Change connections' expiry on every node: ``expired`` (or an ``expire_at`` in
        the past) closes them with 3005; else they expire at ``expire_at`` (``None``:
        never) and get a ``refresh`` push. ``info`` replaces their connection info.
        Targets as :meth:`subscribe`; returns how many connections of this node."""
        command = RefreshCommand(
            uid=self.id,
            target=_target("refresh", user, client, session),
            expired=expired,
            expire_at=expire_at or 0,
            info=_raw(info),
        )
        return await self.cluster.act(command)

    async def history(
        self,
        channel: str,
        *,
        limit: int = 0,
        since: StreamPosition | None = None,
        reverse: bool = False,
    ) -> HistoryPage:
        """Read a channel's history (``limit`` 0: only the position, < 0: all).

        Raises:
            ClientError: 102/107 for the name, 108 when the namespace keeps no history,
                112 when ``since`` names another epoch.
        """
        options = _history_options(self.rules.namespace(channel))
        meta_ttl = self.rules.history_meta_ttl(options)
        page = await self.broker.history(channel, HistoryOptions(since, limit, reverse, meta_ttl))
        if since is not None and since.epoch and since.epoch != page.position.epoch:
            raise ClientError(ErrorCode.UNRECOVERABLE_POSITION, "unrecoverable position")
        return page

    async def history_remove(self, channel: str) -> None:
        """Drop a channel's publications; its position (offset, epoch) stays.

        Raises:
            ClientError: 102/107 for the name, 108 when the namespace keeps no history.
        """
        _history_options(self.rules.namespace(channel))
        await self.broker.remove_history(channel)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """Who is subscribed to ``channel``, by client id (108 without presence)."""
        if not self.rules.namespace(channel).presence:
            raise ERROR_NOT_AVAILABLE
        return await self.presence_manager.presence(channel)

    async def presence_stats(self, channel: str) -> PresenceStats:
        """How many connections and users are subscribed (108 without presence)."""
        if not self.rules.namespace(channel).presence:
            raise ERROR_NOT_AVAILABLE
        return await self.presence_manager.presence_stats(channel)

    async def channels(self, pattern: str = "") -> dict[str, int]:
        """Channels with subscribers on any node, and their subscriber counts.

        ``pattern`` filters names with the glob syntax of Centrifugo (``*``, ``?``,
        ``[a-z]``, ``{a,b}``; ``*`` also matches ``:``).

        Raises:
            ClientError: 107 for a malformed pattern.
            SurveyError: a node did not answer within 10 s.
        """
        try:
            compile_glob(pattern)
        except ValueError as exc:
            raise ClientError(ErrorCode.BAD_REQUEST, f"invalid pattern: {exc}") from None
        data = msgspec.json.encode({"pattern": pattern})
        totals: dict[str, int] = {}
        for answer in (await self.cluster.survey("channels", data)).values():
            for name, count in msgspec.json.decode(answer, type=dict[str, int]).items():
                totals[name] = totals.get(name, 0) + count
        return totals

    async def info(self) -> list[NodeInfo]:
        """Every node of the cluster, this one first: its id, name, version and counts.

        Read from the node registry, as Centrifugo does, so it answers at once: this
        node's figures are current, the others' those of their last heartbeat (every
        3 s). A node that stops leaves at once; one that dies without a word, 7 to 16 s
        after its last heartbeat.
        """
        return self.cluster.nodes()


def _target(method: str, user: str | None, client: str, session: str) -> Target:
    if user is None and not client:
        raise TypeError(f'{method}() takes user= ("" for anonymous connections) or client=')
    return Target(user=user, client=client, session=session)


def _raw(value: Any) -> Raw:
    return EMPTY if value is None else to_raw(value)


def _history_options(options: NamespaceOptions) -> NamespaceOptions:
    if not options.history_enabled:
        raise ERROR_NOT_AVAILABLE
    return options


NO_HISTORY = PublishOptions()
