"""The same proxy backend as ``app.py``, with the standard library only: no framework is
needed to serve wirehub's (Centrifugo's) event proxies, any language's would do.

    python examples/proxy/http_server.py --port 8010

Each proxy request is a POST of JSON to ``/centrifugo/<event>``, answered with JSON and
status 200 (any other status is a failure to wirehub: the client gets a temporary error
100). ``backend.py`` decides; this file only reads and writes HTTP.
"""

from __future__ import annotations

import argparse
import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from backend import EVENTS, SESSION_COOKIE, Backend

MAX_BODY = 1 << 20
PREFIX = "/centrifugo/"


class Handler(BaseHTTPRequestHandler):
    backend = Backend()
    protocol_version = "HTTP/1.1"  # keep-alive: wirehub reuses its connections

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"detail": "too large"})
            self.close_connection = True
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        if self.path.startswith(PREFIX) and self.path[len(PREFIX) :] in EVENTS:
            try:
                request = json.loads(body)
            except ValueError:
                self._send(HTTPStatus.BAD_REQUEST, {"detail": "the body is not JSON"})
                return
            self._send(
                HTTPStatus.OK, self.backend.handle(self.path[len(PREFIX) :], request, headers)
            )
        elif self.path == "/login":
            self._login(body)
        elif self.path == "/logout":
            ended = self.backend.logout(self.backend.session_of(headers))
            self._send(
                HTTPStatus.OK, {"ended": ended}, cookie=f"{SESSION_COOKIE}=; Max-Age=0; Path=/"
            )
        else:
            self._send(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})

    def do_GET(self) -> None:
        if self.path == "/debug/calls" and self.backend.record:
            self._send(HTTPStatus.OK, list(self.backend.calls))
        else:
            self._send(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})

    def _login(self, body: bytes) -> None:
        try:
            user = json.loads(body)["user"]
        except (ValueError, TypeError, KeyError):
            self._send(HTTPStatus.UNPROCESSABLE_ENTITY, {"detail": 'send {"user": "..."}'})
            return
        session = self.backend.login(str(user))
        if session is None:
            self._send(HTTPStatus.NOT_FOUND, {"detail": f"no user {user!r}"})
            return
        cookie = f"{SESSION_COOKIE}={session}; HttpOnly; Path=/; SameSite=lax"
        self._send(HTTPStatus.OK, {"user": user, "session": session}, cookie=cookie)

    def _send(self, status: HTTPStatus, answer: Any, *, cookie: str = "") -> None:
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    host, port = server.server_address[:2]
    print(f"proxy backend (http.server) running on http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
