"""Presence, presence_stats, and join/leave pushes (centrifugo-protocol.md §2.4, §8.2, §8.3).

Presence lists who is subscribed (client id -> ClientInfo); presence_stats counts
clients and distinct users, the anonymous ``""`` counting as one user. Join/leave
pushes go to subscribers that asked (``join_leave: true``, with presence access) in a
namespace with ``join_leave``, or to every subscriber with ``force_push_join_leave``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.core.fakes import WAIT, FakeTransport, FakeVerifier, connect, frame, make_config
from wirehub import Node
from wirehub.core.client import Client

pytestmark = pytest.mark.anyio

SUBSCRIBE = {"allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True}

NAMESPACES: list[dict[str, Any]] = [
    # Subscribers (anonymous too) see presence and may ask for join/leave.
    {
        "name": "room",
        **SUBSCRIBE,
        "presence": True,
        "join_leave": True,
        "allow_presence_for_subscriber": True,
        "allow_presence_for_anonymous": True,
    },
    # Every subscriber gets join/leave, asked or not; presence for any user.
    {
        "name": "forced",
        **SUBSCRIBE,
        "presence": True,
        "join_leave": True,
        "force_push_join_leave": True,
        "allow_presence_for_client": True,
    },
    # Presence kept, no join/leave.
    {"name": "quiet", **SUBSCRIBE, "presence": True, "allow_presence_for_subscriber": True},
    # Join/leave published, but nobody may read presence: asking is not enough.
    {"name": "blind", **SUBSCRIBE, "presence": True, "join_leave": True},
    # Presence off.
    {"name": "off", **SUBSCRIBE, "allow_presence_for_client": True, "join_leave": True},
    # Authenticated users only.
    {
        "name": "members",
        **SUBSCRIBE,
        "presence": True,
        "allow_presence_for_client": True,
    },
    {"name": "marker", **SUBSCRIBE},
]


def make_node() -> Node:
    config = make_config(
        client={"allow_anonymous_connect_without_token": True},
        channel={"namespaces": NAMESPACES},
    )
    return Node(config, token_verifier=FakeVerifier(info={"name": "Ann"}))


async def command(transport: FakeTransport, client: Client, **cmd: Any) -> dict[str, Any]:
    client.handle_frame(frame(cmd))
    return await transport.next_message()


async def subscribe(transport: FakeTransport, client: Client, channel: str, **request: Any) -> None:
    reply = await command(transport, client, subscribe={"channel": channel, **request}, id=2)
    assert reply == {"id": 2, "subscribe": {}}, reply


async def joined(
    node: Node, token: str, channel: str, **request: Any
) -> tuple[Client, FakeTransport]:
    client, transport = await connect(node, token)
    await subscribe(transport, client, channel, **request)
    return client, transport


def info(client: Client) -> dict[str, Any]:
    """ClientInfo as a JSON client reads it: user and client always present."""
    if client.user:
        return {"user": client.user, "client": client.id, "conn_info": {"name": "Ann"}}
    return {"user": "", "client": client.id}


async def no_more_pushes(node: Node, *transports: FakeTransport) -> None:
    """Nothing else is queued for ``transports``: a marker publication comes next."""
    for transport in transports:
        assert transport.unread == []
    await node.publish("marker:1", "end")
    for transport in transports:
        assert (await transport.next_message())["push"]["channel"] == "marker:1"


# Presence.


async def test_presence_lists_subscribers_including_anonymous() -> None:
    async with make_node() as node:
        alice, alice_t = await joined(node, "user:42", "room:1")
        anon, _anon_t = await joined(node, "", "room:1")
        reply = await command(alice_t, alice, presence={"channel": "room:1"}, id=3)
        assert reply == {
            "id": 3,
            "presence": {"presence": {alice.id: info(alice), anon.id: info(anon)}},
        }
        assert await node.presence("room:1") == {
            alice.id: alice.channel_info("room:1", alice.channels["room:1"]),
            anon.id: anon.channel_info("room:1", anon.channels["room:1"]),
        }


async def test_presence_of_an_empty_channel() -> None:
    async with make_node() as node:
        client, transport = await connect(node)
        reply = await command(transport, client, presence={"channel": "members:1"}, id=3)
        assert reply == {"id": 3, "presence": {"presence": {}}}
        reply = await command(transport, client, presence_stats={"channel": "members:1"}, id=4)
        assert reply == {"id": 4, "presence_stats": {"num_clients": 0, "num_users": 0}}


async def test_presence_stats_count_anonymous_as_one_user() -> None:
    async with make_node() as node:
        alice, alice_t = await joined(node, "user:42", "room:1")
        await joined(node, "user:42", "room:1")  # a second tab
        await joined(node, "", "room:1")
        await joined(node, "", "room:1")
        reply = await command(alice_t, alice, presence_stats={"channel": "room:1"}, id=3)
        assert reply == {"id": 3, "presence_stats": {"num_clients": 4, "num_users": 2}}


async def test_presence_drops_a_client_that_disconnects() -> None:
    async with make_node() as node:
        alice, alice_t = await joined(node, "user:42", "room:1", join_leave=True)
        bob, _bob_t = await joined(node, "user:43", "room:1")
        assert (await alice_t.next_message())["push"]["join"]["info"]["client"] == alice.id
        assert (await alice_t.next_message())["push"]["join"]["info"]["client"] == bob.id
        bob.transport_closed()
        # The leave is published once the presence entry is gone.
        assert (await alice_t.next_message())["push"]["leave"]["info"]["client"] == bob.id
        reply = await command(alice_t, alice, presence={"channel": "room:1"}, id=3)
        assert reply["presence"]["presence"] == {alice.id: info(alice)}
        reply = await command(alice_t, alice, presence_stats={"channel": "room:1"}, id=4)
        assert reply["presence_stats"] == {"num_clients": 1, "num_users": 1}


async def test_presence_drops_a_client_that_unsubscribes() -> None:
    async with make_node() as node:
        alice, alice_t = await joined(node, "user:42", "quiet:1")
        bob, bob_t = await joined(node, "user:43", "quiet:1")
        reply = await command(bob_t, bob, unsubscribe={"channel": "quiet:1"}, id=3)
        assert reply == {"id": 3, "unsubscribe": {}}
        reply = await command(alice_t, alice, presence={"channel": "quiet:1"}, id=4)
        assert reply["presence"]["presence"] == {alice.id: info(alice)}


@pytest.mark.parametrize("method", ["presence", "presence_stats"])
@pytest.mark.parametrize(
    ("token", "channel", "subscribe_first", "error"),
    [
        ("user:42", "off:1", False, (108, "not available")),
        ("user:42", "blind:1", True, (103, "permission denied")),  # presence kept, no access
        ("user:42", "room:1", False, (103, "permission denied")),  # subscribers only
        ("user:42", "room:1", True, None),
        ("", "room:1", True, None),  # allow_presence_for_anonymous
        ("", "members:1", False, (103, "permission denied")),
        ("", "members:1", True, (103, "permission denied")),
        ("user:42", "members:1", False, None),
        ("user:42", "nope:1", False, (102, "unknown channel")),
    ],
)
async def test_presence_permissions(
    method: str,
    token: str,
    channel: str,
    subscribe_first: bool,
    error: tuple[int, str] | None,
) -> None:
    async with make_node() as node:
        client, transport = await connect(node, token)
        if subscribe_first:
            await subscribe(transport, client, channel)
        reply = await command(transport, client, **{method: {"channel": channel}}, id=3)
        if error is None:
            assert method in reply
        else:
            assert reply == {"id": 3, "error": {"code": error[0], "message": error[1]}}
        assert not transport.closed


# Join and leave.


async def test_subscriber_that_asked_sees_joins_and_leaves() -> None:
    async with make_node() as node:
        alice, alice_t = await joined(node, "user:42", "room:1", join_leave=True)
        own = await alice_t.next_message()
        assert own == {"push": {"channel": "room:1", "join": {"info": info(alice)}}}
        bob, bob_t = await joined(node, "", "room:1")  # did not ask
        assert await alice_t.next_message() == {
            "push": {"channel": "room:1", "join": {"info": info(bob)}}
        }
        carol, _carol_t = await joined(node, "user:44", "room:1")
        assert (await alice_t.next_message())["push"]["join"]["info"]["client"] == carol.id
        reply = await command(bob_t, bob, unsubscribe={"channel": "room:1"}, id=3)
        assert reply == {"id": 3, "unsubscribe": {}}
        assert await alice_t.next_message() == {
            "push": {"channel": "room:1", "leave": {"info": info(bob)}}
        }
        carol.transport_closed()
        assert await alice_t.next_message() == {
            "push": {"channel": "room:1", "leave": {"info": info(carol)}}
        }
        await subscribe(bob_t, bob, "marker:1")
        await no_more_pushes(node, bob_t)


async def test_force_push_join_leave_delivers_to_every_subscriber() -> None:
    async with make_node() as node:
        alice, alice_t = await joined(node, "user:42", "forced:1")
        assert (await alice_t.next_message())["push"]["join"]["info"] == info(alice)
        anon, anon_t = await joined(node, "", "forced:1")
        for transport in (alice_t, anon_t):
            assert await transport.next_message() == {
                "push": {"channel": "forced:1", "join": {"info": info(anon)}}
            }
        alice.transport_closed()
        assert await anon_t.next_message() == {
            "push": {"channel": "forced:1", "leave": {"info": info(alice)}}
        }


@pytest.mark.parametrize(
    ("channel", "join_leave"),
    [
        ("room:1", False),  # join_leave on, but nobody asked
        ("quiet:1", True),  # asked, but the namespace has no join_leave
        ("blind:1", True),  # asked, without presence access
    ],
)
async def test_no_join_leave_pushes(channel: str, join_leave: bool) -> None:
    async with make_node() as node:
        alice, alice_t = await joined(node, "user:42", channel, join_leave=join_leave)
        await command(alice_t, alice, subscribe={"channel": "marker:1"}, id=5)
        bob, _bob_t = await joined(node, "user:43", channel)
        bob.transport_closed()
        # Bob's cleanup (leave included) runs in the background: let it finish.
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*node._tasks)
        assert bob.id not in await node.presence(channel)
        await no_more_pushes(node, alice_t)
