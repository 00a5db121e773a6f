"""wirehub as an ASGI application: mount it in FastAPI or Starlette, or serve it alone.

Routes, relative to where the app is mounted. Public (client-facing):

- ``/connection/websocket``: the client protocol over WebSocket;
- when enabled: ``/connection/http_stream`` and ``/connection/sse`` (bidirectional
  emulation, their commands through ``POST /emulation``), and the unidirectional
  ``/connection/uni_websocket``, ``/connection/uni_sse``, ``/connection/uni_http_stream``
  (``docs/transports.md``);
- ``/`` and ``/demo/centrifuge.js``: the live chat demo, when ``demo.enabled``.

Internal (for backends and operators; on ``server.internal_port`` when it is set):

- ``POST /api/<method>``: the server API (:mod:`wirehub.api.http`);
- ``/metrics``: Prometheus metrics, when ``prometheus.enabled``;
- ``/health``: liveness, always 200 ``{}``;
- ``/ready``: 200 ``{}`` while the node runs and its broker answers a probe within
  :data:`READY_TIMEOUT` seconds; 503 before start, while shutting down, or when the
  broker does not answer.

``create_app(node, endpoints="public")`` and ``endpoints="internal"`` split them
between two listeners; the default serves both.

Mounted apps get no lifespan events (Starlette's ``Mount`` does not forward them), so
the host runs the node in its own lifespan::

    node = Node(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with node:
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/rt", create_app(node))

Standalone (``wirehub serve``), the app handles lifespan itself: ``create_app(node,
lifespan=True)``.

Every request is first held to the ``server`` section's request-head limits (414 or 431
with ``Connection: close``): embedded, the host server has already parsed and buffered
the request, so this bounds what reaches wirehub, not what the host read (see
``docs/hardening.md`` for the host server's own settings).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any, Literal

from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from wirehub.api.http import ApiApp
from wirehub.brokers.base import Pingable
from wirehub.core.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from wirehub.core.node import Node
from wirehub.demo.assets import find_client_script
from wirehub.transports.admission import Admission
from wirehub.transports.asgi_stream import serve_stream, stream_endpoints
from wirehub.transports.asgi_websocket import serve_uni_websocket, serve_websocket
from wirehub.transports.door import Door
from wirehub.transports.emulation import ENDPOINT as EMULATION_ENDPOINT, serve_emulation
from wirehub.transports.head import check_scope
from wirehub.transports.websocket import ENDPOINT, UNI_ENDPOINT

__all__ = ["READY_TIMEOUT", "Endpoints", "create_app"]

logger = logging.getLogger("wirehub.health")

READY_TIMEOUT = 2.0
"""Seconds the broker (and presence manager) get to answer ``/ready``'s probe."""

Endpoints = Literal["all", "public", "internal"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def create_app(
    node: Node,
    *,
    lifespan: bool = False,
    endpoints: Endpoints = "all",
    admission: Admission | None = None,
) -> ASGIApp:
    """Return the ASGI application serving ``node``.

    Args:
        node: the node to serve. It must be running while connections arrive.
        lifespan: start and stop the node on the ASGI lifespan events. Leave it off
            when mounting, and run ``async with node:`` in the host's lifespan.
        endpoints: ``"public"``: only client connections (and the demo);
            ``"internal"``: only the API, metrics, health and readiness; ``"all"``.
        admission: the node's connection limits, when other doors share them (``wirehub
            serve`` passes the one its WebSocket protocol uses); by default the app
            keeps its own.
    """
    return _App(node, manage_lifespan=lifespan, endpoints=endpoints, admission=admission)


class _App:
    def __init__(
        self,
        node: Node,
        *,
        manage_lifespan: bool,
        endpoints: Endpoints,
        admission: Admission | None,
    ) -> None:
        self.node = node
        self._manage_lifespan = manage_lifespan
        self._door = Door.for_node(node, admission)
        self._demo = node.config.demo
        self._public = endpoints in ("all", "public")
        self._api = ApiApp(node) if endpoints in ("all", "internal") else None
        config = node.config
        self._streams = stream_endpoints(config) if self._public else {}
        self._emulation = self._public and (config.sse.enabled or config.http_stream.enabled)
        self._uni_websocket = self._public and config.uni_websocket.enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            too_large = check_scope(scope, self._door.limits)
            if too_large is not None:
                headers = {"connection": "close"}
                response = PlainTextResponse(too_large.reason, too_large.status, headers)
                await response(scope, receive, send)
                return
            path = _route(scope)
            stream = self._streams.get(path)
            if stream is not None:
                await serve_stream(self.node, self._door, stream, scope, receive, send)
            elif self._emulation and path == EMULATION_ENDPOINT:
                await serve_emulation(self.node, self._door, scope, receive, send)
            elif self._api is not None and self._api.handles(path):
                await self._api(scope, receive, send, path)
            elif self._api is not None and path == "/ready":
                await (await self._ready())(scope, receive, send)
            else:
                await self._http(path)(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _route(scope)
        if self._public and path == ENDPOINT:
            await serve_websocket(self.node, self._door, scope, receive, send)
        elif self._uni_websocket and path == UNI_ENDPOINT:
            await serve_uni_websocket(self.node, self._door, scope, receive, send)
        else:
            await receive()
            await send({"type": "websocket.close", "code": 1000})

    def _http(self, path: str) -> ASGIApp:
        if self._api is not None:
            if path == "/health":
                return JSONResponse({})
            if path == "/metrics":
                return self._metrics()
        if not self._public:
            return PlainTextResponse("Not Found", status_code=404)
        if path == ENDPOINT or (self._uni_websocket and path == UNI_ENDPOINT):
            # A request to the connection path that is not an upgrade (RFC 6455 §4.2.1).
            return PlainTextResponse("expected a WebSocket upgrade", status_code=400)
        if self._demo.enabled and path in ("/", "/index.html"):
            page = resources.files("wirehub.demo").joinpath("index.html").read_bytes()
            return Response(page, media_type="text/html; charset=utf-8")
        if self._demo.enabled and path == "/demo/centrifuge.js":
            return self._centrifuge_js()
        return PlainTextResponse("Not Found", status_code=404)

    def _metrics(self) -> ASGIApp:
        metrics = self.node.metrics
        if metrics is None:
            return PlainTextResponse("metrics are off: set prometheus.enabled", status_code=404)
        return Response(metrics.render(), headers={"content-type": METRICS_CONTENT_TYPE})

    async def _ready(self) -> ASGIApp:
        node = self.node
        if not node.running or node.shutting_down:
            return JSONResponse({"error": "not running"}, status_code=503)
        for backend in {id(b): b for b in (node.broker, node.presence_manager)}.values():
            if not isinstance(backend, Pingable):
                continue
            try:
                async with asyncio.timeout(READY_TIMEOUT):
                    await backend.ping()
            except Exception as exc:
                name = type(backend).__name__
                logger.warning("not ready: %s did not answer: %s", name, exc or type(exc).__name__)
                return JSONResponse({"error": f"{name} unreachable"}, status_code=503)
        return JSONResponse({})

    def _centrifuge_js(self) -> ASGIApp:
        script = find_client_script(self._demo.assets_dir)
        if script.path is None:
            # The page shows this text: it names the folders looked at and the fix.
            return PlainTextResponse(script.advice(), status_code=404)
        return FileResponse(script.path, media_type="text/javascript")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._lifespan_step(self.node.start, "startup", send)
            elif message["type"] == "lifespan.shutdown":
                await self._lifespan_step(self.node.close, "shutdown", send)
                return

    async def _lifespan_step(
        self, step: Callable[[], Awaitable[None]], name: str, send: Send
    ) -> None:
        if self._manage_lifespan:
            try:
                await step()
            except Exception as exc:
                await send({"type": f"lifespan.{name}.failed", "message": repr(exc)})
                raise
        await send({"type": f"lifespan.{name}.complete"})


def _route(scope: Scope) -> str:
    """The path below the mount point."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"
