"""The chat example: rooms, history on join, who is online, typing indicators.

Run it from the repository root with ``make example NAME=chat`` (it installs what the app
needs first), or, once installed, ``.venv/bin/python examples/chat/app.py --port 8010``;
then open http://127.0.0.1:8010/ in two browser windows.

How it is built: a FastAPI app runs a wirehub :class:`~wirehub.Node` in its lifespan and
mounts it at ``/rt``. ``POST /login`` turns a name into a connection token (a real app
checks a password or a session there); the browser connects with that token, so every
presence entry and typing notice carries the name the server signed, and ``on_publish``
stamps each message with it: nobody can post as somebody else.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from wirehub import ClientError, Node, PublishEvent, PublishReply, create_app, load_config

HERE = Path(__file__).parent
TOKEN_TTL = 24 * 3600
MAX_TEXT = 2000
# Browser modules, served from this folder's node_modules (npm ci --prefix examples/chat).
VENDOR = {"centrifuge.mjs": HERE / "node_modules/centrifuge/build/index.mjs"}

config = load_config(HERE / "wirehub.toml")
node = Node(config)


@node.on_publish
async def check_and_stamp(event: PublishEvent) -> PublishReply:
    """Messages become ``{text, name, time}`` with the sender's signed name; typing
    notices ``{typing}``. Anything else is refused with an error reply."""
    data = _json_object(event.data)
    if event.channel.startswith("typing:"):
        return PublishReply(data={"typing": data.get("typing") is True})
    text = data.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise ClientError(4000, f"a message is {{'text': ...}}, 1 to {MAX_TEXT} characters")
    return PublishReply(data={"text": text.strip(), "name": event.user, "time": time.time()})


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ClientError(4000, "publish a JSON object")
    return value


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with node:  # mounted apps get no lifespan events: run the node in the host's
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/rt", create_app(node))  # the browser connects to ws://host/rt/connection/websocket


class Login(BaseModel):
    name: str = Field(min_length=1, max_length=24, pattern=r"^[^\x00-\x1f<>]+$")


@app.post("/login")
def login(body: Login) -> dict[str, str]:
    """A connection token for ``name``: its user id is the name itself."""
    name = body.name.strip()
    if not name:
        raise HTTPException(422, "the name is blank")
    claims = {"sub": name, "exp": int(time.time()) + TOKEN_TTL}
    secret = config.client.token.hmac_secret_key
    return {"token": jwt.encode(claims, secret, algorithm="HS256"), "user": name}


@app.get("/vendor/{name}")
def vendor(name: str) -> FileResponse:
    path = VENDOR.get(name)
    if path is None or not path.is_file():
        raise HTTPException(404, f"{name} is missing: run `npm ci --prefix {HERE}`")
    return FileResponse(path, media_type="text/javascript")


app.mount("/", StaticFiles(directory=HERE / "static", html=True))  # last: it takes the rest


def main() -> None:
    parser = argparse.ArgumentParser(description="The wirehub chat example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
