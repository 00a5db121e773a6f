"""A wirehub node served by uvicorn inside the test's own event loop.

For tests that need the in-process API (``node.publish``, handlers) while real clients
connect over a socket. Serves exactly as ``wirehub serve`` does: wirehub's WebSocket
protocol class on the connection path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn

from wirehub import Node, create_app
from wirehub.transports.websocket import ENDPOINT, make_protocol_class

__all__ = ["RunningNode", "serve_node"]


@dataclass
class RunningNode:
    node: Node
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{ENDPOINT}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def serve_node(node: Node) -> AsyncIterator[RunningNode]:
    """Run ``node`` behind uvicorn on 127.0.0.1 and a free port until the block ends."""
    config = uvicorn.Config(
        create_app(node),
        host="127.0.0.1",
        port=0,
        ws=make_protocol_class(node),
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    async with node:
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield RunningNode(node, port)
        finally:
            server.should_exit = True
            await task
