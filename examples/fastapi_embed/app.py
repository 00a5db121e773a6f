"""wirehub mounted in a FastAPI app: the app issues tokens and publishes from its routes.

Run it from the repository root (FastAPI comes with `make test`'s tools, or
`.venv/bin/pip install fastapi`):

    .venv/bin/uvicorn --app-dir examples/fastapi_embed app:app --port 8001

Then `curl 'http://127.0.0.1:8001/token?user=alice'` gives a connection token for
`ws://127.0.0.1:8001/rt/connection/websocket`, and
`curl -X POST http://127.0.0.1:8001/announce -H 'content-type: application/json' -d '{"text": "hi"}'`
publishes into chat:lobby.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import jwt
from fastapi import FastAPI
from pydantic import BaseModel

from wirehub import Node, create_app, load_config

config = load_config(Path(__file__).with_name("wirehub.toml"))
node = Node(config)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with node:  # mounted apps get no lifespan events: run the node in the host's
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/rt", create_app(node))  # clients connect to ws://host/rt/connection/websocket


@app.get("/token")
def token(user: str) -> dict[str, str]:
    """A connection token for ``user`` (check who is asking first, in a real app)."""
    claims = {"sub": user, "exp": int(time.time()) + 3600}
    return {"token": jwt.encode(claims, config.client.token.hmac_secret_key, algorithm="HS256")}


class Announcement(BaseModel):
    text: str


@app.post("/announce")
async def announce(announcement: Announcement) -> dict[str, int | str]:
    position = await node.publish("chat:lobby", {"name": "server", "text": announcement.text})
    return {"offset": position.offset, "epoch": position.epoch}
