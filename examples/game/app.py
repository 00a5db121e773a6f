"""The multiplayer game example: a shared arena where players steer with the keyboard and
collect orbs; the server runs the game.

Run it from the repository root with ``make example NAME=game`` (it installs what the app
needs first), or, once installed, ``.venv/bin/python examples/game/app.py --port 8010``;
then open http://127.0.0.1:8010/ in two browser windows side by side.

How it is built: the game (``game.py``) is plain Python; this file connects it to wirehub.
A player connects with its name in the connect data (``on_connecting``), and the server
subscribes it to ``game:arena``. The keys it holds reach the server by ``send``
(``on_message``), a dash by ``rpc`` (``on_rpc``); the game loop, a task in the lifespan,
moves everybody and publishes the whole state at a fixed tick rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from game import HEIGHT, WIDTH, Arena

from wirehub import (
    ClientError,
    ConnectEvent,
    ConnectingEvent,
    ConnectingReply,
    Credentials,
    Disconnect,
    DisconnectEvent,
    MessageEvent,
    Node,
    RPCEvent,
    RPCReply,
    create_app,
    load_config,
)

HERE = Path(__file__).parent
ARENA = "game:arena"
# Game steps (and state publications) per second (GAME_TICK_RATE in the environment).
TICK_RATE = float(os.environ.get("GAME_TICK_RATE", "20"))
VENDOR = {"centrifuge.mjs": HERE / "node_modules/centrifuge/build/index.mjs"}
logger = logging.getLogger("uvicorn.error")  # uvicorn's configured logger: shown by default

node = Node(load_config(HERE / "wirehub.toml"))
arena = Arena()


@node.on_connecting
async def let_player_in(event: ConnectingEvent) -> ConnectingReply:
    """The connect data names the player: ``{"name": "..."}``."""
    name = _json(event.data).get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 16:
        raise Disconnect(4501, "pick a name of 1 to 16 characters")  # terminal: no retry
    return ConnectingReply(
        credentials=Credentials(user=name.strip()),
        data={"width": WIDTH, "height": HEIGHT, "tick_rate": TICK_RATE},
        channels=(ARENA,),  # a server-side subscription: the page need not subscribe
    )


@node.on_connect
async def enter(event: ConnectEvent) -> None:
    arena.join(event.client_id, event.user)


@node.on_disconnect
async def leave(event: DisconnectEvent) -> None:
    arena.leave(event.client_id)


@node.on_message
async def steer(event: MessageEvent) -> None:
    """``send({x, y})``: the direction the player's keys point to, each -1, 0 or 1."""
    data = _json(event.data)
    x, y = data.get("x"), data.get("y")
    if isinstance(x, int) and isinstance(y, int):
        arena.steer(event.client_id, x, y)


@node.on_rpc
async def rpc(event: RPCEvent) -> RPCReply:
    if event.method == "dash":
        return RPCReply(data={"cooldown": arena.dash(event.client_id)})
    raise ClientError(4004, f"no method {event.method!r}")


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"null")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def game_loop() -> None:
    """Step the game and publish its state, TICK_RATE times a second."""
    loop = asyncio.get_running_loop()
    period = 1.0 / TICK_RATE
    next_at = loop.time()
    while True:
        arena.step(period)
        if arena.players:
            await node.publish(ARENA, arena.snapshot())
        # A late tick is not made up for: the game slows down rather than jumps.
        next_at = max(next_at + period, loop.time())
        await asyncio.sleep(next_at - loop.time())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with node:
        loop_task = asyncio.create_task(game_loop())
        loop_task.add_done_callback(_report_crash)
        try:
            yield
        finally:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the game loop stopped", exc_info=task.exception())


app = FastAPI(lifespan=lifespan)
app.mount("/rt", create_app(node))  # the browser connects to ws://host/rt/connection/websocket


@app.get("/vendor/{name}")
def vendor(name: str) -> FileResponse:
    path = VENDOR.get(name)
    if path is None or not path.is_file():
        raise HTTPException(404, f"{name} is missing: run `npm ci --prefix {HERE}`")
    return FileResponse(path, media_type="text/javascript")


app.mount("/", StaticFiles(directory=HERE / "static", html=True))  # last: it takes the rest


def main() -> None:
    parser = argparse.ArgumentParser(description="The wirehub multiplayer game example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
