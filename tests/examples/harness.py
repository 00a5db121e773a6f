"""Run an app of examples/ as its README says, and open its page in Chromium."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page
from websockets.sync.client import ClientConnection, connect

from tests.support.server import TIMEOUT

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "EXAMPLES",
    "WAIT_MS",
    "AppProcess",
    "PageErrors",
    "Session",
    "running",
    "session",
]

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = TIMEOUT * 1000
_RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
# How an app that starts processes of its own names them in its log (e.g. the
# notifications app's `wirehub serve`): they must end with it.
_CHILD = re.compile(r"started (.+?) \(pid (\d+)\)")


class AppProcess:
    """``python examples/NAME/app.py --port 0`` (the README's command on a free port);
    ``url`` is where it serves once started; stop() ends it by its PID. The processes
    the app starts itself, if any, are in :attr:`children`."""

    def __init__(self, name: str, *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.lines: list[str] = []
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._queue: queue.Queue[str | None] = queue.Queue()

    def start(self) -> AppProcess:
        self._proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / self.name / "app.py"), "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = self.wait_for(_RUNNING).group(1)
        return self

    def wait_for(self, pattern: re.Pattern[str], wait: float = TIMEOUT) -> re.Match[str]:
        """Wait until the app logs a line matching ``pattern``; return the match."""
        for line in self.lines:
            if match := pattern.search(line):
                return match
        while True:
            try:
                line = self._queue.get(timeout=wait)
            except queue.Empty:
                raise TimeoutError(f"no line matched {pattern.pattern!r}:\n{self.log}") from None
            if line is None:
                raise RuntimeError(f"examples/{self.name} exited; its output:\n{self.log}")
            if match := pattern.search(line):
                return match

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @property
    def children(self) -> dict[int, str]:
        """What the app says it started, ``started <what> (pid N)``, by process id."""
        return {int(m.group(2)): m.group(1) for m in _CHILD.finditer(self.log)}

    def orphans(self) -> dict[int, str]:
        """:attr:`children` still running once the app is stopped: each is killed (by its
        PID) and returned, for the caller to fail on."""
        left = {}
        for pid, what in self.children.items():
            try:
                os.kill(pid, 0)  # checked a few ms after the app ended: not a reused PID
            except ProcessLookupError:
                continue
            os.kill(pid, signal.SIGKILL)
            left[pid] = what
        return left

    def stop(self) -> int:
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        proc.terminate()
        try:
            return proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def _pump(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)


@contextmanager
def running(name: str, *, env: dict[str, str] | None = None) -> Iterator[AppProcess]:
    app = AppProcess(name, env=env).start()
    try:
        yield app
    finally:
        status = app.stop()
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert status in (0, -signal.SIGTERM), f"examples/{name} exited with {status}:\n{app.log}"
        assert "Application shutdown complete" in app.log, app.log
        assert "Traceback" not in app.log, app.log
        assert app.orphans() == {}, f"examples/{name} left processes running:\n{app.log}"


@dataclass
class PageErrors:
    """Console errors and uncaught exceptions of the pages opened through it."""

    errors: list[str] = field(default_factory=list)

    def open(self, where: Browser | BrowserContext, url: str) -> Page:
        """A page at ``url``: in a browser context of its own, or in ``where`` when it is
        a context (its storage shared with the context's other pages, closed or not)."""
        context = where.new_context() if isinstance(where, Browser) else where
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"console: {message.text} ({message.location})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.goto(url)
        return page


class Session:
    """The client protocol spoken by hand, in JSON, over a blocking WebSocket: for what
    the pages never send (bad input). ``call`` returns the reply to one command."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._id = 0

    def call(self, **command: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, **command}))
        while True:  # pushes (no id) may come first
            for line in str(self.ws.recv(timeout=TIMEOUT)).splitlines():
                reply: dict[str, Any] = json.loads(line)
                if reply.get("id") == self._id:
                    return reply


@contextmanager
def session(app: AppProcess, url: str = "") -> Iterator[Session]:
    """A :class:`Session` with the app's wirehub (mounted at ``/rt``, or at ``url``),
    closed on exit."""
    url = url or app.url.replace("http://", "ws://", 1) + "/rt/connection/websocket"
    with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        yield Session(ws)
