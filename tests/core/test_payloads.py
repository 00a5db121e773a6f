"""Payloads checked once, at publish (reliability.md A1, A2; centrifugo-server-side.md
§4.3 ``publication_data_format``): what a client, ``Node.publish`` or ``on_publish``
may publish, what is refused (error 107, nothing stored or delivered), and who may
subscribe to channels whose payloads may be binary. A Node with a MemoryBroker and
FakeTransport clients, JSON and Protobuf.
"""

from __future__ import annotations

from typing import Any

import pytest
from centrifuge.protocol import client_pb2 as pb
from msgspec import Raw

from tests.core.fakes import (
    FakeClock,
    FakeTransport,
    FakeVerifier,
    GatedBroker,
    connect,
    frame,
    make_config,
    pb_frame,
)
from tests.protocol.test_payload import nested
from wirehub import ClientError, Node, PublishEvent, PublishReply
from wirehub.brokers.base import HistoryOptions, PublishOptions
from wirehub.core.client import Client
from wirehub.core.events import Credentials
from wirehub.errors import InvalidPayload
from wirehub.protocol.json_codec import JSON_CODEC
from wirehub.protocol.payload import MAX_JSON_DEPTH
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC
from wirehub.protocol.types import Publication

pytestmark = pytest.mark.anyio

OPEN = {
    "history_size": 10,
    "history_ttl": 300,
    "force_recovery": True,
    "allow_subscribe_for_client": True,
    "allow_publish_for_client": True,
    "allow_history_for_client": True,
}
NAMESPACES = [
    {"name": "chat", **OPEN},
    {"name": "bin", **OPEN, "publication_data_format": "binary"},
    {"name": "obj", **OPEN, "publication_data_format": "json_object"},
]

ALL = HistoryOptions(limit=-1)

HOSTILE = [
    pytest.param(b"1e999999", id="1e999999"),
    pytest.param(b"-1e999999", id="-1e999999"),
    pytest.param(b"9" * 5000, id="5000-digit-integer"),
    pytest.param(nested(MAX_JSON_DEPTH + 1), id="too-deep"),
]


def make_node(**verifier: Any) -> tuple[Node, GatedBroker]:
    broker = GatedBroker(clock=FakeClock())
    config = make_config(channel={"namespaces": NAMESPACES})
    return Node(config, broker=broker, token_verifier=FakeVerifier(**verifier)), broker


def raw_publish(channel: str, data: bytes, command_id: int = 5) -> bytes:
    """A JSON publish command carrying ``data`` exactly as given (json.dumps can't)."""
    return b'{"id":%d,"publish":{"channel":"%s","data":%s}}' % (command_id, channel.encode(), data)


async def json_subscriber(node: Node, channel: str, user: str = "1") -> tuple[Client, Any]:
    client, transport = await connect(node, f"user:{user}")
    client.handle_frame(frame({"subscribe": {"channel": channel}, "id": 2}))
    reply = await transport.next_message()
    assert "subscribe" in reply, reply
    return client, transport


async def pb_subscriber(node: Node, channel: str, user: str = "2") -> tuple[Client, Any]:
    client, transport = await connect(node, f"user:{user}", codec=PROTOBUF_CODEC)
    request = pb.SubscribeRequest(channel=channel)
    client.handle_frame(pb_frame(pb.Command(id=2, subscribe=request)))
    reply = await transport.next_reply()
    assert reply.HasField("subscribe"), reply
    return client, transport


async def pb_publish(client: Client, transport: Any, channel: str, data: bytes) -> Any:
    client.handle_frame(
        pb_frame(pb.Command(id=7, publish=pb.PublishRequest(channel=channel, data=data)))
    )
    return await transport.next_reply()


async def test_hostile_json_is_refused_and_subscribers_keep_receiving() -> None:
    """A1 for every hostile payload, one after the other on one channel: 107 to the
    publisher each time, nothing stored or delivered, nobody closed; the next good
    publication takes the next offset and reaches everyone."""
    node, broker = make_node()
    async with node:
        _, json_transport = await json_subscriber(node, "chat:1")
        _, pb_transport = await pb_subscriber(node, "chat:1")
        publisher, publisher_transport = await connect(node, "user:3")
        for param in HOSTILE:
            (data,) = param.values
            publisher.handle_frame(raw_publish("chat:1", data))
            reply = await publisher_transport.next_message()
            assert reply["id"] == 5
            assert reply["error"]["code"] == 107
        assert (await broker.history("chat:1", ALL)).position.offset == 0
        await node.publish("chat:1", {"ok": True})
        push = await json_transport.next_message()
        assert push["push"]["pub"] == {"data": {"ok": True}, "offset": 1}
        assert (await pb_transport.next_reply()).push.pub.data == b'{"ok":true}'
        assert json_transport.unread == []
        assert not json_transport.closed
        assert not pb_transport.closed
        assert not publisher_transport.closed


async def test_deep_but_allowed_nesting_reaches_json_and_protobuf() -> None:
    node, _ = make_node()
    async with node:
        _, json_transport = await json_subscriber(node, "chat:1")
        _, pb_transport = await pb_subscriber(node, "chat:1")
        publisher, publisher_transport = await connect(node, "user:3")
        data = nested(MAX_JSON_DEPTH)
        publisher.handle_frame(raw_publish("chat:1", data))
        assert await publisher_transport.next_message() == {"id": 5, "publish": {}}
        push = await json_transport.next_message()
        assert push["push"]["pub"]["offset"] == 1
        assert (await pb_transport.next_reply()).push.pub.data == data


async def test_protobuf_bytes_that_are_not_json_are_refused_in_a_json_namespace() -> None:
    node, broker = make_node()
    async with node:
        _, json_transport = await json_subscriber(node, "chat:1")
        publisher, publisher_transport = await connect(node, "user:3", codec=PROTOBUF_CODEC)
        for data in (b"\x00\xffbinary", b"not json", b'{"a":1e999999}'):
            reply = await pb_publish(publisher, publisher_transport, "chat:1", data)
            assert reply.error.code == 107, reply
        assert (await broker.history("chat:1", ALL)).publications == []
        reply = await pb_publish(publisher, publisher_transport, "chat:1", b'{"a":\n1}')
        assert reply.HasField("publish")
        push = await json_transport.next_message()
        assert push["push"]["pub"]["data"] == {"a": 1}
        assert not json_transport.closed


async def test_json_object_format() -> None:
    node, _ = make_node()
    async with node:
        publisher, transport = await connect(node, "user:3")
        publisher.handle_frame(raw_publish("obj:1", b"[1,2]"))
        reply = await transport.next_message()
        assert reply["error"] == {"code": 107, "message": "bad request: data must be a JSON object"}
        publisher.handle_frame(raw_publish("obj:1", b'{"a":[1,2]}', 6))
        assert await transport.next_message() == {"id": 6, "publish": {}}
        with pytest.raises(InvalidPayload):
            await node.publish("obj:1", [1, 2])


async def test_binary_namespace_refuses_json_subscribers_at_subscribe() -> None:
    """A JSON client gets 107 at subscribe and at history, and stays connected; Protobuf
    clients publish, receive and recover binary data; a JSON client may publish JSON."""
    node, _ = make_node()
    async with node:
        json_client, json_transport = await connect(node, "user:1")
        json_client.handle_frame(frame({"subscribe": {"channel": "bin:1"}, "id": 2}))
        reply = await json_transport.next_message()
        assert reply["id"] == 2
        assert reply["error"]["code"] == 107
        assert "protobuf" in reply["error"]["message"]
        assert "bin:1" not in json_client.channels
        json_client.handle_frame(frame({"history": {"channel": "bin:1", "limit": -1}, "id": 3}))
        assert (await json_transport.next_message())["error"]["code"] == 107

        _, pb_transport = await pb_subscriber(node, "bin:1")
        publisher, publisher_transport = await connect(node, "user:3", codec=PROTOBUF_CODEC)
        reply = await pb_publish(publisher, publisher_transport, "bin:1", b"\x00\xff\n")
        assert reply.HasField("publish")
        assert (await pb_transport.next_reply()).push.pub.data == b"\x00\xff\n"
        json_client.handle_frame(raw_publish("bin:1", b'{"from":"json"}'))
        assert await json_transport.next_message() == {"id": 5, "publish": {}}
        assert (await pb_transport.next_reply()).push.pub.data == b'{"from":"json"}'
        assert not json_transport.closed
        assert await node.publish("bin:1", b"") is not None  # binary: empty allowed


async def test_server_side_binary_channel_closes_a_json_connect_with_3506() -> None:
    """At connect, not later: the JSON client can never receive the channel."""
    credentials = Credentials(user="5", channels=("bin:1",))
    node, _ = make_node(connections={"with-bin": credentials})
    async with node:
        transport = FakeTransport()
        client = node.attach(transport, JSON_CODEC)
        client.handle_frame(frame({"connect": {"token": "with-bin"}, "id": 1}))
        closed = await transport.wait_closed()
        assert (closed.code, closed.reason) == (3506, "inappropriate protocol")
        assert transport.unread == []
        # A Protobuf client with the same credentials is subscribed.
        pb_client, _ = await connect(node, "with-bin", codec=PROTOBUF_CODEC)
        assert "bin:1" in pb_client.channels


async def test_node_subscribe_skips_json_clients_of_binary_channels() -> None:
    node, _ = make_node()
    async with node:
        json_client, _ = await connect(node, "user:5")
        pb_client, _ = await connect(node, "user:5", codec=PROTOBUF_CODEC)
        assert await node.subscribe("bin:1", user="5") == 1
        assert "bin:1" in pb_client.channels
        assert "bin:1" not in json_client.channels


@pytest.mark.parametrize(
    "data",
    [Raw(b"1e999999"), b"-1e999999", b"\x00\xff", b"", Raw(b""), 10**5000, nested(65)],
    ids=["raw-inf", "bytes-inf", "binary", "empty", "empty-raw", "huge-int", "too-deep"],
)
async def test_node_publish_refuses_what_json_clients_cant_parse(data: Any) -> None:
    """``Node.publish`` checks ``msgspec.Raw`` and ``bytes`` too (they used to pass
    unchecked), and raises error 107, a ClientError and a ValueError."""
    node, broker = make_node()
    async with node:
        _, transport = await json_subscriber(node, "chat:1")
        with pytest.raises(InvalidPayload) as caught:
            await node.publish("chat:1", data)
        assert isinstance(caught.value, ValueError)
        assert isinstance(caught.value, ClientError)
        assert caught.value.code == 107
        assert (await broker.history("chat:1", ALL)).position.offset == 0
        await node.publish("chat:1", "fine")
        assert (await transport.next_message())["push"]["pub"]["data"] == "fine"


async def test_node_publish_refuses_too_deep_values() -> None:
    node, _ = make_node()
    async with node:
        value: Any = 1
        for _ in range(MAX_JSON_DEPTH + 1):
            value = [value]
        with pytest.raises(InvalidPayload, match="deeper"):
            await node.publish("chat:1", value)
        with pytest.raises(InvalidPayload, match="JSON-serialisable"):
            await node.publish("chat:1", {1, 2, 3} | {object()})


async def test_node_send_checks_the_payload() -> None:
    node, _ = make_node()
    async with node:
        client, transport = await connect(node, "user:5")
        for data in (Raw(b"1e999999"), b"\xff", b""):
            with pytest.raises(InvalidPayload):
                node.send(data, client=client.id)
        assert node.send(Raw(b'{"a":\n1}'), client=client.id) == 1
        assert (await transport.next_message())["push"]["message"]["data"] == {"a": 1}


async def test_on_publish_replacement_data_is_checked() -> None:
    node, broker = make_node()

    @node.on_publish
    async def rewrite(event: PublishEvent) -> PublishReply:
        return PublishReply(data=Raw(b"1e999999"))

    async with node:
        publisher, transport = await connect(node, "user:3")
        publisher.handle_frame(raw_publish("chat:1", b'"hi"'))
        assert (await transport.next_message())["error"]["code"] == 107
        assert (await broker.history("chat:1", ALL)).publications == []


async def test_foreign_payload_in_history_is_an_error_not_a_disconnect() -> None:
    """A broker holding a payload that bypassed publish (data from elsewhere): a JSON
    reader gets error 100 for history and ``recovered: false`` for recovery, checked by
    the same function; the connection stays. A Protobuf reader gets the bytes."""
    node, broker = make_node()
    async with node:
        options = PublishOptions(history_size=10, history_ttl=300)
        first = await broker.publish("chat:1", Publication(data=Raw(b"1e999999")), options)
        client, transport = await connect(node, "user:1")
        client.handle_frame(frame({"history": {"channel": "chat:1", "limit": -1}, "id": 3}))
        reply = await transport.next_message()
        assert reply["error"] == {
            "code": 100,
            "message": "internal server error",
            "temporary": True,
        }
        since = {"offset": 0, "epoch": first.epoch}
        request = {"channel": "chat:1", "recover": True, **since}
        client.handle_frame(frame({"subscribe": request, "id": 4}))
        result = (await transport.next_message())["subscribe"]
        assert result["was_recovering"] is True
        assert "recovered" not in result  # false
        assert "publications" not in result
        assert not transport.closed
        pb_client, pb_transport = await connect(node, "user:2", codec=PROTOBUF_CODEC)
        pb_client.handle_frame(
            pb_frame(pb.Command(id=3, history=pb.HistoryRequest(channel="chat:1", limit=-1)))
        )
        reply = await pb_transport.next_reply()
        assert [p.data for p in reply.history.publications] == [b"1e999999"]
