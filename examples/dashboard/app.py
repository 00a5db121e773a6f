"""The live dashboard example: this machine's CPU, memory and network, and a simulated
order book, drawn live; a page that loses its connection catches up when it is back.

Run it from the repository root with ``make example NAME=dashboard`` (it installs what the
app needs first), or, once installed, ``.venv/bin/python examples/dashboard/app.py --port
8010``; then open http://127.0.0.1:8010/.

How it is built: a FastAPI app runs a wirehub :class:`~wirehub.Node` and the producer
(``producer.py``) in its lifespan, and mounts wirehub at ``/rt``. The producer publishes
into two channels with history; the page subscribes to both, draws with uPlot, and checks
the ``seq`` of every publication: recovery must leave no gap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from producer import produce

from wirehub import Node, create_app, load_config

HERE = Path(__file__).parent
logger = logging.getLogger("uvicorn.error")  # uvicorn's configured logger: shown by default
# Publications per second on each channel (DASHBOARD_RATE in the environment).
RATE = float(os.environ.get("DASHBOARD_RATE", "5"))
# Browser modules and styles, from this folder's node_modules (npm ci --prefix ...).
VENDOR = {
    "centrifuge.mjs": HERE / "node_modules/centrifuge/build/index.mjs",
    "uPlot.esm.js": HERE / "node_modules/uplot/dist/uPlot.esm.js",
    "uPlot.min.css": HERE / "node_modules/uplot/dist/uPlot.min.css",
}

node = Node(load_config(HERE / "wirehub.toml"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with node:  # the node first: the producer publishes through it
        producer = asyncio.create_task(produce(node, rate=RATE))
        producer.add_done_callback(_report_crash)
        try:
            yield
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the producer stopped", exc_info=task.exception())


app = FastAPI(lifespan=lifespan)
app.mount("/rt", create_app(node))  # the browser connects to ws://host/rt/connection/websocket


@app.get("/vendor/{name}")
def vendor(name: str) -> FileResponse:
    path = VENDOR.get(name)
    if path is None or not path.is_file():
        raise HTTPException(404, f"{name} is missing: run `npm ci --prefix {HERE}`")
    kind = "text/css" if path.suffix == ".css" else "text/javascript"
    return FileResponse(path, media_type=kind)


app.mount("/", StaticFiles(directory=HERE / "static", html=True))  # last: it takes the rest


def main() -> None:
    parser = argparse.ArgumentParser(description="The wirehub live dashboard example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
