"""Request heads against a real ``wirehub serve``: reliability.md A6, H1, H2 (the HTTP
part) and J8, on every route: the WebSocket path, ``/health`` and a path that is not
served.

One server for the module (short head and keep-alive timeouts), with a canary client
(:mod:`tests.transports.canary`) publishing through it from before the first attack to
after the last: every test asserts it kept being served.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.server import ServerProcess, serving, timeout
from tests.transports.canary import CANARY_NAMESPACE, Canary
from tests.transports.rawws import RawWebSocket, frame

HEAD_TIMEOUT = 1.0
KEEP_ALIVE = 1
FLOOD = 128 * 1024 * 1024
PATHS = ["/connection/websocket", "/health", "/nowhere"]

CONFIG = f"""
[server]
request_head_timeout = {HEAD_TIMEOUT}
keep_alive_timeout = {KEEP_ALIVE}

[client]
allow_anonymous_connect_without_token = true
{CANARY_NAMESPACE}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(CONFIG, tmp_path_factory.mktemp("http-limits")) as process:
        yield process


@pytest.fixture(scope="module")
def canary(server: ServerProcess) -> Iterator[Canary]:
    with Canary(server.port) as running:
        yield running


@pytest.fixture
def port(
    server: ServerProcess, canary: Canary, record_property: pytest.RecordProperty
) -> Iterator[int]:
    """The server's port; after the test, the canary must have been served meanwhile."""
    start = time.monotonic()
    yield server.port
    canary.served_since(start)
    record_property("canary", canary.summary(start))
    print(canary.summary(start))


def upgrade_head(port: int, target: str = "/connection/websocket") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    ).encode()


def request_head(port: int, path: str) -> bytes:
    """The request line and first headers of a request to ``path`` (an upgrade on the
    WebSocket path), without the empty line that would end it."""
    if path == "/connection/websocket":
        return upgrade_head(port)
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and whole response, reading until the server closes (EOF or reset)."""
    sock.settimeout(timeout(5.0))
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    assert data, "the server closed without an answer"
    return int(data.split(b" ", 2)[1]), data


def exchange(port: int, data: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(5.0)) as sock:
        sock.sendall(data)
        return read_response(sock)


def flood(port: int, prefix: bytes) -> tuple[int, int]:
    """Send ``prefix``, then up to 128 MiB of ``a`` with no line end; return how much
    was sent before the server hung up, and the status it answered."""
    chunk = b"a" * (1 << 20)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10.0)) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(prefix)
            while sent < FLOOD:
                sock.sendall(chunk)
                sent += len(chunk)
        status, _ = read_response(sock)
    return sent, status


# A6, J8: 128 MB of request line or header: refused once past the limit.


@pytest.mark.parametrize("path", PATHS)
def test_flood_of_request_line(port: int, path: str) -> None:
    sent, status = flood(port, f"GET {path}?token=".encode())
    assert status == 414
    # The server stopped reading: the client could not hand over the 128 MiB (what was
    # sent fits in the two sockets' buffers).
    assert sent < FLOOD


@pytest.mark.parametrize("path", PATHS)
def test_flood_of_one_header(port: int, path: str) -> None:
    sent, status = flood(port, request_head(port, path) + b"X-Big: ")
    assert status == 431
    assert sent < FLOOD


@pytest.mark.parametrize("path", PATHS)
def test_flood_of_headers(port: int, path: str) -> None:
    """H1 on every route: 2000 small headers."""
    headers = b"".join(b"X-Flood-%d: y\r\n" % i for i in range(2000))
    status, response = exchange(port, request_head(port, path) + headers + b"\r\n")
    assert status == 431
    assert b"more than 128 headers" in response


def test_request_line_at_the_limit_is_served(port: int) -> None:
    line = b"GET /health?p="
    line += b"a" * (8192 - len(line) - len(b" HTTP/1.1\r"))
    request = line + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert len(request.split(b"\n")[0]) == 8192
    assert exchange(port, request)[0] == 200
    assert exchange(port, request.replace(b"?p=", b"?pp="))[0] == 414


def test_header_line_and_count_at_the_limit_are_served(port: int) -> None:
    head = b"GET /health HTTP/1.1\r\nConnection: close\r\n"
    at_limit = b"X-Big: " + b"b" * (8192 - 8) + b"\r\n"
    assert exchange(port, head + at_limit + b"\r\n")[0] == 200
    assert exchange(port, head + at_limit.replace(b"X-Big", b"X-Bigg") + b"\r\n")[0] == 431
    headers = b"".join(b"X-%d: y\r\n" % i for i in range(127))  # with Connection: 128
    assert exchange(port, head + headers + b"\r\n")[0] == 200
    assert exchange(port, head + headers + b"X-One-More: y\r\n\r\n")[0] == 431


def test_total_head_limit(port: int) -> None:
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"h" * 8000) for i in range(5))  # 40 KB
    status, response = exchange(port, b"GET /health HTTP/1.1\r\n" + headers + b"\r\n")
    assert status == 431
    assert b"request head larger than 32768 bytes" in response


# Every head of a keep-alive connection is bounded, pipelined or not.


def test_pipelined_head_after_a_request_without_body(port: int) -> None:
    first = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"GET /health?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    _, response = exchange(port, first + second)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"HTTP/1.1 414 " in response


def test_pipelined_head_after_a_body(port: int) -> None:
    """A body of known length is fed to the parser exactly: the head after it is
    scanned from its first byte (the body holds line ends that would fool a scan)."""
    body = b"\r\n\r\n" + b"x" * 100
    first = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    second = b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200))
    _, response = exchange(port, first + body + second + b"\r\n")
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"HTTP/1.1 431 " in response


def test_head_after_a_chunked_body_is_still_bounded(port: int) -> None:
    first = b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"5\r\nhello\r\n0\r\n\r\n"
    sent, status = flood(port, first + body + b"GET /health?")
    assert status in (200, 414)  # the 200 of the first request comes first
    assert sent < FLOOD


def test_bytes_after_an_upgrade_reach_the_websocket(port: int) -> None:
    """A frame sent with the upgrade request is not lost (uvicorn drops such bytes)."""
    connect = frame(0x1, b'{"id":1,"connect":{}}')
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(5.0)) as sock:
        sock.sendall(upgrade_head(port) + b"\r\n" + connect)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        ws = RawWebSocket(sock, rest)
        reply = ws.recv_reply(1)
        assert "connect" in reply


# H2 (HTTP part), A7 in small: slow or silent heads are closed.


def test_half_a_head_gets_408_at_the_head_timeout(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        status, _ = read_response(sock)
    assert status == 408


def test_a_head_sent_byte_by_byte_is_cut_at_the_head_timeout(port: int) -> None:
    """The timeout counts from the head's first byte; bytes keep coming, too slowly."""
    request = upgrade_head(port) + b"X-Slow: " + b"s" * 1000
    deadline = time.monotonic() + timeout(10.0)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in request:
                sock.sendall(bytes([byte]))
                assert time.monotonic() < deadline, "the server never cut the slow head"
                time.sleep(0.01)  # pacing: the attacker is slow on purpose
        status, _ = read_response(sock)
    assert status == 408


def test_a_silent_connection_is_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(timeout(5.0))
        assert sock.recv(1) == b""


def test_an_idle_keep_alive_connection_is_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, response = read_response(sock)
    assert status == 200
    assert response.endswith(b"{}")  # the whole response, then EOF without a request


def test_limits_follow_the_configuration(server_factory: object, port: int) -> None:
    small = server_factory(  # type: ignore[operator]
        CONFIG.replace(
            "[server]", "[server]\nrequest_line_size_limit = 1024\nheader_count_limit = 8"
        )
    )
    assert exchange(small.port, b"GET /health?" + b"a" * 1100 + b" HTTP/1.1\r\n\r\n")[0] == 414
    headers = b"".join(b"X-%d: y\r\n" % i for i in range(9))
    assert exchange(small.port, b"GET /health HTTP/1.1\r\n" + headers + b"\r\n")[0] == 431
    assert exchange(small.port, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")[0] == 200


def test_internal_port_bounds_heads_too(server_factory: object) -> None:
    """The internal listener (API, metrics, probes) has the same head limits."""
    server = server_factory(  # type: ignore[operator]
        CONFIG.replace("[server]", "[server]\ninternal_port = 0")
    )
    match = server.wait_for(r"internal endpoints at http://127\.0\.0\.1:(\d+)")
    internal = int(match.group(1))
    sent, status = flood(internal, b"GET /health?x=")
    assert (status, sent < FLOOD) == (414, True)
    headers = b"".join(b"X-%d: y\r\n" % i for i in range(200))
    assert exchange(internal, b"GET /api/info HTTP/1.1\r\n" + headers + b"\r\n")[0] == 431
    assert exchange(internal, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")[0] == 200
