"""Delta compression through a Node (``centrifugo-protocol.md`` §2.7,
``centrifugo-server-side.md`` §9.1): negotiation, what each subscriber receives, what
is computed once, recovery chains. FakeTransport clients decoded as the SDKs do, with
centrifuge-python's ``apply_delta`` reconstructing every payload."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from centrifuge.fossil import apply_delta

from tests.core.fakes import (
    FakeTransport,
    FakeVerifier,
    ProtobufTransport,
    connect,
    frame,
    make_config,
    pb_frame,
)
from wirehub import Node
from wirehub.core import delta as delta_module
from wirehub.core.client import Client
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC

pytestmark = pytest.mark.anyio

HISTORY = {"history_size": 100, "history_ttl": 300, "allow_subscribe_for_client": True}
NAMESPACES: list[dict[str, Any]] = [
    # Deltas for every publish, positioned subscribers.
    {"name": "d", **HISTORY, "force_recovery": True, "allowed_delta_types": ["fossil"],
     "delta_publish": True},
    # Deltas allowed to subscribers, only for publishes that ask.
    {"name": "ask", **HISTORY, "force_positioning": True, "allowed_delta_types": ["fossil"]},
    # History but no positioning: subscribers are not checked for gaps.
    {"name": "loose", **HISTORY, "allowed_delta_types": ["fossil"], "delta_publish": True},
    # No history: no offsets, so never a delta.
    {"name": "nohist", "allow_subscribe_for_client": True, "allowed_delta_types": ["fossil"],
     "delta_publish": True},
    # Deltas not allowed.
    {"name": "plain", **HISTORY, "force_positioning": True},
    {"name": "tf", **HISTORY, "allow_tags_filter": True, "allowed_delta_types": ["fossil"]},
]  # fmt: skip


def make_node() -> Node:
    return Node(make_config(channel={"namespaces": NAMESPACES}), token_verifier=FakeVerifier())


def documents(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """A 2 KB dashboard, one field changing per version."""
    rng = random.Random(seed)
    doc: dict[str, Any] = {f"m{i}": {"value": i, "label": f"Métrique {i}"} for i in range(40)}
    versions = []
    for n in range(count):
        field = doc[f"m{rng.randrange(40)}"]
        field["value"] = n * 1000 + rng.randrange(1000)
        versions.append(json.loads(json.dumps(doc)))
    return versions


class Receiver:
    """A delta subscriber's side: applies deltas as the SDKs do."""

    def __init__(self) -> None:
        self.previous = b""
        self.values: list[Any] = []
        self.kinds: list[str] = []

    def take(self, pub: dict[str, Any], *, protobuf: bool = False) -> None:
        data = pub.get("data", b"" if protobuf else "")
        raw = data if protobuf else data.encode()
        if pub.get("delta"):
            raw = bytes(apply_delta(self.previous, raw))
            self.kinds.append("delta")
        else:
            self.kinds.append("full")
        self.previous = raw
        self.values.append(json.loads(raw))


async def subscribe(
    client: Client, transport: FakeTransport, channel: str, command_id: int = 2, **fields: Any
) -> dict[str, Any]:
    client.handle_frame(frame({"subscribe": {"channel": channel, **fields}, "id": command_id}))
    reply = await transport.next_message()
    assert reply.get("id") == command_id, reply
    return reply


def pubs(transport: FakeTransport) -> list[dict[str, Any]]:
    return [m["push"]["pub"] for m in transport.unread if "pub" in m.get("push", {})]


async def wait_pubs(transport: FakeTransport, count: int) -> list[dict[str, Any]]:
    await transport.wait_for(lambda: len(pubs(transport)) >= count)
    found = pubs(transport)
    transport._read += len(transport.unread)
    return found


# Negotiation.


async def test_negotiation() -> None:
    node = make_node()
    async with node:
        client, transport = await connect(node)
        assert (await subscribe(client, transport, "d:1", delta="fossil"))["subscribe"]["delta"]
        # Not allowed in the namespace: no error, no delta (as Centrifugo).
        reply = await subscribe(client, transport, "plain:1", 3, delta="fossil")
        assert "delta" not in reply["subscribe"]
        reply = await subscribe(client, transport, "d:2", 4)
        assert "delta" not in reply["subscribe"]
        # Both a filter and deltas: refused.
        reply = await subscribe(
            client, transport, "tf:1", 5, delta="fossil", tf={"key": "a", "cmp": "ex"}
        )
        assert reply["error"]["code"] == 107
        # An unknown delta type is a malformed request.
        client.handle_frame(frame({"subscribe": {"channel": "d:3", "delta": "xdelta"}, "id": 6}))
        assert (await transport.wait_closed()).code == 3501


# What subscribers receive.


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_fifty_versions_reconstruct_exactly(encoding: str) -> None:
    """The first publication is full, the others deltas; a subscriber without delta on
    the same channel gets every full payload as usual."""
    node = make_node()
    versions = documents(50)
    async with node:
        if encoding == "json":
            client, transport = await connect(node)
            await subscribe(client, transport, "d:doc", delta="fossil")
        else:
            from centrifuge.protocol import client_pb2 as pb

            client, transport = await connect(node, codec=PROTOBUF_CODEC)
            request = pb.SubscribeRequest(channel="d:doc", delta="fossil")
            client.handle_frame(pb_frame(pb.Command(id=2, subscribe=request)))
            assert isinstance(transport, ProtobufTransport)
            assert (await transport.next_reply()).subscribe.delta
            transport._read = len(transport.messages)
        plain_client, plain = await connect(node)
        await subscribe(plain_client, plain, "d:doc")
        for version in versions:
            await node.publish("d:doc", version)

        receiver = Receiver()
        if encoding == "json":
            for pub in await wait_pubs(transport, 50):
                receiver.take(pub)
        else:
            assert isinstance(transport, ProtobufTransport)
            await transport.wait_for(lambda: len(transport.replies) >= 52)
            for reply in transport.replies[2:]:
                pub = reply.push.pub
                receiver.take({"data": pub.data, "delta": pub.delta}, protobuf=True)
        assert receiver.values == versions
        assert receiver.kinds == ["full"] + ["delta"] * 49
        wire = sum(len(frame) for frame in transport.frames[2:])
        assert wire * 10 < sum(len(json.dumps(v)) for v in versions)

        plain_pubs = await wait_pubs(plain, 50)
        assert [p["data"] for p in plain_pubs] == versions  # JSON values, not strings
        assert not any("delta" in p for p in plain_pubs)


async def test_each_delta_is_computed_once_per_publication(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = delta_module.make_delta

    def counting(base: bytes, payload: bytes) -> bytes | None:
        calls.append(len(payload))
        return real(base, payload)

    monkeypatch.setattr(delta_module, "make_delta", counting)
    node = make_node()
    versions = documents(5)
    async with node:
        subscribers = [await connect(node) for _ in range(20)]
        for client, transport in subscribers:
            await subscribe(client, transport, "d:doc", delta="fossil")
        for version in versions:
            await node.publish("d:doc", version)
        frames = set()
        for _, transport in subscribers:
            received = await wait_pubs(transport, 5)
            receiver = Receiver()
            for pub in received:
                receiver.take(pub)
            assert receiver.values == versions
            frames.add(json.dumps(received))
        assert len(calls) == 4  # one per publication after the first, not per subscriber
        assert len(frames) == 1  # everybody got the same bytes


async def test_deltas_only_where_the_publisher_allows_them() -> None:
    node = make_node()
    versions = documents(4)
    async with node:
        client, transport = await connect(node)
        await subscribe(client, transport, "ask:doc", delta="fossil")
        await node.publish("ask:doc", versions[0])
        await node.publish("ask:doc", versions[1])  # not allowed: full, still a string
        await node.publish("ask:doc", versions[2], delta=True)
        await node.publish("ask:doc", versions[3], delta=True)
        received = await wait_pubs(transport, 4)
        assert [isinstance(p["data"], str) for p in received] == [True] * 4
        receiver = Receiver()
        for pub in received:
            receiver.take(pub)
        assert receiver.values == versions
        assert receiver.kinds == ["full", "full", "delta", "delta"]


async def test_without_history_every_payload_is_full() -> None:
    node = make_node()
    versions = documents(3)
    async with node:
        client, transport = await connect(node)
        assert (await subscribe(client, transport, "nohist:doc", delta="fossil"))["subscribe"][
            "delta"
        ]
        for version in versions:
            await node.publish("nohist:doc", version)
        received = await wait_pubs(transport, 3)
        assert [json.loads(p["data"]) for p in received] == versions
        assert not any(p.get("delta") for p in received)


async def test_without_positioning_a_missed_base_means_a_full_payload() -> None:
    """A subscriber that is not positioned is not checked for gaps; it still never gets
    a delta against a payload it did not receive."""
    node = make_node()
    versions = documents(4)
    async with node:
        client, transport = await connect(node)
        await subscribe(client, transport, "loose:doc", delta="fossil")
        await node.publish("loose:doc", versions[0])
        await node.publish("loose:doc", versions[1])
        await wait_pubs(transport, 2)
        # The node misses the next publication (a broker hiccup): only its stream has it.
        options = node.publish_options(node.rules.namespace("loose:doc"))
        from msgspec import Raw

        from wirehub.protocol.types import Publication

        handler = node.broker._handler  # type: ignore[attr-defined]
        node.broker._handler = None  # type: ignore[attr-defined]
        await node.broker.publish(
            "loose:doc", Publication(data=Raw(json.dumps(versions[2]).encode())), options
        )
        node.broker._handler = handler  # type: ignore[attr-defined]
        await node.publish("loose:doc", versions[3])
        (last,) = await wait_pubs(transport, 1)
        assert "delta" not in last
        assert json.loads(last["data"]) == versions[3]


async def test_history_is_never_delta_encoded() -> None:
    node = Node(
        make_config(
            channel={
                "namespaces": [
                    {**NAMESPACES[0], "allow_history_for_subscriber": True},
                ]
            }
        ),
        token_verifier=FakeVerifier(),
    )
    versions = documents(3)
    async with node:
        client, transport = await connect(node)
        await subscribe(client, transport, "d:doc", delta="fossil")
        for version in versions:
            await node.publish("d:doc", version)
        await wait_pubs(transport, 3)
        client.handle_frame(frame({"history": {"channel": "d:doc", "limit": 10}, "id": 3}))
        reply = await transport.next_message()
        assert [p["data"] for p in reply["history"]["publications"]] == versions


async def test_recovery_sends_a_chain_then_live_deltas() -> None:
    node = make_node()
    versions = documents(8)
    async with node:
        client, transport = await connect(node)
        reply = await subscribe(client, transport, "d:doc", delta="fossil")
        epoch = reply["subscribe"]["epoch"]
        for version in versions[:2]:
            await node.publish("d:doc", version)
        await wait_pubs(transport, 2)
        # Gone for publications 3-6, then back with recovery from offset 2.
        client.handle_frame(frame({"unsubscribe": {"channel": "d:doc"}, "id": 3}))
        await transport.next_message()
        for version in versions[2:6]:
            await node.publish("d:doc", version)
        reply = await subscribe(
            client, transport, "d:doc", 4, delta="fossil", recover=True, offset=2, epoch=epoch
        )
        result = reply["subscribe"]
        assert (result["recovered"], result["delta"]) == (True, True)
        recovered = result["publications"]
        assert [p.get("delta", False) for p in recovered] == [False, True, True, True]
        for version in versions[6:]:
            await node.publish("d:doc", version)
        live = await wait_pubs(transport, 2)
        receiver = Receiver()
        for pub in [*recovered, *live]:
            receiver.take(pub)
        assert receiver.values == versions[2:]
        assert receiver.kinds == ["full", "delta", "delta", "delta", "delta", "delta"]
        # One delta kept per publication that had one: 2 (live), 4 to 6 (the recovery),
        # 7 and 8 (live).
        assert len(node.hub.delta_cache or ()) == 6


async def test_recoveries_share_deltas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subscribers recovering the same publications reuse the deltas made for the
    first of them (a mass reconnect costs one delta per publication, not per client)."""
    made: list[int] = []
    real = delta_module.make_delta

    def counting(base: bytes, payload: bytes) -> bytes | None:
        made.append(len(payload))
        return real(base, payload)

    monkeypatch.setattr(delta_module, "make_delta", counting)
    node = make_node()
    versions = documents(6)
    async with node:
        await node.publish("d:doc", versions[0])
        epoch = (await node.history("d:doc")).position.epoch
        for version in versions[1:]:
            await node.publish("d:doc", version)
        for _ in range(10):
            client, transport = await connect(node)
            reply = await subscribe(
                client, transport, "d:doc", delta="fossil", recover=True, offset=1, epoch=epoch
            )
            receiver = Receiver()
            for pub in reply["subscribe"]["publications"]:
                receiver.take(pub)
            assert receiver.values == versions[1:]
        assert len(made) == 4  # publications 3 to 6 against their predecessors


async def test_a_broker_gap_makes_delta_subscribers_recover() -> None:
    """Variant subscribers are positioned subscribers too: a broker gap (2500) and the
    position check reach them."""
    node = make_node()
    async with node:
        client, transport = await connect(node)
        await subscribe(client, transport, "d:doc", delta="fossil")
        assert list(node.hub.positions("d:doc")) == [client]
        assert node.hub.positioned_channels() == ["d:doc"]
        node.handle_gap(["d:doc"])
        push = await transport.next_message()
        assert push["push"]["unsubscribe"]["code"] == 2500
        assert not node.hub.has_subscribers("d:doc")
