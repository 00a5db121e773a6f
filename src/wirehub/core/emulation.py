"""Routing emulation requests to the node that owns the session (``centrifugo-protocol.md``
§6.5), so that no load balancer needs sticky sessions.

An HTTP-streaming or SSE client's stream lives on one node; its commands arrive as
``POST /emulation`` requests at whichever node the balancer picks, naming the owning
node and the session. Rules:

1. Owned here: the commands go to the session's connection at once, as one frame read
   from it. An unknown session (gone, never was, or a unidirectional one) is
   delivered nowhere and still counts as delivered: the client learns from its stream.
2. Owned by a node of the cluster: the request is forwarded to that node alone through
   the Controller (the survey op ``centrifuge_emulation``), and is delivered once that
   node answered that its connection took the commands. A node that is not in the
   registry, or left before answering, is :attr:`Delivery.UNKNOWN_NODE`: the SDK
   reconnects (404). No answer within the survey timeout is :attr:`Delivery.FAILED`.
3. Backpressure: a connection whose commands pile up stops reading (``Client`` rule
   3); its emulation requests then wait, up to :data:`WAIT_TIMEOUT` seconds
   (:attr:`Delivery.FAILED` after it), and at most :data:`MAX_WAITING` of them per
   session (:attr:`Delivery.BUSY` beyond), so a client flooding requests holds a
   bounded number of them.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import msgspec

from wirehub.core.cluster import NodeGone, SurveyError

if TYPE_CHECKING:
    from wirehub.core.node import Node

__all__ = ["MAX_WAITING", "OP", "WAIT_TIMEOUT", "Delivery", "EmulationRouter", "Readable"]

logger = logging.getLogger("wirehub.emulation")

OP: Final = "centrifuge_emulation"
MAX_WAITING: Final = 16
WAIT_TIMEOUT: Final = 10.0


class Delivery(enum.Enum):
    DELIVERED = "delivered"
    UNKNOWN_NODE = "unknown_node"
    BUSY = "busy"
    FAILED = "failed"


@runtime_checkable
class Readable(Protocol):
    """A transport whose reading can be waited for (the emulation stream's)."""

    async def wait_readable(self) -> None: ...


class _Forwarded(msgspec.Struct, frozen=True):
    session: str
    data: bytes


_encode = msgspec.json.Encoder().encode
_decode_forwarded = msgspec.json.Decoder(_Forwarded).decode
_decode_delivery = msgspec.json.Decoder(str).decode


class EmulationRouter:
    """Owned by a :class:`~wirehub.core.node.Node` (``node.emulation``)."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._waiting: dict[str, int] = {}
        node.cluster.register(OP, self._answer)

    async def deliver(self, node_id: str, session: str, data: bytes) -> Delivery:
        """Hand ``data`` (a frame of commands) to ``session`` on ``node_id``."""
        node = self._node
        if node_id == node.id:
            return await self.deliver_here(session, data)
        if not node.cluster.knows(node_id):
            return Delivery.UNKNOWN_NODE
        logger.debug("forwarding an emulation request to node %s", node_id)
        try:
            answer = await node.cluster.ask(node_id, OP, _encode(_Forwarded(session, data)))
        except NodeGone:
            return Delivery.UNKNOWN_NODE
        except (SurveyError, ValueError):
            return Delivery.FAILED
        try:
            return Delivery(_decode_delivery(answer))
        except (msgspec.DecodeError, ValueError):
            return Delivery.FAILED

    async def deliver_here(self, session: str, data: bytes) -> Delivery:
        """Hand ``data`` to ``session``'s connection on this node (rules 1 and 3)."""
        client = self._node.hub.session(session)
        if client is None or not client.transport.info.emulation:
            return Delivery.DELIVERED
        transport = client.transport
        if client.reading_paused and isinstance(transport, Readable):
            waiting = self._waiting.get(session, 0)
            if waiting >= MAX_WAITING:
                return Delivery.BUSY
            self._waiting[session] = waiting + 1
            try:
                async with asyncio.timeout(WAIT_TIMEOUT):
                    await transport.wait_readable()
            except TimeoutError:
                return Delivery.FAILED
            finally:
                left = self._waiting.pop(session) - 1
                if left:
                    self._waiting[session] = left
        client.handle_frame(data)
        return Delivery.DELIVERED

    async def _answer(self, data: bytes) -> bytes:
        """The ``centrifuge_emulation`` survey, asked by the node that got the request."""
        try:
            forwarded = _decode_forwarded(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"invalid emulation request: {exc}") from None
        delivery = await self.deliver_here(forwarded.session, forwarded.data)
        return _encode(delivery.value)
