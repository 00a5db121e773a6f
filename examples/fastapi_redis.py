r"""wirehub embedded in FastAPI, several uvicorn workers sharing Redis.

Run (from the repository root, with `pip install "wirehub[redis]" fastapi`):

    WIREHUB_ENGINE__REDIS__ADDRESS=redis://127.0.0.1:6379 \
        uvicorn examples.fastapi_redis:app --workers 4 --port 8000

Every worker process imports this module and runs its own wirehub node; the nodes meet
in Redis, so a publication made in any worker (by a client, or by the /notify route
below) reaches the subscribers of every worker. Clients connect to
ws://127.0.0.1:8000/rt/connection/websocket; the load balancer (here the kernel,
spreading connections over uvicorn's workers) needs no sticky sessions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from wirehub import Node, create_app, load_config

config = load_config(
    overrides={
        # What a config file would hold; WIREHUB_* variables still override the file,
        # not these.
        "engine": {"type": "redis"},
        "client": {"allow_anonymous_connect_without_token": True},
        "channel": {
            "namespaces": [
                {
                    "name": "chat",
                    "allow_subscribe_for_client": True,
                    "allow_subscribe_for_anonymous": True,
                    "allow_publish_for_subscriber": True,
                    "allow_publish_for_anonymous": True,
                    "history_size": 100,
                    "history_ttl": 300,
                    "force_recovery": True,
                }
            ]
        },
    }
)
node = Node(config)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with node:  # mounted apps get no lifespan events: the host runs the node
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/rt", create_app(node))


@app.post("/notify/{room}")
async def notify(room: str, message: dict[str, Any]) -> dict[str, int]:
    """Publish from the app: every subscriber of chat:<room>, in every worker, gets it."""
    position = await node.publish(f"chat:{room}", message)
    return {"offset": position.offset}
