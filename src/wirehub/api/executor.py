"""The server API's methods: request -> public :class:`Node` methods -> result.

The executor knows nothing of HTTP: :mod:`wirehub.api.http` hands it a method name
and the JSON body, and gets a result struct back, or an :class:`ApiError`. It calls
only public ``Node`` methods, so the HTTP API, the in-process API and the client
protocol share one implementation.

Rules (``centrifugo-server-side.md`` §4.1-4.3):

1. A JSON body that is not an object of the method's shape is a 107 naming the field;
   unknown fields are ignored.
2. ``b64data`` (``b64info``), when non-empty, wins over ``data`` (``info``); bad base64
   is a 107. A publish needs one of them.
3. ``ClientError`` from the node keeps its code (102, 107, 108, 112); anything else is
   logged and answered with 100, never with its text.
4. ``batch`` runs its commands in order (or concurrently with ``parallel``, at most
   1024 at once) and answers each in its place, keyed by method name, or ``error``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from msgspec import Raw

from wirehub.api import types as t
from wirehub.core.node import Node
from wirehub.errors import MAX_REASON_BYTES, ClientError, Disconnect, log_failure
from wirehub.protocol.codes import DisconnectCode, ErrorCode
from wirehub.protocol.json_codec import json_payload
from wirehub.protocol.types import Publication

__all__ = ["ApiError", "ApiExecutor", "MalformedJSON"]

logger = logging.getLogger("wirehub.api")

_BATCH_CONCURRENCY = 1024
_NULL: Final = Raw(b"null")
_OVERRIDES = (
    "presence",
    "join_leave",
    "force_push_join_leave",
    "force_positioning",
    "force_recovery",
)


class ApiError(Exception):
    """A failed API call: answered with ``{"error": {"code": .., "message": ..}}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    @property
    def body(self) -> t.ErrorBody:
        return t.ErrorBody(code=self.code, message=self.message)


class MalformedJSON(Exception):
    """The request body is not JSON at all (HTTP 400, as Centrifugo)."""


def _bad(message: str) -> ApiError:
    return ApiError(ErrorCode.BAD_REQUEST, message)


Handler = Callable[[Node, Any], Awaitable[msgspec.Struct]]


class ApiExecutor:
    """Runs API methods against ``node``."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._handlers: dict[str, Handler] = {
            "publish": _publish,
            "broadcast": _broadcast,
            "subscribe": _subscribe,
            "unsubscribe": _unsubscribe,
            "disconnect": _disconnect,
            "refresh": _refresh,
            "presence": _presence,
            "presence_stats": _presence_stats,
            "history": _history,
            "history_remove": _history_remove,
            "channels": _channels,
            "info": _info,
            "rpc": _rpc,
            "batch": self._batch,
        }

    def __contains__(self, method: str) -> bool:
        return method in self._handlers

    async def execute(self, method: str, body: bytes) -> msgspec.Struct:
        """Run ``method`` with its JSON ``body``; record its duration and error.

        Raises:
            ApiError: the call failed (its code and message are the answer).
            MalformedJSON: ``body`` is not JSON.
        """
        started = time.perf_counter()
        error: str | None = None
        try:
            return await self._execute(method, body)
        except ApiError as exc:
            error = str(exc.code)
            logger.info("api %s: error %d %s", method, exc.code, exc.message)
            raise
        except MalformedJSON:
            error = "unmarshal"
            raise
        finally:
            if self.node.metrics is not None:
                self.node.metrics.api_command(method, time.perf_counter() - started, error)

    async def _execute(self, method: str, body: bytes) -> msgspec.Struct:
        handler = self._handlers.get(method)
        if handler is None:
            raise ApiError(ErrorCode.METHOD_NOT_FOUND, "not found")
        request = _decode(t.METHODS[method], body)
        try:
            return await handler(self.node, request)
        except ClientError as exc:
            raise ApiError(exc.code, exc.message) from None
        except ApiError:
            raise
        except Exception:
            log_failure(logger, "api %s failed", method)
            raise ApiError(ErrorCode.INTERNAL, "internal server error") from None

    async def _batch(self, node: Node, request: t.BatchRequest) -> msgspec.Struct:
        commands = request.commands
        if not request.parallel:
            return _Replies(replies=[await self._command(c) for c in commands])
        limit = asyncio.Semaphore(_BATCH_CONCURRENCY)

        async def one(command: dict[str, Raw] | None) -> dict[str, Any]:
            async with limit:
                return await self._command(command)

        return _Replies(replies=list(await asyncio.gather(*(one(c) for c in commands))))

    async def _command(self, command: dict[str, Raw] | None) -> dict[str, Any]:
        if command is None:
            return {"error": _bad("bad request: null command").body}
        method = next((name for name in command if name in self and name != "batch"), None)
        if method is None:
            return {"error": ApiError(ErrorCode.METHOD_NOT_FOUND, "not found").body}
        try:
            return {method: await self.execute(method, bytes(command[method]))}
        except ApiError as exc:
            return {"error": exc.body}


class _Replies(msgspec.Struct, frozen=True):
    replies: list[dict[str, Any]]


def _decode(request_type: type[msgspec.Struct], body: bytes) -> Any:
    try:
        return msgspec.json.decode(body or b"{}", type=request_type)
    except msgspec.ValidationError as exc:
        raise _bad(f"bad request: {exc}") from None
    except msgspec.DecodeError:
        raise MalformedJSON from None


def _b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"bad request: {field} is not valid base64") from None


def _payload(data: Raw, b64data: str) -> bytes:
    """The publication payload, as encoded; 107 when there is none. The node checks it
    against the channel's namespace (``publication_data_format``): ``b64data`` carries
    what a JSON body can't (binary namespaces), ``data`` a JSON value."""
    if b64data:
        return _b64(b64data, "b64data")
    if not data:
        raise _bad("bad request: data required")
    return bytes(data)


def _optional_payload(data: Raw, b64: str, field: str) -> Any:
    if b64:
        return Raw(_b64(b64, field))
    return bytes(data) if data else None


def _required(value: str, field: str) -> str:
    if not value:
        raise _bad(f"bad request: {field} required")
    return value


# Methods.


async def _publish(node: Node, request: t.PublishRequest) -> t.PublishResult:
    channel = _required(request.channel, "channel")
    data = _payload(request.data, request.b64data)
    try:
        position = await node.publish(
            channel,
            data,
            tags=request.tags,
            idempotency_key=request.idempotency_key,
            skip_history=request.skip_history,
            delta=request.delta,
        )
    except ValueError as exc:
        raise _bad(f"bad request: {exc}") from None
    return t.PublishResult(offset=position.offset, epoch=position.epoch)


async def _broadcast(node: Node, request: t.BroadcastRequest) -> t.BroadcastResult:
    if not request.channels:
        raise _bad("bad request: channels required")
    data = _payload(request.data, request.b64data)
    named = [channel for channel in request.channels if channel]
    try:
        published = (
            await node.broadcast(
                named,
                data,
                tags=request.tags,
                idempotency_key=request.idempotency_key,
                skip_history=request.skip_history,
                delta=request.delta,
            )
            if named
            else []
        )
    except ValueError as exc:
        raise _bad(f"bad request: {exc}") from None
    outcomes = iter(published)
    responses = []
    for channel in request.channels:
        outcome = next(outcomes) if channel else _bad("bad request: channel required")
        if isinstance(outcome, ClientError | ApiError):
            responses.append(t.PublishResponse(error=t.ErrorBody(outcome.code, outcome.message)))
        else:
            result = t.PublishResult(offset=outcome.offset, epoch=outcome.epoch)
            responses.append(t.PublishResponse(result=result))
    return t.BroadcastResult(responses=responses)


async def _subscribe(node: Node, request: t.SubscribeRequest) -> t.Empty:
    channel = _required(request.channel, "channel")
    override = request.override
    overrides: dict[str, bool] = {}
    if override is not None:
        for name in _OVERRIDES:
            value = getattr(override, name)
            if value is not None:
                overrides[name] = value.value
    await node.subscribe(
        channel,
        request.user,
        client=request.client,
        session=request.session,
        info=_json_or_error(_optional_payload(request.info, request.b64info, "b64info")),
        data=_json_or_error(_optional_payload(request.data, request.b64data, "b64data")),
        override=overrides,
        expire_at=request.expire_at or None,
        recover_since=request.recover_since,
    )
    return t.Empty()


def _json_or_error(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return json_payload(value)
        except ValueError as exc:
            raise _bad(f"bad request: {exc}") from None
    return value


async def _unsubscribe(node: Node, request: t.UnsubscribeRequest) -> t.Empty:
    await node.unsubscribe(
        request.channel, request.user, client=request.client, session=request.session
    )
    return t.Empty()


async def _disconnect(node: Node, request: t.DisconnectRequest) -> t.Empty:
    await node.disconnect(
        request.user,
        client=request.client,
        session=request.session,
        whitelist=request.whitelist,
        disconnect=_disconnect_reason(request.disconnect),
    )
    return t.Empty()


def _disconnect_reason(given: t.DisconnectObject | None) -> Disconnect:
    if given is None or given.code == 0:
        return Disconnect(DisconnectCode.FORCE_DISCONNECT, "force disconnect")
    if not 3000 <= given.code <= 4999:
        raise _bad("bad request: disconnect code must be within 3000-4999")
    if len(given.reason.encode()) > MAX_REASON_BYTES:
        raise _bad(f"bad request: disconnect reason longer than {MAX_REASON_BYTES} bytes")
    return Disconnect(given.code, given.reason or "disconnect")


async def _refresh(node: Node, request: t.RefreshRequest) -> t.Empty:
    await node.refresh(
        request.user,
        client=request.client,
        session=request.session,
        expired=request.expired,
        expire_at=request.expire_at or None,
        info=_json_or_error(bytes(request.info)) if request.info else None,
    )
    return t.Empty()


async def _presence(node: Node, request: t.PresenceRequest) -> t.PresenceResult:
    presence = await node.presence(_required(request.channel, "channel"))
    return t.PresenceResult(presence=presence)


async def _presence_stats(node: Node, request: t.PresenceStatsRequest) -> t.PresenceStatsResult:
    stats = await node.presence_stats(_required(request.channel, "channel"))
    return t.PresenceStatsResult(num_clients=stats.num_clients, num_users=stats.num_users)


async def _history(node: Node, request: t.HistoryRequest) -> t.HistoryResult:
    page = await node.history(
        _required(request.channel, "channel"),
        limit=request.limit,
        since=request.since,
        reverse=request.reverse,
    )
    publications = [_history_publication(p) for p in page.publications]
    position = page.position
    return t.HistoryResult(publications=publications, epoch=position.epoch, offset=position.offset)


def _history_publication(publication: Publication) -> t.HistoryPublication:
    data, b64data = publication.data, ""
    try:
        data = json_payload(bytes(data)) if data else _NULL
    except ValueError:  # binary (b64data, or a Protobuf client's): not JSON
        data, b64data = _NULL, base64.b64encode(bytes(publication.data)).decode()
    return t.HistoryPublication(
        data=data,
        b64data=b64data,
        offset=publication.offset,
        tags=publication.tags,
        info=publication.info,
    )


async def _history_remove(node: Node, request: t.HistoryRemoveRequest) -> t.Empty:
    await node.history_remove(_required(request.channel, "channel"))
    return t.Empty()


async def _channels(node: Node, request: t.ChannelsRequest) -> t.ChannelsResult:
    counts = await node.channels(request.pattern)
    channels = {name: t.ChannelInfo(num_clients=count) for name, count in counts.items()}
    return t.ChannelsResult(channels=channels)


async def _info(node: Node, request: t.InfoRequest) -> t.InfoResult:
    nodes = [
        t.NodeResult(
            uid=info.uid,
            name=info.name,
            version=info.version,
            num_clients=info.num_clients,
            num_users=info.num_users,
            num_channels=info.num_channels,
            uptime=info.uptime,
            num_subs=info.num_subs,
        )
        for info in await node.info()
    ]
    return t.InfoResult(nodes=nodes)


async def _rpc(node: Node, request: t.RPCRequest) -> t.Empty:
    _required(request.method, "method")
    # As Centrifugo OSS: no server-side RPC extensions are registered.
    raise ApiError(ErrorCode.METHOD_NOT_FOUND, "not found")
