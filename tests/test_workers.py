"""``wirehub serve --workers N``: N processes on one port behave as one server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.interop.test_tls import make_certificate
from tests.support.procnet import owner_of
from tests.support.redis import delete_prefix, redis_url, require_redis, unique_prefix
from tests.support.server import ServerProcess, timeout
from tests.transports.rawws import RawWebSocket
from wirehub.cli import main

CHANNEL = "chat:x"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WIREHUB_"):
            monkeypatch.delenv(name)


def test_the_memory_engine_refuses_several_workers() -> None:
    result = CliRunner().invoke(main, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith('wirehub: --workers 2 needs engine.type = "redis"')
    assert "reach only the clients of the worker" in line
    result = CliRunner().invoke(main, ["serve", "--workers", "0"])
    assert result.exit_code == 2


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """The Redis of the tests and a key prefix of this test's own, removed afterwards."""
    url = redis_url()
    require_redis(url)
    prefix = unique_prefix()
    yield url, prefix
    delete_prefix(url, prefix)


@pytest.fixture
def redis_toml(redis_prefix: tuple[str, str]) -> str:
    url, prefix = redis_prefix
    return f"""
[client]
allow_anonymous_connect_without_token = true

[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_subscriber = true
allow_publish_for_anonymous = true

[engine]
type = "redis"

[engine.redis]
address = "{url}"
prefix = "{prefix}"
"""


def subscribed_client(
    port: int, *, path: str = "/connection/websocket", channel: str = CHANNEL
) -> RawWebSocket:
    ws = RawWebSocket.open(port, path)
    ws.connect()
    (command_id,) = ws.send_commands({"subscribe": {"channel": channel}})
    assert "subscribe" in ws.recv_reply(command_id)
    return ws


def publications(ws: RawWebSocket, count: int) -> list[Any]:
    found: list[Any] = []
    while len(found) < count:
        for message in ws.recv_messages():
            pub = message.get("push", {}).get("pub")
            if pub is not None:
                found.append(pub["data"])
    return found


def test_two_workers_behave_as_one_server(
    server_factory: Callable[..., ServerProcess], redis_toml: str
) -> None:
    """Clients spread over both workers (checked in /proc: which process holds each
    connection) all receive every publication, whichever worker it was made on; a
    SIGTERM closes every connection with 3001 and the server exits 0."""
    server = server_factory(redis_toml, args=("--workers", "2"))
    pids = [int(server.wait_for(rf"worker {n}/2, pid (\d+)").group(1)) for n in (1, 2)]
    by_worker: dict[int, list[RawWebSocket]] = {pid: [] for pid in pids}
    clients = []
    try:
        for _ in range(60):
            ws = subscribed_client(server.port)
            clients.append(ws)
            owner = owner_of(ws.sock.getsockname()[1], server.port, pids)
            assert owner is not None, "no worker holds the connection"
            by_worker[owner].append(ws)
            if min(len(held) for held in by_worker.values()) >= 2:
                break
        assert min(len(held) for held in by_worker.values()) >= 2, {
            pid: len(held) for pid, held in by_worker.items()
        }
        for n, pid in enumerate(pids, start=1):
            by_worker[pid][0].send_commands({"publish": {"channel": CHANNEL, "data": {"n": n}}})
        for ws in clients:
            assert sorted(p["n"] for p in publications(ws, 2)) == [1, 2]
        os.kill(server.pid, signal.SIGTERM)
        for ws in clients:
            assert ws.recv_close().code == 3001
        assert server.stop() == 0
    finally:
        for ws in clients:
            ws.close()


def test_a_dead_worker_stops_the_others(
    server_factory: Callable[..., ServerProcess], redis_toml: str
) -> None:
    """A worker killed from outside takes the server down (exit 1, logged), rather than
    leaving it to run on with half its capacity and nobody told."""
    server = server_factory(redis_toml, args=("--workers", "2"))
    pids = [int(server.wait_for(rf"worker {n}/2, pid (\d+)").group(1)) for n in (1, 2)]
    os.kill(pids[0], signal.SIGKILL)
    server.wait_for(r"wirehub-worker-1 exited with status -9: stopping the others")
    assert server.stop() == 1


def test_the_fastapi_example_under_uvicorn_workers(redis_prefix: tuple[str, str]) -> None:
    """examples/fastapi_redis.py, run as its docstring says (uvicorn --workers 2): a
    publication made through the app's route in one worker reaches clients of both."""
    url, prefix = redis_prefix
    port = _free_port()
    env = {
        **os.environ,
        "WIREHUB_ENGINE__REDIS__ADDRESS": url,
        "WIREHUB_ENGINE__REDIS__PREFIX": prefix,
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "uvicorn", "examples.fastapi_redis:app"]
    command += ["--workers", "2", "--port", str(port), "--log-level", "info"]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    clients: list[RawWebSocket] = []
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while sum("Application startup complete" in line for line in lines) < 2:
            line = proc.stdout.readline()
            assert line, "uvicorn exited:\n" + "".join(lines)
            lines.append(line)
        workers = _children(proc.pid)
        assert len(workers) == 2, workers
        held: dict[int, int] = dict.fromkeys(workers, 0)
        for _ in range(60):
            ws = subscribed_client(port, path="/rt/connection/websocket", channel="chat:lobby")
            clients.append(ws)
            owner = owner_of(ws.sock.getsockname()[1], port, workers)
            assert owner is not None
            held[owner] += 1
            if min(held.values()) >= 1:
                break
        assert min(held.values()) >= 1, held
        response = httpx.post(f"http://127.0.0.1:{port}/notify/lobby", json={"n": 1})
        assert response.status_code == 200, response.text
        assert response.json() == {"offset": 1}
        for ws in clients:
            assert publications(ws, 1) == [{"n": 1}]
    finally:
        for ws in clients:
            ws.close()
        proc.terminate()
        try:
            proc.wait(timeout=timeout(30))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _children(pid: int) -> list[int]:
    """The worker processes of ``pid`` (multiprocessing's resource tracker left out)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(p) for p in (task / "children").read_text().split())
    return [
        child for child in found if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_workers_serve_tls(
    server_factory: Callable[..., ServerProcess], redis_toml: str, tmp_path: Path
) -> None:
    """``server.tls`` with ``--workers``: each worker serves the parent's socket over TLS
    (wirehub's listener, handshake timeout included)."""
    certificate = make_certificate(tmp_path)
    tls = f"""
[server.tls]
enabled = true
cert_pem_file = "{certificate.cert}"
key_pem_file = "{certificate.key}"
"""
    server = server_factory(redis_toml + tls, args=("--workers", "2"))
    assert "serving wss://127.0.0.1:" in server.log
    context = certificate.client_context()
    for _ in range(4):  # whichever worker accepts, it speaks TLS
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=timeout(5.0)) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            sock.sendall(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
