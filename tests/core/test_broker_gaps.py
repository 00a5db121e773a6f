"""What the core does when the broker says publications may have been lost on their way
to this node (``BrokerEventHandler.handle_gap``: a broken connection to Redis), and the
node's refresh of its clients' presence entries (``core/presence.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.fakes import FakeVerifier, connect, make_config
from tests.core.test_history import command, make_node, publish_n, subscribe
from wirehub import Node
from wirehub.brokers.memory import MemoryPresenceManager
from wirehub.core.events import Credentials
from wirehub.core.presence import refresh_presence
from wirehub.protocol.types import ClientInfo

pytestmark = pytest.mark.anyio


async def test_a_gap_tells_positioned_subscribers_only() -> None:
    """Recovering and positioned subscribers get 2500 and resubscribe; a plain one stays
    (it has nothing to recover from); other channels are untouched."""
    node, _ = make_node()
    async with node:
        await publish_n(node, "rec:1", 2)
        recovering, recovering_t = await connect(node, "user:1")
        positioned, positioned_t = await connect(node, "user:2")
        plain, plain_t = await connect(node, "user:3")
        elsewhere, elsewhere_t = await connect(node, "user:4")
        await subscribe(recovering_t, recovering, "rec:1")
        await subscribe(positioned_t, positioned, "h:1", positioned=True)
        await subscribe(plain_t, plain, "h:1")
        await subscribe(elsewhere_t, elsewhere, "rec:2")
        node.handle_gap(["rec:1", "h:1", "never-subscribed:1"])
        insufficient = {"code": 2500, "reason": "insufficient state"}
        for transport, channel in ((recovering_t, "rec:1"), (positioned_t, "h:1")):
            push = await transport.next_message()
            assert push == {"push": {"channel": channel, "unsubscribe": insufficient}}
        assert "rec:1" not in recovering.channels
        assert "h:1" in plain.channels
        assert "rec:2" in elsewhere.channels
        await node.publish("h:1", {"n": 1})
        assert (await plain_t.next_message())["push"]["pub"]["data"] == {"n": 1}
        assert positioned_t.unread == []
        assert elsewhere_t.unread == []
        # The SDK subscribes again and recovers what it missed.
        reply = await command(
            recovering_t, recovering, subscribe={"channel": "rec:1", "recover": True}, id=7
        )
        assert reply["subscribe"]["recovered"] is True


async def test_a_gap_disconnects_server_side_subscribers_with_3010() -> None:
    node = Node(
        make_config(
            client={"allow_anonymous_connect_without_token": True},
            channel={
                "namespaces": [
                    {"name": "news", "history_size": 10, "history_ttl": 300, "force_recovery": True}
                ]
            },
        ),
        token_verifier=FakeVerifier(
            connections={"news": Credentials(user="1", channels=("news:1",))}
        ),
    )
    async with node:
        client, transport = await connect(node, "news")
        assert "news:1" in client.channels
        node.handle_gap(["news:1"])
        closed = await transport.wait_closed()
        assert closed.code == 3010


async def test_a_gap_while_recovering_fails_the_subscribe_with_3010() -> None:
    """A subscriber whose history is being read when the gap is reported can't trust
    the live publications buffered meanwhile: it is disconnected to start again."""
    node, broker = make_node()
    async with node:
        await publish_n(node, "rec:1", 2)
        client, transport = await connect(node, "user:1")
        broker.hold()
        client.handle_frame(b'{"subscribe":{"channel":"rec:1","recover":true,"offset":1},"id":2}')
        await broker.wait_entered()
        node.handle_gap(["rec:1"])
        broker.release()
        closed = await transport.wait_closed()
        assert closed.code == 3010


class RecordingPresence(MemoryPresenceManager):
    def __init__(self) -> None:
        super().__init__()
        self.added: list[tuple[str, ClientInfo]] = []

    async def add_presence(self, channel: str, info: ClientInfo) -> None:
        self.added.append((channel, info))
        await super().add_presence(channel, info)


async def test_presence_refresh_re_adds_every_live_entry() -> None:
    presence = RecordingPresence()
    namespaces: list[dict[str, Any]] = [
        {"name": "room", "allow_subscribe_for_client": True, "presence": True},
        {"name": "plain", "allow_subscribe_for_client": True},
    ]
    node = Node(
        make_config(channel={"namespaces": namespaces}),
        presence_manager=presence,
        token_verifier=FakeVerifier(),
    )
    async with node:
        alice, alice_t = await connect(node, "user:1")
        bob, bob_t = await connect(node, "user:2")
        await subscribe(alice_t, alice, "room:1")
        await subscribe(alice_t, alice, "plain:1")
        await subscribe(bob_t, bob, "room:1")
        await subscribe(bob_t, bob, "room:2")
        presence.added.clear()
        assert await refresh_presence(node) == 0
        refreshed = sorted((channel, info.client) for channel, info in presence.added)
        assert refreshed == sorted([("room:1", alice.id), ("room:1", bob.id), ("room:2", bob.id)])
        # An entry whose subscription ended is not brought back.
        await command(bob_t, bob, unsubscribe={"channel": "room:2"}, id=5)
        presence.added.clear()
        await refresh_presence(node)
        assert ("room:2", bob.id) not in [(c, i.client) for c, i in presence.added]
        assert bob.id not in await presence.presence("room:2")
