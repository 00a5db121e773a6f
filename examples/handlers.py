"""Python handlers for the standalone server: the in-process API with `wirehub serve`.

Run it (from the repository root, after `make serve` installed everything):

    .venv/bin/wirehub serve --config config/development.toml --app examples/handlers.py:create_node

`wirehub serve` loads the configuration (file, environment, flags) and calls
`create_node(config)`; the node it returns, with its handlers, is served on wirehub's own
fast WebSocket path.
"""

from __future__ import annotations

import json
from http.cookies import SimpleCookie

from wirehub import (
    ClientError,
    Config,
    ConnectingEvent,
    ConnectingReply,
    Credentials,
    Node,
    PublishEvent,
    RPCEvent,
    RPCReply,
)

# Your session store; here, one hard-coded session cookie.
SESSIONS = {"session-of-alice": "alice"}


def create_node(config: Config) -> Node:
    node = Node(config)

    @node.on_connecting
    async def authenticate(event: ConnectingEvent) -> ConnectingReply | None:
        cookies = SimpleCookie(event.transport.headers.get("cookie", ""))
        session = cookies.get("session")
        user = SESSIONS.get(session.value) if session is not None else None
        if user is None:
            return None  # no session: fall back to tokens, or anonymous access as configured
        return ConnectingReply(credentials=Credentials(user=user))

    @node.on_publish
    async def moderate(event: PublishEvent) -> None:
        if b"spam" in event.data:
            raise ClientError(4000, "no spam")  # an error reply; the connection stays

    @node.on_rpc
    async def rpc(event: RPCEvent) -> RPCReply:
        if event.method == "shout":
            text = json.loads(event.data or b'""')
            return RPCReply(data={"text": str(text).upper(), "user": event.user})
        raise ClientError(404, f"no method {event.method!r}")

    return node
