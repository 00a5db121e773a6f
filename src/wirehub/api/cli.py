"""``wirehub publish``, ``broadcast``, ``presence``, ... : the server API from a shell.

Each verb is one HTTP call to a running server's API (httpx). The URL is
``--api-url``, else ``WIREHUB_API_URL``, else built from the configuration (the
internal port when it is set, the main port otherwise, and ``http_api.handler_prefix``);
the key is ``--api-key``, else ``http_api.key`` (file or ``WIREHUB_HTTP_API__KEY``).
The result is printed as JSON (``--pretty`` indents it); an API error exits with
status 1 and its message on stderr.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
import httpx

from wirehub.config import Config, ConfigError, load_config

__all__ = ["COMMANDS"]

F = TypeVar("F", bound=Callable[..., Any])


def _api_options(command: F) -> F:
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file."),
        click.option("--api-url", envvar="WIREHUB_API_URL", help="e.g. http://127.0.0.1:8000/api"),
        click.option("--api-key", help="Default: http_api.key of the configuration."),
        click.option("--pretty", is_flag=True, help="Indent the JSON output."),
        click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class _Api:
    def __init__(
        self,
        config_path: str | None,
        api_url: str | None,
        api_key: str | None,
        pretty: bool,
        timeout: float,
    ) -> None:
        config = _load(config_path) if api_url is None or api_key is None else None
        self.url = (api_url or _default_url(_config(config))).rstrip("/")
        self.key = api_key if api_key is not None else _config(config).http_api.key
        self.pretty = pretty
        self.timeout = timeout

    def call(self, method: str, params: dict[str, Any]) -> None:
        headers = {"X-API-Key": self.key} if self.key else {}
        url = f"{self.url}/{method}"
        try:
            response = httpx.post(url, json=params, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            _exit(f"cannot reach the API at {url}: {exc}")
        if response.status_code == 401:
            _exit("unauthorized: the API key is missing or wrong (--api-key, http_api.key)")
        if response.status_code != 200:
            _exit(f"HTTP {response.status_code} from {url}: {response.text.strip()}")
        try:
            body = response.json()
        except ValueError:
            _exit(f"not JSON from {url}: {response.text[:200]!r}")
        error = body.get("error") if isinstance(body, dict) else None
        if error:
            _exit(f"error {error.get('code')}: {error.get('message')}")
        indent = 2 if self.pretty else None
        click.echo(json.dumps(body.get("result", {}), indent=indent))


def _load(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"wirehub: invalid configuration: {exc}", err=True)
        sys.exit(2)


def _config(config: Config | None) -> Config:
    assert config is not None
    return config


def _default_url(config: Config) -> str:
    server = config.server
    internal = server.internal_port is not None
    host = server.internal_host if internal else server.host
    port = server.internal_port if internal else server.port
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{config.http_api.handler_prefix}"


def _exit(message: str) -> NoReturn:
    click.echo(f"wirehub: {message}", err=True)
    sys.exit(1)


def _json(value: str, name: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        message = f"{name} is not valid JSON ({exc}); quote a string: '\"hello\"'"
        raise click.BadParameter(message) from None


def _tags(values: tuple[str, ...]) -> dict[str, str] | None:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: expected KEY=VALUE", param_hint="--tag")
        tags[key] = rest
    return tags or None


def _api_command(function: F) -> F:
    """The API options, turned into an ``api`` argument for the function."""

    @_api_options
    @functools.wraps(function)
    def wrapper(
        config_path: str | None,
        api_url: str | None,
        api_key: str | None,
        pretty: bool,
        timeout: float,
        **kwargs: Any,
    ) -> Any:
        api = _Api(config_path, api_url, api_key, pretty, timeout)
        return function(api, **kwargs)

    return wrapper  # type: ignore[return-value]


def _publish_options(command: F) -> F:
    command = click.option("--tag", "tags", multiple=True, help="KEY=VALUE, repeatable.")(command)
    command = click.option("--idempotency-key", default="", help="Drop retried duplicates.")(
        command
    )
    command = click.option("--skip-history", is_flag=True, help="Keep it out of history.")(command)
    return command


@click.command()
@click.argument("channel")
@click.argument("data")
@_publish_options
@_api_command
def publish(
    api: _Api,
    channel: str,
    data: str,
    tags: tuple[str, ...],
    idempotency_key: str,
    skip_history: bool,
) -> None:
    """Publish DATA (a JSON value) into CHANNEL."""
    params = {"channel": channel, "data": _json(data, "DATA"), "tags": _tags(tags)}
    params.update(idempotency_key=idempotency_key, skip_history=skip_history)
    api.call("publish", _clean(params))


@click.command()
@click.argument("channels", nargs=-1, required=True)
@click.option("--data", required=True, help="The JSON value to publish.")
@_publish_options
@_api_command
def broadcast(
    api: _Api,
    channels: tuple[str, ...],
    data: str,
    tags: tuple[str, ...],
    idempotency_key: str,
    skip_history: bool,
) -> None:
    """Publish the same --data into every CHANNEL."""
    params = {"channels": list(channels), "data": _json(data, "--data"), "tags": _tags(tags)}
    params.update(idempotency_key=idempotency_key, skip_history=skip_history)
    api.call("broadcast", _clean(params))


@click.command()
@click.argument("channel")
@_api_command
def presence(api: _Api, channel: str) -> None:
    """Who is subscribed to CHANNEL."""
    api.call("presence", {"channel": channel})


@click.command("presence-stats")
@click.argument("channel")
@_api_command
def presence_stats(api: _Api, channel: str) -> None:
    """How many connections and users are subscribed to CHANNEL."""
    api.call("presence_stats", {"channel": channel})


@click.command()
@click.argument("channel")
@click.option("--limit", type=int, default=-1, show_default=True, help="-1: all; 0: position.")
@click.option("--reverse", is_flag=True, help="Newest first.")
@_api_command
def history(api: _Api, channel: str, limit: int, reverse: bool) -> None:
    """The publications kept in CHANNEL's history."""
    api.call("history", _clean({"channel": channel, "limit": limit, "reverse": reverse}))


@click.command()
@click.option("--pattern", default="", help="Glob: * ? [a-z] {a,b}.")
@_api_command
def channels(api: _Api, pattern: str) -> None:
    """Channels with subscribers, and how many."""
    api.call("channels", _clean({"pattern": pattern}))


@click.command()
@_api_command
def info(api: _Api) -> None:
    """Every node: name, version, connections, users, channels."""
    api.call("info", {})


@click.command()
@click.argument("user")
@click.option("--client", default="", help="Only this connection of USER.")
@click.option("--code", type=int, default=0, help="Close code, 3000-4999 (default 3503).")
@click.option("--reason", default="", help="Close reason.")
@_api_command
def disconnect(api: _Api, user: str, client: str, code: int, reason: str) -> None:
    """Disconnect USER's connections ("" for anonymous ones) on every node."""
    params: dict[str, Any] = {"user": user, "client": client}
    if code or reason:
        params["disconnect"] = {"code": code, "reason": reason}
    api.call("disconnect", _clean(params))


@click.command("api")
@click.argument("method")
@click.argument("params", default="{}")
@_api_command
def api_call(api: _Api, method: str, params: str) -> None:
    """Call any API METHOD with PARAMS (a JSON object), e.g.
    `wirehub api history_remove '{"channel":"news"}'`."""
    value = _json(params, "PARAMS")
    if not isinstance(value, dict):
        raise click.BadParameter("PARAMS must be a JSON object")
    api.call(method, value)


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value not in (None, "", False)}


COMMANDS: tuple[click.Command, ...] = (
    *(publish, broadcast, presence, presence_stats, history, channels, info, disconnect),
    api_call,
)
