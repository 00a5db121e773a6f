"""Rows of the reliability catalogue (``docs/reliability.md``) that had no test against a
real ``wirehub serve``: L6 (mixed transports), P1 (duplicate ids), P4 (type confusion),
P7 (channel limits at their defaults), P8 (permission denied leaks nothing), F5 (a
client that stops answering) and F10 (clock skew within ``client.token.leeway``).

Raw clients only (:mod:`tests.transports.rawws`, :mod:`tests.transports.rawhttp`), one
server for the module, a second one where a test needs other settings.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import jwt
import pytest

from tests.interop.helpers import SECRET
from tests.support.server import ServerProcess, serving, timeout
from tests.transports.rawhttp import RawStream, request
from tests.transports.rawws import PING, PONG, TEXT, RawWebSocket
from tests.transports.test_http_limits import FLOOD, flood

API_KEY = "catalogue-gaps-key"
LEEWAY = 60

CONFIG = f"""
[client]
allow_anonymous_connect_without_token = true

[client.token]
hmac_secret_key = "{SECRET}"
leeway = {LEEWAY}

[http_api]
key = "{API_KEY}"

[http_stream]
enabled = true

[sse]
enabled = true

[uni_sse]
enabled = true

[uni_http_stream]
enabled = true

[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_client = true
allow_publish_for_anonymous = true

[[channel.namespaces]]
name = "secret"
presence = true
history_size = 10
history_ttl = 300
"""

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(CONFIG, tmp_path_factory.mktemp("catalogue-gaps")) as process:
        yield process


@pytest.fixture
def port(server: ServerProcess) -> int:
    return server.port


def channel(namespace: str = "chat") -> str:
    return f"{namespace}:{uuid.uuid4().hex}"


def api(port: int, method: str, **params: Any) -> dict[str, Any]:
    headers = {**JSON, "X-API-Key": API_KEY}
    response = request(
        port, "POST", f"/api/{method}", headers=headers, body=json.dumps(params).encode()
    )
    assert response.status == 200, response
    result: dict[str, Any] = json.loads(response.body)
    assert "error" not in result, result
    return result


def replies(ws: RawWebSocket, ids: list[int]) -> list[dict[str, Any]]:
    """The replies to ``ids``, in the order of ``ids``; other messages are dropped."""
    got: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout(10.0)
    while len(got) < len(ids):
        for message in ws.recv_messages(deadline - time.monotonic()):
            if message.get("id") in ids:
                got[message["id"]] = message
    return [got[i] for i in ids]


def still_serves(ws: RawWebSocket, namespace: str = "chat") -> None:
    """The connection is open and answers commands."""
    (command_id,) = ws.send_commands({"subscribe": {"channel": channel(namespace)}})
    assert ws.recv_reply(command_id) == {"id": command_id, "subscribe": {}}


# L6: mixed transports. Subscribers over WebSocket, HTTP-streaming, SSE, uni_http_stream
# and uni_sse on one channel; two WebSocket publishers whose frames interleave. Every
# subscriber gets the same publications in the same order.


class Subscriber:
    """One subscriber of ``chat`` over one transport; ``pubs()`` reads its publications."""

    def __init__(self, name: str, read: Callable[[], dict[str, Any] | None], close: Any) -> None:
        self.name = name
        self._read = read
        self.close = close
        self.received: list[dict[str, Any]] = []

    def pubs(self, chat: str, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout(10.0)
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{self.name}: {len(self.received)}/{count}"
            message = self._read()
            assert message is not None, f"{self.name}: the stream ended"
            push = message.get("push", message)  # bidirectional vs unidirectional
            if push.get("channel") == chat and "pub" in push:
                self.received.append(push["pub"])
        return self.received


def ws_subscriber(port: int, chat: str) -> Subscriber:
    ws = RawWebSocket.open(port)
    ws.connect()
    (command_id,) = ws.send_commands({"subscribe": {"channel": chat}})
    assert ws.recv_reply(command_id) == {"id": command_id, "subscribe": {}}
    pending: list[dict[str, Any]] = []

    def read() -> dict[str, Any] | None:
        while not pending:
            pending.extend(ws.recv_messages())
        return pending.pop(0)

    return Subscriber("websocket", read, ws.close)


def stream_subscriber(port: int, chat: str, transport: str) -> Subscriber:
    """HTTP-streaming (POST) or SSE (GET with cf_connect), subscribed through emulation."""
    connect = b'{"id":1,"connect":{}}'
    if transport == "sse":
        path = "/connection/sse?cf_connect=" + quote(connect.decode())
        stream = RawStream.open(port, "GET", path)
    else:
        stream = RawStream.open(port, "POST", "/connection/http_stream", headers=JSON, body=connect)
    assert stream.status == 200, stream.response
    reply = stream.next_message()
    assert reply is not None
    route = {"node": reply["connect"]["node"], "session": reply["connect"]["session"]}
    data = json.dumps({"id": 2, "subscribe": {"channel": chat}})
    body = json.dumps({**route, "data": data}).encode()
    assert request(port, "POST", "/emulation", headers=JSON, body=body).status == 204
    assert stream.next_message() == {"id": 2, "subscribe": {}}
    return Subscriber(transport, stream.next_message, stream.close)


def uni_subscriber(port: int, chat: str, transport: str) -> Subscriber:
    body = json.dumps({"subs": {chat: {}}}).encode()
    stream = RawStream.open(port, "POST", f"/connection/{transport}", headers=JSON, body=body)
    assert stream.status == 200, stream.response
    first = stream.next_message()
    assert first is not None
    assert list(first["connect"]["subs"]) == [chat]
    return Subscriber(transport, stream.next_message, stream.close)


def test_l6_mixed_transports_get_identical_payloads_in_identical_order(port: int) -> None:
    chat = channel()
    subscribers = [
        ws_subscriber(port, chat),
        stream_subscriber(port, chat, "http_stream"),
        stream_subscriber(port, chat, "sse"),
        uni_subscriber(port, chat, "uni_http_stream"),
        uni_subscriber(port, chat, "uni_sse"),
    ]
    try:
        per_frame, frames = 25, 4
        with RawWebSocket.open(port) as a, RawWebSocket.open(port) as b:
            a.connect()
            b.connect()
            ids: dict[str, list[int]] = {"a": [], "b": []}
            for f in range(frames):
                for name, publisher in (("a", a), ("b", b)):
                    commands = [
                        {
                            "publish": {
                                "channel": chat,
                                "data": {"from": name, "n": f * per_frame + i},
                            }
                        }
                        for i in range(per_frame)
                    ]
                    ids[name] += publisher.send_commands(*commands)
            for name, publisher in (("a", a), ("b", b)):
                answers = replies(publisher, ids[name])
                assert answers == [{"id": i, "publish": {}} for i in ids[name]]
        total = 2 * frames * per_frame
        first = [pub["data"] for pub in subscribers[0].pubs(chat, total)]
        for name in ("a", "b"):  # each publisher's own order is kept
            assert [d["n"] for d in first if d["from"] == name] == list(range(total // 2))
        for subscriber in subscribers[1:]:
            got = subscriber.pubs(chat, total)
            assert [pub["data"] for pub in got] == first, subscriber.name
            # The same publication, field for field (client info included).
            assert got == subscribers[0].received, subscriber.name
    finally:
        for subscriber in subscribers:
            subscriber.close()


# P1 (duplicate ids), P4: type confusion in commands. The JSON decoder validates every
# command against the protocol's schema: a field of the wrong type makes the frame
# undecodable, which closes the connection with 3501 (as Centrifugo does), never an
# exception; unknown keys (``__proto__`` among them) are ignored; payloads are opaque.

CONFUSED = {
    "channel-object": {"subscribe": {"channel": {"toString": "chat:x"}}},
    "channel-array": {"subscribe": {"channel": ["chat:x"]}},
    "channel-number": {"publish": {"channel": 7, "data": {}}},
    "placeholder-id": {"id": {"_placeholder": True, "num": 0}, "subscribe": {"channel": "chat:x"}},
    "token-object": {"connect": {"token": {"__proto__": {"admin": True}}}},
    "recover-string": {"subscribe": {"channel": "chat:x", "recover": "yes"}},
    "offset-string": {"subscribe": {"channel": "chat:x", "offset": "1"}},
    "method-null": {"subscribe": None},
    "method-array": {"subscribe": [{"channel": "chat:x"}]},
}


@pytest.mark.parametrize("command", list(CONFUSED.values()), ids=list(CONFUSED))
def test_p4_type_confusion_closes_3501(port: int, command: dict[str, Any]) -> None:
    with RawWebSocket.open(port) as ws:
        if "connect" not in command:
            ws.connect()
        command.setdefault("id", 9)
        ws.send_text(json.dumps(command))
        closed = ws.expect_close(3501)
        assert not [m for m in closed.messages if "error" in m or "subscribe" in m]


def test_p4_proto_keys_are_ignored_and_payloads_are_opaque(port: int) -> None:
    chat = channel()
    with RawWebSocket.open(port) as ws:
        ws.connect()
        # An unknown key beside the real ones is ignored: the subscribe is to chat only.
        ws.send_text(
            json.dumps(
                {"id": 2, "subscribe": {"channel": chat, "__proto__": {"channel": "secret:x"}}}
            )
        )
        assert ws.recv_reply(2) == {"id": 2, "subscribe": {}}
        hostile = {"__proto__": {"isAdmin": True}, "constructor": {"prototype": {}}}
        ws.send_text(json.dumps({"id": 3, "publish": {"channel": chat, "data": hostile}}))
        messages: list[dict[str, Any]] = []
        while {"id": 3, "publish": {}} not in messages or not any("push" in m for m in messages):
            messages += ws.recv_messages()
        (push,) = [m["push"] for m in messages if "push" in m]
        assert (push["channel"], push["pub"]["data"]) == (chat, hostile)
        still_serves(ws)


def test_p1_duplicate_command_ids_are_each_answered_in_order(port: int) -> None:
    a, b = channel(), channel()
    with RawWebSocket.open(port) as ws:
        ws.connect()
        ws.send_commands(
            {"id": 5, "subscribe": {"channel": a}}, {"id": 5, "subscribe": {"channel": a}}
        )
        answers: list[dict[str, Any]] = []
        while len(answers) < 2:
            answers += [m for m in ws.recv_messages() if m.get("id") == 5]
        assert answers == [
            {"id": 5, "subscribe": {}},
            {"id": 5, "error": {"code": 105, "message": "already subscribed"}},
        ]
        ws.send_commands({"id": 6, "subscribe": {"channel": b}})
        assert ws.recv_reply(6) == {"id": 6, "subscribe": {}}


# P7: the limits at their defaults (client.channel_limit 128, channel.max_length 255).


def test_p7_channel_limits_at_their_defaults(port: int) -> None:
    with RawWebSocket.open(port) as ws:
        ws.connect()
        prefix = channel()
        commands = [{"subscribe": {"channel": f"{prefix}-{n}"}} for n in range(129)]
        ids = ws.send_commands(*commands)
        answers = replies(ws, ids)
        assert all(r == {"id": r["id"], "subscribe": {}} for r in answers[:128])
        assert answers[128] == {
            "id": ids[128],
            "error": {"code": 106, "message": "limit exceeded"},
        }
        (unsubscribe,) = ws.send_commands({"unsubscribe": {"channel": f"{prefix}-0"}})
        assert ws.recv_reply(unsubscribe) == {"id": unsubscribe, "unsubscribe": {}}
        longest = "chat:" + "x" * 250  # 255 bytes
        (ok,) = ws.send_commands({"subscribe": {"channel": longest}})
        assert ws.recv_reply(ok) == {"id": ok, "subscribe": {}}
    with RawWebSocket.open(port) as ws:
        ws.connect()
        for name, code, message in (
            ("chat:" + "x" * 251, 107, "bad request"),  # 256 bytes
            ("chat:" + "x" * 5000, 107, "bad request"),
            (f"nowhere:{uuid.uuid4().hex}", 102, "unknown channel"),
        ):
            (command_id,) = ws.send_commands({"subscribe": {"channel": name}})
            reply = ws.recv_reply(command_id)
            assert reply == {"id": command_id, "error": {"code": code, "message": message}}
        still_serves(ws)


# P8: no permission: 103 with the fixed text, and nothing of the channel on the wire.


def test_p8_permission_denied_leaks_nothing(port: int) -> None:
    secret = channel("secret")
    marker = f"confidential-{uuid.uuid4().hex}"
    api(port, "publish", channel=secret, data={"text": marker})
    token = jwt.encode({"sub": "mallory"}, SECRET, algorithm="HS256")
    for token_or_none in (None, token):  # anonymous, then an authenticated user
        with RawWebSocket.open(port) as ws:
            (connect_id,) = ws.send_commands(
                {"connect": {"token": token_or_none} if token_or_none else {}}
            )
            assert "connect" in ws.recv_reply(connect_id)
            commands: list[dict[str, Any]] = [
                {"subscribe": {"channel": secret}},
                {"publish": {"channel": secret, "data": {"text": "overwrite"}}},
                {"presence": {"channel": secret}},
                {"presence_stats": {"channel": secret}},
                {"history": {"channel": secret, "limit": -1}},
                {"subscribe": {"channel": secret, "recover": True, "offset": 0, "epoch": ""}},
            ]
            ids = ws.send_commands(*commands)
            frames = []
            answers: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout(5.0)
            while len(answers) < len(ids):
                received = ws.recv_frame(deadline - time.monotonic())
                frames.append(received.payload)
                answers += [json.loads(line) for line in received.payload.split(b"\n") if line]
            denied = {"code": 103, "message": "permission denied"}
            assert answers == [{"id": i, "error": denied} for i in ids]
            assert marker.encode() not in b"".join(frames)
            still_serves(ws)
    history = api(port, "history", channel=secret, limit=-1)["result"]["publications"]
    assert [p["data"] for p in history] == [{"text": marker}]  # the publish was refused


# F10: clock skew between the token issuer and the server, within client.token.leeway.


def _token(**claims: Any) -> str:
    return jwt.encode({"sub": "skewed", **claims}, SECRET, algorithm="HS256")


def _connect(port: int, token: str) -> dict[str, Any]:
    with RawWebSocket.open(port) as ws:
        (command_id,) = ws.send_commands({"connect": {"token": token}})
        return ws.recv_reply(command_id)


def test_f10_exp_and_nbf_are_checked_with_the_configured_leeway(port: int) -> None:
    now = int(time.time())
    # The issuer's clock runs behind: exp already passed here, within the leeway.
    behind = _connect(port, _token(exp=now - LEEWAY // 2))
    assert behind["connect"]["expires"] is True
    assert behind["connect"].get("ttl", 0) == 0  # refresh now; closed 3005 after the grace
    # The issuer's clock runs ahead: nbf still in the future here, within the leeway.
    ahead = _connect(port, _token(nbf=now + LEEWAY // 2, exp=now + 3600))
    assert ahead["connect"]["expires"] is True
    assert 3500 < ahead["connect"]["ttl"] <= 3600
    # Beyond the leeway: error 109 "token expired", so the SDK fetches a new token.
    for claims in ({"exp": now - 2 * LEEWAY}, {"nbf": now + 2 * LEEWAY}):
        reply = _connect(port, _token(**claims))
        assert reply["error"] == {"code": 109, "message": "token expired"}, claims


# F5: a client that stops answering (paused process, network partition) is closed with
# 3012 within ping_interval + pong_timeout, and its subscriptions and presence go.

PING_CONFIG = f"""
[client]
ping_interval = 1
pong_timeout = 0.5

[client.token]
hmac_secret_key = "{SECRET}"

[http_api]
key = "{API_KEY}"

[[channel.namespaces]]
name = "room"
presence = true
allow_subscribe_for_client = true
"""


def _presence(port: int, room: str) -> set[str]:
    result = api(port, "presence", channel=room)["result"]
    return {info["user"] for info in result["presence"].values()}


def _answer_pings(ws: RawWebSocket, until: float) -> None:
    """Read for a while, answering every server ping (``{}``) with a pong (``{}``)."""
    while (left := until - time.monotonic()) > 0:
        try:
            received = ws.recv_frame(left)
        except TimeoutError:
            return
        if received.opcode == PING:
            ws.send_frame(PONG, received.payload)
        elif received.opcode == TEXT and received.payload.strip() == b"{}":
            ws.send_text(b"{}")


def test_f5_a_client_that_stops_answering_is_closed_3012_and_freed(
    server_factory: Callable[[str], ServerProcess],
) -> None:
    server = server_factory(PING_CONFIG)
    room = f"room:{uuid.uuid4().hex}"
    with RawWebSocket.open(server.port) as silent, RawWebSocket.open(server.port) as live:
        for ws, user in ((silent, "silent"), (live, "live")):
            token = jwt.encode({"sub": user}, SECRET, algorithm="HS256")
            (connect_id,) = ws.send_commands({"connect": {"token": token}})
            assert ws.recv_reply(connect_id)["connect"]["ping"] == 1
            (subscribe_id,) = ws.send_commands({"subscribe": {"channel": room}})
            assert ws.recv_reply(subscribe_id) == {"id": subscribe_id, "subscribe": {}}
        assert _presence(server.port, room) == {"silent", "live"}
        stopped = time.monotonic()
        # "silent" now neither reads nor answers; "live" keeps answering its pings.
        deadline = stopped + timeout(10.0)
        while _presence(server.port, room) != {"live"}:
            assert time.monotonic() < deadline, "the silent client is still present"
            _answer_pings(live, time.monotonic() + 0.2)
        gone_after = time.monotonic() - stopped
        closed = silent.recv_close()
        assert (closed.code, closed.reason) == (3012, "no pong")
        assert gone_after < timeout(1 + 0.5 + 2.0)  # ping_interval + pong_timeout + slack
        _answer_pings(live, time.monotonic() + 1.5)  # a full ping interval more
        still_serves(live, "room")


# A6 on the routes test_http_limits.py does not flood: the streaming transports and
# /emulation. The head scanner runs before any routing; these show it for each of them.

STREAM_PATHS = [
    "/connection/http_stream",
    "/connection/sse",
    "/connection/uni_http_stream",
    "/connection/uni_sse",
    "/emulation",
]


@pytest.mark.parametrize("path", STREAM_PATHS)
def test_a6_floods_on_the_streaming_routes(port: int, path: str) -> None:
    sent, status = flood(port, f"POST {path}?cf_connect=".encode())
    assert status == 414
    assert sent < FLOOD
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: ".encode()
    sent, status = flood(port, head)
    assert status == 431
    assert sent < FLOOD
