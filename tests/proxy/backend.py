"""A proxy backend for the tests: a threaded HTTP server whose answers the requests
themselves choose, so that one backend serves every test of a module at once.

Each event type has its path (``/connect``, ``/refresh``, ``/subscribe``, ``/publish``,
``/sub_refresh``, ``/rpc``). The behaviour is named by the request: ``data.mode`` for
connect and publish, the part of the channel after ``:`` up to ``-`` for subscribe and
sub_refresh (``px:refuse-1``), the method name after ``:`` for rpc (``px:sleep``).
Modes every event shares are failures (:data:`FAILURES`); the others are per event, in
:meth:`Backend._answer`. Every request is recorded with its headers.

Not asyncio: the backend lives across the tests of a module (each test has its own
event loop), and a sleeping answer must not hold up the others (a thread each).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FAILURES", "Backend", "Recorded"]

SLEEP = 3.0
"""How long a sleeping answer takes: longer than the proxies' timeouts in the tests."""

FAILURES = ("sleep", "status500", "html", "huge", "invalid", "status418", "status419")


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A peer that went away (wirehub gave up on a call, or stop() cut it): expected.
        pass


class Backend:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._connections: set[socket.socket] = set()
        self.refreshes: dict[str, int] = {}
        """Refresh calls per client id."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Backend:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with backend._lock:
                    backend._connections.add(self.connection)

            def finish(self) -> None:
                with backend._lock:
                    backend._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                body = json.loads(raw)
                headers = {name.lower(): value for name, value in self.headers.items()}
                with backend._lock:
                    backend.requests.append(Recorded(self.path, headers, body))
                    backend._lock.notify_all()
                status, content_type, payload = backend._answer(self.path, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _Server(("127.0.0.1", self.port), Handler)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and end the kept-alive connections (calls are then refused);
        :meth:`start` again on the same port."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def wait_for(self, path: str, match: Callable[[Recorded], bool], wait: float) -> Recorded:
        """The first request to ``path`` that matches, once it arrived (in ``wait`` s)."""
        with self._lock:
            found: list[Recorded] = []

            def arrived() -> bool:
                found[:] = [r for r in self.requests if r.path == path and match(r)]
                return bool(found)

            if not self._lock.wait_for(arrived, wait):
                raise TimeoutError(f"no request to {path} matched within {wait} s")
            return found[0]

    def recorded(self, path: str, match: Callable[[Recorded], bool]) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path and match(r)]

    # Answers.

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, str, bytes]:
        if path == "/refresh" and body.get("user") == "refresh-fails-once":
            # The first refresh fails (500), the retry expires the connection.
            client = body["client"]
            with self._lock:
                count = self.refreshes[client] = self.refreshes.get(client, 0) + 1
            if count == 1:
                return 500, "text/plain", b"down for a moment"
            return 200, "application/json", b'{"result": {"expired": true}}'
        mode = _mode(path, body)
        if mode == "sleep":
            time.sleep(SLEEP)
            mode = ""
        if mode == "status500":
            return 500, "text/plain", b"internal error"
        if mode == "status418":
            return 418, "text/plain", b"teapot"
        if mode == "status419":
            return 419, "text/plain", b"nope"
        if mode == "html":
            return 200, "text/html", b"<html><body>Bad gateway</body></html>"
        if mode == "huge":
            return 200, "application/json", b'{"result":{"data":"' + b"x" * 10_000_000 + b'"}}'
        if mode == "invalid":
            return 200, "application/json", b'{"result": {"user": '
        if mode == "error":
            answer: dict[str, Any] = {
                "error": {"code": 1000, "message": "backend refused", "temporary": False}
            }
        elif mode == "disconnect":
            answer = {"disconnect": {"code": 4501, "reason": "backend disconnect"}}
        else:
            answer = getattr(self, f"_{path.strip('/')}")(mode, body)
        return 200, "application/json", json.dumps(answer).encode()

    def _connect(self, mode: str, body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data") or {}
        if mode == "empty":
            return {}
        if mode == "expired":
            return {"result": {"user": "late", "expire_at": int(time.time()) - 10}}
        result: dict[str, Any] = {
            "user": data.get("user", "42"),
            "info": {"name": "from backend"},
            "data": {"greeting": "hello"},
            "meta": {"team": "blue"},
        }
        if "expire_in" in data:
            result["expire_at"] = int(time.time()) + data["expire_in"]
        if "channels" in data:
            result["channels"] = data["channels"]
        if "subs" in data:
            result["subs"] = data["subs"]
        return {"result": result}

    def _refresh(self, mode: str, body: dict[str, Any]) -> dict[str, Any]:
        # The first refresh extends by 1-2 s and replaces the info; the second expires.
        client = body["client"]
        with self._lock:
            count = self.refreshes[client] = self.refreshes.get(client, 0) + 1
        if count == 1:
            return {"result": {"expire_at": int(time.time()) + 2, "info": {"refreshed": True}}}
        return {"result": {"expired": True}}

    def _subscribe(self, mode: str, body: dict[str, Any]) -> dict[str, Any]:
        if mode == "empty":
            return {}
        result: dict[str, Any] = {"info": {"role": "member"}, "data": {"welcome": body["channel"]}}
        if mode == "override":
            result["override"] = {
                "force_positioning": {"value": True},
                "force_recovery": {"value": True},
            }
        if mode == "expiring":
            result["expire_at"] = int(time.time()) + 2
        return {"result": result}

    def _sub_refresh(self, mode: str, body: dict[str, Any]) -> dict[str, Any]:
        key = f"{body['client']}/{body['channel']}"
        with self._lock:
            count = self.refreshes[key] = self.refreshes.get(key, 0) + 1
        if count == 1:
            return {"result": {"expire_at": int(time.time()) + 2}}
        return {"result": {"expired": True}}

    def _publish(self, mode: str, body: dict[str, Any]) -> dict[str, Any]:
        if mode == "rewrite":
            return {"result": {"data": {"rewritten": True, "by": body["user"]}}}
        if mode == "rewrite_b64":
            return {"result": {"b64data": "eyJiNjQiOiB0cnVlfQ=="}}  # {"b64": true}
        if mode == "skip_history":
            return {"result": {"skip_history": True}}
        if mode == "bad_payload":
            return {"result": {"data": "not an object"}}
        return {"result": {}}

    def _rpc(self, mode: str, body: dict[str, Any]) -> dict[str, Any]:
        if mode == "b64":
            return {"result": {"b64data": "eyJiNjQiOiB0cnVlfQ=="}}
        if mode == "raw":  # the request's binary payload back
            return {"result": {"b64data": body.get("b64data", "")}}
        return {"result": {"data": {"method": body["method"], "echo": body.get("data")}}}


def _mode(path: str, body: dict[str, Any]) -> str:
    if path in ("/connect", "/publish"):
        data = body.get("data")
        if data is None and "b64data" in body:
            import base64

            data = json.loads(base64.b64decode(body["b64data"]))
        return str(data.get("mode", "")) if isinstance(data, dict) else ""
    if path in ("/subscribe", "/sub_refresh"):
        rest = body["channel"].partition(":")[2]
        return str(rest.partition("-")[0])
    if path == "/rpc":
        return str(body["method"].partition(":")[2])
    return ""
