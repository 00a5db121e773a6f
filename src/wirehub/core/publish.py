"""The one publish path: client ``publish`` (with its proxy), ``Node.publish`` and
``broadcast`` (so the server API).

Rules (``reliability.md`` A1, A2; ``centrifugo-server-side.md`` §4.3):

1. The channel name and namespace are checked first (107 for a bad name, 102 for an
   unknown namespace), for a client its permission (103), then the payload against
   the namespace's ``publication_data_format`` (107), then the publish proxy where the
   namespace has ``publish_proxy_enabled`` (it decides instead of the permission flags;
   :mod:`wirehub.proxy`), then ``on_publish``; replacement data is checked again.
   (Centrifugo checks the payload before the permission; the other order spares the
   work of checking what would be refused.)
2. A payload is checked once, here, before anything is stored or delivered; what is
   accepted can be sent to every client that may subscribe (JSON clients can't
   subscribe where the format is ``"binary"``). Fan-out, history and recovery need no
   further check (see :func:`wirehub.core.payload.for_json` for foreign broker data).
3. A refused payload is an :class:`~wirehub.errors.InvalidPayload`: error 107 to a
   client, a ``ClientError``/``ValueError`` to Python callers.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from msgspec import Raw

from wirehub.brokers.base import PublishOptions
from wirehub.config import NamespaceOptions
from wirehub.core.events import PublishEvent
from wirehub.core.payload import payload
from wirehub.errors import ClientError
from wirehub.protocol.codes import ErrorCode
from wirehub.protocol.payload import is_binary_format
from wirehub.protocol.types import ClientInfo, Publication, PublishRequest, StreamPosition
from wirehub.proxy.proxies import PublishDecision

if TYPE_CHECKING:
    from wirehub.core.client import Client
    from wirehub.core.node import Node
    from wirehub.protocol.codec import Codec

__all__ = ["ERROR_BINARY_CHANNEL", "check_protocol", "client_publish", "publish"]

ERROR_BINARY_CHANNEL = ClientError(
    ErrorCode.BAD_REQUEST, "bad request: binary channel, use the protobuf protocol"
)
"""A JSON-protocol client asked for a channel whose publications may be binary."""

_NO_HISTORY = PublishOptions()


async def publish(
    node: Node,
    channel: str,
    data: Any,
    *,
    info: ClientInfo | None = None,
    tags: dict[str, str] | None = None,
    skip_history: bool = False,
    idempotency_key: str = "",
    delta: bool = False,
) -> StreamPosition:
    """Check ``data`` for ``channel``'s namespace, then publish it.

    ``data``: ``bytes``/``msgspec.Raw`` as encoded (JSON, or anything in a binary
    namespace), or a value to serialise to JSON. ``delta``: subscribers that negotiated
    deltas may get this one as a delta (always so where the namespace has
    ``delta_publish``). Returns the stream position (offset 0 without history).

    Raises:
        ClientError: 102 unknown namespace, 107 bad name or payload.
    """
    options = node.rules.namespace(channel)
    checked = payload(data, options.publication_data_format)
    return await _publish(
        node, channel, checked, options, info, tags, skip_history, idempotency_key, delta
    )


async def client_publish(node: Node, client: Client, request: PublishRequest) -> None:
    """A client's ``publish`` command: authorised, checked, maybe rewritten, published."""
    channel = request.channel
    options = node.rules.namespace(channel)
    proxied = node.proxies.publishes(options)
    if not proxied:
        subscribed = channel in client.channels
        options = node.rules.check_publish(channel, client.user, subscribed=subscribed)
    data_format = options.publication_data_format
    data = payload(request.data, data_format)
    decision = PublishDecision(data)
    if proxied:
        # The backend decides instead of the permission flags; on_publish may refine.
        decision = await node.proxies.publish(client, channel, data, options)
        data = decision.data
    handler = node.publish_handler
    if handler is not None:
        reply = await handler(PublishEvent(client.id, client.user, channel, bytes(data)))
        if reply is not None and reply.data is not None:
            data = payload(reply.data, data_format)
    info = client.channel_info(channel, client.channels.get(channel))
    await _publish(
        node,
        channel,
        data,
        options,
        info,
        decision.tags,
        decision.skip_history,
        decision.idempotency_key,
        decision.delta,
    )


async def _publish(
    node: Node,
    channel: str,
    data: Raw,
    options: NamespaceOptions,
    info: ClientInfo | None,
    tags: dict[str, str] | None,
    skip_history: bool,
    idempotency_key: str,
    delta: bool,
) -> StreamPosition:
    # ``delta`` here means "the publisher allows deltas" (the hub clears it).
    publication = Publication(
        data=data, info=info, tags=tags or None, delta=delta or options.delta_publish
    )
    history = _NO_HISTORY if skip_history else node.publish_options(options)
    if idempotency_key:
        # The broker keeps the key (Redis: in its publish script), so a retry that
        # reaches another node is suppressed too.
        history = dataclasses.replace(history, idempotency_key=idempotency_key)
    position = await node.broker.publish(channel, publication, history)
    if node.metrics is not None:
        node.metrics.publication_sent.inc()
    return position


def check_protocol(codec: Codec, options: NamespaceOptions) -> None:
    """Refuse a JSON-protocol client a channel whose publications may be binary (107,
    at subscribe or history: never a disconnect later).

    Raises:
        ClientError: 107.
    """
    if not codec.binary and is_binary_format(options.publication_data_format):
        raise ERROR_BINARY_CHANNEL
