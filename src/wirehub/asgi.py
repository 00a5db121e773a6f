"""wirehub as an ASGI application: mount it in FastAPI or Starlette, or serve it alone.

Routes, relative to where the app is mounted:

- ``/connection/websocket``: the client protocol over WebSocket;
- ``/health``: 200 while the node runs, 503 otherwise;
- ``/`` and ``/demo/centrifuge.js``: the live chat demo, when ``demo.enabled``.

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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any

from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from wirehub.core.node import Node
from wirehub.demo.assets import find_client_script
from wirehub.transports.asgi_websocket import serve_websocket
from wirehub.transports.origin import OriginCheck
from wirehub.transports.websocket import ENDPOINT

__all__ = ["create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def create_app(node: Node, *, lifespan: bool = False) -> ASGIApp:
    """Return the ASGI application serving ``node``.

    Args:
        node: the node to serve. It must be running while connections arrive.
        lifespan: start and stop the node on the ASGI lifespan events. Leave it off
            when mounting, and run ``async with node:`` in the host's lifespan.
    """
    return _App(node, manage_lifespan=lifespan)


class _App:
    def __init__(self, node: Node, *, manage_lifespan: bool) -> None:
        self.node = node
        self._manage_lifespan = manage_lifespan
        self._origins = OriginCheck(node.config.client.allowed_origins)
        self._demo = node.config.demo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope)(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _route(scope) == ENDPOINT:
            await serve_websocket(self.node, self._origins, scope, receive, send)
        else:
            await receive()
            await send({"type": "websocket.close", "code": 1000})

    def _http(self, scope: Scope) -> ASGIApp:
        path = _route(scope)
        if path == ENDPOINT:
            # A request to the connection path that is not an upgrade (RFC 6455 §4.2.1).
            return PlainTextResponse("expected a WebSocket upgrade", status_code=400)
        if path == "/health":
            status = 200 if self.node.running else 503
            return JSONResponse({}, status_code=status)
        if self._demo.enabled and path in ("/", "/index.html"):
            page = resources.files("wirehub.demo").joinpath("index.html").read_bytes()
            return Response(page, media_type="text/html; charset=utf-8")
        if self._demo.enabled and path == "/demo/centrifuge.js":
            return self._centrifuge_js()
        return PlainTextResponse("Not Found", status_code=404)

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
