"""Configuration: a TOML file, ``WIREHUB_*`` environment variables and CLI flags.

Later sources win: file < environment < flags. Nested options take ``__`` in
environment variables (``WIREHUB_CLIENT__TOKEN__HMAC_SECRET_KEY``). Option names follow
Centrifugo v6 (``client.allowed_origins``, ``channel.namespaces``, namespace options
such as ``allow_subscribe_for_client``), so its users find them where they expect.

Every model forbids unknown keys: a typo is an error that names the option, never a
silently ignored setting.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from wirehub.durations import Duration, Seconds, WholeSeconds
from wirehub.envconfig import EnvError, EnvValues, read_environment
from wirehub.proxy import config as proxy_config
from wirehub.proxy.config import (
    ChannelProxies,
    ChannelProxySwitches,
    ClientProxies,
    NamedProxy,
    RpcConfig,
)
from wirehub.sections import HEADER_NAME, Section
from wirehub.transports.config import (
    EmulationConfig,
    HttpStreamConfig,
    SseConfig,
    UniHttpStreamConfig,
    UniSseConfig,
    UniWebSocketConfig,
    WebSocketConfig,
)

__all__ = [
    "ChannelConfig",
    "ClientCommandRateLimit",
    "ClientConfig",
    "CommandRateLimit",
    "Config",
    "ConfigError",
    "DemoConfig",
    "EmulationConfig",
    "EngineConfig",
    "HttpApiConfig",
    "HttpStreamConfig",
    "LogConfig",
    "MethodRateLimit",
    "NamespaceOptions",
    "NodeConfig",
    "PrometheusConfig",
    "RateLimitBucket",
    "RateLimitConfig",
    "RedisEngineConfig",
    "RedisTLSConfig",
    "RpcRateLimit",
    "ServerConfig",
    "SseConfig",
    "TLSConfig",
    "TokenConfig",
    "UniHttpStreamConfig",
    "UniSseConfig",
    "UniWebSocketConfig",
    "WebSocketConfig",
    "load_config",
]

logger = logging.getLogger("wirehub.config")


DEFAULT_TRANSPORT_HEADERS = (
    "authorization",
    "cookie",
    "origin",
    "user-agent",
    "x-forwarded-for",
    "x-real-ip",
)
"""What ``TransportInfo.headers`` keeps by default: what authentication handlers read."""


class ConfigError(Exception):
    """The configuration is invalid; the message names the option."""


class NamespaceOptions(Section, ChannelProxySwitches):
    """Per-namespace channel options (the names Centrifugo uses); the proxy switches
    come from :class:`~wirehub.proxy.config.ChannelProxySwitches`."""

    name: str = Field("", description="namespace name: channels 'name:...' belong to it")
    allow_subscribe_for_client: bool = Field(False, description="authenticated users may subscribe")
    allow_subscribe_for_anonymous: bool = Field(
        False, description="anonymous users may subscribe too (with the previous)"
    )
    allow_publish_for_subscriber: bool = Field(False, description="subscribers may publish")
    allow_publish_for_client: bool = Field(
        False, description="authenticated users may publish without subscribing"
    )
    allow_publish_for_anonymous: bool = Field(
        False, description="extends the two publish options to anonymous users"
    )
    allow_user_limited_channels: bool = Field(
        False, description="'ns:room#42,56' may be subscribed only by users 42 and 56"
    )
    channel_regex: str = Field(
        "", description="the channel name after the namespace must match this regex"
    )
    presence: bool = Field(False, description="keep presence: who is subscribed")
    join_leave: bool = Field(False, description="send join/leave pushes to subscribers who ask")
    force_push_join_leave: bool = Field(
        False, description="send join/leave pushes to every subscriber"
    )
    allow_presence_for_subscriber: bool = Field(False, description="subscribers may ask presence")
    allow_presence_for_client: bool = Field(
        False, description="authenticated users may ask presence"
    )
    allow_presence_for_anonymous: bool = Field(
        False, description="extends the two presence options to anonymous users"
    )
    history_size: int = Field(0, ge=0, description="publications kept per channel; 0 keeps none")
    history_ttl: Duration = Field(0.0, ge=0, description="seconds each kept publication lives")
    history_meta_ttl: Duration = Field(
        0.0, ge=0, description="this namespace's channel.history_meta_ttl; 0: that one"
    )
    force_positioning: bool = Field(False, description="detect gaps for every subscriber")
    allow_positioning: bool = Field(False, description="clients may ask for positioning")
    force_recovery: bool = Field(False, description="recovery on for every subscriber")
    allow_recovery: bool = Field(False, description="clients may ask for recovery")
    allow_history_for_subscriber: bool = Field(False, description="subscribers may read history")
    allow_history_for_client: bool = Field(
        False, description="authenticated users may read history"
    )
    allow_history_for_anonymous: bool = Field(
        False, description="extends the two history options to anonymous users"
    )
    publication_data_format: Literal["", "json", "json_object", "binary"] = Field(
        "",
        description=(
            "what publications may hold: '' or 'json' (JSON every JSON client can parse), "
            "'json_object', or 'binary' (any bytes; JSON-protocol clients can't subscribe)"
        ),
    )

    allowed_delta_types: list[Literal["fossil"]] = Field(
        default_factory=list,
        description="delta types subscribers may ask for: ['fossil'] lets subscribers of channels "
        "with history receive publications as fossil deltas against the previous one",
    )
    delta_publish: bool = Field(
        False,
        description="every publish allows deltas (else only those that ask, e.g. the "
        "API's 'delta': true)",
    )
    allow_tags_filter: bool = Field(
        False, description="subscribers may pass a tags filter: only matching publications"
    )

    @property
    def history_enabled(self) -> bool:
        return self.history_size > 0 and self.history_ttl > 0

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9_\-.]+", value):
            raise ValueError("a namespace name may hold only letters, digits, '_', '-', '.'")
        return value

    @field_validator("channel_regex")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        return value


class ChannelConfig(Section):
    max_length: int = Field(255, gt=0, description="longest channel name, in bytes")
    namespace_boundary: str = Field(":", min_length=1, description="separates namespace and name")
    user_boundary: str = Field("#", min_length=1, description="starts the user list of a channel")
    user_separator: str = Field(",", min_length=1, description="separates users in that list")
    without_namespace: NamespaceOptions = Field(
        default_factory=NamespaceOptions, description="options of channels with no namespace"
    )
    namespaces: list[NamespaceOptions] = Field(
        default_factory=list, description="one [[channel.namespaces]] table per namespace"
    )
    proxy: ChannelProxies = Field(
        default_factory=ChannelProxies, description="subscribe, publish, sub_refresh proxies"
    )
    history_meta_ttl: Duration = Field(
        2_592_000.0,
        ge=0,
        description="seconds a stream's epoch and offset outlive its last publish or read "
        "(then the next publish starts a new epoch); 0: forever",
    )

    @field_validator("namespaces")
    @classmethod
    def _unique_names(cls, value: list[NamespaceOptions]) -> list[NamespaceOptions]:
        names = [ns.name for ns in value]
        if "" in names:
            raise ValueError("every namespace needs a name")
        if len(set(names)) != len(names):
            raise ValueError("namespace names must be unique")
        return value

    @model_validator(mode="after")
    def _history_within_meta_ttl(self) -> Self:
        # Centrifugo's rule: publications must not outlive the position they hang on.
        for ns in (self.without_namespace, *self.namespaces):
            meta_ttl = ns.history_meta_ttl or self.history_meta_ttl
            if meta_ttl and ns.history_ttl > meta_ttl:
                where = f"namespace {ns.name!r}" if ns.name else "without_namespace"
                raise ValueError(
                    f"{where}: history_ttl ({ns.history_ttl:g} s) exceeds "
                    f"history_meta_ttl ({meta_ttl:g} s)"
                )
        return self


class TokenConfig(Section):
    """Keys for connection JWTs. An algorithm works only if its key is configured."""

    hmac_secret_key: str = Field("", description="secret for HS256/HS384/HS512")
    rsa_public_key: str = Field("", description="PEM public key for RS256/RS384/RS512")
    ecdsa_public_key: str = Field("", description="PEM public key for ES256/ES384/ES512")
    audience: str = Field("", description="when set, the token's aud must contain it")
    issuer: str = Field("", description="when set, the token's iss must equal it")
    leeway: Duration = Field(0.0, ge=0, description="clock skew allowed on exp/nbf, seconds")


class RateLimitBucket(Section):
    """A token bucket: ``rate`` commands per ``interval``, all of them at once at most."""

    interval: Seconds = Field(1.0, description="seconds in which 'rate' commands may come")
    rate: int = Field(1, gt=0, description="commands allowed per interval")


class CommandRateLimit(Section):
    """Buckets for one command (or for ``total``/``default``); all must have a token."""

    enabled: bool = Field(False, description="check these buckets")
    buckets: list[RateLimitBucket] = Field(
        default_factory=list, description="token buckets, e.g. [{interval = 1.0, rate = 100}]"
    )


class MethodRateLimit(CommandRateLimit):
    method: str = Field(description="the RPC method these buckets are for")


class RpcRateLimit(CommandRateLimit):
    method_overrides: list[MethodRateLimit] = Field(
        default_factory=list, description="buckets of particular RPC methods, instead of these"
    )


def _enabled(interval: float, rate: int) -> CommandRateLimit:
    return CommandRateLimit(enabled=True, buckets=[RateLimitBucket(interval=interval, rate=rate)])


class ClientCommandRateLimit(Section):
    """Per-connection command rate limits (the names of Centrifugo PRO's
    ``client.rate_limit.client_command``). Over a limit: error 111 (temporary); more
    refusals than ``refused`` allows: disconnect 3013."""

    enabled: bool = Field(True, description="limit the commands of each connection")
    total: CommandRateLimit = Field(
        default_factory=lambda: _enabled(1.0, 1000),
        description="every command takes a token from these buckets",
    )
    default: CommandRateLimit = Field(
        default_factory=CommandRateLimit,
        description="buckets of every command without its own enabled buckets",
    )
    subscribe: CommandRateLimit = Field(
        default_factory=CommandRateLimit, description="buckets of subscribe commands"
    )
    unsubscribe: CommandRateLimit = Field(
        default_factory=CommandRateLimit, description="buckets of unsubscribe commands"
    )
    publish: CommandRateLimit = Field(
        default_factory=CommandRateLimit, description="buckets of publish commands"
    )
    history: CommandRateLimit = Field(
        default_factory=CommandRateLimit, description="buckets of history commands"
    )
    presence: CommandRateLimit = Field(
        default_factory=CommandRateLimit, description="buckets of presence commands"
    )
    presence_stats: CommandRateLimit = Field(
        default_factory=CommandRateLimit, description="buckets of presence_stats commands"
    )
    refresh: CommandRateLimit = Field(
        default_factory=CommandRateLimit, description="buckets of refresh commands"
    )
    sub_refresh: CommandRateLimit = Field(
        default_factory=CommandRateLimit, description="buckets of sub_refresh commands"
    )
    rpc: RpcRateLimit = Field(default_factory=RpcRateLimit, description="buckets of rpc commands")
    send: CommandRateLimit = Field(
        default_factory=CommandRateLimit, description="buckets of send commands"
    )
    refused: RateLimitBucket = Field(
        default_factory=lambda: RateLimitBucket(interval=10.0, rate=100),
        description="refused (111) commands tolerated per interval; beyond, close 3013",
    )


class RateLimitConfig(Section):
    client_command: ClientCommandRateLimit = Field(
        default_factory=ClientCommandRateLimit, description="per-connection command limits"
    )


class DisconnectTo(Section):
    code: int = Field(ge=3000, le=4999, description="the disconnect code (3000-4999)")
    reason: str = Field("", description="its reason (at most 123 bytes of UTF-8)")

    @field_validator("reason")
    @classmethod
    def _fits_a_close_frame(cls, value: str) -> str:
        if len(value.encode()) > 123:
            raise ValueError("a disconnect reason must fit in 123 bytes")
        return value


class ConnectCodeTransform(Section):
    code: int = Field(ge=0, description="the connect's error code")
    to: DisconnectTo


class ConnectCodeToUnidirectionalDisconnect(Section):
    """Centrifugo's ``client.connect_code_to_unidirectional_disconnect``: how a failed
    connect of a unidirectional client (which cannot read an error reply) ends."""

    enabled: bool = Field(False, description="use these transforms before the default mapping")
    transforms: list[ConnectCodeTransform] = Field(
        default_factory=list, description="e.g. [{code = 4001, to = {code = 4501, reason = 'x'}}]"
    )


class ClientConfig(Section):
    allow_anonymous_connect_without_token: bool = Field(
        False, description="connect with no token as the anonymous user ''"
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description=(
            "browser origins allowed besides the address a connection arrived on;"
            " '*' matches a run of host/port characters"
        ),
    )
    allow_no_origin: bool = Field(
        True,
        description="allow upgrades without an Origin header (non-browser SDKs send none)",
    )
    connection_limit: int = Field(
        0,
        ge=0,
        description="connections per node (connected and connecting); beyond, HTTP 503; 0: off",
    )
    connection_rate_limit: int = Field(
        0,
        ge=0,
        description="new connections per second per node, burst as large; beyond, HTTP 503; 0: off",
    )
    transport_headers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TRANSPORT_HEADERS),
        description="request headers kept for handlers (TransportInfo.headers); the rest are dropped",
    )
    ping_interval: WholeSeconds = Field(
        25, ge=1, description="server ping every so many whole seconds"
    )
    pong_timeout: Seconds = Field(8.0, description="pong due within; else close 3012")
    stale_close_delay: Seconds = Field(10.0, description="connect due within; else close 3502")
    expired_close_delay: Seconds = Field(25.0, description="grace after token expiry; then 3005")
    channel_limit: int = Field(128, gt=0, description="channels per connection; beyond, error 106")
    queue_max_size: int = Field(
        1_048_576, gt=0, description="bytes queued for one slow client; beyond, close 3008"
    )
    history_max_publication_limit: int = Field(
        300, gt=0, description="most publications one history call returns"
    )
    recovery_max_publication_limit: int = Field(
        300, gt=0, description="most publications one recovery replays; beyond, not recovered"
    )
    channel_position_check_delay: Duration = Field(
        40.0,
        ge=0,
        description="seconds between checks of positioned subscriptions against the "
        "stream top (a lost tail: 2500/3010); 0: never",
    )
    token: TokenConfig = Field(
        default_factory=TokenConfig, description="connection and subscription JWT keys"
    )
    presence_update_interval: Seconds = Field(
        27.0, description="how often a node refreshes its clients' presence entries"
    )
    user_connection_limit: int = Field(
        0, ge=0, description="connections per user on this node (0: no limit); beyond, close 3504"
    )
    rate_limit: RateLimitConfig = Field(
        default_factory=RateLimitConfig, description="command rate limits"
    )
    proxy: ClientProxies = Field(
        default_factory=ClientProxies, description="connect and refresh proxies"
    )
    connect_code_to_unidirectional_disconnect: ConnectCodeToUnidirectionalDisconnect = Field(
        default_factory=ConnectCodeToUnidirectionalDisconnect,
        description="a unidirectional client's failed connect: error code -> disconnect",
    )

    @field_validator("transport_headers")
    @classmethod
    def _header_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"not a header name: {name!r}")
        return [name.lower() for name in value]

    @model_validator(mode="after")
    def _pong_before_next_ping(self) -> Self:
        if self.pong_timeout >= self.ping_interval:
            raise ValueError("pong_timeout must be smaller than ping_interval")
        return self


class TLSConfig(Section):
    """TLS for a listener: Centrifugo v6's TLS object (the PEM file fields)."""

    enabled: bool = Field(False, description="serve https:// and wss:// on this port")
    cert_pem_file: str = Field("", description="PEM certificate (chain) file")
    key_pem_file: str = Field("", description="PEM private key file (not encrypted)")

    @model_validator(mode="after")
    def _files_when_enabled(self) -> Self:
        if self.enabled and not (self.cert_pem_file and self.key_pem_file):
            raise ValueError("enabled TLS needs cert_pem_file and key_pem_file")
        return self


class ServerConfig(Section):
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on (0: any free one)")
    internal_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description=(
            "a second port for the API, /metrics, /health and /ready (then not on 'port',"
            " which keeps only client connections); unset: everything on 'port'"
        ),
    )
    internal_host: str = Field(
        "127.0.0.1", description="address of the internal port (keep it off the internet)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error"
    )
    tls: TLSConfig = Field(default_factory=TLSConfig, description="TLS on the port")
    internal_tls: TLSConfig = Field(
        default_factory=TLSConfig, description="TLS on the internal port (same fields)"
    )
    request_line_size_limit: int = Field(
        8192, ge=256, description="longest request line (method, URL, version), bytes; beyond, 414"
    )
    header_line_size_limit: int = Field(
        8192, ge=256, description="longest request header line, bytes; beyond, 431"
    )
    header_count_limit: int = Field(128, ge=8, description="most request headers; beyond, 431")
    request_head_size_limit: int = Field(
        32_768, ge=1024, description="largest request head (line and headers), bytes; beyond, 431"
    )
    request_head_timeout: Seconds = Field(
        10.0, description="the request head (and TLS handshake) is due within; else closed"
    )
    keep_alive_timeout: WholeSeconds = Field(
        5, ge=1, description="an idle keep-alive HTTP connection is closed after, whole seconds"
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        description="proxies (IPs or networks, '*': any) trusted for X-Forwarded-For/-Proto",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"not an IP address or network: {entry!r}") from None
        return value

    @model_validator(mode="after")
    def _head_holds_its_lines(self) -> Self:
        if self.request_head_size_limit < self.request_line_size_limit:
            raise ValueError("request_head_size_limit must be at least request_line_size_limit")
        return self


class HttpApiConfig(Section):
    """The Centrifugo-compatible server API (``POST /api/<method>``)."""

    key: str = Field(
        "", description="API key, sent as 'X-API-Key: <key>' or 'Authorization: apikey <key>'"
    )
    insecure: bool = Field(
        False, description="serve the API without checking any key (only behind a firewall)"
    )
    error_mode: Literal["", "transport"] = Field(
        "", description="'transport': errors as HTTP statuses instead of 200 + {error}"
    )
    handler_prefix: str = Field("/api", description="path prefix of the API's methods")
    max_body_size: int = Field(
        1_048_576, gt=0, description="largest request body, bytes; beyond, 413"
    )

    @field_validator("handler_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or len(value) < 2:
            raise ValueError("a path such as '/api': starts with '/', no trailing '/'")
        return value


class PrometheusConfig(Section):
    enabled: bool = Field(False, description="serve Prometheus metrics at /metrics")


class LogConfig(Section):
    format: Literal["text", "json"] = Field(
        "text", description="'json': one JSON object per line, for log shippers"
    )


class NodeConfig(Section):
    name: str = Field(
        "", description="this node's name in the API's info (default: <hostname>_<port>)"
    )


class DemoConfig(Section):
    enabled: bool = Field(False, description="serve the live chat demo at /")
    assets_dir: str = Field(
        "",
        description=(
            "folder holding centrifuge.js for the demo page; empty: the checkout's "
            "demo/node_modules/centrifuge/dist (make serve installs it), wherever wirehub runs"
        ),
    )


class RedisTLSConfig(Section):
    """TLS towards Redis (Centrifugo's TLS option names, the ones that apply)."""

    enabled: bool = Field(False, description="connect over TLS (rediss:// URLs turn it on too)")
    cert_pem_file: str = Field("", description="client certificate, PEM file (mutual TLS)")
    key_pem_file: str = Field("", description="client private key, PEM file (mutual TLS)")
    server_ca_pem_file: str = Field("", description="CA bundle to verify the server, PEM file")
    server_ca_pem: str = Field("", description="CA bundle to verify the server, PEM text")
    insecure_skip_verify: bool = Field(
        False, description="do not verify the server's certificate or name (testing only)"
    )


_REDIS_ADDRESS = "redis://127.0.0.1:6379"


class RedisEngineConfig(Section):
    """The Redis engine: broker, presence and node-to-node control over Redis or Valkey."""

    address: str | list[str] = Field(
        _REDIS_ADDRESS,
        description="Redis URL, or a list of URLs: channels are sharded over them "
        "(redis://, rediss://, redis+sentinel://, redis+cluster://, unix://, host:port)",
    )
    cluster_address: list[str] = Field(
        default_factory=list,
        description="Redis Cluster seeds, used instead of address; each element one "
        "cluster (comma-separated seeds), several elements shard channels over clusters",
    )
    sentinel_address: list[str] = Field(
        default_factory=list,
        description="Sentinel addresses, used instead of address; each element one "
        "sentinel-managed Redis (comma-separated sentinels)",
    )
    sentinel_master_name: str = Field("", description="master name for Sentinel (required)")
    sentinel_user: str = Field("", description="user for the Sentinel connections")
    sentinel_password: str = Field("", description="password for the Sentinel connections")
    sentinel_tls: RedisTLSConfig = Field(
        default_factory=RedisTLSConfig, description="TLS towards the Sentinels"
    )
    prefix: str = Field(
        "wirehub",
        min_length=1,
        description="prefix of every key and PUB/SUB channel; setups sharing a Redis "
        "must differ in it (PUB/SUB ignores db); no braces (Cluster hash tags)",
    )
    db: int = Field(0, ge=0, description="database number (not for Redis Cluster)")
    user: str = Field("", description="Redis ACL user")
    password: str = Field("", description="Redis password")
    client_name: str = Field("", description="CLIENT SETNAME of wirehub's connections")
    tls: RedisTLSConfig = Field(default_factory=RedisTLSConfig, description="TLS towards Redis")
    connect_timeout: Seconds = Field(1.0, description="seconds to establish a connection")
    io_timeout: Seconds = Field(
        4.0, description="seconds one command may take before it fails (error 100)"
    )
    presence_ttl: Seconds = Field(
        60.0, description="a presence entry not refreshed within this many seconds vanishes"
    )
    sharded_pub_sub_partitions: int = Field(
        0,
        ge=0,
        le=16384,
        description="Redis Cluster only: sharded PUB/SUB (SSUBSCRIBE, Redis 7) over this "
        "many partitions, one PUB/SUB connection each; 0: off. Changing it renames keys",
    )

    @field_validator("prefix")
    @classmethod
    def _no_braces(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError(
                "a prefix must not contain { or }: in a Redis Cluster they would make the "
                "hash tag, and a channel's keys would no longer share a slot"
            )
        return value

    @model_validator(mode="after")
    def _one_kind_of_address(self) -> Self:
        if self.cluster_address and self.sentinel_address:
            raise ValueError("set cluster_address or sentinel_address, not both")
        if (self.cluster_address or self.sentinel_address) and self.address != _REDIS_ADDRESS:
            raise ValueError("address is not used with cluster_address or sentinel_address")
        if self.sentinel_address and not self.sentinel_master_name:
            raise ValueError("sentinel_address needs sentinel_master_name")
        if isinstance(self.address, list) and not self.address:
            raise ValueError("address must name at least one Redis")
        from wirehub.brokers.redis.addresses import check_partitions, parse_shards

        # A ValueError names the address it can't understand, or that is no Cluster.
        check_partitions(parse_shards(self), self.sharded_pub_sub_partitions)
        return self


class EngineConfig(Section):
    type: Literal["memory", "redis"] = Field(
        "memory",
        description="memory: one process; redis: many nodes and workers sharing Redis",
    )
    redis: RedisEngineConfig = Field(
        default_factory=RedisEngineConfig, description="the Redis engine (type = redis)"
    )


class Config(BaseSettings):
    """The whole configuration. Build it with :func:`load_config`."""

    model_config = SettingsConfigDict(
        env_prefix="WIREHUB_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP listener")
    client: ClientConfig = Field(default_factory=ClientConfig, description="connections")
    channel: ChannelConfig = Field(default_factory=ChannelConfig, description="channels")
    websocket: WebSocketConfig = Field(
        default_factory=WebSocketConfig, description="WebSocket transport"
    )
    http_stream: HttpStreamConfig = Field(
        default_factory=HttpStreamConfig, description="HTTP-streaming transport (emulation)"
    )
    sse: SseConfig = Field(default_factory=SseConfig, description="SSE transport (emulation)")
    emulation: EmulationConfig = Field(
        default_factory=EmulationConfig, description="the emulation endpoint"
    )
    uni_websocket: UniWebSocketConfig = Field(
        default_factory=UniWebSocketConfig, description="unidirectional WebSocket"
    )
    uni_sse: UniSseConfig = Field(default_factory=UniSseConfig, description="unidirectional SSE")
    uni_http_stream: UniHttpStreamConfig = Field(
        default_factory=UniHttpStreamConfig, description="unidirectional HTTP streaming"
    )
    demo: DemoConfig = Field(default_factory=DemoConfig, description="demo page")
    http_api: HttpApiConfig = Field(default_factory=HttpApiConfig, description="server API")
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig, description="metrics")
    log: LogConfig = Field(default_factory=LogConfig, description="logs")
    node: NodeConfig = Field(default_factory=NodeConfig, description="this node")
    engine: EngineConfig = Field(
        default_factory=EngineConfig,
        description="where publications, history and presence live",
    )
    rpc: RpcConfig = Field(default_factory=RpcConfig, description="rpc namespaces and proxy")
    proxies: list[NamedProxy] = Field(
        default_factory=list, description="named event proxies ([[proxies]] tables)"
    )

    @model_validator(mode="after")
    def _proxies_resolve(self) -> Self:
        proxy_config.check(self)
        return self

    @property
    def kept_headers(self) -> frozenset[str]:
        """Request headers the transports keep: ``client.transport_headers`` and those
        a proxy forwards."""
        return frozenset(self.client.transport_headers) | proxy_config.forwarded_headers(self)

    @model_validator(mode="after")
    def _presence_refreshed_in_time(self) -> Self:
        if (
            self.engine.type == "redis"
            and self.client.presence_update_interval >= self.engine.redis.presence_ttl
        ):
            raise ValueError(
                "client.presence_update_interval must be smaller than engine.redis.presence_ttl"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the values passed in: load_config() reads the environment itself
        # (wirehub.envconfig), so that environ=False, Node's defaults and genconfig
        # never read it.
        return (init_settings,)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_error(exc: ValidationError, env: EnvValues | None = None) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "configuration"
    source = env.source_of(tuple(first["loc"])) if env is not None else None
    if source is not None:
        where = f"{where} (from {source})"
    return f"{where}: {first['msg']}"


def _log_warning(message: str) -> None:
    logger.warning("%s", message)


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    environ: bool = True,
    warn: Callable[[str], None] = _log_warning,
) -> Config:
    """Read the TOML file, then ``WIREHUB_*`` variables, then ``overrides`` (CLI flags).

    ``overrides`` is nested like the file: ``{"server": {"port": 9000}}``. Variables
    naming no option section are ignored and reported through ``warn`` (by default a
    warning on the ``wirehub.config`` logger); see :mod:`wirehub.envconfig`.

    Raises:
        ConfigError: the file can't be read, or an option is invalid; the message
            names the option (and the variable, when the environment set it).
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    env: EnvValues | None = None
    if environ:
        try:
            env = read_environment(Config, os.environ, warn)
        except EnvError as exc:
            raise ConfigError(str(exc)) from None
    merged = _merge(_merge(data, env.data if env else {}), overrides or {})
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, env)) from None
