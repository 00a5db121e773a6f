"""The collaborative editor example: a shared text document that several people edit at
once, each seeing the others' cursors.

Run it from the repository root with ``make example NAME=editor`` (it installs and bundles
what the page needs first), or, once built, ``.venv/bin/python examples/editor/app.py
--port 8010``; then open http://127.0.0.1:8010/ in two browser windows.

How it is built: the pages edit a Yjs document (CodeMirror 6 with y-codemirror.next) and
publish each change, a Yjs update, into ``doc:<name>``. The server's ``on_publish`` applies
every update to its own pycrdt copy (``documents.py``) before it is published, so that
copy holds every update up to the channel's latest offset. A newcomer GETs
``/docs/<name>``: the whole document as one update, with the stream position it covers;
it subscribes from that position and recovers only what came after. Cursors and names
travel as Yjs awareness updates through ``cursors:<name>``, whose presence says who is
editing.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from documents import Documents
from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles

from wirehub import (
    ClientError,
    ConnectingEvent,
    ConnectingReply,
    Credentials,
    Disconnect,
    Node,
    PublishEvent,
    create_app,
    load_config,
)

HERE = Path(__file__).parent
BUNDLE = HERE / "static/build/editor.js"  # npm run build --prefix examples/editor
logger = logging.getLogger("uvicorn.error")  # uvicorn's configured logger: shown by default

node = Node(load_config(HERE / "wirehub.toml"))
documents = Documents()


@node.on_connecting
async def let_writer_in(event: ConnectingEvent) -> ConnectingReply:
    """The connect data names the writer: ``{"name": "..."}``."""
    name = _json(event.data).get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 24:
        raise Disconnect(4501, "pick a name of 1 to 24 characters")  # terminal: no retry
    return ConnectingReply(credentials=Credentials(user=name.strip()))


@node.on_publish
async def check_update(event: PublishEvent) -> None:
    """``doc:*`` takes ``{"update": base64}``, applied to the server's copy first (a bad
    update is refused); ``cursors:*`` takes ``{"awareness": base64, ...}``."""
    namespace, _, name = event.channel.partition(":")
    data = _json(event.data)
    if namespace == "doc":
        try:
            documents.get(name).apply(_base64(data.get("update")))
        except (KeyError, ValueError):
            raise ClientError(4000, "not a Yjs update of a document") from None
    elif not isinstance(data.get("awareness"), str):
        raise ClientError(4000, "not an awareness update")


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"null")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if not BUNDLE.is_file():
        logger.error("%s is missing: run `npm run build --prefix %s`", BUNDLE, HERE)
    async with node:
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/rt", create_app(node))  # the browser connects to ws://host/rt/connection/websocket


@app.get("/docs/{name}")
async def snapshot(name: str) -> dict[str, Any]:
    """The document as one Yjs update, and the position of ``doc:<name>`` it covers."""
    try:
        document = documents.get(name)
    except KeyError:
        raise HTTPException(404, "no such document") from None
    # The position first: every update published up to it was applied to the document
    # before it was published, so the snapshot holds them all (and maybe a few later ones,
    # which Yjs ignores when they arrive again).
    position = (await node.history(f"doc:{name}")).position
    update, state_vector = document.snapshot()
    return {
        "update": base64.b64encode(update).decode(),
        "state_vector": base64.b64encode(state_vector).decode(),
        "offset": position.offset,
        "epoch": position.epoch,
    }


@app.get("/docs/{name}/text", response_class=PlainTextResponse)
def text(name: str) -> str:
    """The document's text, as the server has it."""
    try:
        return str(documents.get(name).text)
    except KeyError:
        raise HTTPException(404, "no such document") from None


app.mount("/", StaticFiles(directory=HERE / "static", html=True))  # last: it takes the rest


def main() -> None:
    parser = argparse.ArgumentParser(description="The wirehub collaborative editor example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
