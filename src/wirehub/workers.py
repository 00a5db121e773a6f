"""``wirehub serve --workers N``: N processes on one port, each a node of the engine.

The parent binds the listening socket once and hands it to N worker processes
(spawned, not forked), each serving it with its own event loop and its own
:class:`~wirehub.core.node.Node`; the kernel spreads new connections over the
processes accepting on it. The nodes share nothing but the engine, so the engine must
be one that crosses processes (``engine.type = "redis"``).

Rules:

1. SIGINT or SIGTERM to the parent: every worker gets one SIGTERM and shuts down
   gracefully (clients get 3001 "shutdown" and reconnect elsewhere); the parent waits
   for them, then exits 0. Workers ignore SIGINT themselves, so a terminal's Ctrl-C
   (sent to the whole process group) is not taken as a second, forceful signal.
2. A worker that exits on its own takes the others down with it, and the parent exits
   1: a supervisor (systemd, Kubernetes) restarts the whole, rather than wirehub running
   on with less capacity than configured and nobody told.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from wirehub.config import Config

__all__ = ["check_workers", "serve_workers"]

logger = logging.getLogger("wirehub")

# How long the parent waits for workers to shut down (uvicorn's own graceful timeout
# is 30 s), before it kills them.
_STOP_GRACE = 40.0


def check_workers(config: Config, workers: int) -> str | None:
    """Why ``workers`` can't serve ``config`` (one line), or None."""
    if workers > 1 and config.engine.type == "memory":
        return (
            f'--workers {workers} needs engine.type = "redis": with the in-memory engine '
            "each worker would be a separate server, and a publication would reach only "
            "the clients of the worker it was made on"
        )
    return None


def _bind(config: Config) -> socket.socket:
    host, port = config.server.host, config.server.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(
    config: Config, sock: socket.socket, index: int, count: int, app_target: str | None
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from wirehub.cli import run
    from wirehub.loader import build_node, load_app

    # Each worker imports the application itself: a Node can't cross processes.
    node = build_node(load_app(app_target), config) if app_target is not None else None
    run(config, node, sockets=[sock], worker=f"worker {index}/{count}")


def serve_workers(config: Config, workers: int, app_target: str | None = None) -> int:
    """Serve ``config`` with ``workers`` processes until a signal; return the exit status.

    ``app_target``: ``--app``'s module:name, imported by each worker for its own node."""
    sock = _bind(config)
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = [
        context.Process(
            target=_worker,
            args=(config, sock, n, workers, app_target),
            name=f"wirehub-worker-{n}",
        )
        for n in range(1, workers + 1)
    ]
    wake_r, wake_w = socket.socketpair()
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        wake_w.send(b"\0")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            process.start()
        sock.close()  # the workers hold it now
        sentinels = {process.sentinel: process for process in processes}
        ready = wait([*sentinels, wake_r])
        status = 0 if stopping else 1  # decided by what happened first
        if not stopping:
            for exited in (sentinels[item] for item in ready if isinstance(item, int)):
                exited.join(1.0)  # its sentinel closes a moment before it can be reaped
                logger.error(
                    "%s exited with status %s: stopping the others", exited.name, exited.exitcode
                )
        _stop(processes)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        wake_r.close()
        wake_w.close()
    return status


def _stop(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(_STOP_GRACE)
        if process.is_alive():
            logger.error("%s did not stop in %g s: killing it", process.name, _STOP_GRACE)
            process.kill()
            process.join()
