"""The notifications example: each user gets their own notifications, live as toasts and
a badge, and those sent while they were away as soon as they are back.

Run it from the repository root with ``make example NAME=notifications`` (it installs
what the app needs first), or, once installed, ``.venv/bin/python
examples/notifications/app.py --port 8010``; then open http://127.0.0.1:8010/ (a user's
page) and http://127.0.0.1:8010/admin (where things happen) side by side.

How it is built: two processes, as in production. ``wirehub serve`` (started here for the
demo, ``realtime.py``) holds the browsers' connections. This app is the backend: it signs
connection tokens and, when something happens to a user (the admin page's form, or the
made-up activity of ``events.py``), publishes into that user's channel
``notifications:#<user id>`` through wirehub's server HTTP API with the ``cent`` SDK,
exactly as a Django view or a Celery task would. The channel is user-limited: only the
user named after ``#`` may subscribe to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import time
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from cent import AsyncClient, BroadcastRequest, CentError, PublishRequest
from events import USERS, Notification, User, random_event
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from realtime import wirehub_serve

HERE = Path(__file__).parent
CONFIG = HERE / "wirehub.toml"
TOKEN_TTL = 3600
# Seconds between two random events while the admin page's "random activity" is on
# (NOTIFICATIONS_ACTIVITY_EVERY in the environment).
ACTIVITY_EVERY = float(os.environ.get("NOTIFICATIONS_ACTIVITY_EVERY", "4"))
VENDOR = {"centrifuge.mjs": HERE / "node_modules/centrifuge/build/index.mjs"}
logger = logging.getLogger("uvicorn.error")  # uvicorn's configured logger: shown by default


def _shared_secrets() -> tuple[str, str]:
    """The token secret and the API key: wirehub's, read where wirehub reads them (its
    config file, overridden by the same environment variables)."""
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    secret = os.environ.get("WIREHUB_CLIENT__TOKEN__HMAC_SECRET_KEY")
    api_key = os.environ.get("WIREHUB_HTTP_API__KEY")
    return (
        secret or config["client"]["token"]["hmac_secret_key"],
        api_key or config["http_api"]["key"],
    )


TOKEN_SECRET, API_KEY = _shared_secrets()


def channel_of(user: User) -> str:
    """The user's own channel: user-limited (``#``), so only they may subscribe."""
    return f"notifications:#{user.id}"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    host = getattr(app.state, "host", "127.0.0.1")
    async with (
        wirehub_serve(CONFIG, host=host) as wirehub,
        AsyncClient(wirehub.api_url, API_KEY) as cent,
    ):
        app.state.wirehub = wirehub
        app.state.cent = cent
        app.state.activity = None
        try:
            yield
        finally:
            await _set_activity(app, running=False)


app = FastAPI(lifespan=lifespan)


# Signing in: a connection token for one of the demo users.


class Login(BaseModel):
    user: str


@app.get("/users")
def users() -> list[dict[str, str]]:
    return [{"id": user.id, "name": user.name} for user in USERS.values()]


@app.post("/login")
def login(body: Login, request: Request) -> dict[str, Any]:
    """A connection token for ``user``, and where to connect (a real app checks a
    password or a session here)."""
    user = USERS.get(body.user)
    if user is None:
        raise HTTPException(404, "no such user")
    claims = {"sub": user.id, "exp": int(time.time()) + TOKEN_TTL, "info": {"name": user.name}}
    return {
        "token": jwt.encode(claims, TOKEN_SECRET, algorithm="HS256"),
        "user": user.id,
        "name": user.name,
        "channel": channel_of(user),
        "websocket_port": request.app.state.wirehub.port,
    }


# Something happens: publish into the user's channel through wirehub's server API.


class Send(Notification):
    to: str
    """A user id, or "*" for everyone."""


async def notify(cent: AsyncClient, users: list[User], notification: Notification) -> list[int]:
    """Publish ``notification`` to each user's channel; return each publication's offset
    in its channel's history (what a page that was away recovers from)."""
    data = notification.model_dump()
    if len(users) == 1:
        result = await cent.publish(PublishRequest(channel=channel_of(users[0]), data=data))
        return [result.offset]
    channels = [channel_of(user) for user in users]
    replies = (await cent.broadcast(BroadcastRequest(channels=channels, data=data))).responses
    offsets = []
    for reply in replies:
        if reply.error is not None or reply.result is None:
            raise CentError(f"broadcast failed: {reply.error}")
        offsets.append(reply.result.offset)
    return offsets


@app.post("/notify")
async def send(body: Send, request: Request) -> dict[str, Any]:
    """The admin page's form: one user, or everyone."""
    if body.to == "*":
        targets = list(USERS.values())
    elif body.to in USERS:
        targets = [USERS[body.to]]
    else:
        raise HTTPException(404, "no such user")
    notification = Notification(kind=body.kind, title=body.title, body=body.body)
    try:
        offsets = await notify(request.app.state.cent, targets, notification)
    except CentError as exc:  # wirehub is down, say: the page shows why
        logger.warning("could not notify: %s", exc)
        raise HTTPException(502, f"wirehub did not take it: {exc}") from None
    return {"sent": [{"user": u.id, "offset": o} for u, o in zip(targets, offsets, strict=True)]}


class Activity(BaseModel):
    running: bool


@app.get("/activity")
def activity(request: Request) -> Activity:
    return Activity(running=request.app.state.activity is not None)


@app.post("/activity")
async def set_activity(body: Activity, request: Request) -> Activity:
    """Start or stop the made-up activity: a random event every few seconds."""
    await _set_activity(request.app, running=body.running)
    return Activity(running=body.running)


async def _set_activity(app: FastAPI, *, running: bool) -> None:
    task: asyncio.Task[None] | None = app.state.activity
    if running and task is None:
        app.state.activity = asyncio.create_task(_activity(app.state.cent))
    elif not running and task is not None:
        app.state.activity = None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _activity(cent: AsyncClient) -> None:
    rng = random.Random()
    while True:
        user, notification = random_event(rng)
        try:
            await notify(cent, [user], notification)
        except CentError as exc:  # wirehub restarting, say: try again next time
            logger.warning("could not notify user %s: %s", user.id, exc)
        await asyncio.sleep(ACTIVITY_EVERY)


# Pages.


@app.get("/admin")
def admin() -> FileResponse:
    return FileResponse(HERE / "static/admin.html")


@app.get("/vendor/{name}")
def vendor(name: str) -> FileResponse:
    path = VENDOR.get(name)
    if path is None or not path.is_file():
        raise HTTPException(404, f"{name} is missing: run `npm ci --prefix {HERE}`")
    return FileResponse(path, media_type="text/javascript")


app.mount("/", StaticFiles(directory=HERE / "static", html=True))  # last: it takes the rest


def main() -> None:
    parser = argparse.ArgumentParser(description="The wirehub notifications example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    args = parser.parse_args()
    app.state.host = args.host  # wirehub listens there too (browsers connect to it)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
