"""A real ``wirehub serve`` process on 127.0.0.1 and an ephemeral port, for tests."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["TIMEOUT", "ServerProcess", "timeout"]

_READY = re.compile(r"serving wss?://127\.0\.0\.1:(\d+)/connection/websocket")


def timeout(seconds: float) -> float:
    """A timeout scaled by WIREHUB_TESTS_TIMEOUT_FACTOR, for slow machines."""
    return seconds * float(os.environ.get("WIREHUB_TESTS_TIMEOUT_FACTOR", "1"))


TIMEOUT = timeout(10.0)


class ServerProcess:
    """Runs ``python -m wirehub serve`` with a TOML config (or none: ``args`` then say
    what to serve, e.g. ``--app``); stop() ends it."""

    def __init__(
        self,
        config_path: Path | None,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        args: Sequence[str] = (),
        fd_limit: int | None = None,
    ) -> None:
        self.config_path = config_path
        self.cwd = cwd
        self.args = list(args)
        self.fd_limit = fd_limit
        """The server's RLIMIT_NOFILE (open files, sockets included), if set."""
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.lines: list[str] = []
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._queue: queue.Queue[str | None] = queue.Queue()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connection/websocket"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "the server is not running"
        return self._proc.pid

    def start(self) -> ServerProcess:
        command = [sys.executable, "-m", "wirehub", "serve"]
        if self.config_path is not None:
            command += ["--config", str(self.config_path)]
        self._proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", "0", *self.args],
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            preexec_fn=self._limit_fds if self.fd_limit is not None else None,
        )
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for(_READY).group(1))
        return self

    def _limit_fds(self) -> None:
        assert self.fd_limit is not None
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, hard))

    def wait_for(self, pattern: re.Pattern[str] | str, wait: float = TIMEOUT) -> re.Match[str]:
        """Wait until the server logs a line matching ``pattern``; return the match."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in self.lines:
            if match := regex.search(line):
                return match
        while True:
            try:
                line = self._queue.get(timeout=wait)
            except queue.Empty:
                raise TimeoutError(f"no log line matched {regex.pattern!r}:\n{self.log}") from None
            if line is None:
                raise RuntimeError(f"the server exited; its log:\n{self.log}")
            if match := regex.search(line):
                return match

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, wait: float = TIMEOUT) -> int:
        """Send ``sig`` and wait for the exit; return the exit status."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            self._proc = None
            if proc.stdout is not None:
                self._reader.join(timeout=wait)
                proc.stdout.close()

    def _pump(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)


@contextlib.contextmanager
def serving(config: str, directory: Path, **options: Any) -> Iterator[ServerProcess]:
    """``wirehub serve`` on ``config`` (TOML text, written to ``directory``), started,
    and stopped afterwards even when it never said it was ready."""
    path = directory / "wirehub.toml"
    path.write_text(config, encoding="utf-8")
    process = ServerProcess(path, **options)
    try:
        yield process.start()
    finally:
        process.stop()
