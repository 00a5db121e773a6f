"""Emulation and unidirectional connections in the core: sessions, the connect result,
routing emulation requests to the owning node (``core/emulation.py``), and failed
connects as disconnects (``core/unidirectional.py``). FakeTransport connections; two
nodes joined by the in-test bus of ``test_cluster.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from tests.core.fakes import WAIT, FakeTransport, connect, frame, make_config
from tests.core.test_cluster import eventually, two_nodes
from wirehub import Node
from wirehub.config import ConnectCodeToUnidirectionalDisconnect
from wirehub.core.emulation import MAX_WAITING, Delivery
from wirehub.core.events import TransportInfo
from wirehub.core.unidirectional import unidirectional_disconnect
from wirehub.errors import ClientError
from wirehub.protocol.codes import ErrorCode
from wirehub.protocol.framing import UNI_WEBSOCKET

pytestmark = pytest.mark.anyio


class StreamTransport(FakeTransport):
    """An emulation stream (or a unidirectional one) that can be waited on for reading."""

    def __init__(self, *, unidirectional: bool = False) -> None:
        super().__init__()
        name = "uni_http_stream" if unidirectional else "http_stream"
        self.info = TransportInfo(
            name, "json", emulation=not unidirectional, unidirectional=unidirectional
        )
        self._readable = asyncio.Event()
        self._readable.set()

    def pause_reading(self) -> None:
        super().pause_reading()
        self._readable.clear()

    def resume_reading(self) -> None:
        super().resume_reading()
        self._readable.set()

    async def wait_readable(self) -> None:
        await self._readable.wait()


def anonymous_node() -> Node:
    config = make_config(
        client={"allow_anonymous_connect_without_token": True},
        channel={
            "namespaces": [
                {
                    "name": "room",
                    "allow_subscribe_for_anonymous": True,
                    "allow_subscribe_for_client": True,
                }
            ]
        },
    )
    return Node(config)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (ErrorCode.TOKEN_EXPIRED, 3005),
        (ErrorCode.EXPIRED, 3005),
        (ErrorCode.TOO_MANY_REQUESTS, 3013),
        (ErrorCode.PERMISSION_DENIED, 3507),
        (ErrorCode.UNKNOWN_CHANNEL, 3004),
        (ErrorCode.INTERNAL, 3004),
        (4001, 3004),
    ],
)
def test_connect_errors_map_to_unidirectional_disconnects(code: int, expected: int) -> None:
    disconnect = unidirectional_disconnect(ClientError(code, "x"))
    assert disconnect.code == expected
    assert disconnect.reason


def test_configured_transforms_come_before_the_default_mapping() -> None:
    configured = ConnectCodeToUnidirectionalDisconnect(
        enabled=True,
        transforms=[
            {"code": 4001, "to": {"code": 4501, "reason": "banned"}},
            {"code": ErrorCode.PERMISSION_DENIED, "to": {"code": 4403, "reason": "no"}},
        ],
    )
    mapped = unidirectional_disconnect(ClientError(4001, "x"), configured)
    assert (mapped.code, mapped.reason) == (4501, "banned")
    assert unidirectional_disconnect(ClientError(103, "x"), configured).code == 4403
    assert unidirectional_disconnect(ClientError(109, "x"), configured).code == 3005
    disabled = configured.model_copy(update={"enabled": False})
    assert unidirectional_disconnect(ClientError(4001, "x"), disabled).code == 3004


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        ({"code": 1, "to": {"code": 2999}}, "greater than or equal to 3000"),
        ({"code": 1, "to": {"code": 4000, "reason": "é" * 62}}, "123 bytes"),
    ],
)
def test_transforms_are_checked(transform: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ConnectCodeToUnidirectionalDisconnect(enabled=True, transforms=[transform])


async def test_emulation_connect_names_a_secret_session_and_the_node() -> None:
    async with anonymous_node() as node:
        client, transport = await connect(node, "", transport=StreamTransport())
        result = transport.messages[0]["connect"]
        assert result["session"] == client.session
        assert result["session"] not in (client.id, "")
        assert result["node"] == node.id
        assert result["pong"] is True
        assert node.hub.session(client.session) is client
        plain, plain_transport = await connect(node, "")
        assert plain.session == ""
        assert "session" not in plain_transport.messages[0]["connect"]
        client.disconnect(unidirectional_disconnect(ClientError(100, "x")))
        assert node.hub.session(client.session) is None


async def test_a_unidirectional_connect_is_a_connect_push_without_pong() -> None:
    async with anonymous_node() as node:
        transport = StreamTransport(unidirectional=True)
        client = node.attach(transport, UNI_WEBSOCKET)
        client.handle_frame(b'{"subs": {"room:a": {}}}')
        await transport.wait_for(lambda: bool(transport.frames))
        push = transport.messages[0]["connect"]
        assert push["session"] == client.session
        assert "node" not in push
        assert "pong" not in push
        assert list(push["subs"]) == ["room:a"]
        assert "room:a" in client.channels


async def test_a_failed_unidirectional_connect_is_a_disconnect() -> None:
    async with anonymous_node() as node:
        transport = StreamTransport(unidirectional=True)
        client = node.attach(transport, UNI_WEBSOCKET)
        client.handle_frame(b'{"subs": {"elsewhere:a": {}}}')  # 102 unknown channel
        await transport.wait_for(lambda: transport.closed_with is not None)
        assert transport.closed_with is not None
        assert transport.closed_with.code == 3004
        assert transport.frames == []  # no error reply: the transport pushes the disconnect


async def test_local_delivery_unknown_sessions_and_nodes() -> None:
    async with anonymous_node() as node:
        client, transport = await connect(node, "", transport=StreamTransport())
        subscribe = frame({"id": 2, "subscribe": {"channel": "room:a"}})
        assert (
            await node.emulation.deliver(node.id, client.session, subscribe) is Delivery.DELIVERED
        )
        reply = await transport.next_message()
        assert reply == {"id": 2, "subscribe": {}}
        for session in ("nope", client.id):
            assert await node.emulation.deliver(node.id, session, subscribe) is Delivery.DELIVERED
        assert await node.emulation.deliver("other-node", client.session, subscribe) is (
            Delivery.UNKNOWN_NODE
        )
        uni = StreamTransport(unidirectional=True)
        uni_client = node.attach(uni, UNI_WEBSOCKET)
        uni_client.handle_frame(b"{}")
        await uni.wait_for(lambda: bool(uni.frames))
        assert await node.emulation.deliver(node.id, uni_client.session, subscribe) is (
            Delivery.DELIVERED
        )
        await asyncio.sleep(0)
        assert not uni_client.channels  # a unidirectional session takes no commands
        assert len(transport.messages) == 2


async def test_requests_wait_while_the_session_reads_no_more_and_are_bounded() -> None:
    async with anonymous_node() as node:
        client, transport = await connect(node, "", transport=StreamTransport())
        transport.pause_reading()  # as the client does past its inbox's high mark
        client._reading_paused = True
        pong = b"{}"
        waiting = [
            asyncio.create_task(node.emulation.deliver(node.id, client.session, pong))
            for _ in range(MAX_WAITING)
        ]
        await asyncio.sleep(0)
        assert await node.emulation.deliver(node.id, client.session, pong) is Delivery.BUSY
        assert not any(task.done() for task in waiting)
        client._reading_paused = False
        transport.resume_reading()
        async with asyncio.timeout(WAIT):
            assert set(await asyncio.gather(*waiting)) == {Delivery.DELIVERED}


async def test_a_request_for_another_node_is_forwarded_to_it() -> None:
    async with two_nodes() as (_, first, second):
        client, transport = await connect(second, "", transport=StreamTransport())
        data = frame({"id": 2, "presence_stats": {"channel": "room:a"}})
        delivered = await first.emulation.deliver(second.id, client.session, data)
        assert delivered is Delivery.DELIVERED
        reply = await transport.next_message()
        assert reply["id"] == 2  # answered on the owner's stream (here: 108, no presence)
        assert await first.emulation.deliver(second.id, "nope", data) is Delivery.DELIVERED


async def test_a_node_that_left_or_does_not_answer() -> None:
    async with two_nodes() as (bus, first, second):
        client, _ = await connect(second, "", transport=StreamTransport())
        first.cluster.survey_timeout = 0.2
        bus.muted.add(second.id)  # it hears, never answers
        assert await first.emulation.deliver(second.id, client.session, b"{}") is Delivery.FAILED
        bus.muted.clear()
        await second.close()
        await eventually(lambda: first.num_nodes == 1)
        assert await first.emulation.deliver(second.id, client.session, b"{}") is (
            Delivery.UNKNOWN_NODE
        )
