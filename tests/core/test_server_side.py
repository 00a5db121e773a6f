"""Server-side subscriptions: channels a connection is subscribed to on connect.

centrifugo-protocol.md §3.1 (4): the server subscribes the connection to the channels
of its credentials (token ``channels``, or the connect handler), puts the results in
ConnectResult ``subs`` and sends that reply before any push for those channels; an
unknown namespace fails the connect with 102. §5.3: on reconnect the SDK sends the
positions it kept in ``connect.subs`` and the server recovers each channel. §5.7: a gap
on a server-side subscription disconnects with 3010.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.fakes import (
    FakeTransport,
    FakeVerifier,
    GatedBroker,
    connect,
    frame,
    make_config,
)
from wirehub import ConnectingEvent, ConnectingReply, Credentials, Node
from wirehub.core.client import Client, ClientState
from wirehub.protocol.json_codec import JSON_CODEC
from wirehub.protocol.types import Publication, StreamPosition

pytestmark = pytest.mark.anyio

HISTORY = {"history_size": 10, "history_ttl": 300}

NAMESPACES: list[dict[str, Any]] = [
    # Clients may not subscribe themselves: only the server subscribes them.
    {"name": "news"},
    {"name": "rec", **HISTORY, "force_recovery": True},
    {"name": "pos", **HISTORY, "force_positioning": True},
    {
        "name": "room",
        "presence": True,
        "join_leave": True,
        "allow_subscribe_for_client": True,
        "allow_presence_for_subscriber": True,
    },
]

TOKENS = {
    "news-and-rec": Credentials(user="42", channels=("news:1", "rec:1")),
    "rec": Credentials(user="42", channels=("rec:1",)),
    "pos": Credentials(user="42", channels=("pos:1",)),
    "room": Credentials(user="43", info={"name": "Bo"}, channels=("room:1",)),
    "unknown": Credentials(user="42", channels=("news:1", "nope:1")),
}


def make_node(broker: GatedBroker | None = None) -> Node:
    config = make_config(
        client={"allow_anonymous_connect_without_token": True},
        channel={"namespaces": NAMESPACES},
    )
    return Node(
        config, broker=broker or GatedBroker(), token_verifier=FakeVerifier(connections=TOKENS)
    )


def attach(node: Node) -> tuple[Client, FakeTransport]:
    transport = FakeTransport()
    return node.attach(transport, JSON_CODEC), transport


def stored(*offsets: int) -> list[dict[str, Any]]:
    return [{"data": {"n": n}, "offset": n} for n in offsets]


async def test_credentials_channels_are_subscribed_on_connect() -> None:
    async with make_node() as node:
        client, transport = await connect(node, "news-and-rec")
        result = transport.messages[0]["connect"]
        epoch = result["subs"]["rec:1"]["epoch"]
        assert result["subs"] == {
            "news:1": {},
            "rec:1": {"recoverable": True, "epoch": epoch, "positioned": True},
        }
        assert set(client.channels) == {"news:1", "rec:1"}
        assert all(context.server_side for context in client.channels.values())
        # Publications arrive without any subscribe command.
        await node.publish("news:1", "headline")
        await node.publish("rec:1", {"n": 1})
        assert await transport.next_message() == {
            "push": {"channel": "news:1", "pub": {"data": "headline"}}
        }
        assert await transport.next_message() == {
            "push": {"channel": "rec:1", "pub": {"data": {"n": 1}, "offset": 1}}
        }


async def test_on_connecting_channels_add_to_the_credentials() -> None:
    async with make_node() as node:

        @node.on_connecting
        async def auth(event: ConnectingEvent) -> ConnectingReply | None:
            if event.token == "code":
                credentials = Credentials(user="7", channels=("news:1", "pos:1"))
                return ConnectingReply(credentials, channels=("news:1", "news:2"))
            return ConnectingReply(channels=("news:3",))  # credentials from the token

        coded, coded_transport = await connect(node, "code")
        assert list(coded_transport.messages[0]["connect"]["subs"]) == ["news:1", "pos:1", "news:2"]
        assert coded.user == "7"
        tokened, tokened_transport = await connect(node, "rec")
        assert list(tokened_transport.messages[0]["connect"]["subs"]) == ["rec:1", "news:3"]
        assert tokened.user == "42"
        await node.publish("news:3", 1)
        assert (await tokened_transport.next_message())["push"]["channel"] == "news:3"


async def test_connect_reply_comes_before_any_push_of_its_channels() -> None:
    """Publications made while the server-side subscriptions are set up wait for the
    connect reply, then follow in order."""
    broker = GatedBroker()
    async with make_node(broker) as node:
        client, transport = attach(node)
        broker.hold(read_first=True)  # rec:1's position is read, then held
        client.handle_frame(frame({"connect": {"token": "news-and-rec"}, "id": 1}))
        await broker.wait_entered()
        assert client.state is ClientState.CONNECTED
        await node.publish("news:1", "during")
        await node.publish("rec:1", {"n": 1})
        assert transport.frames == []
        broker.release()
        reply = await transport.next_message()
        assert reply["id"] == 1
        assert reply["connect"]["subs"]["rec:1"].get("offset", 0) == 0
        assert await transport.next_message() == {
            "push": {"channel": "news:1", "pub": {"data": "during"}}
        }
        assert await transport.next_message() == {
            "push": {"channel": "rec:1", "pub": {"data": {"n": 1}, "offset": 1}}
        }
        await node.publish("rec:1", {"n": 2})
        assert (await transport.next_message())["push"]["pub"] == stored(2)[0]
        assert transport.unread == []


async def test_unknown_namespace_in_channels_fails_the_connect_with_102() -> None:
    async with make_node() as node:
        client, transport = attach(node)
        client.handle_frame(frame({"connect": {"token": "unknown"}, "id": 1}))
        assert await transport.next_message() == {
            "id": 1,
            "error": {"code": 102, "message": "unknown channel"},
        }
        assert node.num_clients == 0
        assert not node.hub.has_subscribers("news:1")
        client.handle_frame(frame({"subscribe": {"channel": "room:1"}, "id": 2}))
        assert (await transport.wait_closed()).code == 3501


async def test_connect_subs_recover_a_server_side_channel() -> None:
    async with make_node() as node:
        top = await node.publish("rec:1", {"n": 1})
        for n in (2, 3):
            await node.publish("rec:1", {"n": n})
        client, transport = attach(node)
        subs = {
            "rec:1": {"recover": True, "offset": 1, "epoch": top.epoch},
            "news:9": {"recover": True, "offset": 5},  # not a channel of this connection
        }
        client.handle_frame(frame({"connect": {"token": "rec", "subs": subs}, "id": 1}))
        result = (await transport.next_message())["connect"]
        assert result["subs"] == {
            "rec:1": {
                "recoverable": True,
                "epoch": top.epoch,
                "publications": stored(2, 3),
                "recovered": True,
                "offset": 1,
                "positioned": True,
                "was_recovering": True,
            }
        }
        await node.publish("rec:1", {"n": 4})
        assert (await transport.next_message())["push"]["pub"] == stored(4)[0]


async def test_connect_subs_with_a_lost_position_are_not_recovered() -> None:
    async with make_node() as node:
        for n in (1, 2):
            top = await node.publish("rec:1", {"n": n})
        client, transport = attach(node)
        subs = {"rec:1": {"recover": True, "offset": 1, "epoch": "OldEpoch"}}
        client.handle_frame(frame({"connect": {"token": "rec", "subs": subs}, "id": 1}))
        result = (await transport.next_message())["connect"]["subs"]["rec:1"]
        assert result == {
            "recoverable": True,
            "epoch": top.epoch,
            "offset": 2,
            "positioned": True,
            "was_recovering": True,
        }


async def test_gap_on_a_server_side_subscription_disconnects_3010() -> None:
    async with make_node() as node:
        top = await node.publish("pos:1", {"n": 1})
        _client, transport = await connect(node, "pos")
        assert transport.messages[0]["connect"]["subs"]["pos:1"]["offset"] == 1
        publication = Publication(data=b'{"n":3}', offset=3)  # type: ignore[arg-type]
        node.handle_publication("pos:1", publication, StreamPosition(offset=3, epoch=top.epoch))
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3010, "insufficient state")
        assert not node.hub.has_subscribers("pos:1")


async def test_server_side_presence_and_join_follow_the_connect_reply() -> None:
    async with make_node() as node:
        watcher, watcher_transport = await connect(node, "user:1")
        reply = await _command(
            watcher_transport, watcher, subscribe={"channel": "room:1", "join_leave": True}, id=2
        )
        assert reply == {"id": 2, "subscribe": {}}
        own_join = {"user": "1", "client": watcher.id}
        assert await watcher_transport.next_message() == {
            "push": {"channel": "room:1", "join": {"info": own_join}}
        }
        joined, joined_transport = await connect(node, "room")
        assert joined_transport.messages[0]["connect"]["subs"] == {"room:1": {}}
        info = {"user": "43", "client": joined.id, "conn_info": {"name": "Bo"}}
        assert await watcher_transport.next_message() == {
            "push": {"channel": "room:1", "join": {"info": info}}
        }
        presence = await node.presence("room:1")
        assert set(presence) == {watcher.id, joined.id}
        joined.transport_closed()
        assert await watcher_transport.next_message() == {
            "push": {"channel": "room:1", "leave": {"info": info}}
        }
        assert set(await node.presence("room:1")) == {watcher.id}


async def test_server_side_subscription_failure_closes_the_connection() -> None:
    """A broker failure while subscribing on connect: the connection can't be answered
    with an error (it is connected already), so it closes with 3004 and is forgotten."""
    broker = GatedBroker()
    async with make_node(broker) as node:
        broker.fail = RuntimeError("broker down")
        client, transport = attach(node)
        client.handle_frame(frame({"connect": {"token": "news-and-rec"}, "id": 1}))
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3004, "internal server error")
        assert transport.frames == []
        assert node.num_clients == 0
        assert not node.hub.has_subscribers("news:1")


async def test_disconnect_ends_server_side_subscriptions() -> None:
    async with make_node() as node:
        client, _transport = await connect(node, "news-and-rec")
        client.transport_closed()
        assert not node.hub.has_subscribers("news:1")
        assert not node.hub.has_subscribers("rec:1")
        assert node.num_clients == 0


async def _command(transport: FakeTransport, client: Client, **cmd: Any) -> dict[str, Any]:
    client.handle_frame(frame(cmd))
    return await transport.next_message()


async def test_node_subscribe_at_runtime_sends_a_subscribe_push_then_publications() -> None:
    """node.subscribe(): a server-side subscription made after connect."""
    async with make_node() as node:
        client, transport = await connect(node, "rec")
        assert await node.subscribe("news:2", user="42") == 1
        push = await transport.next_message()
        assert push == {"push": {"channel": "news:2", "subscribe": {}}}
        await node.publish("news:2", {"n": 1})
        assert await transport.next_message() == {
            "push": {"channel": "news:2", "pub": {"data": {"n": 1}}}
        }
        assert client.channels["news:2"].server_side
        assert await node.subscribe("news:2", client=client.id) == 0  # already subscribed


async def test_node_subscribe_to_a_recoverable_channel_announces_the_position() -> None:
    async with make_node() as node:
        await node.publish("rec:2", {"n": 1})
        client, transport = await connect(node, "pos")
        assert await node.subscribe("rec:2", client=client.id) == 1
        push = (await transport.next_message())["push"]["subscribe"]
        assert push["recoverable"] is True
        assert push["positioned"] is True
        assert push["offset"] == 1
        assert push["epoch"]


async def test_node_unsubscribe_sends_a_terminal_unsubscribe_push() -> None:
    async with make_node() as node:
        client, transport = await connect(node, "news-and-rec")
        assert await node.unsubscribe("news:1", user="42") == 1
        assert await transport.next_message() == {
            "push": {
                "channel": "news:1",
                "unsubscribe": {"code": 2000, "reason": "server unsubscribe"},
            }
        }
        assert "news:1" not in client.channels
        assert not node.hub.has_subscribers("news:1")
        assert await node.unsubscribe("news:1", user="42") == 0


async def test_node_subscribe_needs_exactly_one_target() -> None:
    async with make_node() as node:
        with pytest.raises(TypeError):
            await node.subscribe("news:1")


async def test_subs_options_give_channel_info_data_and_overrides() -> None:
    """A connection token's ``subs`` claim: per-channel info, data and overrides, read by
    the real JWT verifier."""
    import jwt as pyjwt

    from wirehub.auth.hooks import connect_verifier_from_config
    from wirehub.config import TokenConfig

    secret = "a-test-secret-of-at-least-32-bytes!!"
    verifier = connect_verifier_from_config(TokenConfig(hmac_secret_key=secret))
    assert verifier is not None
    claims = {
        "sub": "42",
        "channels": ["news:ignored"],  # with subs, channels is ignored (as Centrifugo)
        "subs": {
            "room:1": {
                "info": {"role": "host"},
                "data": {"welcome": True},
                "override": {"presence": {"value": False}},
            }
        },
    }
    config = make_config(
        client={"allow_anonymous_connect_without_token": True},
        channel={"namespaces": NAMESPACES},
    )
    async with Node(config, token_verifier=verifier) as node:
        client, transport = await connect(node, pyjwt.encode(claims, secret, algorithm="HS256"))
        subs = transport.messages[0]["connect"]["subs"]
        assert subs == {"room:1": {"data": {"welcome": True}}}
        assert list(client.channels) == ["room:1"]
        assert await node.presence_manager.presence("room:1") == {}  # overridden off
        # chan_info rides on this client's own publications and join/leave info.
        assert bytes(client.channels["room:1"].info) == b'{"role":"host"}'
