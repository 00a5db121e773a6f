"""What each proxy's answer does to a connection (``centrifugo-server-side.md`` §3.4-3.6).

The node asks :class:`Proxies` at the points where its in-process handlers run; the
wiring is a few lines in ``core/``, the decisions are here.

Rules:

1. Envelope: ``disconnect`` (the connection closes with it), else ``error`` (an error
   reply with the backend's code, message and ``temporary``; a unidirectional client
   gets the mapped disconnect), else ``result``.
2. A failed call (no answer within ``timeout``, connection refused, a status other than
   200, a body beyond ``max_response_size``, undecodable JSON or base64, payloads a JSON
   client can't parse) is error 100 "internal server error", temporary: the SDK retries
   with backoff (a unidirectional client gets 3004). A non-200 status listed in
   ``http.status_to_code_transforms`` becomes its error or disconnect instead. Each
   failure is one log line (repeats of the same proxy and cause within
   :data:`_LOG_EVERY` seconds are counted into the next line) and one
   ``centrifugo_proxy_errors`` count.
3. connect: called for a connect without a token (a token always goes through JWT
   verification). No ``result`` -> the node's usual path: anonymous when
   ``client.allow_anonymous_connect_without_token``, else 3501. ``expire_at`` in the
   past -> error 110. The client's ``subs`` are sent as ``channels`` but subscribed
   only when the backend lists them.
4. refresh: at the connection's ``expire_at`` (no client-side refresh: the connect
   reply says ``expires: false``). ``expired``, no ``result``, or an ``expire_at`` not in
   the future -> 3005; else the expiry moves (and ``info`` is replaced when given). A
   failed call gives the connection :data:`RETRY_DELAY` more seconds, then it is asked
   again; ``error`` and ``disconnect`` answers are ignored, as in Centrifugo.
5. subscribe: the proxy decides instead of the namespace's permission flags; the
   client's own positioning, recovery and join/leave flags are not honoured, the
   namespace's ``force_*`` options and the ``override`` of the answer are.
6. publish: the proxy decides instead of the permission flags; ``data`` (or
   ``b64data``) replaces the payload and is checked against the namespace's format
   again (107); ``skip_history``, ``tags``, ``idempotency_key`` and ``delta`` apply.
7. sub_refresh: as refresh, per subscription: expired -> unsubscribe 2501 (a
   server-side subscription: disconnect 3006); failures -> :data:`RETRY_DELAY`.
8. rpc: the method's rpc namespace (text before ``rpc.namespace_boundary``, else
   ``rpc.without_namespace``) picks the proxy. Once some rpc namespace enables a proxy,
   an unknown namespace is 104 and a namespace without a proxy 108, unless an
   ``on_rpc`` handler is registered (it answers those).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from msgspec import Raw

from wirehub.core.events import ConnectingReply, Credentials, ServerSubscription
from wirehub.core.payload import EMPTY, checked, payload, to_raw
from wirehub.errors import (
    DISCONNECT_EXPIRED,
    ERROR_INTERNAL,
    ERROR_METHOD_NOT_FOUND,
    ERROR_NOT_AVAILABLE,
    MAX_REASON_BYTES,
    ClientError,
    Disconnect,
    InvalidPayload,
)
from wirehub.protocol.codes import ErrorCode
from wirehub.protocol.types import ConnectRequest, RPCRequest, SubscribeRequest
from wirehub.proxy import wire
from wirehub.proxy.config import DEFAULT_PROXY, ProxyOptions, RpcNamespace, StatusTransform
from wirehub.proxy.http import Endpoint, ProxyFailure

if TYPE_CHECKING:
    from wirehub.config import NamespaceOptions
    from wirehub.core.client import Client
    from wirehub.core.node import Node
    from wirehub.core.subscriptions import ChannelContext

__all__ = ["RETRY_DELAY", "Proxies", "Proxy", "PublishDecision", "SubscribeGrant"]

logger = logging.getLogger("wirehub.proxy")

RETRY_DELAY: Final = 60
"""Seconds a connection or subscription gets when its refresh proxy call failed."""

_LOG_EVERY: Final = 10.0

ERROR_EXPIRED: Final = ClientError(ErrorCode.EXPIRED, "expired")

_R = TypeVar("_R", bound=wire._Envelope)


class _Failed(Exception):
    """A proxy call without a usable answer (already logged and counted)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """One configured proxy as an event uses it."""

    kind: str
    """Event type: connect, refresh, subscribe, publish, sub_refresh, rpc."""
    name: str
    options: ProxyOptions
    endpoint: Endpoint
    transforms: dict[int, StatusTransform] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubscribeGrant:
    """What a subscribe proxy granted."""

    info: Raw = field(default_factory=lambda: EMPTY)
    data: Raw = field(default_factory=lambda: EMPTY)
    expire_at: int | None = None
    override: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublishDecision:
    """How a publish proxy lets a publication through."""

    data: Raw
    skip_history: bool = False
    tags: dict[str, str] | None = None
    idempotency_key: str = ""
    delta: bool = False


class Proxies:
    """The proxies of one node; HTTP clients live from :meth:`start` to :meth:`close`."""

    def __init__(self, node: Node) -> None:
        self._node = node
        config = node.config
        self._endpoints: dict[str, Endpoint] = {}
        self._named = {proxy.name: proxy for proxy in config.proxies}
        client = config.client.proxy
        self._connect = self._make("connect", DEFAULT_PROXY, client.connect, client.connect.enabled)
        self._refresh = self._make("refresh", DEFAULT_PROXY, client.refresh, client.refresh.enabled)
        self._channel: dict[tuple[str, str], Proxy] = {}
        for ns in (config.channel.without_namespace, *config.channel.namespaces):
            for kind in ("subscribe", "publish", "sub_refresh"):
                if getattr(ns, f"{kind}_proxy_enabled"):
                    name = getattr(ns, f"{kind}_proxy_name") or DEFAULT_PROXY
                    default = getattr(config.channel.proxy, kind)
                    self._channel[(kind, ns.name)] = self._resolve(kind, name, default)
        rpc = config.rpc
        self._rpc_boundary = rpc.namespace_boundary
        self._rpc_namespaces = {ns.name: ns for ns in rpc.namespaces}
        self._rpc_without = rpc.without_namespace
        self._rpc: dict[str, Proxy] = {}
        for rpc_ns in (rpc.without_namespace, *rpc.namespaces):
            if rpc_ns.proxy_enabled:
                self._rpc[rpc_ns.name] = self._resolve(
                    "rpc", rpc_ns.proxy_name or DEFAULT_PROXY, rpc.proxy
                )
        self._user_boundary = config.channel.user_boundary
        self._emulated = frozenset(
            name
            for proxy in (
                self._connect,
                self._refresh,
                *self._channel.values(),
                *self._rpc.values(),
            )
            if proxy is not None
            for name in proxy.options.emulated_headers
        )
        self._log_state: dict[tuple[str, str, str], tuple[float, int]] = {}

    def _resolve(self, kind: str, name: str, default: ProxyOptions) -> Proxy:
        options = default if name == DEFAULT_PROXY else self._named[name]
        proxy = self._make(kind, name, options, True)
        assert proxy is not None
        return proxy

    def _make(self, kind: str, name: str, options: ProxyOptions, enabled: bool) -> Proxy | None:
        if not enabled:
            return None
        endpoint = self._endpoints.get(options.endpoint)
        if endpoint is None:
            endpoint = self._endpoints[options.endpoint] = Endpoint(options.endpoint)
        transforms = {t.status_code: t for t in options.http.status_to_code_transforms}
        return Proxy(kind, name, options, endpoint, transforms)

    # Lifecycle.

    async def start(self) -> None:
        for endpoint in self._endpoints.values():
            await endpoint.start()

    async def close(self) -> None:
        for endpoint in self._endpoints.values():
            await endpoint.close()

    # What is proxied.

    @property
    def connect_enabled(self) -> bool:
        return self._connect is not None

    def proxies_connect(self, request: ConnectRequest) -> bool:
        """Whether the connect proxy decides ``request`` (it has no token)."""
        return self._connect is not None and not request.token

    def emulated_headers(self, request: ConnectRequest) -> dict[str, str] | None:
        """The connect command's emulated headers that some proxy forwards, kept by the
        connection for its later calls (lower-case names); ``None`` when none is."""
        if not self._emulated or not request.headers:
            return None
        kept = {name.lower(): value for name, value in request.headers.items()}
        return {name: value for name, value in kept.items() if name in self._emulated} or None

    @property
    def refresh_enabled(self) -> bool:
        return self._refresh is not None

    def subscribes(self, channel: str, options: NamespaceOptions) -> bool:
        """Whether the subscribe proxy decides subscriptions to ``channel`` without a
        token (not user-limited channels: their names decide)."""
        if ("subscribe", options.name) not in self._channel:
            return False
        return not (options.allow_user_limited_channels and self._user_boundary in channel)

    def publishes(self, options: NamespaceOptions) -> bool:
        return ("publish", options.name) in self._channel

    def refreshes_subscriptions(self, options: NamespaceOptions) -> bool:
        return ("sub_refresh", options.name) in self._channel

    # Events.

    async def connect(self, client: Client, request: ConnectRequest) -> ConnectingReply | None:
        """The backend's credentials; ``None`` when its answer has no ``result``."""
        proxy = self._connect
        assert proxy is not None
        body = self._common(proxy, client)
        if request.name:
            body["name"] = request.name
        if request.version:
            body["version"] = request.version
        self._add_payload(proxy, client, body, request.data)
        if request.subs:
            body["channels"] = list(request.subs)
        response = await self._decided(proxy, client, body, wire.ConnectResponse)
        result = response.result
        if result is None:
            return None
        expire_at = result.expire_at or None
        if expire_at is not None and expire_at <= self._node.clock():
            raise ERROR_EXPIRED
        try:
            info = _json(wire.pick(result.info, result.b64info))
            data = self._for_client(client, wire.pick(result.data, result.b64data))
            meta = _json(wire.pick(result.meta, ""))
            subs = {
                channel: ServerSubscription(
                    info=_json(wire.pick(sub.info, sub.b64info)),
                    data=self._for_client(client, wire.pick(sub.data, sub.b64data)),
                    override={} if sub.override is None else sub.override.flags(),
                )
                for channel, sub in (result.subs or {}).items()
            }
        except ValueError as exc:
            raise self._undecodable(proxy, exc) from None
        channels = tuple(dict.fromkeys((*(result.channels or ()), *subs)))
        credentials = Credentials(
            user=result.user,
            info=info,
            expire_at=expire_at,
            channels=channels,
            subscriptions=subs,
            meta=meta,
        )
        return ConnectingReply(credentials=credentials, data=data)

    def refresh_later(self, client: Client) -> None:
        """The connection reached its expiry: ask the refresh proxy, in the background."""
        self._node._spawn(self._refresh_connection(client))

    async def _refresh_connection(self, client: Client) -> None:
        proxy = self._refresh
        assert proxy is not None
        body = self._common(proxy, client, user=True)
        self._add_meta(proxy, client, body)
        now = self._node.clock()
        try:
            response = await self._call(proxy, client, body, wire.RefreshResponse)
            result = response.result
            info = None if result is None else _json(wire.pick(result.info, result.b64info))
            meta = None if result is None else _json(wire.pick(result.meta, ""))
        except (_Failed, ValueError, ClientError, Disconnect):
            client.proxy_refreshed(math.ceil(now) + RETRY_DELAY, None)
            return
        if result is None or result.expired or result.expire_at <= self._node.clock():
            client.disconnect(DISCONNECT_EXPIRED)
            return
        if meta is not None:
            client.meta = meta
        client.proxy_refreshed(result.expire_at, info)

    async def subscribe(
        self, client: Client, request: SubscribeRequest, options: NamespaceOptions
    ) -> SubscribeGrant:
        proxy = self._channel[("subscribe", options.name)]
        body = self._common(proxy, client, user=True)
        body["channel"] = request.channel
        self._add_payload(proxy, client, body, request.data)
        self._add_meta(proxy, client, body)
        response = await self._decided(proxy, client, body, wire.SubscribeResponse)
        result = response.result or wire.SubscribeResult()
        expire_at = result.expire_at or None
        if expire_at is not None and expire_at <= self._node.clock():
            raise ERROR_EXPIRED
        try:
            info = _json(wire.pick(result.info, result.b64info))
            data = self._for_client(client, wire.pick(result.data, result.b64data))
        except ValueError as exc:
            raise self._undecodable(proxy, exc) from None
        return SubscribeGrant(
            info=info or EMPTY,
            data=data or EMPTY,
            expire_at=expire_at,
            override={} if result.override is None else result.override.flags(),
        )

    async def publish(
        self, client: Client, channel: str, data: Raw, options: NamespaceOptions
    ) -> PublishDecision:
        """Raises ``InvalidPayload`` (107) for replacement data the namespace refuses."""
        proxy = self._channel[("publish", options.name)]
        body = self._common(proxy, client, user=True)
        body["channel"] = channel
        self._add_payload(proxy, client, body, data)
        self._add_meta(proxy, client, body)
        response = await self._decided(proxy, client, body, wire.PublishResponse)
        result = response.result
        if result is None:
            return PublishDecision(data)
        try:
            replaced = wire.pick(result.data, result.b64data, raw_first=True)
        except ValueError as exc:
            raise self._undecodable(proxy, exc) from None
        if replaced is not None:
            data = payload(replaced, options.publication_data_format)
        return PublishDecision(
            data,
            skip_history=result.skip_history,
            tags=result.tags or None,
            idempotency_key=result.idempotency_key,
            delta=result.delta,
        )

    def refresh_subscription_later(
        self, client: Client, channel: str, context: ChannelContext
    ) -> None:
        """A subscription reached its expiry: ask the sub_refresh proxy."""
        self._node._spawn(self._refresh_subscription(client, channel, context))

    async def _refresh_subscription(
        self, client: Client, channel: str, context: ChannelContext
    ) -> None:
        options = self._node.rules.namespace(channel)
        proxy = self._channel[("sub_refresh", options.name)]
        body = self._common(proxy, client, user=True)
        body["channel"] = channel
        self._add_meta(proxy, client, body)
        now = self._node.clock()
        try:
            response = await self._call(proxy, client, body, wire.SubRefreshResponse)
            result = response.result
            info = None if result is None else _json(wire.pick(result.info, result.b64info))
        except (_Failed, ValueError, ClientError, Disconnect):
            if client.channels.get(channel) is context:
                context.expire_at = math.ceil(now) + RETRY_DELAY
                client.schedule_subscription_expiry(channel, context)
            return
        if client.channels.get(channel) is not context:
            return  # unsubscribed meanwhile
        if result is None or result.expired or result.expire_at <= self._node.clock():
            client.expire_subscription(channel, context)
            return
        if info is not None:
            context.info = info
        context.expire_at = result.expire_at
        client.schedule_subscription_expiry(channel, context)

    def rpc_proxy(self, method: str, *, handled: bool) -> Proxy | None:
        """The proxy answering ``method``; ``None`` when the ``on_rpc`` handler does
        (``handled``: one is registered).

        Raises:
            ClientError: 104 for an unknown rpc namespace, 108 for one without a proxy,
                when no handler is registered.
        """
        if not self._rpc:
            return None
        name, boundary, _ = method.partition(self._rpc_boundary)
        namespace: RpcNamespace | None = (
            self._rpc_namespaces.get(name) if boundary else self._rpc_without
        )
        if namespace is None:
            if handled:
                return None
            raise ERROR_METHOD_NOT_FOUND
        proxy = self._rpc.get(namespace.name)
        if proxy is None and not handled:
            raise ERROR_NOT_AVAILABLE
        return proxy

    async def rpc(self, client: Client, request: RPCRequest, proxy: Proxy) -> Raw:
        body = self._common(proxy, client, user=True)
        body["method"] = request.method
        self._add_payload(proxy, client, body, request.data)
        self._add_meta(proxy, client, body)
        response = await self._decided(proxy, client, body, wire.RPCResponse)
        result = response.result
        if result is None:
            return EMPTY
        try:
            return self._for_client(client, wire.pick(result.data, result.b64data)) or EMPTY
        except ValueError as exc:
            raise self._undecodable(proxy, exc) from None

    # Requests and answers.

    def _common(self, proxy: Proxy, client: Client, *, user: bool = False) -> dict[str, Any]:
        info = client.transport.info
        body: dict[str, Any] = {
            "client": client.id,
            "transport": info.name,
            "protocol": info.protocol,
            "encoding": "binary" if proxy.options.binary_encoding else "json",
        }
        if user:
            body["user"] = client.user
        return body

    @staticmethod
    def _add_payload(proxy: Proxy, client: Client, body: dict[str, Any], data: Raw) -> None:
        """The client's payload as ``data`` (verbatim JSON) or ``b64data``. A Protobuf
        client's payload that is not JSON can only go as ``b64data``: without
        ``binary_encoding`` it is refused (107) rather than sent as broken JSON."""
        raw = bytes(data)
        binary = proxy.options.binary_encoding
        if raw and not binary and client.codec.binary:
            checked(raw)  # InvalidPayload: 107
        wire.payload_fields(body, raw, binary=binary)

    @staticmethod
    def _add_meta(proxy: Proxy, client: Client, body: dict[str, Any]) -> None:
        if proxy.options.include_connection_meta and client.meta:
            body["meta"] = client.meta

    @staticmethod
    def _headers(proxy: Proxy, client: Client) -> dict[str, str]:
        """Static headers, then emulated ones, then the transport's, then the content
        type: later ones win (§3.5)."""
        headers = {name.lower(): value for name, value in proxy.options.http.static_headers.items()}
        emulated = client.emulated_headers
        if emulated is not None:
            for name in proxy.options.emulated_headers:
                value = emulated.get(name)
                if value is not None:
                    headers[name] = value
        kept = client.transport.info.headers
        for name in proxy.options.http_headers:
            value = kept.get(name)
            if value is not None:
                headers[name] = value
        headers["content-type"] = "application/json"
        return headers

    async def _decided(
        self, proxy: Proxy, client: Client, body: dict[str, Any], response_type: type[_R]
    ) -> _R:
        """The answer of a deciding proxy (connect, subscribe, publish, rpc): its
        ``disconnect`` or ``error`` raised, a failure raised as error 100."""
        try:
            response = await self._call(proxy, client, body, response_type)
        except _Failed:
            raise ClientError(ERROR_INTERNAL.code, ERROR_INTERNAL.message, temporary=True) from None
        if response.disconnect is not None:
            raise _disconnect(proxy, response.disconnect, self)
        if response.error is not None:
            error = response.error
            if not 0 < error.code < 2**32:
                raise self._undecodable(proxy, ValueError(f"error code {error.code}"))
            raise ClientError(error.code, error.message, temporary=error.temporary)
        return response

    async def _call(
        self, proxy: Proxy, client: Client, body: dict[str, Any], response_type: type[_R]
    ) -> _R:
        """One call: the decoded answer.

        Raises:
            _Failed: no usable answer (logged and counted).
            ClientError, Disconnect: a status ``status_to_code_transforms`` maps.
        """
        metrics = self._node.metrics
        labels = ("http", proxy.kind, proxy.name)
        if metrics is not None:
            metrics.proxy_inflight.labels(*labels).inc()
        started = time.perf_counter()
        options = proxy.options
        try:
            answer = await proxy.endpoint.post(
                wire.encode(body),
                self._headers(proxy, client),
                seconds=options.timeout,
                limit=options.max_response_size,
            )
            return wire.decode(answer, response_type)
        except ProxyFailure as exc:
            self._failed(proxy, client, exc.kind, exc.reason)
            transform = proxy.transforms.get(exc.status)
            if transform is not None:
                raise _transformed(transform) from None
            raise _Failed from None
        except ValueError as exc:
            self._failed(proxy, client, "undecodable", f"undecodable answer: {exc}")
            raise _Failed from None
        finally:
            if metrics is not None:
                metrics.proxy_inflight.labels(*labels).dec()
                metrics.proxy_duration.labels(*labels).observe(time.perf_counter() - started)

    def _undecodable(self, proxy: Proxy, exc: Exception) -> ClientError:
        self._failed(proxy, None, "unusable", f"unusable answer: {exc}")
        return ClientError(ERROR_INTERNAL.code, ERROR_INTERNAL.message, temporary=True)

    def _failed(self, proxy: Proxy, client: Client | None, kind: str, reason: str) -> None:
        metrics = self._node.metrics
        if metrics is not None:
            metrics.proxy_errors.labels("http", proxy.kind, proxy.name).inc()
        key = (proxy.kind, proxy.name, kind)
        now = time.monotonic()
        last, suppressed = self._log_state.get(key, (0.0, 0))
        if last and now - last < _LOG_EVERY:
            self._log_state[key] = (last, suppressed + 1)
            return
        self._log_state[key] = (now, 0)
        more = f" ({suppressed} more like it since the last line)" if suppressed else ""
        logger.warning(
            "%s proxy %r (%s) failed%s: %s%s",
            proxy.kind,
            proxy.name,
            proxy.options.endpoint,
            "" if client is None else f" for client {client.id}",
            reason,
            more,
        )

    @staticmethod
    def _for_client(client: Client, data: bytes | None) -> Raw | None:
        """A payload for ``client`` itself: any bytes for a Protobuf client, JSON it can
        parse for a JSON one (``ValueError`` otherwise)."""
        if data is None:
            return None
        if client.codec.binary:
            return Raw(data) if data else EMPTY
        return to_raw(data)


def _json(data: bytes | None) -> Raw | None:
    """Info or meta: JSON every client can parse (``ValueError`` otherwise)."""
    if data is None:
        return None
    try:
        return to_raw(data)
    except InvalidPayload as exc:
        raise ValueError(exc.reason) from None


def _transformed(transform: StatusTransform) -> ClientError | Disconnect:
    if transform.to_disconnect is not None:
        return Disconnect(transform.to_disconnect.code, transform.to_disconnect.reason)
    assert transform.to_error is not None
    error = transform.to_error
    return ClientError(error.code, error.message, temporary=error.temporary)


def _disconnect(proxy: Proxy, answer: wire.DisconnectObject, proxies: Proxies) -> Exception:
    if not 3000 <= answer.code <= 4999:
        return proxies._undecodable(proxy, ValueError(f"disconnect code {answer.code}"))
    reason = answer.reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore") or "disconnect"
    return Disconnect(answer.code, reason)
