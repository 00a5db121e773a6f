"""Bad input at the HTTP-streaming, SSE and emulation endpoints of a real ``wirehub
serve`` (``centrifugo-protocol.md`` §6.2-6.4), with curl-like raw HTTP
(:mod:`tests.transports.rawhttp`); one server for the module.

Malformed emulation bodies (400), an unknown session (204, and nothing happens), a
node that is not in the cluster (404), oversized bodies (413), bodies that never finish
(408), other methods (405), origins not on the allow-list (403, preflight included),
bad connect requests (400). After all of it a client is still served.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.server import ServerProcess, serving, timeout
from tests.transports.rawhttp import RawStream, request
from tests.transports.rawws import READ_TIMEOUT, _Reader
from wirehub.protocol.protobuf_codec import encode_message
from wirehub.protocol.types import EmulationRequest

ALLOWED = "https://app.example.com"
BODY_LIMIT = 65_536
HEAD_TIMEOUT = 1.0
QUIET = timeout(0.5)
"""How long a test watches for a message that must not come."""

CONFIG = f"""
[server]
request_head_timeout = {HEAD_TIMEOUT}

[client]
allow_anonymous_connect_without_token = true
allowed_origins = ["{ALLOWED}"]

[http_stream]
enabled = true

[sse]
enabled = true

[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_client = true
allow_publish_for_anonymous = true
"""

JSON = {"Content-Type": "application/json"}
CONNECT = b'{"id":1,"connect":{}}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(CONFIG, tmp_path_factory.mktemp("emulation-bad-input")) as process:
        yield process


@pytest.fixture
def port(server: ServerProcess) -> int:
    return server.port


def open_stream(
    port: int, headers: dict[str, str] | None = None
) -> tuple[RawStream, dict[str, Any]]:
    stream = RawStream.open(
        port, "POST", "/connection/http_stream", headers={**JSON, **(headers or {})}, body=CONNECT
    )
    assert stream.status == 200, stream.response
    reply = stream.next_message()
    assert reply is not None
    return stream, reply["connect"]


def emulate(port: int, body: dict[str, Any] | bytes, **headers: str) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(port, "POST", "/emulation", headers={**JSON, **headers}, body=data).status


def nothing_arrives(stream: RawStream) -> None:
    """A bounded wait on purpose: checks that no message comes."""
    with pytest.raises(TimeoutError):
        stream.next_message(QUIET)


def assert_serves(port: int) -> None:
    """A fresh HTTP-streaming client subscribes through emulation and gets its own
    publication."""
    chat = f"chat:{uuid.uuid4().hex}"
    stream, connect = open_stream(port)
    with stream:
        route = {"node": connect["node"], "session": connect["session"]}
        commands = [
            {"id": 2, "subscribe": {"channel": chat}},
            {"id": 3, "publish": {"channel": chat, "data": {"n": 1}}},
        ]
        data = "\n".join(json.dumps(c) for c in commands)
        assert emulate(port, {**route, "data": data}) == 204
        messages = [stream.next_message() for _ in range(3)]
        assert {"id": 2, "subscribe": {}} in messages
        assert {"id": 3, "publish": {}} in messages
        pushes = [m["push"] for m in messages if m is not None and "push" in m]
        assert [(p["channel"], p["pub"]["data"]) for p in pushes] == [(chat, {"n": 1})]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"node": "n", "session": "s"}', "application/json"),  # no data
        (b'{"node": "n", "data": "{}"}', "application/json"),  # no session
        (b'{"node": 1, "session": "s", "data": "{}"}', "application/json"),
        (b"[]", "application/json"),
        (b"\xff\xff\xff", "application/octet-stream"),
        (encode_message(EmulationRequest(node="n", session="s")), "application/octet-stream"),
    ],
)
def test_malformed_emulation_bodies_get_400(port: int, body: bytes, content_type: str) -> None:
    assert emulate(port, body, **{"Content-Type": content_type}) == 400


def test_unknown_session_is_204_and_nothing_happens(port: int) -> None:
    stream, connect = open_stream(port)
    with stream:
        subscribe = json.dumps({"id": 2, "subscribe": {"channel": "chat:x"}})
        for session in ("no-such-session", connect["client"]):  # the client id is no session
            assert (
                emulate(port, {"node": connect["node"], "session": session, "data": subscribe})
                == 204
            )
        nothing_arrives(stream)
        # The right session works on the same stream.
        assert (
            emulate(
                port, {"node": connect["node"], "session": connect["session"], "data": subscribe}
            )
            == 204
        )
        assert stream.next_message() == {"id": 2, "subscribe": {}}


def test_wrong_node_is_404(port: int) -> None:
    stream, connect = open_stream(port)
    with stream:
        body = {"node": str(uuid.uuid4()), "session": connect["session"], "data": "{}"}
        assert emulate(port, body) == 404
        nothing_arrives(stream)


def test_oversized_bodies_get_413(port: int) -> None:
    big = b"x" * (BODY_LIMIT + 1)
    assert emulate(port, big) == 413
    for path in ("/connection/http_stream", "/connection/sse"):
        assert request(port, "POST", path, headers=JSON, body=big).status == 413
    # Declared larger than the limit, sent in chunks: refused as it comes in.
    headers = {**JSON, "Transfer-Encoding": "chunked", "Content-Length": None}
    chunk = b"%x\r\n" % 40_000 + b"y" * 40_000 + b"\r\n"
    body = chunk * 2 + b"0\r\n\r\n"
    assert request(port, "POST", "/emulation", headers=headers, body=body).status == 413


def test_bodies_that_never_finish_get_408(port: int) -> None:
    for path in ("/emulation", "/connection/http_stream"):
        sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
        with sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                'Content-Length: 100\r\n\r\n{"node"'.encode()
            )
            reader = _Reader(sock)
            head = reader.until(b"\r\n\r\n", _deadline()).decode("latin-1")
            assert head.startswith("HTTP/1.1 408 "), head


def test_other_methods_get_405(port: int) -> None:
    assert request(port, "GET", "/emulation").status == 405
    assert request(port, "PUT", "/connection/http_stream", body=b"{}").status == 405
    assert request(port, "GET", "/connection/http_stream").status == 405
    assert request(port, "DELETE", "/connection/sse").status == 405


def test_origins_not_on_the_allow_list_are_refused(port: int) -> None:
    evil = {"Origin": "https://evil.example"}
    preflight = {**evil, "Access-Control-Request-Method": "POST"}
    for path in ("/emulation", "/connection/http_stream", "/connection/sse"):
        assert request(port, "OPTIONS", path, headers=preflight).status == 403
    assert emulate(port, {"node": "n", "session": "s", "data": "{}"}, **evil) == 403
    assert (
        request(
            port, "POST", "/connection/http_stream", headers={**JSON, **evil}, body=CONNECT
        ).status
        == 403
    )
    path = "/connection/sse?cf_connect=" + quote(CONNECT.decode())
    assert request(port, "GET", path, headers=evil).status == 403
    two = {"Origin": ALLOWED, "origin": ALLOWED}  # a repeated Origin is refused too
    assert request(port, "GET", path, headers=two).status == 403


def test_allowed_origins_get_cors_headers(port: int) -> None:
    asked = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    for path in ("/emulation", "/connection/http_stream"):
        answer = request(port, "OPTIONS", path, headers=asked)
        assert answer.status == 204
        assert answer.headers["access-control-allow-origin"] == ALLOWED
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert answer.headers["access-control-allow-headers"] == "content-type"
        assert "POST" in answer.headers["access-control-allow-methods"]
        assert answer.headers["access-control-max-age"] == "300"
    stream, connect = open_stream(port, {"Origin": ALLOWED})
    with stream:
        assert stream.response.headers["access-control-allow-origin"] == ALLOWED
        body = {"node": connect["node"], "session": connect["session"], "data": "{}"}
        answer = request(
            port,
            "POST",
            "/emulation",
            headers={**JSON, "Origin": ALLOWED},
            body=json.dumps(body).encode(),
        )
        assert answer.status == 204
        assert answer.headers["access-control-allow-origin"] == ALLOWED


def test_bad_connect_requests_get_400(port: int) -> None:
    assert request(port, "GET", "/connection/sse").status == 400  # no cf_connect
    assert request(port, "GET", "/connection/sse?cf_connect=%7Bnope").status == 400
    assert request(port, "GET", "/connection/sse?cf_connect=%FF").status == 400  # not UTF-8
    assert request(port, "POST", "/connection/http_stream", headers=JSON, body=b"").status == 400
    octet = {"Content-Type": "application/octet-stream"}
    assert (
        request(port, "POST", "/connection/http_stream", headers=octet, body=b"\xff").status == 400
    )


def test_still_serving(port: int) -> None:
    assert_serves(port)


def _deadline() -> float:
    return time.monotonic() + READ_TIMEOUT


def test_sse_by_post_and_by_get(port: int) -> None:
    """The connect command as a POST body or in ``cf_connect``: the same stream."""
    get = "/connection/sse?cf_connect=" + quote(CONNECT.decode())
    for method, path, body in (("POST", "/connection/sse", CONNECT), ("GET", get, b"")):
        with RawStream.open(port, method, path, headers=JSON, body=body) as stream:
            assert stream.status == 200
            assert stream.response.headers["content-type"] == "text/event-stream; charset=utf-8"
            reply = stream.next_message()
            assert reply is not None
            assert reply["id"] == 1
            assert reply["connect"]["session"]
