"""Shared pieces of the interop tests: configs, tokens, an awaitable event log."""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable
from typing import Any

import anyio
import jwt

from tests.support.server import ServerProcess, timeout
from wirehub import Config, load_config

__all__ = [
    "CHAT",
    "LOCKED",
    "NO_RECONNECT_WINDOW",
    "SECRET",
    "UNKNOWN",
    "WAIT",
    "EventLog",
    "config_toml",
    "event",
    "make_token",
    "node_config",
    "one_connection_only",
    "server_log",
    "server_log_absent",
]

# Long enough for PyJWT (it warns about HMAC keys under 32 bytes, and warnings are errors).
SECRET = "wirehub-interop-secret-0123456789abcdef"

CHAT = "chat:room"
"""A channel of a namespace where authenticated clients may subscribe and publish."""
LOCKED = "locked:room"
"""A channel of a namespace that allows nothing: subscribe and publish give 103."""
UNKNOWN = "nowhere:room"
"""A channel of a namespace that is not configured: 102."""

WAIT = timeout(5.0)
"""How long a test waits for something that should happen at once."""
NO_RECONNECT_WINDOW = timeout(1.5)
"""How long a test watches for a reconnect that must not happen (both SDKs would have
retried well within it: the first reconnect delay is at most 0.2 s in Python and at most
2 x minReconnectDelay in JS, which the JS tests set to 100 ms)."""

_CLOSED = r"client (\S+) closed: "


def config_toml(
    *,
    anonymous: bool = False,
    ping_interval: int | None = None,
    pong_timeout: float | None = None,
    user_connection_limit: int | None = None,
) -> str:
    """The TOML config of a test server. Logs at debug: every closed client is logged."""
    client = [f"allow_anonymous_connect_without_token = {str(anonymous).lower()}"]
    if ping_interval is not None:
        client.append(f"ping_interval = {ping_interval}")
    if pong_timeout is not None:
        client.append(f"pong_timeout = {pong_timeout}")
    if user_connection_limit is not None:
        client.append(f"user_connection_limit = {user_connection_limit}")
    client_section = "\n".join(client)
    return f"""
[server]
log_level = "debug"

[client]
{client_section}

[client.token]
hmac_secret_key = "{SECRET}"

[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
allow_publish_for_client = true

[[channel.namespaces]]
name = "locked"
"""


def node_config(toml_text: str) -> Config:
    """The same TOML as a :class:`Config`, for an in-process node."""
    return load_config(None, tomllib.loads(toml_text), environ=False)


def make_token(user: str, *, ttl: float = 3600, secret: str = SECRET) -> str:
    """An HS256 connection token for ``user``; a negative ``ttl`` gives an expired one."""
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + ttl}, secret, algorithm="HS256")


def event(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    """A predicate: an event named ``name`` whose ``fields`` have these values."""

    def matches(item: dict[str, Any]) -> bool:
        return item.get("event") == name and all(item.get(k) == v for k, v in fields.items())

    matches.__name__ = f"event({name!r}, {fields!r})"
    return matches


class EventLog:
    """Events of one SDK client, in order, with waits on them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.notes: list[str] = []
        """Extra diagnostics shown when a wait fails (e.g. a subprocess's stderr)."""
        self._changed: anyio.Event | None = None

    def add(self, item: dict[str, Any]) -> None:
        self.events.append(item)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [item for item in self.events if predicate(item)]

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        wait: float = WAIT,
        *,
        count: int = 1,
    ) -> dict[str, Any]:
        """Wait until ``count`` events match; return the ``count``-th one."""
        with anyio.move_on_after(wait):
            while True:
                found = self.matching(predicate)
                if len(found) >= count:
                    return found[count - 1]
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()
        name = getattr(predicate, "__name__", repr(predicate))
        raise AssertionError(
            f"{self.name}: no {count} event(s) matching {name} within {wait:.1f} s\n{self.dump()}"
        )

    def dump(self) -> str:
        lines = [f"events of {self.name}:", *(f"  {item}" for item in self.events)]
        lines.extend(self.notes)
        return "\n".join(lines)


async def server_log(server: ServerProcess, pattern: str, wait: float = WAIT) -> re.Match[str]:
    """Wait (in a thread, the test's loop keeps running) for a server log line."""
    return await anyio.to_thread.run_sync(server.wait_for, pattern, wait)


async def server_log_absent(server: ServerProcess, pattern: str, window: float) -> None:
    """Fail if the server logs a line matching ``pattern`` within ``window`` seconds.

    A bounded wait on purpose: it checks that something does *not* happen. (The window
    restarts at each unrelated log line, so it is a lower bound.)
    """
    try:
        match = await server_log(server, pattern, window)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected server log line {match.string!r}:\n{server.log}")


async def one_connection_only(server: ServerProcess, code: int) -> None:
    """Check the server closed exactly one connection, with ``code``, and no other
    connection arrived within :data:`NO_RECONNECT_WINDOW` after it."""
    first = await server_log(server, _CLOSED + str(code))
    other = rf"client (?!{re.escape(first.group(1))}\b)\S+ closed: "
    await server_log_absent(server, other, NO_RECONNECT_WINDOW)
    closed = re.findall(_CLOSED, server.log)
    assert closed == [first.group(1)], server.log
