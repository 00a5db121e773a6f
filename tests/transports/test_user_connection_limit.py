"""``client.user_connection_limit`` (centrifugo-server-side.md §7.3) against a real
server with raw sockets: the connect that would exceed a user's connections on this
node is closed with 3504 "connection limit"; anonymous connections are not counted; a
closed connection frees its place. (centrifuge-python's reaction: tests/interop.)"""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt

from tests.support.server import ServerProcess
from tests.transports.rawws import RawWebSocket

SECRET = "user-limit-test-secret-" + "s" * 41

CONFIG = f"""
[client]
allow_anonymous_connect_without_token = true
user_connection_limit = 2

[client.token]
hmac_secret_key = "{SECRET}"
"""


def token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


def connect(ws: RawWebSocket, user: str | None) -> dict[str, object]:
    request = {"token": token(user)} if user is not None else {}
    (command_id,) = ws.send_commands({"connect": request})
    return ws.recv_reply(command_id)


def test_third_connection_of_a_user_is_3504(
    server_factory: Callable[[str], ServerProcess],
) -> None:
    server = server_factory(CONFIG)
    with (
        RawWebSocket.open(server.port) as first,
        RawWebSocket.open(server.port) as second,
        RawWebSocket.open(server.port) as other_user,
    ):
        assert "connect" in connect(first, "42")
        assert "connect" in connect(second, "42")
        assert "connect" in connect(other_user, "7")
        with RawWebSocket.open(server.port) as third:
            third.send_commands({"connect": {"token": token("42")}})
            closed = third.expect_close(3504)
            assert closed.reason == "connection limit"
            assert closed.messages == []
        anonymous = [RawWebSocket.open(server.port) for _ in range(5)]
        try:
            for ws in anonymous:
                assert "connect" in connect(ws, None)
        finally:
            for ws in anonymous:
                ws.close()
        # A closed connection frees its place (once the server answered the close).
        first.send_frame(0x8, b"\x03\xe8")
        first.recv_close()
        with RawWebSocket.open(server.port) as again:
            assert "connect" in connect(again, "42")
        # The others were never disturbed: still connected, still answered.
        for ws in (second, other_user):
            (rpc_id,) = ws.send_commands({"rpc": {"method": "none"}})
            assert ws.recv_reply(rpc_id)["error"]["code"] == 104
