"""Configuration: a TOML file, ``WIREHUB_*`` environment variables and CLI flags.

Later sources win: file < environment < flags. Nested options take ``__`` in
environment variables (``WIREHUB_CLIENT__TOKEN__HMAC_SECRET_KEY``). Option names follow
Centrifugo v6 (``client.allowed_origins``, ``channel.namespaces``, namespace options
such as ``allow_subscribe_for_client``), so its users find them where they expect.

Every model forbids unknown keys: a typo is an error that names the option, never a
silently ignored setting.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

__all__ = [
    "ChannelConfig",
    "ClientCommandRateLimit",
    "ClientConfig",
    "CommandRateLimit",
    "Config",
    "ConfigError",
    "DemoConfig",
    "MethodRateLimit",
    "NamespaceOptions",
    "RateLimitBucket",
    "RateLimitConfig",
    "RpcRateLimit",
    "ServerConfig",
    "TokenConfig",
    "WebSocketConfig",
    "load_config",
]

Seconds = Annotated[float, Field(gt=0)]


class ConfigError(Exception):
    """The configuration is invalid; the message names the option."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NamespaceOptions(_Section):
    """Per-namespace channel options (the names Centrifugo uses)."""

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
    history_ttl: float = Field(0.0, ge=0, description="seconds each kept publication lives")
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


class ChannelConfig(_Section):
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

    @field_validator("namespaces")
    @classmethod
    def _unique_names(cls, value: list[NamespaceOptions]) -> list[NamespaceOptions]:
        names = [ns.name for ns in value]
        if "" in names:
            raise ValueError("every namespace needs a name")
        if len(set(names)) != len(names):
            raise ValueError("namespace names must be unique")
        return value


class TokenConfig(_Section):
    """Keys for connection JWTs. An algorithm works only if its key is configured."""

    hmac_secret_key: str = Field("", description="secret for HS256/HS384/HS512")
    rsa_public_key: str = Field("", description="PEM public key for RS256/RS384/RS512")
    ecdsa_public_key: str = Field("", description="PEM public key for ES256/ES384/ES512")
    audience: str = Field("", description="when set, the token's aud must contain it")
    issuer: str = Field("", description="when set, the token's iss must equal it")
    leeway: float = Field(0.0, ge=0, description="clock skew allowed on exp/nbf, seconds")


class RateLimitBucket(_Section):
    """A token bucket: ``rate`` commands per ``interval``, all of them at once at most."""

    interval: Seconds = Field(1.0, description="seconds in which 'rate' commands may come")
    rate: int = Field(1, gt=0, description="commands allowed per interval")


class CommandRateLimit(_Section):
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


class ClientCommandRateLimit(_Section):
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


class RateLimitConfig(_Section):
    client_command: ClientCommandRateLimit = Field(
        default_factory=ClientCommandRateLimit, description="per-connection command limits"
    )


class ClientConfig(_Section):
    allow_anonymous_connect_without_token: bool = Field(
        False, description="connect with no token as the anonymous user ''"
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="browser origins allowed besides the same origin; '*' matches any run",
    )
    ping_interval: int = Field(25, ge=1, description="server ping every so many whole seconds")
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
    token: TokenConfig = Field(
        default_factory=TokenConfig, description="connection and subscription JWT keys"
    )
    user_connection_limit: int = Field(
        0, ge=0, description="connections per user on this node (0: no limit); beyond, close 3504"
    )
    rate_limit: RateLimitConfig = Field(
        default_factory=RateLimitConfig, description="command rate limits"
    )

    @model_validator(mode="after")
    def _pong_before_next_ping(self) -> Self:
        if self.pong_timeout >= self.ping_interval:
            raise ValueError("pong_timeout must be smaller than ping_interval")
        return self


class WebSocketConfig(_Section):
    message_size_limit: int = Field(
        65_536,
        gt=0,
        description="largest incoming message, bytes (decompressed); beyond, close 1009",
    )
    compression: bool = Field(
        False, description="negotiate permessage-deflate with clients that offer it"
    )
    compression_level: int = Field(
        1, ge=0, le=9, description="zlib level of outgoing frames, 0 (none) to 9 (smallest)"
    )


class ServerConfig(_Section):
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on (0: any free one)")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error"
    )


class DemoConfig(_Section):
    enabled: bool = Field(False, description="serve the live chat demo at /")
    assets_dir: str = Field(
        "demo/node_modules/centrifuge/dist",
        description="folder holding centrifuge.js for the demo page (make serve installs it)",
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
    demo: DemoConfig = Field(default_factory=DemoConfig, description="demo page")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the values passed in: load_config() merges the environment itself, so
        # that environ=False, Node's defaults and genconfig never read it.
        return (init_settings,)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "configuration"
    return f"{where}: {first['msg']}"


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    environ: bool = True,
) -> Config:
    """Read the TOML file, then ``WIREHUB_*`` variables, then ``overrides`` (CLI flags).

    ``overrides`` is nested like the file: ``{"server": {"port": 9000}}``.

    Raises:
        ConfigError: the file can't be read, or an option is invalid; the message
            names the option.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    env_data = _env_values() if environ else {}
    merged = _merge(_merge(data, env_data), overrides or {})
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None


def _env_values() -> dict[str, Any]:
    """The ``WIREHUB_*`` variables as a nested dict, not yet validated."""
    try:
        return EnvSettingsSource(Config)()
    except SettingsError as exc:
        raise ConfigError(f"environment: {exc}") from None
