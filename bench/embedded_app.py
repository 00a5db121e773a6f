"""wirehub embedded in a FastAPI app, served by *stock* uvicorn (its own ASGI WebSocket
implementation, not wirehub's protocol class): the "embedded" stack of the bench.

    python bench/embedded_app.py --port 8001
    # clients: ws://127.0.0.1:8001/rt/connection/websocket

This is the README's recipe: the node runs inside the host's lifespan, the wirehub ASGI
app is mounted at /rt. An ``echo`` RPC handler (any method; RPC scenario) returns the
request's raw JSON as it is, as bench/wirehub_rpc.py does for the standalone stack.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from wirehub import Node, create_app, load_config
from wirehub.core.events import RPCEvent, RPCReply

CONFIG = Path(__file__).with_name("wirehub.toml")


def make_app(config_path: Path = CONFIG) -> FastAPI:
    node = Node(load_config(str(config_path), {}, environ=False))

    @node.on_rpc
    async def echo(event: RPCEvent) -> RPCReply:
        return RPCReply(data=event.data)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with node:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    app.mount("/rt", create_app(node))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # Stock settings: loop/http/ws "auto" (uvloop, httptools, websockets when installed).
    uvicorn.run(make_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
