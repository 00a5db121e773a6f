"""Event proxies of a real ``wirehub serve`` against a real HTTP backend
(``docs/proxies.md``, ``centrifugo-server-side.md`` §3).

One server and one backend (:mod:`tests.proxy.backend`) serve the whole module; the
requests name what the backend does (a ``mode``), so the tests don't share switches.
Clients speak the raw protocol (:mod:`tests.transports.rawws`, ``rawhttp`` for
unidirectional streams): replies, error codes and close codes are checked exactly.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from centrifuge.protocol import client_pb2 as pb

from tests.proxy.backend import Backend, Recorded
from tests.support.server import ServerProcess, serving, timeout
from tests.transports.rawhttp import RawStream
from tests.transports.rawpb import PROTOBUF, PbClient, open_upgrade
from tests.transports.rawws import RawWebSocket

SECRET = "proxy-tests-secret-0123456789abcdef-xyz"
API_KEY = "proxy-tests-api-key"
PROXY_TIMEOUT = 1.0
MARGIN = timeout(1.5)
"""A failed call is answered within the proxy timeout plus this."""

INTERNAL = {"code": 100, "message": "internal server error", "temporary": True}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_config(url: str, dead: str) -> str:
    return f"""
[server]
log_level = "debug"

[client]
expired_close_delay = 0.5

[client.token]
hmac_secret_key = "{SECRET}"

[client.connect_code_to_unidirectional_disconnect]
enabled = true
transforms = [{{ code = 1000, to = {{ code = 4502, reason = "refused by the backend" }} }}]

[client.proxy.connect]
enabled = true
endpoint = "{url}/connect"
timeout = {PROXY_TIMEOUT}
http_headers = ["Cookie", "authorization"]
emulated_headers = ["X-Emulated", "cookie"]
http.static_headers = {{ "X-Static" = "static-value" }}
http.status_to_code_transforms = [
    {{ status_code = 418, to_error = {{ code = 1418, message = "teapot", temporary = true }} }},
    {{ status_code = 419, to_disconnect = {{ code = 4419, reason = "gone" }} }},
]

[client.proxy.refresh]
enabled = true
endpoint = "{url}/refresh"
timeout = {PROXY_TIMEOUT}

[channel.proxy.subscribe]
endpoint = "{url}/subscribe"
timeout = {PROXY_TIMEOUT}
include_connection_meta = true

[channel.proxy.publish]
endpoint = "{url}/publish"
timeout = {PROXY_TIMEOUT}

[channel.proxy.sub_refresh]
endpoint = "{url}/sub_refresh"
timeout = {PROXY_TIMEOUT}

[rpc.proxy]
endpoint = "{url}/rpc"
timeout = {PROXY_TIMEOUT}
include_connection_meta = true
http_headers = ["cookie"]
emulated_headers = ["x-emulated"]

[[rpc.namespaces]]
name = "px"
proxy_enabled = true

[[rpc.namespaces]]
name = "bin"
proxy_enabled = true
proxy_name = "binary"

[[rpc.namespaces]]
name = "dead"
proxy_enabled = true
proxy_name = "dead"

[[rpc.namespaces]]
name = "local"

[[proxies]]
name = "binary"
endpoint = "{url}/rpc"
binary_encoding = true

[[proxies]]
name = "dead"
endpoint = "{dead}/rpc"

[[proxies]]
name = "transforms"
endpoint = "{url}/subscribe"
http.status_to_code_transforms = [
    {{ status_code = 418, to_error = {{ code = 1418, message = "teapot" }} }},
    {{ status_code = 419, to_disconnect = {{ code = 4419, reason = "gone" }} }},
]

[[channel.namespaces]]
name = "px"
subscribe_proxy_enabled = true
publish_proxy_enabled = true
sub_refresh_proxy_enabled = true
history_size = 10
history_ttl = 300
allow_history_for_subscriber = true

[[channel.namespaces]]
name = "obj"
allow_subscribe_for_client = true
publish_proxy_enabled = true
publication_data_format = "json_object"

[[channel.namespaces]]
name = "dead"
subscribe_proxy_enabled = true
subscribe_proxy_name = "dead"

[[channel.namespaces]]
name = "tr"
subscribe_proxy_enabled = true
subscribe_proxy_name = "transforms"

[[channel.namespaces]]
name = "plain"
allow_subscribe_for_client = true
presence = true
allow_presence_for_subscriber = true

[http_api]
key = "{API_KEY}"

[uni_http_stream]
enabled = true

[prometheus]
enabled = true
"""


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    started = Backend().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = server_config(backend.url, f"http://127.0.0.1:{_free_port()}")
    with serving(config, tmp_path_factory.mktemp("proxy")) as process:
        yield process


# Helpers.


def api(server: ServerProcess, method: str, **params: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.http_url}/api/{method}",
        json=params,
        headers={"X-API-Key": API_KEY},
        timeout=timeout(5),
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    assert "error" not in result, result
    return result


def ws(server: ServerProcess, headers: dict[str, str] | None = None) -> RawWebSocket:
    return RawWebSocket.open(server.port, headers=headers)


def connect(sock: RawWebSocket, **request: Any) -> dict[str, Any]:
    """Send a connect command; return the whole reply."""
    (command_id,) = sock.send_commands({"connect": request})
    return sock.recv_reply(command_id, wait=PROXY_TIMEOUT + MARGIN)


def command(sock: RawWebSocket, name: str, **request: Any) -> dict[str, Any]:
    (command_id,) = sock.send_commands({name: request})
    return sock.recv_reply(command_id, wait=PROXY_TIMEOUT + MARGIN)


def connected(server: ServerProcess, **request: Any) -> tuple[RawWebSocket, dict[str, Any]]:
    sock = ws(server)
    reply = connect(sock, **request)
    assert "connect" in reply, reply
    return sock, reply["connect"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def one(backend: Backend, path: str, match: Callable[[Recorded], bool]) -> Recorded:
    found = backend.recorded(path, match)
    assert len(found) == 1, found
    return found[0]


def recv_push(sock: RawWebSocket, key: str, wait: float = timeout(5)) -> dict[str, Any]:
    """The next push holding ``key`` (``pub``, ``unsubscribe``, ...); pings are skipped."""
    deadline = time.monotonic() + wait
    while True:
        for message in sock.recv_messages(deadline - time.monotonic()):
            push = message.get("push", message)
            if key in push:
                return dict(push)


class Watcher:
    """A client subscribed to a plain channel: proof the server keeps serving others
    while a proxy call hangs or fails."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.channel = unique("plain:watch")
        self.sock, _ = connected(server)
        assert "subscribe" in command(self.sock, "subscribe", channel=self.channel)

    def check_served(self) -> None:
        text = unique("still-served")
        api(self.server, "publish", channel=self.channel, data={"text": text})
        push = recv_push(self.sock, "pub")
        assert push["pub"]["data"] == {"text": text}

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def watcher(server: ServerProcess) -> Iterator[Watcher]:
    watching = Watcher(server)
    yield watching
    watching.close()


# Connect.


def test_connect_accepted_with_the_backends_user_info_and_data(
    server: ServerProcess, backend: Backend
) -> None:
    sock, result = connected(
        server, data={"marker": "accepted"}, name="raw-test", version="1.2", subs={"plain:x": {}}
    )
    with sock:
        assert result["data"] == {"greeting": "hello"}
        assert "expires" not in result
        # Only the backend's channels are subscribed, not the client's subs.
        assert "subs" not in result
        request = one(backend, "/connect", lambda r: r.body["client"] == result["client"]).body
        assert request == {
            "client": result["client"],
            "transport": "websocket",
            "protocol": "json",
            "encoding": "json",
            "name": "raw-test",
            "version": "1.2",
            "data": {"marker": "accepted"},
            "channels": ["plain:x"],
        }
        channel = unique("plain:who")
        assert "subscribe" in command(sock, "subscribe", channel=channel)
        presence = command(sock, "presence", channel=channel)["presence"]["presence"]
        info = presence[result["client"]]
        assert info["user"] == "42"
        assert info["conn_info"] == {"name": "from backend"}


def test_connect_backend_channels_become_server_side_subscriptions(server: ServerProcess) -> None:
    channel = unique("plain:server-side")
    with_options = unique("px:server-side")
    subs = {
        with_options: {
            "data": {"sub": "data"},
            "override": {"force_positioning": {"value": True}},
        }
    }
    sock, result = connected(server, data={"channels": [channel], "subs": subs})
    with sock:
        assert list(result["subs"]) == [channel, with_options]
        assert result["subs"][with_options]["data"] == {"sub": "data"}
        assert result["subs"][with_options]["positioned"] is True
        assert "positioned" not in result["subs"][channel]
        api(server, "publish", channel=channel, data={"n": 1})
        assert recv_push(sock, "pub")["channel"] == channel


def test_connect_refused_with_the_backends_error(server: ServerProcess) -> None:
    with ws(server) as sock:
        reply = connect(sock, data={"mode": "error"})
        assert reply["error"] == {"code": 1000, "message": "backend refused"}


def test_connect_refused_with_the_backends_disconnect(server: ServerProcess) -> None:
    with ws(server) as sock:
        connect_id = sock.send_commands({"connect": {"data": {"mode": "disconnect"}}})
        assert connect_id
        closed = sock.expect_close(4501)
        assert closed.reason == "backend disconnect"


def test_connect_empty_result_is_3501_without_anonymous(server: ServerProcess) -> None:
    with ws(server) as sock:
        sock.send_commands({"connect": {"data": {"mode": "empty"}}})
        sock.expect_close(3501)


def test_connect_expire_at_in_the_past_is_error_110(server: ServerProcess) -> None:
    with ws(server) as sock:
        assert connect(sock, data={"mode": "expired"})["error"]["code"] == 110


def test_connect_with_a_token_skips_the_proxy(server: ServerProcess, backend: Backend) -> None:
    token = jwt.encode({"sub": "token-user", "exp": int(time.time()) + 600}, SECRET, "HS256")
    sock, result = connected(server, token=token)
    with sock:
        assert "expires" not in result  # the refresh proxy refreshes token connections too
        assert not backend.recorded("/connect", lambda r: r.body["client"] == result["client"])
        channel = unique("plain:token")
        assert "subscribe" in command(sock, "subscribe", channel=channel)
        presence = command(sock, "presence", channel=channel)["presence"]["presence"]
        assert presence[result["client"]]["user"] == "token-user"


def test_configured_headers_forwarded_and_nothing_else(
    server: ServerProcess, backend: Backend
) -> None:
    headers = {
        "Cookie": "session=abc",
        "Authorization": "Bearer xyz",
        "X-Other": "not forwarded",
        "User-Agent": "raw-test",
    }
    sock = ws(server, headers)
    with sock:
        # Emulated headers (the connect command's): those listed go, the transport's win.
        emulated = {"X-Emulated": "e1", "Cookie": "emulated", "X-Nope": "n"}
        result = connect(sock, headers=emulated)["connect"]
        sent = one(backend, "/connect", lambda r: r.body["client"] == result["client"]).headers
        assert sent["x-emulated"] == "e1"
        assert "x-nope" not in sent
        assert sent["cookie"] == "session=abc"
        assert sent["authorization"] == "Bearer xyz"
        assert sent["x-static"] == "static-value"
        assert sent["content-type"] == "application/json"
        assert "x-other" not in sent
        assert "raw-test" not in sent.get("user-agent", "")
        assert "origin" not in sent
        # The rpc proxy forwards only the cookie (and sends the connection's meta).
        reply = command(sock, "rpc", method="px:echo", data={"a": 1})
        assert reply["rpc"]["data"] == {"method": "px:echo", "echo": {"a": 1}}
        rpc = one(backend, "/rpc", lambda r: r.body["client"] == result["client"])
        assert rpc.headers["cookie"] == "session=abc"
        assert rpc.headers["x-emulated"] == "e1"  # kept since connect
        assert "authorization" not in rpc.headers
        assert "x-static" not in rpc.headers
        assert rpc.body == {
            "client": result["client"],
            "transport": "websocket",
            "protocol": "json",
            "encoding": "json",
            "user": "42",
            "method": "px:echo",
            "data": {"a": 1},
            "meta": {"team": "blue"},
        }


# Failures of the connect proxy.


@pytest.mark.parametrize("mode", ["sleep", "status500", "html", "huge", "invalid"])
def test_connect_failure_is_a_temporary_error_100_in_time(
    server: ServerProcess, watcher: Watcher, mode: str
) -> None:
    with ws(server) as sock:
        started = time.monotonic()
        (command_id,) = sock.send_commands({"connect": {"data": {"mode": mode}}})
        watcher.check_served()  # while the call is under way (sleep: for a second)
        reply = sock.recv_reply(command_id, wait=PROXY_TIMEOUT + MARGIN)
        elapsed = time.monotonic() - started
        assert reply["error"] == INTERNAL
        assert elapsed < PROXY_TIMEOUT + MARGIN
        if mode == "sleep":
            assert elapsed >= PROXY_TIMEOUT * 0.9
    watcher.check_served()


def test_connect_with_the_backend_stopped(
    server: ServerProcess, backend: Backend, watcher: Watcher
) -> None:
    backend.stop()
    try:
        with ws(server) as sock:
            started = time.monotonic()
            assert connect(sock)["error"] == INTERNAL
            assert time.monotonic() - started < PROXY_TIMEOUT + MARGIN
            watcher.check_served()
    finally:
        backend.start()
    sock, _ = connected(server)  # back again
    sock.close()


def test_status_to_code_transforms(server: ServerProcess) -> None:
    with ws(server) as sock:
        reply = connect(sock, data={"mode": "status418"})
        assert reply["error"] == {"code": 1418, "message": "teapot", "temporary": True}
    with ws(server) as sock:
        sock.send_commands({"connect": {"data": {"mode": "status419"}}})
        assert sock.expect_close(4419).reason == "gone"


@pytest.mark.parametrize(
    ("mode", "code"),
    # The backend's error 1000 is transformed by client.connect_code_to_unidirectional_
    # disconnect; the failures (100) take the default mapping.
    [("", 0), ("sleep", 3004), ("invalid", 3004), ("error", 4502), ("disconnect", 4501)],
)
def test_unidirectional_connect_goes_through_the_proxy(
    server: ServerProcess, mode: str, code: int
) -> None:
    body = json.dumps({"data": {"mode": mode}}).encode()
    with RawStream.open(server.port, "POST", "/connection/uni_http_stream", body=body) as stream:
        assert stream.status == 200
        first = stream.next_message(wait=PROXY_TIMEOUT + MARGIN)
        assert first is not None
        if not code:
            assert first["connect"]["data"] == {"greeting": "hello"}
            return
        assert first["disconnect"]["code"] == code, first
        assert stream.messages_until_end() == []


def test_failures_are_counted_in_metrics(server: ServerProcess) -> None:
    with ws(server) as sock:
        assert connect(sock, data={"mode": "status500"})["error"] == INTERNAL
    metrics = httpx.get(f"{server.http_url}/metrics", timeout=timeout(5)).text
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("centrifugo_proxy_errors{") and 'type="connect"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert (
        'centrifugo_proxy_duration_seconds_histogram_count{name="default",protocol="http",type="connect"}'
        in metrics
    )
    server.wait_for(r"connect proxy 'default' \(http://.*/connect\) failed")


# Refresh.


def test_refresh_extends_then_expires_with_3005(server: ServerProcess, backend: Backend) -> None:
    sock, result = connected(server, data={"expire_in": 2})
    with sock:
        assert "expires" not in result  # the server refreshes, not the client
        channel = unique("px:ok")
        assert "subscribe" in command(sock, "subscribe", channel=channel)
        # The first refresh extends the connection and replaces its info: the
        # publications of this client carry the new info.
        client = result["client"]
        backend.wait_for("/refresh", lambda r: r.body["client"] == client, timeout(5))
        # (The backend saw the call; the server applies the answer a moment later.)
        deadline = time.monotonic() + timeout(2)
        while True:
            sock.send_commands({"publish": {"channel": channel, "data": {"n": 1}}})
            info = recv_push(sock, "pub")["pub"]["info"]["conn_info"]
            if info == {"refreshed": True} or time.monotonic() > deadline:
                break
        assert info == {"refreshed": True}
        closed = sock.expect_close(3005, wait=timeout(9))
        assert closed.reason == "connection expired"
        assert backend.refreshes[result["client"]] == 2
        first = backend.recorded("/refresh", lambda r: r.body["client"] == result["client"])[0]
        assert first.body["user"] == "42"


# Subscribe.


def test_subscribe_allowed_by_the_backend(server: ServerProcess, backend: Backend) -> None:
    sock, result = connected(server)
    with sock:
        channel = unique("px:ok")
        reply = command(sock, "subscribe", channel=channel, data={"asked": True})
        assert reply["subscribe"]["data"] == {"welcome": channel}
        request = one(backend, "/subscribe", lambda r: r.body.get("channel") == channel).body
        assert request == {
            "client": result["client"],
            "transport": "websocket",
            "protocol": "json",
            "encoding": "json",
            "user": "42",
            "channel": channel,
            "data": {"asked": True},
            "meta": {"team": "blue"},
        }
        # The client's own positioning and recovery flags are not honoured here.
        other = unique("px:flags")
        reply = command(sock, "subscribe", channel=other, positioned=True, recoverable=True)
        assert "positioned" not in reply["subscribe"]
        # Channel info from the backend goes with this client's publications.
        sock.send_commands({"publish": {"channel": channel, "data": {"n": 1}}})
        pub = recv_push(sock, "pub")["pub"]
        assert pub["data"] == {"n": 1}
        assert pub["info"]["chan_info"] == {"role": "member"}


def test_subscribe_override_from_the_backend(server: ServerProcess) -> None:
    sock, _ = connected(server)
    with sock:
        # An empty result: allowed, with the namespace's options.
        assert command(sock, "subscribe", channel=unique("px:empty"))["subscribe"] == {}
        reply = command(sock, "subscribe", channel=unique("px:override"))
        # The namespace forces neither; the backend's override does.
        assert reply["subscribe"]["positioned"] is True
        assert reply["subscribe"]["recoverable"] is True
        assert reply["subscribe"]["epoch"]


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("px:error", {"code": 1000, "message": "backend refused"}),
        ("px:sleep", INTERNAL),
        ("px:html", INTERNAL),
        ("dead:room", INTERNAL),
        ("tr:status418", {"code": 1418, "message": "teapot"}),
    ],
)
def test_subscribe_refused(server: ServerProcess, channel: str, expected: dict[str, Any]) -> None:
    sock, _ = connected(server)
    with sock:
        started = time.monotonic()
        reply = command(sock, "subscribe", channel=unique(channel))
        assert reply["error"] == expected
        assert time.monotonic() - started < PROXY_TIMEOUT + MARGIN
        # The connection stays.
        assert "subscribe" in command(sock, "subscribe", channel=unique("plain:after"))


@pytest.mark.parametrize(("channel", "code"), [("px:disconnect", 4501), ("tr:status419", 4419)])
def test_subscribe_refused_with_a_disconnect(
    server: ServerProcess, channel: str, code: int
) -> None:
    sock, _ = connected(server)
    with sock:
        sock.send_commands({"subscribe": {"channel": unique(channel)}})
        sock.expect_close(code)


def test_subscription_token_skips_the_proxy(server: ServerProcess, backend: Backend) -> None:
    sock, _ = connected(server)
    with sock:
        channel = unique("px:token")
        claims = {"sub": "42", "channel": channel, "exp": int(time.time()) + 600}
        token = jwt.encode(claims, SECRET, "HS256")
        assert "subscribe" in command(sock, "subscribe", channel=channel, token=token)
        assert not backend.recorded("/subscribe", lambda r: r.body.get("channel") == channel)


def test_sub_refresh_extends_then_unsubscribes_with_2501(
    server: ServerProcess, backend: Backend
) -> None:
    sock, result = connected(server)
    with sock:
        channel = unique("px:expiring")
        reply = command(sock, "subscribe", channel=channel)
        assert "expires" not in reply["subscribe"]  # the server refreshes
        push = recv_push(sock, "unsubscribe", wait=timeout(10))
        assert push["channel"] == channel
        assert push["unsubscribe"]["code"] == 2501
        assert backend.refreshes[f"{result['client']}/{channel}"] == 2


# Publish.


def subscribed_pair(server: ServerProcess, channel: str) -> tuple[RawWebSocket, RawWebSocket]:
    reader, _ = connected(server)
    assert "subscribe" in command(reader, "subscribe", channel=channel)
    writer, _ = connected(server)
    return reader, writer


def test_publish_rewritten_by_the_backend(server: ServerProcess, backend: Backend) -> None:
    channel = unique("px:room")
    reader, writer = subscribed_pair(server, channel)
    with reader, writer:
        # No permission flag allows publishing in px: the proxy decides.
        reply = command(writer, "publish", channel=channel, data={"mode": "rewrite"})
        assert reply == {"id": reply["id"], "publish": {}}
        push = recv_push(reader, "pub")
        assert push["pub"]["data"] == {"rewritten": True, "by": "42"}
        assert push["pub"]["info"]["user"] == "42"
        command(writer, "publish", channel=channel, data={"mode": "rewrite_b64"})
        assert recv_push(reader, "pub")["pub"]["data"] == {"b64": True}
        request = one(
            backend,
            "/publish",
            lambda r: (
                r.body.get("data", {}).get("mode") == "rewrite" and r.body["channel"] == channel
            ),
        )
        assert request.body["user"] == "42"
        assert "meta" not in request.body  # include_connection_meta is off


def test_publish_refused_by_the_backend(server: ServerProcess) -> None:
    channel = unique("px:room")
    reader, writer = subscribed_pair(server, channel)
    with reader, writer:
        reply = command(writer, "publish", channel=channel, data={"mode": "error"})
        assert reply["error"] == {"code": 1000, "message": "backend refused"}
        reply = command(writer, "publish", channel=channel, data={"mode": "sleep"})
        assert reply["error"] == INTERNAL
        command(writer, "publish", channel=channel, data={"mode": "plain"})
        # The refused ones were never delivered: the first publication is the plain one.
        assert recv_push(reader, "pub")["pub"]["data"] == {"mode": "plain"}


def test_publish_skip_history(server: ServerProcess) -> None:
    channel = unique("px:room")
    reader, writer = subscribed_pair(server, channel)
    with reader, writer:
        command(writer, "publish", channel=channel, data={"mode": "kept"})
        command(writer, "publish", channel=channel, data={"mode": "skip_history"})
        assert recv_push(reader, "pub")["pub"]["data"] == {"mode": "kept"}
        assert recv_push(reader, "pub")["pub"]["data"] == {"mode": "skip_history"}
        history = api(server, "history", channel=channel, limit=10)["result"]
        assert [p["data"] for p in history["publications"]] == [{"mode": "kept"}]


def test_publish_rewritten_data_is_checked_like_any(server: ServerProcess) -> None:
    channel = unique("obj:room")
    reader, writer = subscribed_pair(server, channel)
    with reader, writer:
        reply = command(writer, "publish", channel=channel, data={"mode": "bad_payload"})
        assert reply["error"]["code"] == 107


def test_publish_refused_with_a_disconnect(server: ServerProcess) -> None:
    sock, _ = connected(server)
    with sock:
        sock.send_commands(
            {"publish": {"channel": unique("px:room"), "data": {"mode": "disconnect"}}}
        )
        sock.expect_close(4501)


# RPC.


def test_rpc_binary_encoding(server: ServerProcess, backend: Backend) -> None:
    sock, result = connected(server)
    with sock:
        reply = command(sock, "rpc", method="bin:echo", data={"a": 1})
        assert reply["rpc"]["data"] == {"method": "bin:echo", "echo": None}
        request = one(backend, "/rpc", lambda r: r.body["client"] == result["client"]).body
        assert request["encoding"] == "binary"
        assert "data" not in request
        assert json.loads(base64.b64decode(request["b64data"])) == {"a": 1}
        assert command(sock, "rpc", method="px:b64")["rpc"]["data"] == {"b64": True}


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("px:sleep", INTERNAL),
        ("px:invalid", INTERNAL),
        ("px:huge", INTERNAL),
        ("px:error", {"code": 1000, "message": "backend refused"}),
        ("dead:call", INTERNAL),
        ("local:call", {"code": 108, "message": "not available"}),
        ("nowhere:call", {"code": 104, "message": "method not found"}),
        ("bare", {"code": 108, "message": "not available"}),
    ],
)
def test_rpc_errors(server: ServerProcess, method: str, expected: dict[str, Any]) -> None:
    sock, _ = connected(server)
    with sock:
        started = time.monotonic()
        assert command(sock, "rpc", method=method)["error"] == expected
        assert time.monotonic() - started < PROXY_TIMEOUT + MARGIN
        assert "rpc" in command(sock, "rpc", method="px:again")


def test_protobuf_client_binary_payloads(server: ServerProcess, backend: Backend) -> None:
    _, sock = open_upgrade(server.port, Sec_WebSocket_Protocol=PROTOBUF)
    with sock:
        client = PbClient(sock)
        (connect_id,) = client.send(pb.Command(connect=pb.ConnectRequest(data=b'{"pb": 1}')))
        reply = client.recv_reply(connect_id)
        assert json.loads(reply.connect.data) == {"greeting": "hello"}
        request = one(backend, "/connect", lambda r: r.body["client"] == reply.connect.client)
        assert request.body["protocol"] == "protobuf"
        assert request.body["data"] == {"pb": 1}
        # Binary payloads go to and come back from a binary_encoding proxy unchanged.
        binary = bytes(range(256))
        (rpc_id,) = client.send(pb.Command(rpc=pb.RPCRequest(method="bin:raw", data=binary)))
        assert client.recv_reply(rpc_id).rpc.data == binary
        # Without binary_encoding they can't be embedded as JSON: refused, not sent broken.
        (rpc_id,) = client.send(pb.Command(rpc=pb.RPCRequest(method="px:raw", data=binary)))
        assert client.recv_reply(rpc_id).error.code == 107


# Configuration errors at start.


def test_serve_refuses_to_start_with_a_grpc_proxy(tmp_path: Path) -> None:
    # The other configuration errors: tests/proxy/test_config.py.
    path = tmp_path / "bad.toml"
    path.write_text('[client.proxy.connect]\nenabled = true\nendpoint = "grpc://127.0.0.1:10001"\n')
    process = ServerProcess(path)
    try:
        with pytest.raises(RuntimeError, match="the server exited") as failed:
            process.start()
    finally:
        process.stop()
    assert "gRPC proxies are not supported" in str(failed.value), failed.value


def test_emulated_headers_without_transport_ones(server: ServerProcess, backend: Backend) -> None:
    with ws(server) as sock:
        result = connect(sock, headers={"cookie": "from-emulation", "x-emulated": "e2"})["connect"]
        sent = one(backend, "/connect", lambda r: r.body["client"] == result["client"]).headers
        assert sent["cookie"] == "from-emulation"
        assert sent["x-emulated"] == "e2"
