"""``wirehub serve``'s listeners: uvicorn with wirehub's protocol classes, limits and TLS.

- HTTP: :mod:`wirehub.transports.http` (uvicorn's httptools protocol behind a bounded,
  timed request head) on every listener; WebSocket: :mod:`wirehub.transports.websocket`.
  The WebSocket protocol and the ASGI app share one
  :class:`~wirehub.transports.admission.Admission` (the node's connection limits).
- TLS (``server.tls``, and ``server.internal_tls`` for the internal port): a server
  context from Python's defaults (TLS 1.2 or newer, the ``ssl`` module's cipher choice)
  with the configured PEM files. The TLS handshake is due within
  ``server.request_head_timeout`` (asyncio would wait 60 s), and a closing TLS
  connection waits at most :data:`TLS_SHUTDOWN_TIMEOUT` for the peer's close_notify.
- Behind a proxy: ``server.forwarded_allow_ips`` turns on uvicorn's proxy headers for
  the HTTP routes and :mod:`wirehub.transports.forwarded` for the WebSocket path.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
from pathlib import Path
from typing import Any, Literal

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from wirehub.asgi import Endpoints, create_app
from wirehub.config import Config, ConfigError, TLSConfig
from wirehub.core.node import Node
from wirehub.transports.admission import Admission
from wirehub.transports.http import make_http_protocol_class
from wirehub.transports.websocket import make_protocol_class

__all__ = [
    "SHUTDOWN_TIMEOUT",
    "TLS_SHUTDOWN_TIMEOUT",
    "TLSListener",
    "tls_context",
    "uvicorn_config",
]

logger = logging.getLogger("wirehub")

SHUTDOWN_TIMEOUT = 30
"""uvicorn's time to wait for connections to close after every client got 3001."""
TLS_SHUTDOWN_TIMEOUT = 5.0


def tls_context(config: TLSConfig, *, option: str = "server.tls") -> ssl.SSLContext | None:
    """The server TLS context of ``config``, or ``None`` when TLS is off.

    Raises:
        ConfigError: a file can't be read, or the key does not match the certificate;
            the message names ``option``.
    """
    if not config.enabled:
        return None
    for path in (config.cert_pem_file, config.key_pem_file):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{option}: cannot read {path}: {exc.strerror}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.cert_pem_file, config.key_pem_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{option}: not a matching PEM certificate and key: {exc}") from None
    return context


def uvicorn_config(
    node: Node,
    config: Config,
    *,
    endpoints: Endpoints = "all",
    lifespan: Literal["on", "off"] = "on",
    log_level: str | None = None,
    log_config: dict[str, Any] | None = None,
) -> uvicorn.Config:
    """uvicorn's configuration for the main port of ``wirehub serve``.

    ``lifespan="on"`` starts and stops the node with the server; with ``"off"`` the
    caller runs ``async with node:`` itself. ``log_config=None`` leaves the process's
    logging as it is.
    """
    server = config.server
    admission = Admission.for_node(node)
    app = create_app(node, lifespan=lifespan == "on", endpoints=endpoints, admission=admission)
    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        http=make_http_protocol_class(server),
        ws=make_protocol_class(node, admission=admission),
        loop="uvloop",
        lifespan=lifespan,
        log_level=log_level or server.log_level,
        log_config=log_config,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
        timeout_keep_alive=server.keep_alive_timeout,
        proxy_headers=bool(server.forwarded_allow_ips),
        forwarded_allow_ips=list(server.forwarded_allow_ips) or None,
    )


class TLSListener(uvicorn.Server):
    """A uvicorn server whose listeners speak TLS with :attr:`tls` when it is set, the
    handshake due within :attr:`handshake_timeout` seconds."""

    tls: ssl.SSLContext | None = None
    handshake_timeout: float = 10.0

    @property
    def scheme(self) -> str:
        """``"s"`` when the listeners speak TLS (``ws`` + it, ``http`` + it)."""
        return "s" if self.tls is not None else ""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.tls is None:
            await super().startup(sockets=sockets)
            return
        # As uvicorn's for a host and port or given sockets, with the TLS timeouts
        # uvicorn does not pass (uvicorn's own TLS settings stay unused).
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        try:
            self.servers = await self._listen(sockets)
        except OSError as exc:
            logger.error(exc)
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        if sockets is None:
            self._log_started_message([s for server in self.servers for s in server.sockets])
        self.started = True

    async def _listen(self, sockets: list[socket.socket] | None) -> list[asyncio.Server]:
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {
            "ssl": self.tls,
            "backlog": config.backlog,
            "ssl_handshake_timeout": self.handshake_timeout,
            "ssl_shutdown_timeout": TLS_SHUTDOWN_TIMEOUT,
        }
        if sockets is not None:
            return [await loop.create_server(create_protocol, sock=s, **options) for s in sockets]
        return [await loop.create_server(create_protocol, config.host, config.port, **options)]
