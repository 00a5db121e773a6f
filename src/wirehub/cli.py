"""The ``wirehub`` command: serve, token, genconfig. Thin: flags -> Config -> uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.config
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
import jwt
import uvicorn

from wirehub._version import __version__
from wirehub.api.cli import COMMANDS as API_COMMANDS
from wirehub.config import Config, ConfigError, load_config
from wirehub.core.node import Node
from wirehub.genconfig import render_config
from wirehub.internal_port import InternalServer, internal_server
from wirehub.loader import AppError, build_node, load_app
from wirehub.logs import logging_config
from wirehub.standalone import SHUTDOWN_TIMEOUT, TLSListener, tls_context, uvicorn_config
from wirehub.transports.websocket import ENDPOINT

__all__ = ["main"]

logger = logging.getLogger("wirehub")


def _fail(message: str) -> NoReturn:
    click.echo(f"wirehub: {message}", err=True)
    sys.exit(2)


def _warn(message: str) -> None:
    click.echo(f"wirehub: warning: {message}", err=True)


def _load(path: str | None, overrides: dict[str, Any], warnings: list[str] | None = None) -> Config:
    """Load the configuration; its warnings go to ``warnings`` when given (to be logged
    once logging is set up), else straight to stderr."""
    warn = _warn if warnings is None else warnings.append
    try:
        return load_config(path, overrides, warn=warn)
    except ConfigError as exc:
        _fail(f"invalid configuration: {exc}")


def _log_warnings(config: Config, warnings: list[str]) -> None:
    """Set up the server's logging early, so configuration warnings come out in its
    format (a JSON line with ``log.format = "json"``)."""
    if warnings:
        logging.config.dictConfig(logging_config(config.server.log_level, config.log.format))
        for message in warnings:
            logging.getLogger("wirehub.config").warning("%s", message)


@click.group()
@click.version_option(__version__, prog_name="wirehub")
def main() -> None:
    """wirehub: a real-time messaging server speaking the Centrifugo client protocol."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file.")
@click.option("--host", help="Address to listen on (server.host).")
@click.option("--port", type=int, help="Port to listen on, 0 for any free one (server.port).")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="server.log_level"
)
@click.option(
    "--app",
    "app_target",
    metavar="MODULE:NAME",
    help="Serve your own Node (with its handlers): module:name or file.py:name, naming a "
    "Node or a function that takes the Config and returns one.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes serving the port, each a node (needs engine.type = redis).",
)
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    log_level: str | None,
    app_target: str | None,
    workers: int,
) -> None:
    """Run the standalone server."""
    flags = {"host": host, "port": port, "log_level": log_level}
    server = {key: value for key, value in flags.items() if value is not None}
    overrides = {"server": server} if server else {}
    warnings: list[str] = []
    try:
        config, app = _config_and_app(config_path, overrides, app_target, warnings)
        _log_warnings(config, warnings)
        _check_tls(config)
        if workers > 1:
            from wirehub.workers import check_workers, serve_workers

            problem = check_workers(config, workers)
            if problem is not None:
                _fail(problem)
            logging.config.dictConfig(logging_config(config.server.log_level, config.log.format))
            sys.exit(serve_workers(config, workers, app_target))
        node = build_node(app, config) if app is not None else None
    except AppError as exc:
        _fail(str(exc))
    run(config, node)


def _config_and_app(
    config_path: str | None,
    overrides: dict[str, Any],
    app_target: str | None,
    warnings: list[str],
) -> tuple[Config, Node | Callable[[Config], Node] | None]:
    """The configuration to serve, and the application's Node (or factory) if any.

    A Node built by the application brings its own configuration: the command line's
    flags still apply to it, a ``--config`` file cannot.
    """
    if app_target is None:
        return _load(config_path, overrides, warnings), None
    app = load_app(app_target)
    if not isinstance(app, Node):
        return _load(config_path, overrides, warnings), app
    if config_path is not None:
        _fail(f"--config: {app_target} is a Node built with its own configuration")
    return _with_overrides(app.config, overrides), app


def _with_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """``config`` with the command line's flags applied, validated as a file would be."""
    try:
        return load_config(
            None, {**config.model_dump(), **_nested(config, overrides)}, environ=False
        )
    except ConfigError as exc:
        _fail(f"invalid configuration: {exc}")


def _nested(config: Config, overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        section: {**getattr(config, section).model_dump(), **values}
        for section, values in overrides.items()
    }


def _check_tls(config: Config) -> None:
    """Refuse unusable TLS files before any listener or worker starts."""
    try:
        tls_context(config.server.tls)
        tls_context(config.server.internal_tls, option="server.internal_tls")
    except ConfigError as exc:
        _fail(f"invalid configuration: {exc}")


def run(
    config: Config,
    node: Node | None = None,
    *,
    sockets: list[socket.socket] | None = None,
    worker: str = "",
) -> None:
    """Serve ``config`` until SIGINT or SIGTERM, then shut down gracefully.

    ``node``: an already built :class:`Node` (handlers registered) to serve instead of a
    fresh ``Node(config)``; ``config`` still gives the server settings (host, port, log
    level, TLS, limits, demo). ``sockets``: already listening sockets to serve instead of
    binding host and port (``--workers``), and ``worker`` names this process in the logs.
    """
    try:
        tls = tls_context(config.server.tls)
        if node is None:
            node = Node(config)
        internal = internal_server(config, node, timeout_graceful_shutdown=SHUTDOWN_TIMEOUT)
    except ConfigError as exc:
        _fail(f"invalid configuration: {exc}")
    main_config = uvicorn_config(
        node,
        config,
        endpoints="all" if internal is None else "public",
        log_config=logging_config(config.server.log_level, config.log.format),
    )
    server = _Server(
        main_config, demo=config.demo.enabled, node=node, internal=internal, worker=worker
    )
    server.tls = tls
    server.handshake_timeout = config.server.request_head_timeout
    server.run(sockets=sockets)
    if internal is not None and internal.failed:
        sys.exit(3)


class _Server(TLSListener):
    def __init__(
        self,
        config: uvicorn.Config,
        *,
        demo: bool,
        node: Node,
        internal: InternalServer | None = None,
        worker: str = "",
    ) -> None:
        super().__init__(config)
        self._demo = demo
        self._node = node
        self._internal = internal
        self._internal_task: asyncio.Task[None] | None = None
        self._worker = worker

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if sockets is not None and self.started:
            self._log_started_message(sockets)  # uvicorn logs nothing for given sockets
        if self._internal is not None and self.started and not self.should_exit:
            self._internal_task = await self._internal.start_beside()
            if self._internal.failed:
                self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._node.shutting_down = True
        await super().shutdown(sockets=sockets)
        if self._internal is not None and self._internal_task is not None:
            await self._internal.stop(self._internal_task)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._node.shutting_down = True  # /ready answers 503 from the signal on
        super().handle_exit(sig, frame)

    def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
        for sock in listeners:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            scheme = self.scheme
            message = f"wirehub {__version__} serving ws{scheme}://{shown}:{port}{ENDPOINT}"
            if self._demo:
                message += f", demo at http{scheme}://{shown}:{port}/"
            if self._worker:
                message += f" ({self._worker}, pid {os.getpid()})"
            logger.info(message)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # As uvicorn's, but a shutdown asked for by a signal is a clean exit with
        # status 0; uvicorn would raise the signal again once done.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        # A worker leaves SIGINT to its parent (wirehub.workers), which sends SIGTERM.
        handled = (signal.SIGTERM,) if self._worker else (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


@main.command()
@click.option("--user", required=True, help="User id (the sub claim).")
@click.option("--ttl", type=int, default=3600, show_default=True, help="Seconds; 0: no exp.")
@click.option("--info", "info_json", help="Connection info, a JSON value.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file.")
def token(user: str, ttl: int, info_json: str | None, config_path: str | None) -> None:
    """Print an HS256 connection token signed with client.token.hmac_secret_key."""
    config = _load(config_path, {})
    secret = config.client.token.hmac_secret_key
    if not secret:
        _fail(
            "client.token.hmac_secret_key is not set (config file or WIREHUB_CLIENT__TOKEN__HMAC_SECRET_KEY)"
        )
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now}
    if ttl > 0:
        claims["exp"] = now + ttl
    if info_json is not None:
        try:
            claims["info"] = json.loads(info_json)
        except json.JSONDecodeError as exc:
            _fail(f"--info is not valid JSON: {exc}")
    if config.client.token.audience:
        claims["aud"] = config.client.token.audience
    if config.client.token.issuer:
        claims["iss"] = config.client.token.issuer
    click.echo(jwt.encode(claims, secret, algorithm="HS256"))


@main.command()
@click.option(
    "-o", "--output", default="wirehub.toml", show_default=True, help="File, or - for stdout."
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def genconfig(output: str, force: bool) -> None:
    """Write a commented wirehub.toml with every option and its default."""
    text = render_config()
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output)
    if path.exists() and not force:
        _fail(f"{output} exists; pass --force to overwrite it")
    path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")


for _command in API_COMMANDS:
    main.add_command(_command)
