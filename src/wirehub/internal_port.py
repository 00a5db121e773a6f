"""The internal listener: the server API, metrics, health and readiness on a port of
their own (``server.internal_port``, bound to ``server.internal_host``, loopback by
default), so that they never face the internet; the main port then serves only the
client transports (and the demo).

It is a second ``uvicorn.Server`` in the same process and event loop as the main
one. The main server owns the node's lifespan and the signals: it starts this one
once it listens itself, and stops it after its own shutdown (so ``/ready`` answers
503 throughout the shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator, Sequence

import uvicorn

from wirehub.asgi import create_app
from wirehub.config import Config
from wirehub.core.node import Node
from wirehub.standalone import TLSListener, tls_context
from wirehub.transports.http import make_http_protocol_class

__all__ = ["InternalServer", "internal_server"]

logger = logging.getLogger("wirehub")


def internal_server(
    config: Config, node: Node, *, timeout_graceful_shutdown: int = 30
) -> InternalServer | None:
    """The internal listener of ``config``, or ``None`` when ``server.internal_port`` is
    not set (then the main port serves everything). It bounds request heads as the main
    port does, and speaks TLS when ``server.internal_tls`` says so.

    Raises:
        ConfigError: ``server.internal_tls`` names unusable files.
    """
    port = config.server.internal_port
    if port is None:
        return None
    server = config.server
    uvicorn_config = uvicorn.Config(
        create_app(node, endpoints="internal"),
        host=server.internal_host,
        port=port,
        loop="uvloop",
        http=make_http_protocol_class(server),  # request heads bounded here too
        lifespan="off",
        log_config=None,  # the main server configured logging already
        access_log=False,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
        timeout_keep_alive=server.keep_alive_timeout,
        proxy_headers=bool(server.forwarded_allow_ips),
        forwarded_allow_ips=list(server.forwarded_allow_ips) or None,
    )
    internal = InternalServer(uvicorn_config)
    internal.tls = tls_context(server.internal_tls, option="server.internal_tls")
    internal.handshake_timeout = server.request_head_timeout
    return internal


class InternalServer(TLSListener):
    """Serves beside the main server: no signal handlers of its own."""

    failed = False
    """It could not listen (the error is logged); the process should exit non-zero."""
    _started_or_failed: asyncio.Event | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        except SystemExit:  # uvicorn exits when it cannot bind; the main server decides
            self.failed = True
            self.should_exit = True
        finally:
            if self._started_or_failed is not None:
                self._started_or_failed.set()

    def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
        for sock in listeners:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            logger.info(
                "wirehub internal endpoints at http%s://%s:%d (api, metrics, health, ready)",
                self.scheme,
                shown,
                port,
            )

    async def start_beside(self) -> asyncio.Task[None]:
        """Start serving in a task; return once it listens (or failed to)."""
        self._started_or_failed = event = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self.serve())
        waiter = asyncio.ensure_future(event.wait())
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        return task

    async def stop(self, task: asyncio.Task[None]) -> None:
        self.should_exit = True
        await task
