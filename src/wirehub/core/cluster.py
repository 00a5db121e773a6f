"""The node's side of the Controller: actions on other nodes' connections, surveys, and
the registry of live nodes (``centrifugo-server-side.md`` §1.12-1.14).

Rules:

1. An action (subscribe, unsubscribe, disconnect, refresh) is published to every node
   first, then applied here; if publishing fails nothing is applied and the caller
   gets the error.
2. Messages from other nodes run one at a time, in arrival order, on one task: a
   subscribe followed by an unsubscribe from the same origin never swap. The queue is
   bounded (:data:`INBOX_SIZE`); past it messages are dropped with a warning, as
   Centrifugo drops control messages when its buffer is full.
3. Every node announces itself on start and every :data:`HEARTBEAT` seconds; a node
   that is heard of for the first time is answered at once, so both know each other
   within one round trip. Entries not refreshed for :data:`STALE_AFTER` seconds are
   dropped (checked every three heartbeats); a ``shutdown`` message drops its sender
   at once. This node is always in its own registry.
4. A survey asks every node registered when it starts, answers itself locally, and
   waits for all the others' answers up to ``timeout`` (:data:`SURVEY_TIMEOUT` by
   default); a node that leaves (shutdown) meanwhile is no longer waited for. A
   missing or failed answer fails the whole survey.
5. Anything undecodable is logged (truncated) and dropped.
6. :meth:`Cluster.ask` is a survey of one node (``centrifuge_emulation``, the routing
   of emulation requests): published to that node alone, answered by it, or failed by
   the timeout; a node forgotten meanwhile raises :class:`NodeGone`. Ops registered
   with :meth:`Cluster.register` are answered by their handler in a task of their own,
   in arrival order but outside the queue of rule 2, so a slow one never holds up the
   others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from wirehub.core import actions, control
from wirehub.core.control import (
    ControlMessage,
    DisconnectCommand,
    NodeInfo,
    RefreshCommand,
    SendCommand,
    Shutdown,
    SubscribeCommand,
    SurveyRequest,
    SurveyResponse,
    UnsubscribeCommand,
)
from wirehub.core.glob import compile_glob
from wirehub.protocol.types import EMPTY_RAW

if TYPE_CHECKING:
    from wirehub.brokers.base import Controller
    from wirehub.core.node import Node

__all__ = [
    "HEARTBEAT",
    "INBOX_SIZE",
    "STALE_AFTER",
    "SURVEY_TIMEOUT",
    "Cluster",
    "NodeGone",
    "SurveyError",
    "SurveyHandler",
]

logger = logging.getLogger("wirehub.cluster")

HEARTBEAT = 3.0
STALE_AFTER = 7.0
SURVEY_TIMEOUT = 10.0
INBOX_SIZE = 4096

# Survey answer codes (Centrifugo's): 0 fine, 1 internal, 2 invalid request, 3 unknown op.
_OK, _INTERNAL, _INVALID, _UNKNOWN_OP = 0, 1, 2, 3

Action = SubscribeCommand | UnsubscribeCommand | DisconnectCommand | RefreshCommand | SendCommand


class SurveyError(Exception):
    """A survey could not complete: a node did not answer in time, or answered an error."""


class NodeGone(SurveyError):
    """The node asked left the cluster (shutdown, or no heartbeat) before answering."""


SurveyHandler = Callable[[bytes], Awaitable[bytes]]
"""Answers one survey op: the request's data in, the answer's data out (a ``ValueError``
answers "invalid request", any other exception "internal")."""


@dataclass
class _Survey:
    waiting: set[str]
    answers: dict[str, SurveyResponse] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def answered(self, node_id: str, response: SurveyResponse | None) -> None:
        if node_id not in self.waiting:
            return
        self.waiting.discard(node_id)
        if response is not None:
            self.answers[node_id] = response
        if not self.waiting:
            self.done.set()


class Cluster:
    """Owned by one :class:`~wirehub.core.node.Node`; started and closed with it."""

    def __init__(
        self,
        node: Node,
        controller: Controller,
        *,
        name: str,
        survey_timeout: float = SURVEY_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node = node
        self._controller = controller
        self.name = name
        self.survey_timeout = survey_timeout
        self._clock = clock
        self._registry: dict[str, tuple[NodeInfo, float]] = {}
        self._surveys: dict[int, _Survey] = {}
        self._survey_ids = itertools.count(1)
        self._inbox: asyncio.Queue[ControlMessage] | None = None
        self._handlers: dict[str, SurveyHandler] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started_at = 0.0

    @property
    def id(self) -> str:
        return self._node.id

    # Lifecycle.

    async def start(self) -> None:
        self._started_at = self._clock()
        self._inbox = asyncio.Queue(INBOX_SIZE)
        self._registry[self.id] = (self.local_info(), self._clock())
        await self._controller.start(self._node, self.id)
        self._run(self._process_inbox())
        self._run(self._heartbeats())

    async def close(self) -> None:
        if self._inbox is None:
            return
        try:
            await self._publish(Shutdown(uid=self.id))
        except Exception as exc:
            logger.warning("could not tell other nodes of this shutdown: %s", exc)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for survey in self._surveys.values():
            survey.done.set()
        await self._controller.close()
        self._inbox = None
        self._registry.clear()

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("cluster task failed", exc_info=task.exception())

    # Registry.

    def local_info(self) -> NodeInfo:
        hub = self._node.hub
        return NodeInfo(
            uid=self.id,
            name=self.name,
            version=self._node.version,
            num_clients=hub.num_clients,
            num_users=hub.num_users,
            num_channels=hub.num_channels,
            num_subs=hub.num_subscriptions,
            uptime=int(self._clock() - self._started_at) if self._started_at else 0,
        )

    @property
    def num_nodes(self) -> int:
        return max(1, len(self._registry))

    def nodes(self) -> list[NodeInfo]:
        """The registry: every node heard of lately (this one's figures are current)."""
        others = [info for uid, (info, _) in self._registry.items() if uid != self.id]
        return [self.local_info(), *others]

    def prune(self) -> None:
        """Forget nodes not heard of for :data:`STALE_AFTER` seconds."""
        limit = self._clock() - STALE_AFTER
        for uid, (_, seen) in list(self._registry.items()):
            if uid != self.id and seen < limit:
                del self._registry[uid]
                self._forget_in_surveys(uid)

    async def _heartbeats(self) -> None:
        await self._announce()
        for beat in itertools.count(1):
            await asyncio.sleep(HEARTBEAT)
            await self._announce()
            if beat % 3 == 0:
                self.prune()

    async def _announce(self, node_id: str = "") -> None:
        try:
            await self._publish(self.local_info(), node_id)
        except Exception as exc:
            logger.warning("could not send this node's heartbeat: %s", exc)

    def _forget_in_surveys(self, node_id: str) -> None:
        for survey in self._surveys.values():
            survey.answered(node_id, None)

    # Sending.

    async def _publish(self, message: ControlMessage, node_id: str = "") -> None:
        await self._controller.publish_control(control.encode(message), node_id)
        metrics = self._node.metrics
        if metrics is not None:
            metrics.control_sent.inc()

    async def act(self, action: Action) -> int:
        """Publish ``action`` to every node, then apply it here; the local count."""
        await self._publish(action)
        return await _apply(self._node, action)

    def tell(self, action: Action) -> None:
        """Publish ``action`` to the other nodes in the background (the caller applied
        it locally); a failure to publish is logged."""
        if self._inbox is not None:
            self._run(self._tell(action))

    async def _tell(self, action: Action) -> None:
        try:
            await self._publish(action)
        except Exception as exc:
            logger.warning("could not send %s to other nodes: %s", type(action).__name__, exc)

    async def survey(self, op: str, data: bytes = b"") -> dict[str, bytes]:
        """Ask every node; return each node's answer by node id.

        Raises:
            SurveyError: a node failed or did not answer within ``survey_timeout``.
        """
        started = time.perf_counter()
        survey_id = next(self._survey_ids)
        survey = _Survey(waiting={uid for uid in self._registry if uid != self.id})
        self._surveys[survey_id] = survey
        try:
            if survey.waiting:
                request = SurveyRequest(uid=self.id, id=survey_id, op=op, data=_raw(data))
                await self._publish(request)
            answers = {self.id: self._answer(op, data)}
            if survey.waiting:
                try:
                    async with asyncio.timeout(self.survey_timeout):
                        await survey.done.wait()
                except TimeoutError:
                    missing = ", ".join(sorted(survey.waiting))
                    raise SurveyError(f"survey {op!r}: no answer from node(s) {missing}") from None
            answers.update(survey.answers)
        finally:
            del self._surveys[survey_id]
            metrics = self._node.metrics
            if metrics is not None:
                metrics.survey_duration.labels(op).observe(time.perf_counter() - started)
        return {uid: _answer_data(op, uid, answer) for uid, answer in answers.items()}

    def register(self, op: str, handler: SurveyHandler) -> None:
        """Answer the survey ``op`` with ``handler`` (see the module's rule 6)."""
        self._handlers[op] = handler

    def knows(self, node_id: str) -> bool:
        """Whether ``node_id`` is this node or one heard of lately."""
        return node_id in self._registry

    async def ask(self, node_id: str, op: str, data: bytes = b"") -> bytes:
        """Ask one other node; return its answer.

        Raises:
            NodeGone: the node left before answering.
            SurveyError: it did not answer within ``survey_timeout``, or failed.
            ValueError: it found the request invalid.
        """
        started = time.perf_counter()
        survey_id = next(self._survey_ids)
        survey = _Survey(waiting={node_id})
        self._surveys[survey_id] = survey
        try:
            request = SurveyRequest(uid=self.id, id=survey_id, op=op, data=_raw(data))
            await self._publish(request, node_id)
            try:
                async with asyncio.timeout(self.survey_timeout):
                    await survey.done.wait()
            except TimeoutError:
                raise SurveyError(f"survey {op!r}: no answer from node {node_id}") from None
        finally:
            del self._surveys[survey_id]
            metrics = self._node.metrics
            if metrics is not None:
                metrics.survey_duration.labels(op).observe(time.perf_counter() - started)
        answer = survey.answers.get(node_id)
        if answer is None:
            raise NodeGone(f"survey {op!r}: node {node_id} left")
        return _answer_data(op, node_id, answer)

    async def _answer_registered(self, message: SurveyRequest) -> None:
        handler = self._handlers[message.op]
        try:
            answer = self._response(message.id, _OK, await handler(bytes(message.data)))
        except asyncio.CancelledError:
            raise
        except ValueError as exc:
            answer = self._response(message.id, _INVALID, msgspec.json.encode(str(exc)))
        except Exception:
            logger.exception("survey %r failed here", message.op)
            answer = self._response(message.id, _INTERNAL)
        try:
            await self._publish(answer, message.uid)
        except Exception as exc:
            logger.warning("could not answer a %r survey: %s", message.op, exc)

    def _answer(self, op: str, data: bytes) -> SurveyResponse:
        try:
            if op == "channels":
                pattern = msgspec.json.decode(data, type=_ChannelsRequest).pattern if data else ""
                return self._response(0, _OK, self._channels(pattern))
        except (ValueError, msgspec.DecodeError) as exc:
            return self._response(0, _INVALID, msgspec.json.encode(str(exc)))
        except Exception:
            logger.exception("survey %r failed here", op)
            return self._response(0, _INTERNAL)
        return self._response(0, _UNKNOWN_OP)

    def _response(self, survey_id: int, code: int, data: bytes = b"") -> SurveyResponse:
        return SurveyResponse(uid=self.id, id=survey_id, code=code, data=_raw(data))

    def _channels(self, pattern: str) -> bytes:
        match = compile_glob(pattern).fullmatch
        hub = self._node.hub
        counts = {ch: hub.num_subscribers(ch) for ch in hub.channels() if match(ch)}
        return msgspec.json.encode(counts)

    # Receiving.

    def handle_control(self, data: bytes) -> None:
        """A controller delivers a message from another node (or our own broadcast)."""
        try:
            message = control.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            logger.warning("dropped a malformed control message (%s): %r", exc, data[:200])
            return
        if message.uid == self.id or self._inbox is None:
            return
        metrics = self._node.metrics
        if metrics is not None:
            metrics.control_received.inc()
        if isinstance(message, NodeInfo):
            known = message.uid in self._registry
            self._registry[message.uid] = (message, self._clock())
            if not known:
                self._run(self._announce(message.uid))
        elif isinstance(message, Shutdown):
            self._registry.pop(message.uid, None)
            self._forget_in_surveys(message.uid)
        elif isinstance(message, SurveyResponse):
            survey = self._surveys.get(message.id)
            if survey is not None:
                survey.answered(message.uid, message)
        elif isinstance(message, SurveyRequest) and message.op in self._handlers:
            self._run(self._answer_registered(message))
        else:
            try:
                self._inbox.put_nowait(message)
            except asyncio.QueueFull:
                logger.warning("control queue full: dropped a %s message", type(message).__name__)

    async def _process_inbox(self) -> None:
        assert self._inbox is not None
        inbox = self._inbox
        while True:
            message = await inbox.get()
            try:
                if isinstance(message, SurveyRequest):
                    response = self._answer(message.op, bytes(message.data))
                    response = msgspec.structs.replace(response, id=message.id)
                    await self._publish(response, message.uid)
                else:
                    await _apply(self._node, message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("control message %s failed", type(message).__name__)


def _raw(data: bytes) -> msgspec.Raw:
    # An empty Raw is left out by the encoder only as the protocol's own instance.
    return msgspec.Raw(data) if data else EMPTY_RAW


class _ChannelsRequest(msgspec.Struct):
    pattern: str = ""


async def _apply(node: Node, action: ControlMessage) -> int:
    if isinstance(action, SubscribeCommand):
        return await actions.subscribe(node, action)
    if isinstance(action, UnsubscribeCommand):
        return await actions.unsubscribe(node, action)
    if isinstance(action, DisconnectCommand):
        return actions.disconnect(node, action)
    if isinstance(action, RefreshCommand):
        return actions.refresh(node, action)
    if isinstance(action, SendCommand):
        return actions.send(node, action)
    raise TypeError(f"not an action: {type(action).__name__}")


def _answer_data(op: str, node_id: str, answer: SurveyResponse) -> bytes:
    if answer.code == _OK:
        return bytes(answer.data)
    if answer.code == _INVALID:
        detail = msgspec.json.decode(bytes(answer.data)) if answer.data else "invalid request"
        raise ValueError(str(detail))
    raise SurveyError(f"survey {op!r}: node {node_id} answered code {answer.code}")
