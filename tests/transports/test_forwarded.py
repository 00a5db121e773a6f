"""The client's address behind a proxy (``server.forwarded_allow_ips``), and the headers
a connection keeps (``client.transport_headers``), as ``on_connecting`` sees them."""

from __future__ import annotations

import anyio
import pytest

from tests.support.inprocess import serve_node
from tests.transports.rawws import RawWebSocket
from wirehub import ConnectingEvent, Node, load_config
from wirehub.transports.forwarded import TrustedProxies
from wirehub.transports.headers import HeaderMap, keep_headers


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        ([], "10.0.0.1", "203.0.113.7", "10.0.0.1"),  # nothing trusted
        (["10.0.0.1"], "10.0.0.1", "203.0.113.7", "203.0.113.7"),
        (["10.0.0.1"], "10.0.0.2", "203.0.113.7", "10.0.0.2"),  # not from the proxy
        (["10.0.0.0/8"], "10.0.0.1", "198.51.100.1, 203.0.113.7, 10.0.0.9", "203.0.113.7"),
        (["10.0.0.0/8"], "10.0.0.1", "10.0.0.5, 10.0.0.9", "10.0.0.5"),  # all trusted
        (["10.0.0.1"], "10.0.0.1", "not-an-address", "10.0.0.1"),
        (["*"], "192.0.2.1", "203.0.113.7, 10.0.0.1", "203.0.113.7"),  # the leftmost
        (["*"], "192.0.2.1", "forged\nline, 203.0.113.7", "192.0.2.1"),  # not an address
        (["::1"], "::1", "2001:db8::7", "2001:db8::7"),
    ],
)
def test_trusted_proxies(trusted: list[str], peer: str, forwarded: str, client: str) -> None:
    assert TrustedProxies(trusted).client_host(peer, forwarded) == client


def test_kept_headers() -> None:
    pairs = [
        ("Cookie", "a=1"),
        ("X-Pad", "p" * 100),
        ("cookie", "b=2"),
        ("Accept", "x"),
        ("accept", "y"),
    ]
    kept = keep_headers(pairs, frozenset({"cookie", "accept"}))
    assert dict(kept) == {"cookie": "a=1; b=2", "accept": "x, y"}
    assert kept["COOKIE"] == "a=1; b=2"
    assert "X-Pad" not in kept
    assert kept == {"Cookie": "a=1; b=2", "accept": "x, y"}
    assert HeaderMap() == {}


def node_with(server: dict[str, object], client: dict[str, object] | None = None) -> Node:
    client_options = {"allow_anonymous_connect_without_token": True, **(client or {})}
    config = {"server": server, "client": client_options}
    return Node(load_config(None, config, environ=False))


async def connecting_event(node: Node, headers: dict[str, str | None]) -> ConnectingEvent:
    seen: list[ConnectingEvent] = []

    @node.on_connecting
    async def remember(event: ConnectingEvent) -> None:
        seen.append(event)

    async with serve_node(node) as running:

        def connect() -> None:
            with RawWebSocket.open(running.port, headers=headers) as ws:
                ws.connect()

        await anyio.to_thread.run_sync(connect)
    return seen[0]


@pytest.mark.anyio
async def test_client_address_from_a_trusted_proxy() -> None:
    node = node_with({"forwarded_allow_ips": ["127.0.0.1"]})
    event = await connecting_event(node, {"X-Forwarded-For": "203.0.113.7"})
    assert event.transport.remote == "203.0.113.7:0"
    assert event.transport.headers["x-forwarded-for"] == "203.0.113.7"


@pytest.mark.anyio
async def test_forwarded_for_ignored_without_trusted_proxies() -> None:
    event = await connecting_event(node_with({}), {"X-Forwarded-For": "203.0.113.7"})
    assert event.transport.remote.startswith("127.0.0.1:")


@pytest.mark.anyio
async def test_transport_headers_are_configurable() -> None:
    node = node_with({}, {"transport_headers": ["X-Api-Key"]})
    event = await connecting_event(node, {"X-Api-Key": "k", "Cookie": "c=1"})
    assert dict(event.transport.headers) == {"x-api-key": "k"}
