"""examples/proxy's contract, end to end: the real SDKs (centrifuge-python, and
centrifuge-js in Node) against a real ``wirehub serve`` on the example's wirehub.toml,
whose event proxies call the example's backend, a real process too: the FastAPI app
under uvicorn (``app.py --no-wirehub``) and the standard-library one
(``http_server.py``), the same tests for both.

The backend records what it received (``PROXY_EXAMPLE_RECORD=1``, ``GET /debug/calls``),
which is how the tests see the forwarded headers and the refreshes. Its connections
live one second (``PROXY_EXAMPLE_TTL=1``) so that refreshes come quickly.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import anyio
import httpx
import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    ErrorContext,
    JoinContext,
    PublicationContext,
    ReplyError,
    SubscribedContext,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)
from centrifuge.types import ClientInfo

from tests.examples.harness import EXAMPLES
from tests.interop.helpers import WAIT, EventLog, event
from tests.interop.test_js_sdk import JS_DIR, JsClient, _node
from tests.support.pysdk import disconnect
from tests.support.server import TIMEOUT, ServerProcess, timeout

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

PROXY = EXAMPLES / "proxy"
SCRIPT = JS_DIR / "proxy_backend.mjs"
BACKENDS = {
    "fastapi": [str(PROXY / "app.py"), "--no-wirehub"],
    "http.server": [str(PROXY / "http_server.py")],
}
# The variables that point wirehub.toml's proxies at the backend's actual port.
ENDPOINTS = {
    "connect": "WIREHUB_CLIENT__PROXY__CONNECT__ENDPOINT",
    "refresh": "WIREHUB_CLIENT__PROXY__REFRESH__ENDPOINT",
    "subscribe": "WIREHUB_CHANNEL__PROXY__SUBSCRIBE__ENDPOINT",
    "publish": "WIREHUB_CHANNEL__PROXY__PUBLISH__ENDPOINT",
    "rpc": "WIREHUB_RPC__PROXY__ENDPOINT",
}
_RUNNING = re.compile(r"running on (http://127\.0\.0\.1:\d+)")
# What any HTTP client sends on its own; the proxies must add nothing of the client's
# but the headers wirehub.toml lists (Cookie, Authorization).
_CLIENT_OWN = {
    "host",
    "accept",
    "accept-encoding",
    "connection",
    "content-length",
    "content-type",
    "user-agent",
}
ADA = {"name": "Ada Lovelace"}


class Backend:
    """One backend of examples/proxy as a process on a free port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = ""
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._grew = threading.Condition()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PROXY_EXAMPLE_TTL": "1",
            "PROXY_EXAMPLE_RECORD": "1",
        }
        self._proc = subprocess.Popen(
            [sys.executable, *BACKENDS[name], "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = self._wait_for(_RUNNING).group(1)

    def _wait_for(self, pattern: re.Pattern[str]) -> re.Match[str]:
        while True:
            try:
                line = self._queue.get(timeout=TIMEOUT)
            except queue.Empty:
                raise TimeoutError(f"{self.name} did not start:\n{self.log}") from None
            if line is None:
                raise RuntimeError(f"{self.name} exited:\n{self.log}")
            if match := pattern.search(line):
                return match

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._grew:
                self.lines.append(line)
                self._grew.notify_all()
            self._queue.put(line)
        self._queue.put(None)

    def _logged_after(self, seen: int, needle: str) -> None:
        """Wait until a line after the first ``seen`` contains ``needle`` (both backends
        log every request they serve)."""
        with self._grew:
            if not self._grew.wait_for(
                lambda: any(needle in line for line in self.lines[seen:]), timeout=TIMEOUT
            ):
                raise TimeoutError(f"{self.name} logged no {needle!r}:\n{self.log}")

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=TIMEOUT)
        finally:
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        assert "Traceback" not in self.log, self.log

    async def login(self, user: str) -> str:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.post("/login", json={"user": user})
        response.raise_for_status()
        assert response.cookies["session"] == response.json()["session"]
        return str(response.json()["session"])

    async def logout(self, session: str) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.post("/logout", headers=cookie(session))
        response.raise_for_status()
        assert response.json() == {"ended": True}

    async def wait_for_calls(self, event: str, client: str, count: int) -> list[dict[str, Any]]:
        """Wait until the backend received ``count`` requests of ``event`` about
        ``client``; return them."""
        while True:
            seen = len(self.lines)
            calls = await self.calls(event, client)
            if len(calls) >= count:
                return calls
            await anyio.to_thread.run_sync(self._logged_after, seen, f"/centrifugo/{event}")

    async def calls(self, event: str, client: str) -> list[dict[str, Any]]:
        """The proxy requests of ``event`` the backend received about ``client``."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.get("/debug/calls")
        response.raise_for_status()
        return [
            call
            for call in response.json()
            if call["event"] == event and call["request"].get("client") == client
        ]


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    started = Backend(request.param)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def wirehub(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``wirehub serve --config examples/proxy/wirehub.toml``, its proxies pointed at the
    backend (the environment overrides the file's endpoints, as app.py does)."""
    env = {variable: f"{backend.url}/centrifugo/{name}" for name, variable in ENDPOINTS.items()}
    server = ServerProcess(PROXY / "wirehub.toml", env=env, cwd=tmp_path_factory.mktemp("cwd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# One interface over both SDKs: events land in an EventLog with the same names and
# fields ("info" is {user, client, connInfo, chanInfo}); commands return results.


class Sdk(Protocol):
    log: EventLog

    async def subscribe(self, channel: str) -> None: ...
    async def publish(self, channel: str, data: Any) -> dict[str, Any]: ...
    async def rpc(self, method: str, data: Any) -> dict[str, Any]: ...


def _info(info: ClientInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "user": info.user,
        "client": info.client,
        "connInfo": info.conn_info,
        "chanInfo": info.chan_info,
    }


class _PyEvents(ClientEventHandler):
    def __init__(self, log: EventLog) -> None:
        self.log = log

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.log.add({"event": "connecting", "code": ctx.code, "reason": ctx.reason})

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.log.add({"event": "connected", "client": ctx.client, "data": ctx.data})

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.log.add({"event": "disconnected", "code": ctx.code, "reason": ctx.reason})

    async def on_error(self, ctx: ErrorContext) -> None:
        code = ctx.error.code if isinstance(ctx.error, ReplyError) else ctx.code
        self.log.add({"event": "error", "code": code, "message": str(ctx.error)})


class _PySubEvents(SubscriptionEventHandler):
    def __init__(self, log: EventLog, channel: str) -> None:
        self.log = log
        self.channel = channel

    def _add(self, name: str, **fields: Any) -> None:
        self.log.add({"event": name, "channel": self.channel, **fields})

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self._add("subscribed", data=ctx.data)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self._add("unsubscribed", code=ctx.code, reason=ctx.reason)

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        self._add("sub_error", code=ctx.code, message=str(ctx.error))

    async def on_join(self, ctx: JoinContext) -> None:
        self._add("join", info=_info(ctx.info))

    async def on_publication(self, ctx: PublicationContext) -> None:
        self._add("publication", data=ctx.pub.data, info=_info(ctx.pub.info))


class PySdk:
    def __init__(self, client: Client, log: EventLog) -> None:
        self.client = client
        self.log = log

    async def subscribe(self, channel: str) -> None:
        sub = self.client.new_subscription(channel, events=_PySubEvents(self.log, channel))
        await sub.subscribe()

    async def publish(self, channel: str, data: Any) -> dict[str, Any]:
        try:
            await self.client.publish(channel, data)
        except ReplyError as exc:
            return {"ok": False, "code": exc.code, "message": exc.message}
        return {"ok": True}

    async def rpc(self, method: str, data: Any) -> dict[str, Any]:
        try:
            result = await self.client.rpc(method, data)
        except ReplyError as exc:
            return {"ok": False, "code": exc.code, "message": exc.message}
        return {"ok": True, "data": result.data}


class JsSdk(JsClient):
    """centrifuge-js in Node, driven by ``js/proxy_backend.mjs``."""

    async def __aenter__(self) -> JsSdk:
        command = [_node(), str(SCRIPT), json.dumps(self.options)]
        self._process = await anyio.open_process(command, cwd=JS_DIR)
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._read_events)
        self._tasks.start_soon(self._read_stderr)
        return self

    async def subscribe(self, channel: str) -> None:
        assert (await self.command("subscribe", channel=channel))["ok"]

    async def publish(self, channel: str, data: Any) -> dict[str, Any]:
        return _outcome(await self.command("publish", channel=channel, data=data))

    async def rpc(self, method: str, data: Any) -> dict[str, Any]:
        return _outcome(await self.command("rpc", method=method, data=data))


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key not in ("event", "id")}


@pytest.fixture(params=["python", "js"])
def sdk(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Connect = Callable[[dict[str, str]], AbstractAsyncContextManager[Sdk]]


@pytest.fixture
def connect(sdk: str, wirehub: ServerProcess) -> Connect:
    """``async with connect(headers) as client``: a connecting client of ``sdk`` whose
    WebSocket upgrade request carries ``headers``."""

    @asynccontextmanager
    async def start(headers: dict[str, str]) -> AsyncIterator[Sdk]:
        if sdk == "js":
            fast = {"minReconnectDelay": 100, "maxReconnectDelay": 200}
            async with JsSdk(wirehub.ws_url, headers=headers, **fast) as js:
                yield js
            return
        log = EventLog("centrifuge-python")
        client = Client(
            wirehub.ws_url,
            events=_PyEvents(log),
            headers=headers,
            proxy=None,
            min_reconnect_delay=0.1,
            max_reconnect_delay=0.2,
        )
        await client.connect()
        try:
            yield PySdk(client, log)
        finally:
            with anyio.CancelScope(shield=True):
                await disconnect(client)

    return start


def joined(channel: str, user: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate: ``user`` joined ``channel`` (subscribers see their own join too)."""

    def matches(item: dict[str, Any]) -> bool:
        info = item.get("info") or {}
        return event("join", channel=channel)(item) and info.get("user") == user

    matches.__name__ = f"joined({channel!r}, {user!r})"
    return matches


def cookie(session: str) -> dict[str, str]:
    return {"Cookie": f"theme=dark; session={session}"}


async def connected(client: Sdk) -> str:
    return str((await client.log.wait_for(event("connected")))["client"])


async def test_connect_from_the_session_cookie_with_the_backends_user_and_info(
    backend: Backend, connect: Connect
) -> None:
    async with (
        connect(cookie(await backend.login("ada"))) as ada,
        connect(cookie(await backend.login("grace"))) as grace,
    ):
        assert (await ada.log.wait_for(event("connected")))["data"] == {
            "name": "Ada Lovelace",
            "rooms": ["lobby", "math"],
        }
        await connected(grace)
        assert await ada.rpc("whoami", {}) == {
            "ok": True,
            "data": {"user": "ada", "name": "Ada Lovelace"},
        }
        # The info of the connect answer travels with what the client does: here a join.
        await grace.subscribe("rooms:lobby")
        await grace.log.wait_for(event("subscribed", channel="rooms:lobby"))
        await ada.subscribe("rooms:lobby")
        join = await grace.log.wait_for(joined("rooms:lobby", "ada"))
        assert join["info"]["connInfo"] == ADA
        assert join["info"]["chanInfo"] == {"room": "lobby"}


async def test_connect_refused_with_the_backends_error(backend: Backend, connect: Connect) -> None:
    """No session (or a stale one): the backend answers an error, the SDK gets it and
    stops (a non-temporary error: no reconnect)."""
    async with connect({"Cookie": "session=forged"}) as client:
        gone = await client.log.wait_for(event("disconnected"))
        assert (gone["code"], gone["reason"]) == (401, "unknown session: log in first")
        assert client.log.matching(event("connected")) == []


async def test_connect_refused_with_the_backends_disconnect(
    backend: Backend, connect: Connect
) -> None:
    async with connect(cookie(await backend.login("mallory"))) as client:
        gone = await client.log.wait_for(event("disconnected"))
        assert (gone["code"], gone["reason"]) == (4501, "banned")
        assert client.log.matching(event("connected")) == []


async def test_refresh_extends_the_connection_then_expires_it_after_logout(
    backend: Backend, connect: Connect
) -> None:
    session = await backend.login("ada")
    async with connect(cookie(session)) as client:
        client_id = await connected(client)
        # Each connection lives a second: the backend is asked again, and says yes.
        await backend.wait_for_calls("refresh", client_id, 2)
        lost = [e for e in client.log.events if e["event"] in ("connecting", "disconnected")]
        assert lost[-1]["code"] == 0  # the SDK's own "connect called", before connected
        assert (await client.rpc("whoami", {}))["ok"]
        await backend.logout(session)
        expired = await client.log.wait_for(event("connecting", code=3005), timeout(5))
        assert expired["reason"] == "connection expired"
        # It reconnects with the same cookie; the session is gone now.
        gone = await client.log.wait_for(event("disconnected"))
        assert gone["code"] == 401


async def test_subscribe_allowed_overridden_and_refused(backend: Backend, connect: Connect) -> None:
    async with (
        connect(cookie(await backend.login("ada"))) as ada,
        connect(cookie(await backend.login("grace"))) as grace,
    ):
        for channel in ("rooms:math", "rooms:lobby"):  # math first: its join would come first
            await grace.subscribe(channel)
            await grace.log.wait_for(event("subscribed", channel=channel))
        # Ada is a member of both; the lobby's override makes joins visible there only.
        for channel in ("rooms:math", "rooms:lobby"):
            await ada.subscribe(channel)
            await ada.log.wait_for(event("subscribed", channel=channel))
        await grace.log.wait_for(joined("rooms:lobby", "ada"))
        assert grace.log.matching(event("join", channel="rooms:math")) == []
        # Not a member; nobody's channel: refused with the backend's error.
        for channel, message in (
            ("rooms:navy", "not a member of navy"),
            ("admin:panel", "permission denied"),
        ):
            await ada.subscribe(channel)
            refused = await ada.log.wait_for(event("unsubscribed", channel=channel))
            assert (refused["code"], refused["reason"]) == (403, message)
        assert ada.log.matching(event("subscribed", channel="rooms:navy")) == []


async def test_publish_rewritten_by_the_backend_or_refused(
    backend: Backend, connect: Connect
) -> None:
    async with (
        connect(cookie(await backend.login("ada"))) as ada,
        connect(cookie(await backend.login("grace"))) as grace,
    ):
        await grace.subscribe("rooms:math")
        await grace.log.wait_for(event("subscribed", channel="rooms:math"))
        await connected(ada)
        assert await ada.publish("rooms:math", {"text": "   "}) == {
            "ok": False,
            "code": 400,
            "message": "empty message",
        }
        assert await ada.publish("rooms:math", {"text": " hello \n\n  math  "}) == {"ok": True}
        publication = await grace.log.wait_for(event("publication", channel="rooms:math"))
        assert publication["data"] == {"text": "hello math", "from": "Ada Lovelace"}
        assert publication["info"]["user"] == "ada"
        assert publication["info"]["connInfo"] == ADA
        # The refused one never reached the channel.
        assert len(grace.log.matching(event("publication"))) == 1


async def test_rpc_answered_by_the_backend(backend: Backend, connect: Connect) -> None:
    async with connect(cookie(await backend.login("grace"))) as grace:
        await connected(grace)
        assert await grace.rpc("whoami", {}) == {
            "ok": True,
            "data": {"user": "grace", "name": "Grace Hopper"},
        }
        roll = await grace.rpc("roll", {"sides": 20})
        assert roll["ok"]
        assert roll["data"]["sides"] == 20
        assert 1 <= roll["data"]["value"] <= 20
        assert (await grace.rpc("roll", {"sides": 1000}))["code"] == 400
        assert await grace.rpc("nope", {}) == {
            "ok": False,
            "code": 404,
            "message": "unknown method 'nope'",
        }


async def test_cookie_and_authorization_forwarded_and_no_other_header(
    backend: Backend, connect: Connect
) -> None:
    """wirehub.toml lists Cookie and Authorization: those reach the connect proxy as the
    client sent them, the client's other headers do not."""
    session = await backend.login("ada")
    headers = {
        "Authorization": f"Bearer {session}",
        "Cookie": "theme=dark",  # no session in it: the bearer token is what identifies
        "X-Secret-Of-The-Client": "must-not-leak",
    }
    async with connect(headers) as client:
        client_id = await connected(client)
        (call,) = await backend.calls("connect", client_id)
        received = call["headers"]
        assert received["authorization"] == f"Bearer {session}"
        assert received["cookie"] == "theme=dark"
        assert set(received) - {"authorization", "cookie"} <= _CLIENT_OWN
        assert call["request"]["transport"] == "websocket"


async def test_the_backend_answers_bad_requests_with_a_status(backend: Backend) -> None:
    """What wirehub must treat as a failure (not 200) is what the backend answers to a
    body that is not JSON, or an event it does not serve."""
    async with httpx.AsyncClient(base_url=backend.url, timeout=WAIT) as http:
        assert (await http.post("/centrifugo/connect", content=b"{nope")).status_code == 400
        assert (await http.post("/centrifugo/stream", json={})).status_code == 404
        assert (await http.post("/login", json={"user": "eve"})).status_code == 404
