"""The origin check: reliability.md O1-O3 and A8 (DNS rebinding), and log lines that
carry client text (issue 7 hole 8).

Unit tests of :class:`OriginCheck`, then a real ``wirehub serve`` with a canary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.server import ServerProcess, serving
from tests.transports.canary import CANARY_NAMESPACE, Canary
from tests.transports.rawws import RawWebSocket, http_upgrade
from wirehub.transports.logtext import LogThrottle, shown
from wirehub.transports.origin import OriginCheck

LOCAL = ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:8000",
        "HTTP://127.0.0.1:8000",
        "http://localhost:8000",
        "http://[::ffff:127.0.0.1]:8000",
    ],
)
def test_own_origin_is_the_address_the_connection_arrived_on(origin: str) -> None:
    assert OriginCheck([]).allows(origin, LOCAL)


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example:8000",  # DNS rebinding: whatever Host says
        "https://127.0.0.1:8000",  # another scheme
        "http://127.0.0.1",  # another port (80)
        "http://127.0.0.1:8001",
        "http://127.0.0.2:8000",
        "http://127.0.0.1:8000/path",
        "http://user@127.0.0.1:8000",
        "http://127.0.0.1:99999",
        "null",
        "",
    ],
)
def test_other_origins_are_refused(origin: str) -> None:
    assert not OriginCheck([]).allows(origin, LOCAL)


def test_localhost_only_for_a_loopback_address() -> None:
    assert not OriginCheck([]).allows("http://localhost:8000", ("192.168.1.5", 8000))
    assert OriginCheck([]).allows("http://192.168.1.5:8000", ("192.168.1.5", 8000))


def test_tls_listener_origin_is_https() -> None:
    check = OriginCheck([])
    assert check.allows("https://127.0.0.1:8443", ("127.0.0.1", 8443), tls=True)
    assert not check.allows("http://127.0.0.1:8443", ("127.0.0.1", 8443), tls=True)
    assert check.allows("https://localhost", ("::1", 443), tls=True)


def test_unknown_local_address_leaves_the_configured_origins() -> None:
    check = OriginCheck(["https://app.example.com"])
    assert check.allows("https://app.example.com", None)
    assert not check.allows("http://127.0.0.1:8000", None)


def test_missing_origin_follows_the_option() -> None:
    assert OriginCheck([]).allows(None, LOCAL)
    assert not OriginCheck([], allow_missing=False).allows(None, LOCAL)
    assert not OriginCheck(["*"], allow_missing=False).allows(None, LOCAL)


def test_shown_escapes_and_cuts() -> None:
    assert shown("a\nb\x1b[31m\u202e") == "'a\\nb\\x1b[31m\\u202e'"
    assert shown("x" * 10_000) == repr("x" * 200) + "... (10000 characters in all)"
    assert shown("\xe9" * 100) == "'" + "\\xe9" * 50 + "'... (100 characters in all)"
    assert shown(b"\xff\x00") == "'\\xff\\x00'"
    assert shown(None) == "(none)"


def test_log_throttle_counts_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = LogThrottle(logging.getLogger("test.throttle"), 3.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "test.throttle"):
        for _ in range(5):
            throttle.log(logging.INFO, "refused %s", "x")
        now[0] = 3.0
        throttle.log(logging.INFO, "refused %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "refused x",
        "refused y (and 4 more like it since the previous line)",
    ]


# Against a real server.

CONFIG = f"""
[server]
log_level = "debug"

[client]
allow_anonymous_connect_without_token = true
allowed_origins = ["https://app.example.com"]
{{extra}}
{CANARY_NAMESPACE}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(CONFIG.format(extra=""), tmp_path_factory.mktemp("origin")) as process:
        yield process


@pytest.fixture
def port(server: ServerProcess, record_property: pytest.RecordProperty) -> Iterator[int]:
    with Canary(server.port) as canary:
        start = time.monotonic()
        yield server.port
        canary.served_since(start)
        record_property("canary", canary.summary(start))


def status(port: int, headers: dict[str, str | None]) -> int:
    response, sock, _ = http_upgrade(port, headers=headers)
    sock.close()
    return response.status


def test_dns_rebinding_is_refused(port: int) -> None:
    """A8: the attacker's page names its own host in Origin and Host alike."""
    evil = f"evil.example:{port}"
    assert status(port, {"Origin": f"http://{evil}", "Host": evil}) == 403


def test_right_host_other_scheme_is_refused(port: int) -> None:
    assert status(port, {"Origin": f"https://127.0.0.1:{port}"}) == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_own_origin_is_allowed_whatever_the_host_header(port: int, host: str) -> None:
    assert status(port, {"Origin": f"http://{host}:{port}", "Host": "whatever.example"}) == 101


def test_configured_origin_is_allowed(port: int) -> None:
    assert status(port, {"Origin": "https://app.example.com"}) == 101


def test_no_origin_is_allowed_and_logged(server_factory: Callable[..., ServerProcess]) -> None:
    # A server of its own: such lines are throttled (at most one a minute).
    server = server_factory(CONFIG.format(extra=""))
    with RawWebSocket.open(server.port, headers={"Origin": None}) as ws:
        ws.connect()
    server.wait_for(r"allowed a WebSocket without Origin from 127\.0\.0\.1:\d+")


def test_refused_origin_is_logged_cut_and_escaped(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(CONFIG.format(extra=""))  # refusals are throttled too
    origin = "https://evil.example/" + "\u00e9" * 8000  # sent as latin-1 bytes
    assert status(server.port, {"Origin": origin}) == 403
    line = server.wait_for(r"refused a WebSocket from .*characters in all\)").string
    assert len(line) < 400
    assert "\u00e9" not in line  # escaped
    assert "\\xe9" in line


def test_no_origin_refused_when_configured(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(CONFIG.format(extra="allow_no_origin = false"))
    assert status(server.port, {"Origin": None}) == 403
    assert status(server.port, {"Origin": f"http://127.0.0.1:{server.port}"}) == 101
    server.wait_for("refused a WebSocket from .*: origin missing")
