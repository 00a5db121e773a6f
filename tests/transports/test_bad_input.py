"""Bad input at the WebSocket endpoint of a real ``wirehub serve``: reliability.md C3
(B1-B8, P1-P2, O1-O2, H2-H3) and centrifugo-protocol.md §1.6 and §3.1.

Every test drives a raw socket (:mod:`tests.transports.rawws`) against one server
process shared by the module, and every close is checked for its exact code (with a
reason for 35xx). After the worst inputs, and at the end, a fresh client must still
connect, subscribe and receive its own publication.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support.server import ServerProcess, serving, timeout
from tests.transports.rawws import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    RawWebSocket,
    close_payload,
    frame,
    http_upgrade,
)

LIMIT = 65_536  # websocket.message_size_limit, left at its default
STALE = 1.0

CONFIG = """
[client]
allow_anonymous_connect_without_token = true
stale_close_delay = {stale}
allowed_origins = ["https://app.example.com", "https://*.example.org"]

[websocket]
message_size_limit = {limit}

[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_subscriber = true
allow_publish_for_client = true
allow_publish_for_anonymous = true
"""


def config(*, limit: int = LIMIT) -> str:
    return CONFIG.format(stale=STALE, limit=limit)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(config(), tmp_path_factory.mktemp("bad-input")) as process:
        yield process


@pytest.fixture
def port(server: ServerProcess) -> int:
    return server.port


@pytest.fixture
def ws(port: int) -> Iterator[RawWebSocket]:
    with RawWebSocket.open(port) as client:
        yield client


@pytest.fixture
def connected(ws: RawWebSocket) -> RawWebSocket:
    ws.connect()
    return ws


def assert_serves(port: int) -> None:
    """A fresh client connects, subscribes and receives its own publication."""
    channel = f"chat:{uuid.uuid4().hex}"
    with RawWebSocket.open(port) as client:
        client.connect()
        (subscribe_id,) = client.send_commands({"subscribe": {"channel": channel}})
        assert "subscribe" in client.recv_reply(subscribe_id)
        data = {"text": "still here"}
        (publish_id,) = client.send_commands({"publish": {"channel": channel, "data": data}})
        replied = delivered = False
        deadline = time.monotonic() + timeout(5.0)
        while not (replied and delivered):
            for message in client.recv_messages(deadline - time.monotonic()):
                if message.get("id") == publish_id:
                    assert message == {"id": publish_id, "publish": {}}
                    replied = True
                push = message.get("push", {})
                if push.get("channel") == channel and "pub" in push:
                    assert push["pub"]["data"] == data
                    delivered = True


# B4, §1.6: messages over websocket.message_size_limit -> 1009.


def test_oversized_frame_refused_on_its_header(ws: RawWebSocket) -> None:
    # B2 too: the declared length alone is enough; no payload is ever sent.
    ws.send_raw(frame(TEXT, length=LIMIT + 1))
    ws.expect_close(1009)


def test_oversized_single_frame(ws: RawWebSocket) -> None:
    ws.send_frame(TEXT, b" " * (LIMIT + 1))
    ws.expect_close(1009)


def test_oversized_fragmented_message(ws: RawWebSocket) -> None:
    # Never finished: the close must come once the running total passes the limit.
    piece = b"x" * 4096
    ws.send_frame(TEXT, piece, fin=False)
    for _ in range(LIMIT // len(piece)):
        ws.send_frame(CONT, piece, fin=False)
    ws.expect_close(1009)


@pytest.mark.parametrize("fragmented", [False, True], ids=["single", "fragmented"])
def test_message_of_exactly_the_limit_is_accepted(
    connected: RawWebSocket, fragmented: bool
) -> None:
    head = b'{"id":7,"publish":{"channel":"chat:limit","data":"'
    tail = b'"}}'
    message = head + b"a" * (LIMIT - len(head) - len(tail)) + tail
    assert len(message) == LIMIT
    if fragmented:
        half = LIMIT // 2
        connected.send_frame(TEXT, message[:half], fin=False)
        connected.send_frame(CONT, message[half:])
    else:
        connected.send_frame(TEXT, message)
    assert connected.recv_reply(7) == {"id": 7, "publish": {}}


def test_64_bit_length_with_the_msb_set(ws: RawWebSocket) -> None:
    # B2: Tomcat CVE-2020-13935; rejected on the header, nothing allocated.
    ws.send_raw(frame(TEXT, length=2**63 + 5))
    ws.expect_close(1009)


# B3: invalid UTF-8 -> 1007.


def test_invalid_utf8_in_a_text_frame(ws: RawWebSocket) -> None:
    ws.send_frame(TEXT, b'{"id":1,"connect":{"data":"\xff"}}')
    ws.expect_close(1007)


def test_invalid_utf8_split_across_fragments(ws: RawWebSocket) -> None:
    # A three-byte sequence started in one fragment and broken in the next.
    ws.send_frame(TEXT, b'{"id":1,"connect":{"data":"\xe2\x82', fin=False)
    ws.send_frame(CONT, b'("}}')
    ws.expect_close(1007)


def test_invalid_utf8_fails_before_the_message_ends(ws: RawWebSocket) -> None:
    # Fail fast on the first bad byte: the rest of the message never comes.
    ws.send_frame(TEXT, b'{"id":1,"connect":{"data":"\xc0\xaf', fin=False)
    ws.expect_close(1007)


def test_valid_utf8_split_across_fragments_is_accepted(ws: RawWebSocket) -> None:
    euro = "€".encode()
    ws.send_frame(TEXT, b'{"id":1,"connect":{"data":"' + euro[:1], fin=False)
    ws.send_frame(CONT, euro[1:2], fin=False)
    ws.send_frame(CONT, euro[2:] + b'"}}')
    assert "connect" in ws.recv_reply(1)


def test_invalid_utf8_in_a_close_reason(ws: RawWebSocket) -> None:
    ws.send_frame(CLOSE, close_payload(1000, b"bye \xff"))
    ws.expect_close(1007)


# P1, P2, §1.6: undecodable frames -> 3501 "bad request".


@pytest.mark.parametrize(
    "payload",
    [
        b"{",
        b"not json",
        b'{"id":2,"subscribe":{"channel":"chat:x"}',
        b"[1,2,3]",
        b'{"id":"two","subscribe":{"channel":"chat:x"}}',
        b"   \n\t \n ",
        b"",
    ],
    ids=["brace", "text", "truncated", "array", "id-type", "whitespace", "empty"],
)
def test_undecodable_frame_after_connect(connected: RawWebSocket, payload: bytes) -> None:
    connected.send_frame(TEXT, payload)
    connected.expect_close(3501)


def test_whitespace_frame_before_connect(ws: RawWebSocket) -> None:
    ws.send_frame(TEXT, b" \n \r\n\t")
    ws.expect_close(3501)


def nested(depth: int) -> bytes:
    """A publish whose data nests ``depth`` arrays: 2 bytes a level."""
    command = b'{"id":2,"publish":{"channel":"chat:deep","data":%s}}'
    return command % (b"[" * depth + b"]" * depth)


def _expect_quick_3501(ws: RawWebSocket, payload: bytes) -> None:
    started = time.monotonic()
    ws.send_frame(TEXT, payload)
    ws.expect_close(3501)
    assert time.monotonic() - started < timeout(2.0)


@pytest.mark.parametrize("shape", ["bare", "in-data"])
def test_deeply_nested_json(port: int, connected: RawWebSocket, shape: str) -> None:
    depth = (LIMIT - 100) // 2  # as deep as fits in one message
    payload = nested(depth) if shape == "in-data" else b"[" * depth + b"]" * depth
    assert len(payload) <= LIMIT
    _expect_quick_3501(connected, payload)
    assert_serves(port)


def test_nested_json_of_a_hundred_thousand_levels(
    server_factory: Callable[[str], ServerProcess],
) -> None:
    # 10^5 levels need 200 kB: a second server with a larger limit.
    payload = nested(100_000)
    big = server_factory(config(limit=len(payload)))
    with RawWebSocket.open(big.port) as ws:
        ws.connect()
        _expect_quick_3501(ws, payload)
    assert_serves(big.port)
    assert "Traceback" not in big.log


# §3.1: lifecycle violations.


def test_command_before_connect(ws: RawWebSocket) -> None:
    ws.send_commands({"subscribe": {"channel": "chat:early"}})
    closed = ws.expect_close(3501)
    assert closed.messages == []


def test_second_connect(connected: RawWebSocket) -> None:
    connected.send_commands({"connect": {}})
    closed = connected.expect_close(3501)
    assert not [m for m in closed.messages if "connect" in m]


def test_no_connect_before_the_stale_timeout(ws: RawWebSocket) -> None:
    started = time.monotonic()
    closed = ws.expect_close(3502, wait=timeout(STALE + 5.0))
    assert closed.reason == "stale"
    assert time.monotonic() - started >= STALE * 0.5


# O1, O2: the Origin allow-list, checked before the upgrade.


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://app.example.com.evil.com",
        "null",
        "https://sub.example.org.evil.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com`.evil.com",
        "https://app.example.com$.evil.com",
        "https://evil.com/.example.org",
        "https://evil.com?.example.org",
        "https://evil.com#.example.org",
        "https://evil.com%2f.example.org",
        "https://x.example.org.",
        "https://example.org.evil.com",
        "https://app.example.com@evil.com",
        "http://127.0.0.1:1",
        "",
    ],
)
def test_cross_origin_upgrade_refused(port: int, origin: str) -> None:
    response, sock, rest = http_upgrade(port, headers={"Origin": origin})
    with RawWebSocket(sock, rest) as ws:
        assert response.status == 403
        assert "sec-websocket-accept" not in response.headers
        ws.expect_eof()


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "https://x.example.org",
        "https://a-b.c.example.org",
        "same-origin",
        None,
    ],
)
def test_allowed_origin_upgrades(port: int, origin: str | None) -> None:
    if origin == "same-origin":
        origin = f"http://127.0.0.1:{port}"
    response, sock, rest = http_upgrade(port, headers={"Origin": origin})
    with RawWebSocket(sock, rest) as ws:
        assert response.status == 101
        ws.connect()


def test_repeated_origin_refused(port: int) -> None:
    # Headers.get raises on repeats; before the fix this leaked the connection and
    # blocked the graceful shutdown (see test_server_still_serves_and_stops_cleanly).
    for second in ("https://evil.example", "https://app.example.com"):
        response, sock, rest = http_upgrade(
            port, headers={"Origin": "https://app.example.com\r\nOrigin: " + second}
        )
        with RawWebSocket(sock, rest) as ws:
            assert response.status == 403
            ws.expect_eof()


# H1, H3: bad handshakes.


def _refused(
    port: int,
    status: int,
    path: str = "/connection/websocket",
    headers: dict[str, str | None] | None = None,
) -> dict[str, str]:
    response, sock, rest = http_upgrade(port, path, headers)
    with RawWebSocket(sock, rest) as ws:
        assert response.status == status, response
        ws.expect_eof()
    return response.headers


def test_upgrade_on_another_path(port: int) -> None:
    _refused(port, 404, path="/other")


def test_unsupported_websocket_version(port: int) -> None:
    headers = _refused(port, 426, headers={"Sec-WebSocket-Version": "8"})
    assert headers.get("sec-websocket-version") == "13"


@pytest.mark.parametrize("key", [None, "", "not base64!", "c2hvcnQ="], ids=repr)
def test_missing_or_invalid_key(port: int, key: str | None) -> None:
    _refused(port, 400, headers={"Sec-WebSocket-Key": key})


def test_repeated_host_header(port: int) -> None:
    host = f"127.0.0.1:{port}"
    _refused(port, 400, headers={"Host": f"{host}\r\nHost: {host}"})


def test_very_long_url(port: int) -> None:
    _refused(port, 414, path="/connection/websocket?token=" + "t" * 100_000)


@pytest.mark.parametrize("shape", ["2000-headers", "64k-header"])
def test_header_flood(port: int, shape: str) -> None:
    if shape == "2000-headers":
        flood = "\r\n".join(f"X-Flood-{i}: y" for i in range(2000))
    else:
        flood = "X-Flood: " + "y" * 65_536
    _refused(port, 431, headers={"X-First": "x\r\n" + flood})


def test_missing_upgrade_header(port: int) -> None:
    response, sock, _ = http_upgrade(port, headers={"Upgrade": None})
    sock.close()
    assert response.status == 400


# B1, B7: framing violations -> 1002.

FRAMING_ERRORS = {
    "rsv1-no-deflate": [frame(TEXT, b"{}", rsv=0b100)],
    "rsv2": [frame(TEXT, b"{}", rsv=0b010)],
    "rsv3": [frame(BINARY, b"{}", rsv=0b001)],
    "rsv1-on-ping": [frame(PING, b"", rsv=0b100)],
    **{f"opcode-{op:x}": [frame(op, b"{}")] for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)},
    "fragmented-ping": [frame(PING, b"a", fin=False), frame(CONT, b"b")],
    "fragmented-close": [frame(CLOSE, close_payload(1000), fin=False)],
    "fragmented-pong-mid-message": [frame(TEXT, b"{", fin=False), frame(PONG, fin=False)],
    "control-too-long": [frame(PING, b"p" * 126)],
    "lone-continuation": [frame(CONT, b"{}")],
    "text-inside-fragmented": [frame(TEXT, b"{", fin=False), frame(TEXT, b"}")],
    "unmasked": [frame(TEXT, b'{"id":1,"connect":{}}', mask=False)],
    "close-one-byte": [frame(CLOSE, b"\x03")],
}


@pytest.mark.parametrize("frames", list(FRAMING_ERRORS.values()), ids=list(FRAMING_ERRORS))
def test_framing_violation(ws: RawWebSocket, frames: list[bytes]) -> None:
    ws.send_raw(b"".join(frames))
    ws.expect_close(1002)


def test_rsv1_when_deflate_was_offered_but_not_negotiated(port: int) -> None:
    # B6/B7: wirehub negotiates no extension, so a "compressed" frame is never inflated.
    offer = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    response, sock, rest = http_upgrade(port, headers=offer)
    with RawWebSocket(sock, rest) as ws:
        assert response.status == 101
        assert "sec-websocket-extensions" not in response.headers
        ws.send_frame(TEXT, bytes.fromhex("aa560100"), rsv=0b100)  # deflated "{}"
        ws.expect_close(1002)


def test_framing_violation_after_connect(connected: RawWebSocket) -> None:
    connected.send_frame(TEXT, b"{}", rsv=0b100)
    connected.expect_close(1002)


# B5: endless fragments -> 1009 at the fragment limit, empty ones counted.


def test_endless_empty_continuation_frames(ws: RawWebSocket) -> None:
    ws.send_raw(frame(TEXT, b"{", fin=False) + frame(CONT, fin=False) * 5000)
    ws.expect_close(1009)


# B8: invalid close codes from the client -> 1002.


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
def test_invalid_close_code(ws: RawWebSocket, code: int) -> None:
    ws.send_frame(CLOSE, close_payload(code, b"x"))
    ws.expect_close(1002)


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
def test_valid_close_code_is_echoed(connected: RawWebSocket, code: int) -> None:
    connected.send_frame(CLOSE, close_payload(code))
    assert connected.recv_close().code == code
    connected.expect_eof()


# The server survived all of the above.


def test_server_still_serves_and_stops_cleanly(server: ServerProcess) -> None:
    assert_serves(server.port)
    # Every connection above is gone: a graceful stop has nothing to wait for.
    started = time.monotonic()
    assert server.stop(wait=timeout(5.0)) == 0
    assert time.monotonic() - started < timeout(3.0)
    assert "Traceback" not in server.log, server.log
