"""A wirehub node served by uvicorn inside the test's own event loop.

For tests that need the in-process API (``node.publish``, handlers) while real clients
connect over a socket. Serves exactly as ``wirehub serve`` does (without TLS): wirehub's
HTTP and WebSocket protocol classes, limits included.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn

from wirehub import Node
from wirehub.standalone import uvicorn_config
from wirehub.transports.websocket import ENDPOINT

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
    settings = node.config.model_copy(
        update={"server": node.config.server.model_copy(update={"host": "127.0.0.1", "port": 0})}
    )
    config = uvicorn_config(node, settings, lifespan="off", log_level="warning")
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
