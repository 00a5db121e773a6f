"""``wirehub serve --workers N``: N processes on one port behave as one server."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.procnet import owner_of
from tests.support.redis import delete_prefix, redis_url, require_redis, unique_prefix
from tests.support.server import ServerProcess
from tests.transports.rawws import RawWebSocket
from wirehub.cli import main

CHANNEL = "chat:x"


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
def redis_toml() -> Iterator[str]:
    url = redis_url()
    require_redis(url)
    prefix = unique_prefix()
    yield f"""
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
    delete_prefix(url, prefix)


def subscribed_client(port: int) -> RawWebSocket:
    ws = RawWebSocket.open(port)
    ws.connect()
    (command_id,) = ws.send_commands({"subscribe": {"channel": CHANNEL}})
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
