"""Server actions on this node's connections: subscribe, unsubscribe, disconnect, refresh,
send.

Each applies one control command (:mod:`wirehub.core.control`) to the local
connections it targets, and returns how many it acted on. The origin node calls them
after publishing the command to the others; the others call them when it arrives
(:mod:`wirehub.core.cluster`). Semantics are Centrifugo's
(``centrifugo-server-side.md`` §4.3): targeting by user, ``client`` and ``session``
narrowing; unsubscribe push 2000; a connection's expiry moved or ended by refresh.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wirehub.core.events import ServerSubscription
from wirehub.core.hub import Encoder
from wirehub.core.publish import check_protocol
from wirehub.core.subscriptions import subscribe as subscribe_channel
from wirehub.errors import DISCONNECT_EXPIRED, ClientError, Disconnect
from wirehub.protocol.codes import UnsubscribeCode
from wirehub.protocol.types import (
    Message,
    Publication,
    Push,
    Reply,
    Subscribe as SubscribePush,
    SubscribeRequest,
    Unsubscribe,
)

if TYPE_CHECKING:
    from wirehub.core.client import Client
    from wirehub.core.control import (
        DisconnectCommand,
        RefreshCommand,
        SendCommand,
        SubscribeCommand,
        Target,
        UnsubscribeCommand,
    )
    from wirehub.core.node import Node

__all__ = ["disconnect", "refresh", "send", "subscribe", "targets", "unsubscribe"]

logger = logging.getLogger("wirehub.node")

_SERVER_UNSUBSCRIBE = Unsubscribe(code=UnsubscribeCode.SERVER, reason="server unsubscribe")


def targets(node: Node, target: Target) -> list[Client]:
    """This node's connections that ``target`` designates, connected and open."""
    if target.user is None:
        found = node.hub.client(target.client)
        clients = [] if found is None else [found]
    else:
        clients = node.hub.user_clients(target.user)
        if target.client:
            clients = [c for c in clients if c.id == target.client]
    if target.session:
        # Only emulation and unidirectional connections have a session.
        clients = [c for c in clients if c.session == target.session]
    return [c for c in clients if not c.closed]


async def subscribe(node: Node, command: SubscribeCommand) -> int:
    """Server-side subscribe: a ``subscribe`` push, then the channel's publications."""
    channel = command.channel
    options = ServerSubscription(
        info=command.info or None,
        data=command.data or None,
        override=command.override,
        expire_at=command.expire_at or None,
    )
    since = command.recover_since
    request = SubscribeRequest(
        channel=channel,
        recover=since is not None,
        offset=since.offset if since is not None else 0,
        epoch=since.epoch if since is not None else "",
    )
    count = 0
    for target in targets(node, command.target):
        if channel in target.channels:
            continue
        try:
            # A JSON client is left out of a binary channel, not disconnected for it.
            check_protocol(target.codec, node.rules.namespace(channel))
        except ClientError as exc:
            logger.info("client %s not subscribed to %r: %s", target.id, channel, exc)
            continue
        try:
            subscribed = await subscribe_channel(
                node, target, request, server_side=True, options=options
            )
        except ClientError as exc:
            logger.info("server subscribe of client %s to %r failed: %s", target.id, channel, exc)
            continue
        except Disconnect as exc:
            target.disconnect(exc)
            continue
        if subscribed is None:
            continue
        result = subscribed.result
        push = SubscribePush(
            recoverable=result.recoverable,
            epoch=result.epoch,
            offset=result.offset,
            positioned=result.positioned,
            data=result.data,
        )
        target.push(Push(channel=channel, subscribe=push))
        _push_publications(target, channel, [*(result.publications or ()), *subscribed.live])
        await node.after_subscribe(target, channel)
        count += 1
    return count


def _push_publications(target: Client, channel: str, publications: list[Publication]) -> None:
    for publication in publications:
        target.push(Push(channel=channel, pub=publication))


async def unsubscribe(node: Node, command: UnsubscribeCommand) -> int:
    """Unsubscribe from one channel, or every channel when ``channel`` is ""."""
    count = 0
    for target in targets(node, command.target):
        channels = [command.channel] if command.channel else list(target.channels)
        for channel in channels:
            if channel not in target.channels:
                continue
            await node.unsubscribe_client(target, channel)
            target.push(Push(channel=channel, unsubscribe=_SERVER_UNSUBSCRIBE))
            metrics = node.metrics
            if metrics is not None:
                metrics.server_unsubscribes.labels(str(UnsubscribeCode.SERVER), "").inc()
            count += 1
    return count


def disconnect(node: Node, command: DisconnectCommand) -> int:
    spare = set(command.whitelist)
    chosen = [c for c in targets(node, command.target) if c.id not in spare]
    if chosen:
        reason = Disconnect(command.code, command.reason)
        for client in chosen:
            client.disconnect(reason)
    return len(chosen)


def refresh(node: Node, command: RefreshCommand) -> int:
    """``expired``: close with 3005; else a new expiry (0: never), pushed to the client."""
    chosen = targets(node, command.target)
    now = node.clock()
    for client in chosen:
        if command.expired or (command.expire_at and command.expire_at <= now):
            client.disconnect(DISCONNECT_EXPIRED)
        else:
            client.server_refresh(command.expire_at or None, command.info or None)
    return len(chosen)


def send(node: Node, command: SendCommand) -> int:
    """A ``message`` push, encoded once per protocol among the targeted connections."""
    chosen = targets(node, command.target)
    encoder = Encoder(Reply(push=Push(message=Message(data=command.data))))
    for client in chosen:
        client.enqueue(encoder.get(client.codec))
    return len(chosen)
