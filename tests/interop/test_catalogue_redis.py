"""Reliability catalogue F1 on a real ``wirehub serve`` (``docs/reliability.md``): Redis,
without persistence, stops and starts again under a node. The server API's publish
fails at once with an error (never a hang, never a success for a publication that was
not kept); a recovering subscriber is told (2500), and its resubscription says
``recovered: false`` because the stream's epoch changed; service resumes by itself.

Raw clients (:mod:`tests.transports.rawws`, :mod:`tests.transports.rawhttp`) and a
redis-server of the test's own (``RedisServer``), never the shared one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis import RedisServer, unique_prefix
from tests.support.server import ServerProcess, timeout
from tests.transports.rawhttp import request
from tests.transports.rawws import RawWebSocket

pytestmark = pytest.mark.interop

API_KEY = "catalogue-redis-key"
FEED = "feed:news"


def config(url: str) -> str:
    return f"""
[client]
allow_anonymous_connect_without_token = true

[http_api]
key = "{API_KEY}"

[[channel.namespaces]]
name = "feed"
allow_subscribe_for_anonymous = true
allow_subscribe_for_client = true
history_size = 100
history_ttl = 300
allow_recovery = true

[engine]
type = "redis"

[engine.redis]
address = "{url}"
prefix = "{unique_prefix()}"
"""


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()  # no persistence
    yield server
    server.stop()


def publish(port: int, data: Any, *, transport_errors: bool = False) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", "X-API-Key": API_KEY}
    if transport_errors:
        headers["X-Centrifugo-Error-Mode"] = "transport"
    body = json.dumps({"channel": FEED, "data": data}).encode()
    response = request(port, "POST", "/api/publish", headers=headers, body=body)
    return response.status, json.loads(response.body)


def subscribe(ws: RawWebSocket) -> dict[str, Any]:
    (command_id,) = ws.send_commands({"subscribe": {"channel": FEED, "recoverable": True}})
    reply = ws.recv_reply(command_id)
    assert "subscribe" in reply, reply
    result: dict[str, Any] = reply["subscribe"]
    return result


def resubscribe(ws: RawWebSocket, **fields: Any) -> dict[str, Any]:
    """Subscribe as an SDK does after 2500: retried while the node's PUB/SUB connection
    is not back yet (error 100, temporary)."""
    deadline = time.monotonic() + timeout(20.0)
    while True:
        message = {"channel": FEED, "recoverable": True, "recover": True, **fields}
        (command_id,) = ws.send_commands({"subscribe": message})
        reply = ws.recv_reply(command_id)
        if "subscribe" in reply:
            result: dict[str, Any] = reply["subscribe"]
            return result
        assert reply["error"]["code"] == 100, reply
        assert time.monotonic() < deadline, reply
        time.sleep(0.2)


def next_push(ws: RawWebSocket, wait: float) -> dict[str, Any]:
    """The next push that is not a ping."""
    deadline = time.monotonic() + wait
    while True:
        for message in ws.recv_messages(deadline - time.monotonic()):
            if "push" in message:
                push: dict[str, Any] = message["push"]
                return push


def test_f1_redis_restart_without_persistence(
    own_redis: RedisServer, server_factory: Callable[[str], ServerProcess]
) -> None:
    server = server_factory(config(own_redis.url))
    port = server.port
    with RawWebSocket.open(port) as ws:
        ws.connect()
        first = subscribe(ws)
        assert first["recoverable"] is True
        status, answer = publish(port, {"n": 1})
        assert status == 200
        before = answer["result"]
        assert before["offset"] == 1
        push = next_push(ws, timeout(5.0))
        assert push["pub"]["data"] == {"n": 1}

        own_redis.stop()
        # The subscriber is told its stream may have gaps: unsubscribe 2500, resubscribe.
        told = next_push(ws, timeout(10.0))
        assert told == {
            "channel": FEED,
            "unsubscribe": {"code": 2500, "reason": "insufficient state"},
        }
        # The API fails at once, with an error; in the transport mode, a 500.
        started = time.monotonic()
        status, answer = publish(port, {"n": 2})
        assert (status, answer) == (
            200,
            {"error": {"code": 100, "message": "internal server error"}},
        )
        status, answer = publish(port, {"n": 2}, transport_errors=True)
        assert status == 500, answer
        assert time.monotonic() - started < timeout(10.0)  # io_timeout (4 s) at worst

        own_redis.start()
        deadline = time.monotonic() + timeout(20.0)
        while True:  # until the node's connections are back
            status, answer = publish(port, {"n": 3})
            if "result" in answer:
                break
            assert time.monotonic() < deadline, answer
            time.sleep(0.2)
        after = answer["result"]
        assert after["epoch"] != before["epoch"]  # a new stream: what it had is gone
        # The subscriber comes back from where it was: told it did not recover.
        again = resubscribe(ws, offset=1, epoch=before["epoch"])
        # recovered: false (omitted on the wire, as false fields are), nothing replayed
        # from the other stream; positioned at the new stream's top.
        assert again == {
            "recoverable": True,
            "positioned": True,
            "was_recovering": True,
            "epoch": after["epoch"],
            "offset": after["offset"],
        }
        status, answer = publish(port, {"n": 4})
        assert status == 200
        push = next_push(ws, timeout(5.0))
        assert push["pub"]["data"] == {"n": 4}
    # The failures were logged (with a traceback each, at error level), and the node
    # served on: the publish above went through the same process.
    assert "api publish failed" in server.log
