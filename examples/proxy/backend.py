"""What the proxy backend decides, with no web framework: the example's business rules.

wirehub POSTs a JSON request per event (connect, refresh, subscribe, publish, rpc) and
acts on the JSON answer: ``{"result": {...}}``, ``{"error": {"code", "message"}}`` (a
reply error, the connection stays) or ``{"disconnect": {"code", "reason"}}`` (the
connection is closed). These are Centrifugo's event proxies; a backend that served
Centrifugo serves wirehub unchanged. ``app.py`` (FastAPI) and ``http_server.py`` (the
standard library only) both route the requests here, so both answer the same.

Who is who comes from a session: ``login`` hands out an opaque random session id (the
``session`` cookie of the browser, or ``Authorization: Bearer <id>`` for other clients),
wirehub forwards those two headers on connect (``http_headers`` in ``wirehub.toml``),
and the connect proxy maps the session to its user. ``logout`` ends the session: the
next refresh of its connections answers ``expired`` and wirehub closes them (3005).
"""

from __future__ import annotations

import math
import os
import random
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

__all__ = ["EVENTS", "SESSION_COOKIE", "USERS", "Backend", "User"]

SESSION_COOKIE = "session"
EVENTS = ("connect", "refresh", "subscribe", "publish", "rpc")
MAX_TEXT = 280
# How long a connection lives before wirehub asks the refresh proxy again, in seconds
# (PROXY_EXAMPLE_TTL: the tests make it short to see refreshes and expiry quickly).
TTL = float(os.environ.get("PROXY_EXAMPLE_TTL", "60"))
# PROXY_EXAMPLE_RECORD=1 keeps the last requests (with their headers, cookies included)
# for GET /debug/calls: for the tests and the README's walk-through, never in production.
RECORD = os.environ.get("PROXY_EXAMPLE_RECORD") == "1"


@dataclass(frozen=True)
class User:
    name: str
    rooms: tuple[str, ...]
    banned: bool = False


USERS = {
    "ada": User("Ada Lovelace", ("lobby", "math")),
    "grace": User("Grace Hopper", ("lobby", "math", "navy")),
    "mallory": User("Mallory", ("lobby",), banned=True),
}


def _error(code: int, message: str) -> dict[str, Any]:
    # Application error codes are 400-1999 (wirehub's own are below 400).
    return {"error": {"code": code, "message": message}}


class Backend:
    """Sessions, connections and the answer to each proxy request.

    Thread-safe (``http_server.py`` serves each request in a thread of its own); the
    state is in memory, one process: a real backend keeps sessions in its database.
    """

    def __init__(self, *, ttl: float = TTL, record: bool = RECORD) -> None:
        self.ttl = ttl
        self.record = record
        self.calls: deque[dict[str, Any]] = deque(maxlen=200)
        self._sessions: dict[str, str] = {}  # session id -> user id
        self._connections: dict[str, str] = {}  # wirehub's client id -> session id
        self._lock = threading.Lock()

    def _expire_at(self) -> int:
        # Whole seconds, rounded up: a full TTL ahead, never at or before now (an
        # expire_at in the past would refuse the connect, or close it on refresh).
        return math.ceil(time.time() + self.ttl)

    # Sessions: what a login form and a logout button do.

    def login(self, user: str) -> str | None:
        """A new session of ``user`` (None for an unknown user): its opaque id."""
        if user not in USERS:
            return None
        session = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[session] = user
        return session

    def logout(self, session: str) -> bool:
        with self._lock:
            return self._sessions.pop(session, None) is not None

    def session_of(self, headers: dict[str, str]) -> str:
        """The session id a request carries: the cookie, else a bearer token ("")."""
        try:
            morsel = SimpleCookie(headers.get("cookie", "")).get(SESSION_COOKIE)
        except CookieError:
            morsel = None
        if morsel is not None and morsel.value:
            return morsel.value
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        return credentials.strip() if scheme.lower() == "bearer" else ""

    # The proxy events.

    def handle(self, event: str, request: Any, headers: dict[str, str]) -> dict[str, Any]:
        """The answer to one proxy request (``headers`` with lower-case names)."""
        if self.record:
            self.calls.append({"event": event, "headers": headers, "request": request})
        if not isinstance(request, dict):
            return _error(400, "the request is not a JSON object")
        match event:
            case "connect":
                return self.connect(request, headers)
            case "refresh":
                return self.refresh(request)
            case "subscribe":
                return self.subscribe(request)
            case "publish":
                return self.publish(request)
            case "rpc":
                return self.rpc(request)
        return _error(404, f"no proxy event {event!r}")

    def connect(self, request: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """Who connects: the user of the session. No session: an error (the client may
        log in and retry); a banned user: a terminal disconnect (the SDK stops)."""
        session = self.session_of(headers)
        with self._lock:
            user_id = self._sessions.get(session)
            if user_id is not None:
                self._connections[str(request.get("client", ""))] = session
        if user_id is None:
            return _error(401, "unknown session: log in first")
        user = USERS[user_id]
        if user.banned:
            return {"disconnect": {"code": 4501, "reason": "banned"}}
        return {
            "result": {
                "user": user_id,
                "expire_at": self._expire_at(),
                # Attached to this client's publications, joins and presence.
                "info": {"name": user.name},
                # Returned to the client in its connect reply.
                "data": {"name": user.name, "rooms": list(user.rooms)},
            }
        }

    def refresh(self, request: dict[str, Any]) -> dict[str, Any]:
        """The connection's session still there: another TTL. Logged out: expired."""
        client, user_id = str(request.get("client", "")), request.get("user")
        with self._lock:
            session = self._connections.get(client, "")
            alive = self._sessions.get(session) == user_id and user_id is not None
            if not alive:
                self._connections.pop(client, None)
        if not alive:
            return {"result": {"expired": True}}
        return {"result": {"expire_at": self._expire_at()}}

    def subscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        """``rooms:<room>`` for the room's members (and, in the lobby, everyone sees who
        comes and goes: an override of the namespace's join/leave setting);
        ``admin:*`` for nobody."""
        user = USERS.get(str(request.get("user", "")))
        namespace, _, room = str(request.get("channel", "")).partition(":")
        if user is None or namespace != "rooms":
            return _error(403, "permission denied")
        if room not in user.rooms:
            return _error(403, f"not a member of {room}")
        result: dict[str, Any] = {"info": {"room": room}}
        if room == "lobby":
            result["override"] = {
                "join_leave": {"value": True},
                "force_push_join_leave": {"value": True},
            }
        return {"result": result}

    def publish(self, request: dict[str, Any]) -> dict[str, Any]:
        """What a message becomes: its text tidied (whitespace, length), signed with the
        sender's name. An empty text is refused."""
        user = USERS.get(str(request.get("user", "")))
        data = request.get("data")
        if user is None:
            return _error(403, "permission denied")
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str):
            return _error(400, 'send {"text": "..."}')
        text = " ".join(text.split())[:MAX_TEXT]
        if not text:
            return _error(400, "empty message")
        return {"result": {"data": {"text": text, "from": user.name}}}

    def rpc(self, request: dict[str, Any]) -> dict[str, Any]:
        """``whoami`` and ``roll`` (``{"sides": N}``, 2 to 100, default 6)."""
        user_id = str(request.get("user", ""))
        user = USERS.get(user_id)
        data = request.get("data")
        params = data if isinstance(data, dict) else {}
        match request.get("method"):
            case "whoami" if user is not None:
                return {"result": {"data": {"user": user_id, "name": user.name}}}
            case "roll":
                sides = params.get("sides", 6)
                if not isinstance(sides, int) or not 2 <= sides <= 100:
                    return _error(400, "sides: an integer from 2 to 100")
                return {"result": {"data": {"sides": sides, "value": random.randint(1, sides)}}}
        return _error(404, f"unknown method {request.get('method')!r}")
