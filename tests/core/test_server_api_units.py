"""Pieces of the server API that stand alone: channel patterns,
metrics of a node (per-node registries, counting per fan-out)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.core.fakes import FakeTransport, FakeVerifier, connect, frame, make_config
from wirehub import Node
from wirehub.core.glob import compile_glob
from wirehub.protocol.framing import HTTP_STREAM_JSON, SSE_JSON
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC

pytestmark = pytest.mark.anyio


# Channel patterns (gobwas/glob without separators).


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("", ["", "a:b"], []),
        ("chat:*", ["chat:", "chat:a:b"], ["chat", "news:a"]),
        ("*", ["a:b:c"], []),
        ("room?", ["room1"], ["room", "room12"]),
        ("r[ab]", ["ra", "rb"], ["rc"]),
        ("r[!ab]", ["rc"], ["ra"]),
        ("r[a-c]x", ["rbx"], ["rdx"]),
        ("{news,chat}:*", ["news:1", "chat:2"], ["feed:1"]),
        ("a{b,c{d,e}}", ["ab", "acd", "ace"], ["ac"]),
        (r"a\*", ["a*"], ["ab"]),
        ("a.b+", ["a.b+"], ["axbb"]),
    ],
)
def test_glob(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = compile_glob(pattern)
    for name in matches:
        assert regex.fullmatch(name), name
    for name in misses:
        assert not regex.fullmatch(name), name


@pytest.mark.parametrize("pattern", ["[ab", "{a,b", "a\\", "[!]"])
def test_malformed_globs(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        compile_glob(pattern)


# Metrics.


def make_node(*, metrics: bool = True) -> Node:
    return Node(
        make_config(
            prometheus={"enabled": metrics},
            channel={"namespaces": [{"name": "room", "allow_subscribe_for_client": True}]},
        ),
        token_verifier=FakeVerifier(),
    )


def samples(node: Node) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert node.metrics is not None
    found = {}
    for family in text_string_to_metric_families(node.metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def sample(node: Node, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return samples(node).get(key, 0.0)


SENT = "centrifugo_transport_messages_sent_total"
SIZE = "centrifugo_transport_messages_sent_size_total"
PUB = {"transport": "websocket", "frame_type": "push_publication", "channel_namespace": ""}


async def test_deliveries_are_counted_per_fan_out_with_their_bytes() -> None:
    async with make_node() as node:
        json_clients = [await connect(node, f"user:{n}") for n in range(3)]
        pb_client = await connect(node, "user:9", codec=PROTOBUF_CODEC)
        for client, transport in [*json_clients, pb_client]:
            await node.subscribe("room:1", client=client.id)
            await transport.next_message()
        await node.publish("room:1", {"n": 1})
        json_size = len(b'{"push":{"channel":"room:1","pub":{"data":{"n":1}}}}')
        assert sample(node, SENT, **PUB) == 4
        pb_size = sample(node, SIZE, **PUB) - 3 * json_size
        assert 0 < pb_size < json_size  # the Protobuf copy is counted at its own size


async def test_deliveries_are_counted_per_transport() -> None:
    """A fan-out to WebSocket, HTTP-streaming and SSE subscribers counts each transport's
    deliveries under its own label, at its own framed size."""
    async with make_node() as node:
        ws, _ = await connect(node, "user:1")
        clients = [ws]
        for user, codec in (("user:2", HTTP_STREAM_JSON), ("user:3", SSE_JSON)):
            transport = FakeTransport()  # records frames; these are not read as JSON here
            client = node.attach(transport, codec)
            client.handle_frame(frame({"connect": {"token": user}, "id": 1}))
            await transport.wait_for(lambda t=transport: bool(t.frames))
            clients.append(client)
        for client in clients:
            await node.subscribe("room:1", client=client.id)
        await node.publish("room:1", {"n": 1})
        json_size = len(b'{"push":{"channel":"room:1","pub":{"data":{"n":1}}}}')
        for transport, size in (
            ("websocket", json_size),
            ("http_stream", json_size + 1),
            ("sse", json_size + len(b"data: \n\n")),
        ):
            labels = {**PUB, "transport": transport}
            assert (sample(node, SENT, **labels), sample(node, SIZE, **labels)) == (1, size)


async def test_two_nodes_keep_separate_registries() -> None:
    async with make_node() as one, make_node() as two:
        await connect(one, "user:1")
        assert sample(one, "centrifugo_node_num_clients") == 1
        assert sample(two, "centrifugo_node_num_clients") == 0
        accepted = "centrifugo_client_connections_accepted_total"
        labels = {
            "transport": "fake",
            "accept_protocol": "",
            "client_name": "unnamed",
            "client_version": "unversioned",
        }
        assert sample(one, accepted, **labels) == 1
        assert sample(two, accepted, **labels) == 0


async def test_server_disconnects_and_reply_errors_are_counted() -> None:
    async with make_node() as node:
        client, transport = await connect(node, "user:1")
        client.handle_frame(frame({"subscribe": {"channel": "nope:1"}, "id": 2}))
        assert (await transport.next_message())["error"]["code"] == 102
        errors = "centrifugo_client_num_reply_errors_total"
        assert sample(node, errors, method="subscribe", code="102", channel_namespace="") == 1
        await node.disconnect("1")
        await transport.wait_closed()
        assert sample(node, "centrifugo_client_num_server_disconnects_total", code="3503") == 1
        assert sample(node, "centrifugo_node_num_clients") == 0
        inflight = "centrifugo_client_connections_inflight"
        labels = {
            "transport": "fake",
            "accept_protocol": "",
            "client_name": "unnamed",
            "client_version": "unversioned",
        }
        assert sample(node, inflight, **labels) == 0


async def test_metrics_off_means_no_registry() -> None:
    async with make_node(metrics=False) as node:
        await connect(node, "user:1")
        await node.publish("room:1", 1)
        assert node.metrics is None
        assert node.hub.metrics is None
