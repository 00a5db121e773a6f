"""The event proxy example: a FastAPI backend decides who connects to wirehub, who
subscribes, what a message becomes, and answers RPCs, over HTTP.

Run it from the repository root with ``make example NAME=proxy`` (it installs what the
app needs first), or, once installed, ``.venv/bin/python examples/proxy/app.py --port
8010``: the backend on port 8010 and, beside it, ``wirehub serve --config
examples/proxy/wirehub.toml`` on port 8001, its proxies pointed at this backend. With
``--no-wirehub`` only the backend runs (wirehub then runs elsewhere, as in production;
the tests start both on their own).

wirehub POSTs each event to ``/centrifugo/<event>`` (connect, refresh, subscribe,
publish, rpc); ``backend.py`` decides, framework-free. ``http_server.py`` serves the
same with the standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from backend import EVENTS, RECORD, SESSION_COOKIE, Backend
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

HERE = Path(__file__).parent
CONFIG = HERE / "wirehub.toml"
# Where wirehub reads each proxy's endpoint from, overriding wirehub.toml: the app points
# them at the port it actually listens on.
ENDPOINT_VARIABLES = {
    "connect": "WIREHUB_CLIENT__PROXY__CONNECT__ENDPOINT",
    "refresh": "WIREHUB_CLIENT__PROXY__REFRESH__ENDPOINT",
    "subscribe": "WIREHUB_CHANNEL__PROXY__SUBSCRIBE__ENDPOINT",
    "publish": "WIREHUB_CHANNEL__PROXY__PUBLISH__ENDPOINT",
    "rpc": "WIREHUB_RPC__PROXY__ENDPOINT",
}
STOP_TIMEOUT = 15.0
_SERVING = re.compile(r"serving ws://\S+?:(\d+)/connection/websocket")
logger = logging.getLogger("uvicorn.error")  # uvicorn's configured logger: shown by default


class Login(BaseModel):
    user: str


def create_app(backend: Backend | None = None, *, wirehub: dict[str, str] | None = None) -> FastAPI:
    """The backend's app; with ``wirehub`` (its environment), the app also runs
    ``wirehub serve`` for its lifetime."""
    backend = backend or Backend()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if wirehub is None:
            yield
            return
        async with wirehub_serve(wirehub):
            yield

    app = FastAPI(title="wirehub proxy backend", lifespan=lifespan)

    @app.post("/centrifugo/{event}")
    async def proxy(event: str, request: Request) -> JSONResponse:
        if event not in EVENTS:
            raise HTTPException(404, f"no proxy event {event!r}")
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise HTTPException(400, "the body is not JSON") from None
        headers = {name.lower(): value for name, value in request.headers.items()}
        return JSONResponse(backend.handle(event, body, headers))

    @app.post("/login")
    async def login(form: Login, response: Response) -> dict[str, str]:
        session = backend.login(form.user)
        if session is None:
            raise HTTPException(404, f"no user {form.user!r}")
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="lax")
        return {"user": form.user, "session": session}

    @app.post("/logout")
    async def logout(request: Request, response: Response) -> dict[str, bool]:
        session = backend.session_of({k.lower(): v for k, v in request.headers.items()})
        response.delete_cookie(SESSION_COOKIE)
        return {"ended": backend.logout(session)}

    @app.get("/")
    async def index() -> PlainTextResponse:
        return PlainTextResponse(__doc__ or "")

    @app.get("/debug/calls")
    async def calls() -> list[dict[str, Any]]:
        if not backend.record:
            raise HTTPException(404, "set PROXY_EXAMPLE_RECORD=1 to record the calls")
        return list(backend.calls)

    return app


app = create_app()
"""For ``uvicorn app:app`` (from this folder): the backend alone."""


@asynccontextmanager
async def wirehub_serve(env: dict[str, str]) -> AsyncIterator[int]:
    """``wirehub serve --config wirehub.toml`` as a child process until the block ends;
    its log is passed through (``wirehub | ...``). Yields its port."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "wirehub", "serve", "--config", str(CONFIG)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
    )
    assert process.stdout is not None
    relay: asyncio.Task[None] | None = None
    try:
        port = 0
        while not port:
            line = await process.stdout.readline()
            if not line:
                raise RuntimeError("wirehub serve exited before it listened (its log is above)")
            if match := _SERVING.search(_show(line)):
                port = int(match.group(1))
        logger.info(
            "started wirehub serve (pid %d): clients at ws://127.0.0.1:%d/connection/websocket",
            process.pid,
            port,
        )
        relay = asyncio.create_task(_relay(process.stdout))
        yield port
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if relay is not None:
            await relay


async def _relay(stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        _show(line)


def _show(line: bytes) -> str:
    text = line.decode(errors="replace").rstrip()
    print(f"wirehub | {text}", flush=True)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description="The wirehub event proxy example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    parser.add_argument(
        "--wirehub",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run wirehub serve beside the backend (default: yes)",
    )
    parser.add_argument(
        "--wirehub-port",
        type=int,
        default=int(os.environ.get("PROXY_EXAMPLE_WIREHUB_PORT", "8001")),
        help="wirehub's port (default 8001, next to `make serve` on 8000; PROXY_EXAMPLE_WIREHUB_PORT; 0: a free one)",
    )
    args = parser.parse_args()
    # Bound here, before the app starts, so that wirehub is told the actual port.
    sock = socket.create_server((args.host, args.port))
    port = sock.getsockname()[1]
    wirehub = None
    if args.wirehub:
        base = f"http://{args.host}:{port}/centrifugo"
        wirehub = {variable: f"{base}/{event}" for event, variable in ENDPOINT_VARIABLES.items()}
        wirehub |= {
            "WIREHUB_SERVER__HOST": args.host,
            "WIREHUB_SERVER__PORT": str(args.wirehub_port),
        }
    if RECORD:
        logger.warning("PROXY_EXAMPLE_RECORD=1: the requests are kept for GET /debug/calls")
    config = uvicorn.Config(create_app(wirehub=wirehub), host=args.host, port=port)
    _Server(config).run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn on a socket bound beforehand, saying where it runs as it does otherwise."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if sockets:
            self._log_started_message(sockets)


if __name__ == "__main__":
    main()
