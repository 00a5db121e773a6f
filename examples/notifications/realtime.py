"""``wirehub serve`` next to the app, for the demo: one command runs both.

In production wirehub is a service of its own (``wirehub serve --config wirehub.toml``
under systemd, in a container, several nodes on Redis), and the backend is only told its
two addresses: where browsers connect, and the server API on the internal port. Here
the app starts it as a child process on free ports, reads both addresses from its log,
passes the rest of its log through, and stops it on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Wirehub", "wirehub_serve"]

logger = logging.getLogger("uvicorn.error")  # uvicorn's configured logger: shown by default

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# What `wirehub serve` logs once it listens (both lines, plain text or JSON).
_PUBLIC = re.compile(r"serving ws://\S+?:(\d+)/connection/websocket")
_INTERNAL = re.compile(r"internal endpoints at (http://\S+?:\d+)")


@dataclass(frozen=True)
class Wirehub:
    """A running ``wirehub serve``: its ports and process id."""

    port: int
    """Client connections: ``ws://<its host>:<port>/connection/websocket``."""
    internal_url: str
    """The server API at ``<internal_url>/api``, metrics and health: loopback only."""
    pid: int

    @property
    def api_url(self) -> str:
        return f"{self.internal_url}/api"


@asynccontextmanager
async def wirehub_serve(config: Path, *, host: str = "127.0.0.1") -> AsyncIterator[Wirehub]:
    """Run ``wirehub serve --config config`` on free ports until the block ends."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "wirehub", "serve", "--config", str(config)),
        *("--host", host, "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    stopping = asyncio.Event()
    relay: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            port, internal_url = await _listening(process.stdout)
        running = Wirehub(port, internal_url, process.pid)
        logger.info(
            "started wirehub serve (pid %d): clients at ws://%s:%d/connection/websocket, "
            "server API at %s",
            process.pid,
            host,
            port,
            running.api_url,
        )
        relay = asyncio.create_task(_relay(process.stdout, stopping))
        yield running
    finally:
        stopping.set()
        await _stop(process)
        if relay is not None:  # the end of its log
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT):
                    await relay


async def _listening(stream: asyncio.StreamReader) -> tuple[int, str]:
    """Relay the log until both addresses are in it; return (port, internal URL)."""
    port, internal = 0, ""
    while not (port and internal):
        line = await stream.readline()
        if not line:
            raise RuntimeError("wirehub serve exited before it listened (its log is above)")
        text = _show(line)
        if match := _PUBLIC.search(text):
            port = int(match.group(1))
        if match := _INTERNAL.search(text):
            internal = match.group(1)
    return port, internal


async def _relay(stream: asyncio.StreamReader, stopping: asyncio.Event) -> None:
    while line := await stream.readline():
        _show(line)
    if not stopping.is_set():
        logger.error("wirehub serve exited: notifications cannot be sent (restart the app)")


def _show(line: bytes) -> str:
    text = line.decode(errors="replace").rstrip()
    print(f"wirehub | {text}", flush=True)
    return text


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
            process.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
    logger.info("wirehub serve (pid %d) exited with status %s", process.pid, process.returncode)
