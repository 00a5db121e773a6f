"""Subscribing a client to a channel: authorisation, positioning and recovery, presence.

Rules (``centrifugo-protocol.md`` §5, §7.2, §8.3):

1. A subscription token, when sent, decides alone: invalid -> 103, expired -> 109; its
   channel, user and client (when set) must match the request and the connection, else
   103. (Centrifugo disconnects with 3500 there; wirehub refuses just the subscription,
   as its issue asks, so one bad token does not end the whole connection.) Without a
   token the namespace rules decide, or, where the namespace has
   ``subscribe_proxy_enabled``, the backend (:mod:`wirehub.proxy`: the permission flags
   and the client's positioning, recovery and join/leave flags are not consulted), then
   ``on_subscribe`` may deny or enrich. Server-side subscriptions are granted.
2. Positioning and recovery need history on the namespace; ``force_*`` turns them on
   for everyone, ``allow_*`` or history access lets the client ask. Recovery implies
   positioning.
3. A positioned subscription buffers live publications while the stream position (and,
   when recovering, the missed publications) is read, then joins the hub and its reply
   is queued in the same step: nothing published meanwhile is lost, duplicated, or
   delivered before the reply.
4. Presence and join are recorded after the reply; leave and presence removal follow
   every unsubscribe, whatever its cause.
5. A JSON-protocol client can't subscribe where ``publication_data_format`` is
   ``"binary"``: error 107, or 3506 at connect for a server-side subscription (never a
   disconnect later, when a publication arrives).
6. A tags filter (``tf``) needs ``allow_tags_filter`` and a valid tree
   (:mod:`wirehub.core.tags_filter`), else 107; the reply's and the live publications
   are filtered like every later one. Deltas (``delta``) are negotiated by
   :func:`wirehub.core.delta.negotiate`; a delta subscriber's reply and live
   publications go as one chain (:func:`wirehub.core.delta.chain`). Asking for both is
   107. Server-side subscriptions have neither.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msgspec import Raw

from wirehub.brokers.base import HistoryOptions
from wirehub.config import NamespaceOptions
from wirehub.core import delta as deltas, expiry
from wirehub.core.channels import PRIVATE_PREFIX
from wirehub.core.events import ServerSubscription, SubscribeEvent
from wirehub.core.payload import EMPTY, for_json, to_raw
from wirehub.core.publish import check_protocol
from wirehub.core.recovery import Recovery, merge_live, recover
from wirehub.core.tags_filter import TagsFilter, compile_filter
from wirehub.errors import (
    DISCONNECT_INSUFFICIENT_STATE,
    ERROR_INTERNAL,
    ERROR_PERMISSION_DENIED,
    ClientError,
    Disconnect,
    log_failure,
)
from wirehub.protocol.codes import DisconnectCode, ErrorCode
from wirehub.protocol.types import Publication, StreamPosition, SubscribeRequest, SubscribeResult

if TYPE_CHECKING:
    from wirehub.core.client import Client
    from wirehub.core.node import Node

__all__ = [
    "DISCONNECT_INAPPROPRIATE_PROTOCOL",
    "ChannelContext",
    "Subscribed",
    "for_client",
    "subscribe",
    "unsubscribe_cleanup",
]

logger = logging.getLogger("wirehub.node")

DISCONNECT_INAPPROPRIATE_PROTOCOL = Disconnect(
    DisconnectCode.INAPPROPRIATE_PROTOCOL, "inappropriate protocol"
)

# SubscribeRequest.flag bit: answer 112 instead of recovered:false.
_REJECT_UNRECOVERED = 2


@dataclass(slots=True)
class ChannelContext:
    """One client's subscription to one channel."""

    info: Raw = field(default_factory=lambda: EMPTY)
    """Channel info, from a subscription token or ``on_subscribe``."""
    server_side: bool = False
    positioned: bool = False
    recoverable: bool = False
    push_join_leave: bool = False
    """This subscriber receives join/leave pushes."""
    presence: bool = False
    """The namespace keeps presence: an entry exists while subscribed."""
    join_leave: bool = False
    """The namespace publishes join/leave for this subscriber."""
    delta: bool = False
    """Publications go to this subscriber as fossil deltas where they can."""
    tags_filter: TagsFilter | None = None
    """Only publications whose tags match are sent to this subscriber."""
    expire_at: float | None = None
    expire_timer: asyncio.TimerHandle | None = None
    proxy_refresh: bool = False
    """The sub_refresh proxy extends this subscription at its expiry."""


@dataclass(frozen=True, slots=True)
class Subscribed:
    result: SubscribeResult
    live: list[Publication]
    """Publications that arrived while the position was read: delivered after the reply."""


@dataclass(frozen=True, slots=True)
class _Grant:
    info: Raw = field(default_factory=lambda: EMPTY)
    data: Raw = field(default_factory=lambda: EMPTY)
    expire_at: float | None = None
    override: Mapping[str, bool] = field(default_factory=dict)
    proxied: bool = False
    """The subscribe proxy granted it: the client's own flags are not honoured."""


async def subscribe(
    node: Node,
    client: Client,
    request: SubscribeRequest,
    *,
    server_side: bool = False,
    options: ServerSubscription | None = None,
) -> Subscribed | None:
    """Subscribe ``client``; ``None`` when it closed meanwhile. The caller queues the
    reply right away, with no await in between. A server-side subscription is granted,
    with ``options`` when given (a token's ``subs`` entry)."""
    channel = request.channel
    namespace = node.rules.namespace(channel)
    try:
        check_protocol(client.codec, namespace)
    except ClientError:
        if server_side:
            raise DISCONNECT_INAPPROPRIATE_PROTOCOL from None
        raise
    if server_side:
        grant = _server_grant(options)
    else:
        grant = await _authorize(node, client, request, namespace)
    if grant.override:
        namespace = namespace.model_copy(update=grant.override)
    context = _context(node, client, request, namespace, grant, server_side=server_side)
    if not node.hub.has_subscribers(channel):
        try:
            await node.broker.subscribe(channel)
        except Exception:
            log_failure(logger, "broker failed to subscribe to %s", channel)
            raise ERROR_INTERNAL from None
    try:
        return await _join(node, client, request, channel, context, grant)
    finally:
        if channel not in client.channels:
            # Refused, failed or closed meanwhile: the broker need not keep the channel
            # for this node unless someone else here is subscribed.
            await node.release_channel(channel)


async def _join(
    node: Node,
    client: Client,
    request: SubscribeRequest,
    channel: str,
    context: ChannelContext,
    grant: _Grant,
) -> Subscribed | None:
    if client.closed:
        return None
    if not context.positioned:
        _commit(node, client, channel, context, None, held=None)
        return Subscribed(_result(request, context, grant, node), [])
    recovery, top = await _read_position(node, client, request, context)
    if client.closed:
        return None
    if recovery.gap:
        raise DISCONNECT_INSUFFICIENT_STATE
    recovering = request.recover and context.recoverable
    if recovering and node.metrics is not None:
        node.metrics.recovered(
            recovered=recovery.recovered, publications=len(recovery.publications)
        )
    if recovering and not recovery.recovered and request.flag & _REJECT_UNRECOVERED:
        raise ClientError(ErrorCode.UNRECOVERABLE_POSITION, "unrecoverable position")
    recovery = _for_client(client, channel, recovery)
    # A delta subscriber holds the last payload it is sent now: the next one's base.
    last = recovery.publications[-1] if context.delta and recovery.publications else None
    recovery = _variant(node, client, channel, context, recovery)
    held = None if last is None else bytes(last.data)
    _commit(node, client, channel, context, recovery.position, held=held)
    result = _result(request, context, grant, node, top=top, recovery=recovery)
    return Subscribed(result, [] if recovery.recovered else recovery.publications)


def _server_grant(options: ServerSubscription | None) -> _Grant:
    if options is None:
        return _Grant()
    return _Grant(
        info=_raw(options.info),
        data=_raw(options.data),
        expire_at=options.expire_at,
        override=options.override,
    )


async def _authorize(
    node: Node, client: Client, request: SubscribeRequest, namespace: NamespaceOptions
) -> _Grant:
    channel = request.channel
    if request.token:
        credentials = node.auth.verify_subscription(request.token)
        if (
            credentials.channel != channel
            or credentials.user != client.user
            or (credentials.client and credentials.client != client.id)
        ):
            raise ERROR_PERMISSION_DENIED
        return _Grant(
            info=_raw(credentials.info),
            data=_raw(credentials.data),
            expire_at=expiry.clamp_expire_at(credentials.expire_at),
            override=credentials.override,
        )
    grant = _Grant()
    if node.proxies.subscribes(channel, namespace) and not channel.startswith(PRIVATE_PREFIX):
        # The backend decides instead of the permission flags; on_subscribe may refine.
        granted = await node.proxies.subscribe(client, request, namespace)
        grant = _Grant(granted.info, granted.data, granted.expire_at, granted.override, True)
    else:
        node.rules.check_subscribe(channel, client.user)
    handler = node.subscribe_handler
    if handler is None:
        return grant
    reply = await handler(SubscribeEvent(client.id, client.user, channel, bytes(request.data)))
    if reply is None:
        return grant
    return dataclasses.replace(
        grant,
        info=grant.info if reply.channel_info is None else _raw(reply.channel_info),
        data=grant.data if reply.data is None else _raw(reply.data),
    )


def _context(
    node: Node,
    client: Client,
    request: SubscribeRequest,
    options: NamespaceOptions,
    grant: _Grant,
    *,
    server_side: bool,
) -> ChannelContext:
    history = options.history_enabled
    history_access = node.rules.may_read_history(options, client.user, subscribed=True)
    asked = request if not grant.proxied else _NOTHING_ASKED
    recoverable = history and (
        options.force_recovery or (asked.recoverable and (options.allow_recovery or history_access))
    )
    positioned = recoverable or (
        history
        and (
            options.force_positioning
            or (asked.positioned and (options.allow_positioning or history_access))
        )
    )
    presence_access = node.rules.may_read_presence(options, client.user, subscribed=True)
    push_join_leave = options.join_leave and (
        options.force_push_join_leave or (asked.join_leave and presence_access)
    )
    tags_filter = None if server_side else _tags_filter(request, options)
    return ChannelContext(
        info=grant.info,
        server_side=server_side,
        positioned=positioned,
        recoverable=recoverable,
        push_join_leave=push_join_leave,
        presence=options.presence,
        join_leave=options.join_leave,
        delta=not server_side and deltas.negotiate(request.delta, options),
        tags_filter=tags_filter,
        expire_at=grant.expire_at,
        proxy_refresh=grant.proxied and node.proxies.refreshes_subscriptions(options),
    )


_NOTHING_ASKED = SubscribeRequest()


def _tags_filter(request: SubscribeRequest, options: NamespaceOptions) -> TagsFilter | None:
    if request.tf is None:
        return None
    if not options.allow_tags_filter:
        raise ClientError(ErrorCode.BAD_REQUEST, "bad request: tags filter not allowed")
    if request.delta:
        raise ClientError(ErrorCode.BAD_REQUEST, "bad request: tags filter and delta exclude")
    return compile_filter(request.tf)


async def _read_position(
    node: Node, client: Client, request: SubscribeRequest, context: ChannelContext
) -> tuple[Recovery, StreamPosition]:
    channel = request.channel
    limit = node.config.client.recovery_max_publication_limit
    recovering = request.recover and context.recoverable
    since = StreamPosition(offset=request.offset, epoch=request.epoch)
    meta_ttl = node.rules.history_meta_ttl(node.rules.namespace(channel))
    if recovering:
        history = HistoryOptions(since=since, limit=limit + 1, history_meta_ttl=meta_ttl)
    else:
        history = HistoryOptions(history_meta_ttl=meta_ttl)
    node.hub.start_recovering(channel, client)
    try:
        page = await node.broker.history(channel, history)
    except Exception:
        log_failure(logger, "broker failed to read the history of %s", channel)
        raise ERROR_INTERNAL from None
    finally:
        buffered = node.hub.finish_recovering(channel, client)
    if buffered is None:
        # The broker may have lost live publications meanwhile: start again.
        raise DISCONNECT_INSUFFICIENT_STATE
    top = page.position
    if recovering:
        return recover(since, page.publications, top, buffered, limit=limit), top
    return merge_live(top, buffered), top


def _commit(
    node: Node,
    client: Client,
    channel: str,
    context: ChannelContext,
    position: StreamPosition | None,
    *,
    held: bytes | None,
) -> None:
    client.channels[channel] = context
    node.hub.add_subscriber(
        channel,
        client,
        position=position,
        join_leave=context.push_join_leave,
        tags_filter=context.tags_filter,
        delta=context.delta,
        held=held,
    )
    if node.metrics is not None:
        node.metrics.subscription_added(client.metric_labels)
    if context.expire_at is not None:
        client.schedule_subscription_expiry(channel, context)


def _result(
    request: SubscribeRequest,
    context: ChannelContext,
    grant: _Grant,
    node: Node,
    *,
    top: StreamPosition | None = None,
    recovery: Recovery | None = None,
) -> SubscribeResult:
    # With a sub_refresh proxy the server refreshes: the client is told no expiry.
    ttl = None if context.proxy_refresh else _ttl(node, grant.expire_at)
    if top is None or recovery is None:
        return SubscribeResult(
            expires=ttl is not None,
            ttl=ttl or 0,
            data=grant.data,
            was_recovering=request.recover,
            delta=context.delta,
        )
    recovered = recovery.recovered and request.recover and context.recoverable
    return SubscribeResult(
        expires=ttl is not None,
        ttl=ttl or 0,
        recoverable=context.recoverable,
        epoch=top.epoch,
        publications=recovery.publications if recovered else None,
        recovered=recovered,
        offset=request.offset if recovered else top.offset,
        positioned=True,
        data=grant.data,
        was_recovering=request.recover,
        delta=context.delta,
    )


def for_client(client: Client, publications: list[Publication]) -> list[Publication]:
    """Stored publications as ``client``'s protocol can carry them.

    Raises:
        InvalidPayload: a JSON client, and a payload it can't parse (which only a
            broker holding data from elsewhere could return: publish checks them).
    """
    if client.codec.binary or not publications:
        return publications
    return for_json(publications)


def _for_client(client: Client, channel: str, recovery: Recovery) -> Recovery:
    """Recovered publications for ``client``; not recovered if one can't be sent."""
    try:
        return dataclasses.replace(recovery, publications=for_client(client, recovery.publications))
    except ValueError:
        logger.error("the history of %r holds a payload JSON clients can't parse", channel)
        return dataclasses.replace(recovery, publications=[], recovered=False)


def _variant(
    node: Node, client: Client, channel: str, context: ChannelContext, recovery: Recovery
) -> Recovery:
    """The reply's and the live publications as a variant subscriber gets them: those
    its tags filter passes, or a delta chain."""
    publications = recovery.publications
    if not publications:
        return recovery
    tags_filter = context.tags_filter
    if tags_filter is not None:
        publications = [p for p in publications if tags_filter.match(p.tags)]
    elif context.delta:
        epoch = recovery.position.epoch
        cache = node.hub.delta_cache
        publications = deltas.chain(client.codec, channel, epoch, publications, cache)
    else:
        return recovery
    return dataclasses.replace(recovery, publications=publications)


def _ttl(node: Node, expire_at: float | None) -> int | None:
    return None if expire_at is None else expiry.ttl(expire_at, node.clock())


def _raw(value: object) -> Raw:
    return EMPTY if value is None else to_raw(value)


async def unsubscribe_cleanup(
    node: Node, client: Client, channel: str, context: ChannelContext
) -> None:
    """After a subscription ended (the hub already forgot it): presence, leave, broker."""
    if node.metrics is not None:
        node.metrics.subscription_removed(client.metric_labels)
    if context.expire_timer is not None:
        context.expire_timer.cancel()
    if context.presence:
        await node.presence_manager.remove_presence(channel, client.id)
    if context.join_leave:
        await node.broker.publish_leave(channel, client.channel_info(channel, context))
        if node.metrics is not None:
            node.metrics.leave_sent.inc()
    await node.release_channel(channel)
