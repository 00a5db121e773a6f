"""The runnable examples the README points to, run as the README says."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from centrifuge import Client, PublicationContext, ReplyError, SubscriptionEventHandler

from tests.docs.readme import ROOT
from tests.support.pysdk import disconnect
from tests.support.server import ServerProcess, timeout

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

WAIT = timeout(10)


class Inbox(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.publications: asyncio.Queue[object] = asyncio.Queue()

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self.publications.put(ctx.pub.data)


@asynccontextmanager
async def connected(url: str, **options: object) -> AsyncIterator[Client]:
    client = Client(url, **options)  # type: ignore[arg-type]
    await client.connect()
    try:
        yield client
    finally:
        await disconnect(client)


async def test_handlers_example() -> None:
    """`wirehub serve --app examples/handlers.py:create_node`, the README's command."""
    server = ServerProcess(
        ROOT / "config/development.toml",
        cwd=ROOT,
        args=["--app", "examples/handlers.py:create_node"],
    ).start()
    try:
        cookie = {"Cookie": "theme=dark; session=session-of-alice"}
        async with connected(server.ws_url, headers=cookie) as alice:
            result = await alice.rpc("shout", "hello")
            assert result.data == {"text": "HELLO", "user": "alice"}
            with pytest.raises(ReplyError) as refused:
                await alice.rpc("whisper", "hello")
            assert refused.value.code == 404
        async with connected(server.ws_url) as anonymous:  # no session: the config's rule
            assert (await anonymous.rpc("shout", "hi")).data == {"text": "HI", "user": ""}
            inbox = Inbox()
            sub = anonymous.new_subscription("chat:lobby", inbox)
            await sub.subscribe()
            await sub.ready(WAIT)
            with pytest.raises(ReplyError) as spam:
                await sub.publish({"text": "buy spam"})
            assert spam.value.code == 4000
            await sub.publish({"text": "fine"})
            assert await asyncio.wait_for(inbox.publications.get(), WAIT) == {"text": "fine"}
    finally:
        server.stop()


@pytest.fixture
def fastapi_example() -> Iterator[int]:
    """The README's uvicorn command, on a free port; yields the port."""
    command = [sys.executable, "-m", "uvicorn", "--app-dir", "examples/fastapi_embed", "app:app"]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield _uvicorn_port(proc)
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT)
        assert proc.stdout is not None
        proc.stdout.close()


async def test_fastapi_example(fastapi_example: int) -> None:
    """A token from the app's /token route, then an announcement published by its route."""
    port = fastapi_example
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        token = (await http.get("/token", params={"user": "alice"})).json()["token"]
        url = f"ws://127.0.0.1:{port}/rt/connection/websocket"
        async with connected(url, token=token) as client:
            inbox = Inbox()
            sub = client.new_subscription("chat:lobby", inbox)
            await sub.subscribe()
            await sub.ready(WAIT)  # subscribe() only starts it: publishing first races it
            response = await http.post("/announce", json={"text": "hello"})
            assert response.status_code == 200
            assert response.json()["offset"] == 1
            data = await asyncio.wait_for(inbox.publications.get(), WAIT)
            assert data == {"name": "server", "text": "hello"}


def _uvicorn_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    # Bounded by uvicorn itself: it logs the line or exits (a bad app fails at import).
    for line in proc.stdout:
        if match := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line):
            return int(match.group(1))
    raise RuntimeError("uvicorn exited before serving")


def test_example_config_loads() -> None:
    """The example's wirehub.toml is a valid configuration that lets clients in."""
    from wirehub import load_config

    config = load_config(Path(ROOT / "examples/fastapi_embed/wirehub.toml"), environ=False)
    assert config.client.token.hmac_secret_key
    assert json.dumps(config.model_dump())  # nothing exotic in it
