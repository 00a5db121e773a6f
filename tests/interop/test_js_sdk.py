"""centrifuge-js 5.x (unchanged, in Node 20) against a real wirehub server.

Each client is a ``node js/client.mjs`` subprocess printing one JSON event per line and
taking JSON commands on stdin (see that script); the process is always killed at the
end. The packages come from ``js/package-lock.json``: ``npm ci --prefix tests/interop/js``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import pytest
from anyio.abc import Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.text import TextReceiveStream

from tests.interop.helpers import (
    CHAT,
    LOCKED,
    SECRET,
    UNKNOWN,
    EventLog,
    config_toml,
    event,
    make_token,
    node_config,
    one_connection_only,
)
from tests.support.inprocess import serve_node
from tests.support.server import ServerProcess, timeout
from wirehub import Node

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

StartServer = Callable[[str], ServerProcess]

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "client.mjs"
INSTALL_HINT = "run `npm ci --prefix tests/interop/js`"

# Fast retries, so that a reconnect that must not happen would show within
# NO_RECONNECT_WINDOW, and one that must happen comes quickly.
FAST_RECONNECT: dict[str, Any] = {"minReconnectDelay": 100, "maxReconnectDelay": 200}


def _node() -> str:
    """The node binary, after checking the SDK is installed; fails the test otherwise."""
    for package in ("centrifuge", "ws"):
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            pytest.fail(f"the JS SDK is not installed ({package} missing): {INSTALL_HINT}")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (Node.js 20) is not on PATH; it runs the centrifuge-js tests")
    return node


class JsClient:
    """One centrifuge-js client in a node process: ``async with JsClient(url, ...)``."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "centrifuge-js",
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> None:
        self.options = {"url": url, **options}
        self.env = env
        """Extra environment variables of the node process (``NODE_EXTRA_CA_CERTS``)."""
        self.log = EventLog(name)
        self._process: Process | None = None
        self._tasks: TaskGroup | None = None
        self._next_id = 0

    async def __aenter__(self) -> Self:
        node = _node()
        command = [node, str(SCRIPT), json.dumps(self.options)]
        env = {**os.environ, **self.env} if self.env else None
        self._process = await anyio.open_process(command, cwd=JS_DIR, env=env)
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._read_events)
        self._tasks.start_soon(self._read_stderr)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, tasks = self._process, self._tasks
        try:
            if process is not None:
                with anyio.CancelScope(shield=True):
                    if process.returncode is None:
                        process.kill()
                    await process.wait()
        finally:
            if tasks is not None:
                # Exited outside the shield: cancel scopes must nest. The test's own
                # exception, if any, propagates from here unwrapped.
                tasks.cancel_scope.cancel()
                await tasks.__aexit__(None, None, None)
            if process is not None:
                with anyio.CancelScope(shield=True):
                    await process.aclose()

    @property
    def _running(self) -> Process:
        if self._process is None:
            raise RuntimeError("use `async with JsClient(...)`")
        return self._process

    async def command(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command to the script and return its result event."""
        stdin = self._running.stdin
        assert stdin is not None
        self._next_id += 1
        line = json.dumps({"op": op, "id": self._next_id, **fields}) + "\n"
        await stdin.send(line.encode())
        return await self.log.wait_for(event("result", id=self._next_id))

    async def connected(self) -> str:
        return str((await self.log.wait_for(event("connected")))["client"])

    async def _read_events(self) -> None:
        stdout = self._running.stdout
        assert stdout is not None
        stream = BufferedByteReceiveStream(stdout)
        try:
            while True:
                line = await stream.receive_until(b"\n", 1 << 20)
                try:
                    item = json.loads(line)
                except ValueError:
                    item = {"event": "stdout", "text": line.decode(errors="replace")}
                self.log.add(item)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
            self.log.add({"event": "exited"})

    async def _read_stderr(self) -> None:
        stderr = self._running.stderr
        assert stderr is not None
        try:
            async for text in TextReceiveStream(stderr, errors="replace"):
                self.log.notes.append(f"stderr: {text.rstrip()}")
        except anyio.ClosedResourceError:
            pass


# 1. Token connect.


async def test_connects_with_a_hs256_token(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    async with JsClient(server.ws_url, token=make_token("42"), subscribe=[CHAT]) as js:
        client_id = await js.connected()

        assert client_id
        # The connection is user 42: its own publications say so.
        await js.log.wait_for(event("subscribed", channel=CHAT))
        assert (await js.command("publish", channel=CHAT, data={"hello": "world"}))["ok"]
        publication = await js.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"hello": "world"}
        assert publication["info"]["user"] == "42"
        assert publication["info"]["client"] == client_id
        assert (await js.command("snapshot"))["state"] == "connected"


# 2. Anonymous connections.


async def test_anonymous_refused_without_reconnecting(server_factory: StartServer) -> None:
    server = server_factory(config_toml(anonymous=False))
    async with JsClient(server.ws_url, **FAST_RECONNECT) as js:
        disconnected = await js.log.wait_for(event("disconnected"))

        assert disconnected["code"] == 3501
        await one_connection_only(server, 3501)
        assert len(js.log.matching(event("ws_created"))) == 1
        assert not js.log.matching(event("connected"))
        assert (await js.command("snapshot"))["state"] == "disconnected"


async def test_anonymous_allowed(server_factory: StartServer) -> None:
    server = server_factory(config_toml(anonymous=True))
    async with JsClient(server.ws_url) as js:
        assert await js.connected()
        assert (await js.command("snapshot"))["state"] == "connected"


# 3. Publications reach subscribers.


async def test_publication_from_another_client_arrives(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    async with (
        JsClient(server.ws_url, token=make_token("42"), subscribe=[CHAT], name="sub") as sub,
        JsClient(server.ws_url, token=make_token("43"), name="publisher") as publisher,
    ):
        await sub.log.wait_for(event("subscribed", channel=CHAT))
        publisher_id = await publisher.connected()

        assert (await publisher.command("publish", channel=CHAT, data={"text": "hi"}))["ok"]

        publication = await sub.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"text": "hi"}
        assert publication["info"]["user"] == "43"
        assert publication["info"]["client"] == publisher_id


async def test_publication_from_node_publish_arrives() -> None:
    node = Node(node_config(config_toml()))
    async with (
        serve_node(node) as running,
        JsClient(running.ws_url, token=make_token("42"), subscribe=[CHAT]) as js,
    ):
        await js.log.wait_for(event("subscribed", channel=CHAT))

        await node.publish(CHAT, {"text": "from the server"})

        publication = await js.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"text": "from the server"}
        assert publication["info"] is None  # server publications carry no publisher info


# 4. Permission errors.


async def test_permission_errors(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    # Subscribed before connect: the subscribes share the connect command's frame.
    async with JsClient(server.ws_url, token=make_token("42"), subscribe=[LOCKED, UNKNOWN]) as js:
        await js.connected()

        assert (await js.log.wait_for(event("unsubscribed", channel=LOCKED)))["code"] == 103
        assert (await js.log.wait_for(event("unsubscribed", channel=UNKNOWN)))["code"] == 102

        denied = await js.command("publish", channel=LOCKED, data={"text": "no"})
        assert (denied["ok"], denied["code"]) == (False, 103)

        # Error replies leave the connection alone.
        snapshot = await js.command("snapshot")
        assert snapshot["state"] == "connected"
        assert snapshot["subs"] == {LOCKED: "unsubscribed", UNKNOWN: "unsubscribed"}
        assert len(js.log.matching(event("connected"))) == 1


# 5. Invalid token.


async def test_invalid_token_stops_the_sdk(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    forged = make_token("42", secret=SECRET[::-1])
    async with JsClient(server.ws_url, token=forged, **FAST_RECONNECT) as js:
        disconnected = await js.log.wait_for(event("disconnected"))

        assert disconnected["code"] == 3500
        await one_connection_only(server, 3500)
        assert len(js.log.matching(event("ws_created"))) == 1
        assert not js.log.matching(event("connected"))
        assert (await js.command("snapshot"))["state"] == "disconnected"


# 6. Expired token.


async def test_expired_token_is_refreshed_with_get_token(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    expired = make_token("42", ttl=-60)
    fresh = make_token("42")
    async with JsClient(server.ws_url, token=expired, getTokens=[fresh], **FAST_RECONNECT) as js:
        await js.connected()

        assert js.log.matching(event("error", type="connect", code=109))
        assert len(js.log.matching(event("get_token"))) == 1
        assert len(js.log.matching(event("ws_created"))) == 2
        assert not js.log.matching(event("disconnected"))
        assert (await js.command("snapshot"))["state"] == "connected"


# 7. Idle connection survives pings.


async def test_idle_connection_stays_up_across_pings(server_factory: StartServer) -> None:
    server = server_factory(config_toml(ping_interval=1, pong_timeout=0.5))
    async with JsClient(server.ws_url, token=make_token("42"), subscribe=[CHAT]) as js:
        client_id = await js.connected()
        await js.log.wait_for(event("subscribed", channel=CHAT))

        # Idle for three ping intervals: the server pings every second and wants each
        # pong within 0.5 s, else it closes with 3012 and the SDK reconnects.
        await js.log.wait_for(event("server_ping"), timeout(3 + 5), count=3)
        await js.log.wait_for(event("pong_sent"), count=3)

        assert js.log.matching(event("connected")) == [
            {"event": "connected", "client": client_id, "transport": "websocket"}
        ]
        assert len(js.log.matching(event("ws_created"))) == 1
        assert not js.log.matching(event("disconnected"))
        assert [e["code"] for e in js.log.matching(event("connecting"))] == [0]
        assert "closed: 3012" not in server.log

        assert (await js.command("publish", channel=CHAT, data={"still": "here"}))["ok"]
        publication = await js.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"still": "here"}


# 8. Graceful shutdown.


async def test_graceful_shutdown_makes_the_sdk_reconnect(server_factory: StartServer) -> None:
    server = server_factory(config_toml())
    async with JsClient(server.ws_url, token=make_token("42")) as js:
        await js.connected()

        # stop() blocks until the server exits: keep this loop (reading node) running.
        status = await anyio.to_thread.run_sync(server.stop)

        assert status == 0
        connecting = await js.log.wait_for(event("connecting", code=3001))
        assert connecting["reason"] == "shutdown"
        assert js.log.matching(event("state", old="connected", new="connecting"))
        assert (await js.command("snapshot"))["state"] == "connecting"
        assert not js.log.matching(event("disconnected"))
