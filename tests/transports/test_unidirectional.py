"""Unidirectional transports of a real ``wirehub serve`` with clients that have no SDK:
``uni_http_stream`` and ``uni_sse`` with curl-like raw HTTP (:mod:`tests.transports.rawhttp`),
``uni_websocket`` with a raw WebSocket client (:mod:`tests.transports.rawws`).

``centrifugo-protocol.md`` §6.6 and ``centrifugo-server-side.md`` §8: the connect request
from the query or the body (or the first WebSocket message), bare pushes (the first a
``connect`` push with the session and no pong), pings as empty pushes that need no
answer, connect failures as ``disconnect`` pushes before the end.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.interop.helpers import SECRET, make_token
from tests.support.server import ServerProcess, serving
from tests.transports.rawhttp import RawStream, request
from tests.transports.rawws import PING, PONG, TEXT, RawWebSocket, http_upgrade

API_KEY = "unidirectional-test-key"
PING_INTERVAL = 1

CONFIG = f"""
[client]
allow_anonymous_connect_without_token = true
ping_interval = {PING_INTERVAL}
pong_timeout = 0.5

[client.token]
hmac_secret_key = "{SECRET}"

[http_api]
key = "{API_KEY}"

[uni_websocket]
enabled = true

[uni_sse]
enabled = true

[uni_http_stream]
enabled = true

[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true

[[channel.namespaces]]
name = "locked"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(CONFIG, tmp_path_factory.mktemp("uni")) as process:
        yield process


@pytest.fixture
def port(server: ServerProcess) -> int:
    return server.port


def channel() -> str:
    return f"chat:{uuid.uuid4().hex}"


def api(port: int, method: str, **params: Any) -> dict[str, Any]:
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    response = request(
        port, "POST", f"/api/{method}", headers=headers, body=json.dumps(params).encode()
    )
    assert response.status == 200, response
    result: dict[str, Any] = json.loads(response.body)
    assert "error" not in result, result
    return result


def connect_query(connect: dict[str, Any]) -> str:
    return "cf_connect=" + quote(json.dumps(connect))


def check_connect_push(message: dict[str, Any] | None, subs: list[str]) -> dict[str, Any]:
    assert message is not None
    assert set(message) == {"connect"}, message
    connect: dict[str, Any] = message["connect"]
    assert connect["client"]
    assert connect["session"]
    assert connect["session"] != connect["client"]
    assert "pong" not in connect  # no pongs
    assert "node" not in connect  # no emulation
    assert connect["ping"] == PING_INTERVAL
    assert sorted(connect.get("subs", {})) == sorted(subs)
    return connect


def test_uni_http_stream_with_raw_http(port: int) -> None:
    chat = channel()
    body = json.dumps({"subs": {chat: {}}}).encode()
    with RawStream.open(port, "POST", "/connection/uni_http_stream", body=body) as stream:
        assert stream.status == 200
        assert "no-cache" in stream.response.headers["cache-control"]
        connect = check_connect_push(stream.next_message(), [chat])

        api(port, "publish", channel=chat, data={"text": "hello"})
        assert next_push(stream) == {"channel": chat, "pub": {"data": {"text": "hello"}}}
        # Pings are empty pushes, never answered: the stream outlives several.
        pings = 0
        while pings < 3:
            assert stream.next_message() == {}
            pings += 1
        api(port, "publish", channel=chat, data={"text": "still here"})
        assert next_push(stream) == {"channel": chat, "pub": {"data": {"text": "still here"}}}

        api(port, "disconnect", user="", client=connect["client"])
        last = stream.messages_until_end()
        assert [set(m) for m in last] == [{"disconnect"}], last
        assert last[0]["disconnect"]["code"] == 3503


def test_uni_sse_with_raw_http_get(port: int) -> None:
    chat = channel()
    path = f"/connection/uni_sse?{connect_query({'subs': {chat: {}}})}"
    with RawStream.open(port, "GET", path) as stream:
        assert stream.status == 200
        assert stream.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        check_connect_push(stream.next_message(), [chat])
        api(port, "publish", channel=chat, data=[1, 2])
        assert next_push(stream) == {"channel": chat, "pub": {"data": [1, 2]}}
    # Without cf_connect: an empty connect request (anonymous).
    with RawStream.open(port, "GET", "/connection/uni_sse") as stream:
        check_connect_push(stream.next_message(), [])
    # POST with the request as the body.
    body = json.dumps({"subs": {chat: {}}}).encode()
    with RawStream.open(port, "POST", "/connection/uni_sse", body=body) as stream:
        check_connect_push(stream.next_message(), [chat])


def test_uni_websocket_one_push_per_message_and_ping_frames(port: int) -> None:
    a, b = channel(), channel()
    path = f"/connection/uni_websocket?{connect_query({'subs': {a: {}, b: {}}})}"
    with RawWebSocket.open(port, path) as ws:
        check_connect_push(single(ws.recv_messages()), [a, b])
        # Two publications in one API call reach the connection in one flush: still one
        # push per WebSocket message.
        api(port, "broadcast", channels=[a, b], data={"n": 1})
        pushes = [single(ws.recv_messages()), single(ws.recv_messages())]
        assert sorted(p["channel"] for p in pushes) == sorted([a, b])
        # Liveness: WebSocket ping frames besides the {} pushes; a pong keeps it open.
        seen_ping = seen_empty = False
        deadline = time.monotonic() + 4 * PING_INTERVAL
        while not (seen_ping and seen_empty):
            assert time.monotonic() < deadline, "no ping frame and empty push"
            received = ws.recv_frame()
            if received.opcode == PING:
                seen_ping = True
                ws.send_frame(PONG, received.payload)
            elif received.opcode == TEXT:
                assert json.loads(received.payload) == {}
                seen_empty = True
        api(port, "publish", channel=a, data={"n": 2})
        while (message := single(next_pushes(ws))) == {}:
            pass
        assert message == {"channel": a, "pub": {"data": {"n": 2}}}


def test_uni_websocket_connect_in_the_first_message(port: int) -> None:
    chat = channel()
    with RawWebSocket.open(port, "/connection/uni_websocket") as ws:
        ws.send_text(json.dumps({"subs": {chat: {}}}))
        check_connect_push(single(ws.recv_messages()), [chat])
        ws.send_text("anything: read and dropped")
        api(port, "publish", channel=chat, data={"n": 1})
        while (message := single(next_pushes(ws))) == {}:
            pass
        assert message == {"channel": chat, "pub": {"data": {"n": 1}}}
    with RawWebSocket.open(port, "/connection/uni_websocket") as ws:
        ws.send_text("null")  # an empty request
        check_connect_push(single(ws.recv_messages()), [])


@pytest.mark.parametrize(
    ("connect", "code"),
    [
        ({"token": make_token("42", ttl=-60)}, 3005),  # 109 token expired -> 3005
        ({"subs": {"locked:x": {}}}, 3507),  # 103 permission denied -> 3507
        ({"subs": {"nowhere:x": {}}}, 3004),  # 102 unknown channel -> 3004
        ({"token": "not-a-jwt"}, 3500),  # a disconnect already: invalid token
    ],
)
def test_connect_failures_become_disconnects(port: int, connect: dict[str, Any], code: int) -> None:
    body = json.dumps(connect).encode()
    with RawStream.open(port, "POST", "/connection/uni_http_stream", body=body) as stream:
        messages = stream.messages_until_end()
        assert [set(m) for m in messages] == [{"disconnect"}], messages
        assert messages[0]["disconnect"]["code"] == code
        assert messages[0]["disconnect"]["reason"]
    with RawWebSocket.open(port, f"/connection/uni_websocket?{connect_query(connect)}") as ws:
        closed = ws.expect_close(code)
        assert [m["disconnect"]["code"] for m in closed.messages] == [code]


def test_bad_connect_requests(port: int) -> None:
    response = request(port, "GET", "/connection/uni_sse?cf_connect=%7Bnot-json")
    assert response.status == 400
    response = request(port, "POST", "/connection/uni_http_stream", body=b"[1, 2]")
    assert response.status == 400
    response, sock, _ = http_upgrade(port, "/connection/uni_websocket?cf_connect=%7B")
    sock.close()
    assert response.status == 400
    with RawWebSocket.open(port, "/connection/uni_websocket") as ws:
        ws.send_text("{not json")
        closed = ws.expect_close(3501)
        assert [m["disconnect"]["code"] for m in closed.messages] == [3501]
    response = request(port, "PUT", "/connection/uni_http_stream", body=b"{}")
    assert response.status == 405
    response = request(port, "GET", "/connection/uni_http_stream")
    assert response.status == 405


def next_push(stream: RawStream) -> dict[str, Any] | None:
    """The next message that is not a ping."""
    while (message := stream.next_message()) == {}:
        pass
    return message


def next_pushes(ws: RawWebSocket) -> list[dict[str, Any]]:
    """The pushes of the next text message; ping frames on the way are answered."""
    while (received := ws.recv_frame()).opcode == PING:
        ws.send_frame(PONG, received.payload)
    assert received.opcode == TEXT, received
    return [json.loads(line) for line in received.payload.split(b"\n")]


def single(messages: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(messages) == 1, messages
    return messages[0]
