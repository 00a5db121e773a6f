"""Proxy configuration, with Centrifugo v6's names (``centrifugo-server-side.md`` §3.1).

Where each proxy is configured::

    [client.proxy.connect]          # enabled, endpoint, timeout, ...
    [client.proxy.refresh]
    [channel.proxy.subscribe]       # the proxy named "default" of subscribe ...
    [channel.proxy.publish]         # ... of publish
    [channel.proxy.sub_refresh]     # ... of sub_refresh
    [rpc.proxy]                     # the proxy named "default" of rpc
    [[proxies]]                     # named proxies: name, endpoint, timeout, ...

A namespace turns proxies on with ``subscribe_proxy_enabled`` (and picks one with
``subscribe_proxy_name``), ``publish_proxy_enabled`` / ``publish_proxy_name``,
``sub_refresh_proxy_enabled`` / ``sub_refresh_proxy_name``; rpc namespaces (and
``rpc.without_namespace``) with ``proxy_enabled`` / ``proxy_name``.

Checked at start (:func:`check`): a referenced name must exist, an enabled proxy needs
an endpoint, and an endpoint must be ``http://`` or ``https://`` (gRPC proxies are not
supported; the message says so).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from wirehub.durations import Seconds
from wirehub.sections import HEADER_NAME, Section

if TYPE_CHECKING:
    from wirehub.config import Config

__all__ = [
    "DEFAULT_PROXY",
    "ChannelProxies",
    "ChannelProxySwitches",
    "ClientProxies",
    "NamedProxy",
    "ProxyHttp",
    "ProxyOptions",
    "RpcConfig",
    "RpcNamespace",
    "StatusToDisconnect",
    "StatusToError",
    "StatusTransform",
    "ToggledProxy",
    "check",
    "forwarded_headers",
]

DEFAULT_PROXY = "default"
"""The name of the proxy configured under ``channel.proxy.*`` / ``rpc.proxy``."""

_NAME = re.compile(r"[A-Za-z0-9_\-.]+")


class StatusToError(Section):
    code: int = Field(ge=0, le=2**32 - 1, description="error code sent to the client")
    message: str = Field("", description="error message")
    temporary: bool = Field(False, description="the SDK retries")


class StatusToDisconnect(Section):
    code: int = Field(ge=3000, le=4999, description="disconnect code")
    reason: str = Field(min_length=1, max_length=123, description="disconnect reason")


class StatusTransform(Section):
    """A non-200 status of the backend turned into an error or a disconnect."""

    status_code: int = Field(ge=100, le=599, description="the backend's HTTP status")
    to_error: StatusToError | None = Field(None, description="reply with this error")
    to_disconnect: StatusToDisconnect | None = Field(
        None, description="or close the connection with this"
    )

    @model_validator(mode="after")
    def _one_outcome(self) -> Self:
        if (self.to_error is None) == (self.to_disconnect is None):
            raise ValueError("a transform needs exactly one of to_error and to_disconnect")
        return self


class ProxyHttp(Section):
    static_headers: dict[str, str] = Field(
        default_factory=dict, description="headers added to every request to this proxy"
    )
    status_to_code_transforms: list[StatusTransform] = Field(
        default_factory=list, description="non-200 statuses turned into an error or disconnect"
    )

    @field_validator("static_headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"not a header name: {name!r}")
            if "\r" in header or "\n" in header:
                raise ValueError(f"header {name!r}: a value must not hold a line break")
        return value


class ProxyOptions(Section):
    """One proxy: where to POST events, and how."""

    endpoint: str = Field("", description="http:// or https:// URL the events are POSTed to")
    timeout: Seconds = Field(1.0, description="seconds one call may take; then error 100")
    http_headers: list[str] = Field(
        default_factory=list,
        description="headers of the client's connection request forwarded to the backend "
        "(none by default)",
    )
    emulated_headers: list[str] = Field(
        default_factory=list,
        description="headers of the connect command's 'headers' (headers emulation) forwarded "
        "to the backend",
    )
    binary_encoding: bool = Field(
        False, description="send payloads as b64data (base64) instead of data (JSON)"
    )
    include_connection_meta: bool = Field(
        False, description="send the connection's meta (from the connect proxy) with each event"
    )
    http: ProxyHttp = Field(default_factory=ProxyHttp, description="HTTP options")
    max_response_size: int = Field(
        1_048_576, gt=0, description="largest response body read, bytes; beyond, error 100"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_grpc(cls, data: Any) -> Any:
        # Centrifugo's gRPC options: say why they are refused, not just "extra input".
        if isinstance(data, dict):
            for key in ("grpc", "grpc_metadata"):
                if key in data:
                    raise ValueError(f"{key}: gRPC proxies are not supported by wirehub")
        return data

    @field_validator("endpoint")
    @classmethod
    def _http_endpoint(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{value!r}: gRPC proxies are not supported by wirehub; the endpoint must "
                "be an http:// or https:// URL"
            )
        return value

    @field_validator("http_headers", "emulated_headers")
    @classmethod
    def _header_list(cls, value: list[str]) -> list[str]:
        for name in value:
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"not a header name: {name!r}")
        return [name.lower() for name in value]


class ToggledProxy(ProxyOptions):
    """``client.proxy.connect`` and ``client.proxy.refresh``: off unless enabled."""

    enabled: bool = Field(False, description="call this proxy")

    @model_validator(mode="after")
    def _endpoint_when_enabled(self) -> Self:
        if self.enabled and not self.endpoint:
            raise ValueError("an enabled proxy needs an endpoint")
        return self


class NamedProxy(ProxyOptions):
    """An entry of the top-level ``proxies`` list, referenced by name."""

    name: str = Field(description="referenced by *_proxy_name options")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("a proxy name may hold only letters, digits, '_', '-', '.'")
        if value == DEFAULT_PROXY:
            raise ValueError(
                f"{DEFAULT_PROXY!r} names the proxy of channel.proxy.* and rpc.proxy: "
                "configure it there"
            )
        return value

    @model_validator(mode="after")
    def _has_endpoint(self) -> Self:
        if not self.endpoint:
            raise ValueError(f"proxy {self.name!r} needs an endpoint")
        return self


class ClientProxies(Section):
    connect: ToggledProxy = Field(
        default_factory=ToggledProxy,
        description="the backend authenticates connections sent without a token",
    )
    refresh: ToggledProxy = Field(
        default_factory=ToggledProxy,
        description="the backend extends expiring connections (server-side refresh)",
    )


class ChannelProxies(Section):
    subscribe: ProxyOptions = Field(
        default_factory=ProxyOptions, description="the 'default' subscribe proxy"
    )
    publish: ProxyOptions = Field(
        default_factory=ProxyOptions, description="the 'default' publish proxy"
    )
    sub_refresh: ProxyOptions = Field(
        default_factory=ProxyOptions, description="the 'default' sub_refresh proxy"
    )


class ChannelProxySwitches(BaseModel):
    """The proxy options of a channel namespace (mixed into ``NamespaceOptions``)."""

    subscribe_proxy_enabled: bool = Field(
        False, description="the subscribe proxy decides subscriptions without a token"
    )
    subscribe_proxy_name: str = Field(
        DEFAULT_PROXY, description="which proxy: 'default' (channel.proxy) or one of proxies"
    )
    publish_proxy_enabled: bool = Field(
        False, description="the publish proxy decides (and may rewrite) client publications"
    )
    publish_proxy_name: str = Field(DEFAULT_PROXY, description="which proxy")
    sub_refresh_proxy_enabled: bool = Field(
        False, description="the sub_refresh proxy extends expiring subscriptions"
    )
    sub_refresh_proxy_name: str = Field(DEFAULT_PROXY, description="which proxy")


class RpcNamespace(Section):
    name: str = Field("", description="methods 'name:...' belong to it")
    proxy_enabled: bool = Field(False, description="the rpc proxy answers these methods")
    proxy_name: str = Field(
        DEFAULT_PROXY, description="which proxy: 'default' (rpc.proxy) or one of proxies"
    )


class RpcConfig(Section):
    proxy: ProxyOptions = Field(default_factory=ProxyOptions, description="the 'default' rpc proxy")
    without_namespace: RpcNamespace = Field(
        default_factory=RpcNamespace, description="methods without a namespace"
    )
    namespaces: list[RpcNamespace] = Field(
        default_factory=list, description="one [[rpc.namespaces]] table per namespace"
    )
    namespace_boundary: str = Field(":", min_length=1, description="separates namespace and method")

    @field_validator("namespaces")
    @classmethod
    def _unique_names(cls, value: list[RpcNamespace]) -> list[RpcNamespace]:
        names = [ns.name for ns in value]
        if "" in names:
            raise ValueError("every rpc namespace needs a name")
        if len(set(names)) != len(names):
            raise ValueError("rpc namespace names must be unique")
        return value


def check(config: Config) -> None:
    """Check the references between proxies and namespaces.

    Raises:
        ValueError: a name that no proxy has, or an enabled proxy without an endpoint;
            the message names the option.
    """
    named = {proxy.name: proxy for proxy in config.proxies}
    if len(named) != len(config.proxies):
        raise ValueError("proxies: names must be unique")
    channel = config.channel
    defaults = {
        "subscribe": channel.proxy.subscribe,
        "publish": channel.proxy.publish,
        "sub_refresh": channel.proxy.sub_refresh,
    }
    for ns in (channel.without_namespace, *channel.namespaces):
        where = f"channel.namespaces[{ns.name!r}]" if ns.name else "channel.without_namespace"
        for kind, default in defaults.items():
            if getattr(ns, f"{kind}_proxy_enabled"):
                name = getattr(ns, f"{kind}_proxy_name")
                _resolve(
                    f"{where}.{kind}_proxy_name", name, named, default, f"channel.proxy.{kind}"
                )
    rpc = config.rpc
    for rpc_ns in (rpc.without_namespace, *rpc.namespaces):
        if rpc_ns.proxy_enabled:
            where = f"rpc.namespaces[{rpc_ns.name!r}]" if rpc_ns.name else "rpc.without_namespace"
            _resolve(f"{where}.proxy_name", rpc_ns.proxy_name, named, rpc.proxy, "rpc.proxy")


def _resolve(
    option: str, name: str, named: dict[str, NamedProxy], default: ProxyOptions, section: str
) -> None:
    if name in ("", DEFAULT_PROXY):
        if not default.endpoint:
            raise ValueError(f"{option}: the default proxy needs {section}.endpoint")
    elif name not in named:
        known = ", ".join(sorted(named)) or "none is configured"
        raise ValueError(f"{option}: no proxy named {name!r} in proxies ({known})")


def forwarded_headers(config: Config) -> frozenset[str]:
    """Every header name some proxy forwards (``http_headers``): the transports keep
    them besides ``client.transport_headers``."""
    proxies: list[ProxyOptions] = [
        config.client.proxy.connect,
        config.client.proxy.refresh,
        config.channel.proxy.subscribe,
        config.channel.proxy.publish,
        config.channel.proxy.sub_refresh,
        config.rpc.proxy,
        *config.proxies,
    ]
    return frozenset(name for proxy in proxies for name in proxy.http_headers)
