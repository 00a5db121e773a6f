"""The Protobuf codec against the schema compiled by centrifuge-python (the oracle)."""

from __future__ import annotations

import msgspec
import pytest
from centrifuge.protocol import client_pb2 as pb
from google.protobuf.internal.decoder import _DecodeVarint32
from google.protobuf.internal.encoder import _VarintBytes
from hypothesis import given, strategies as st

from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.protobuf_codec import MAX_DEPTH, PROTOBUF_CODEC as codec
from wirehub.protocol.types import (
    ClientInfo,
    Command,
    ConnectResult,
    Error,
    FilterNode,
    Publication,
    PublishResult,
    Push,
    Reply,
    SubscribeResult,
)


def frame(*messages: object) -> bytes:
    parts = []
    for message in messages:
        body = message.SerializeToString()  # type: ignore[attr-defined]
        parts.append(_VarintBytes(len(body)) + body)
    return b"".join(parts)


def parse_replies(data: bytes) -> list[pb.Reply]:
    replies, pos = [], 0
    while pos < len(data):
        length, pos = _DecodeVarint32(data, pos)
        reply = pb.Reply()
        reply.ParseFromString(data[pos : pos + length])
        replies.append(reply)
        pos += length
    return replies


def test_decodes_connect_and_subscribe_in_one_frame() -> None:
    connect = pb.Command(
        id=1, connect=pb.ConnectRequest(token="t", name="python", data=b"\x01\x02")
    )
    subscribe = pb.Command(
        id=2,
        subscribe=pb.SubscribeRequest(channel="chat:1", recover=True, offset=17, epoch="e", flag=3),
    )
    commands = codec.decode_commands(frame(connect, subscribe))
    assert commands[0].id == 1
    assert commands[0].connect is not None
    assert commands[0].connect.token == "t"
    assert bytes(commands[0].connect.data) == b"\x01\x02"
    sub = commands[1].subscribe
    assert sub is not None
    assert (sub.channel, sub.recover, sub.offset, sub.epoch, sub.flag) == (
        "chat:1",
        True,
        17,
        "e",
        3,
    )


def test_pong_is_a_single_zero_byte() -> None:
    assert codec.decode_commands(b"\x00") == [Command()]
    assert codec.ping == b"\x00"


def test_maps_decode() -> None:
    request = pb.ConnectRequest(headers={"a": "b"})
    request.subs["chan"].CopyFrom(pb.SubscribeRequest(recover=True, offset=5))
    (command,) = codec.decode_commands(frame(pb.Command(id=1, connect=request)))
    assert command.connect is not None
    assert command.connect.headers == {"a": "b"}
    assert command.connect.subs is not None
    assert command.connect.subs["chan"].offset == 5


def test_encodes_replies_the_oracle_parses() -> None:
    publication = Publication(
        data=msgspec.Raw(b'{"x":1}'),
        info=ClientInfo(user="42", client="c1", conn_info=msgspec.Raw(b"{}")),
        offset=7,
        tags={"k": "v"},
    )
    replies = [
        Reply(id=1, connect=ConnectResult(client="c1", version="1", ping=25, pong=True)),
        Reply(id=2, subscribe=SubscribeResult(recoverable=True, epoch="E", offset=3)),
        Reply(id=3, publish=PublishResult()),
        Reply(id=4, error=Error(code=103, message="permission denied")),
        Reply(push=Push(channel="chat:1", pub=publication)),
    ]
    data = codec.join([codec.encode_reply(reply) for reply in replies])
    parsed = parse_replies(data)
    assert parsed[0].connect.client == "c1"
    assert parsed[0].connect.ping == 25
    assert parsed[0].connect.pong
    assert parsed[1].subscribe.epoch == "E"
    assert parsed[1].subscribe.offset == 3
    assert parsed[2].HasField("publish")
    assert (parsed[3].error.code, parsed[3].error.message) == (103, "permission denied")
    pub = parsed[4].push.pub
    assert (pub.data, pub.offset, dict(pub.tags)) == (b'{"x":1}', 7, {"k": "v"})
    assert (pub.info.user, pub.info.client, pub.info.conn_info) == ("42", "c1", b"{}")


def test_empty_reply_is_the_ping() -> None:
    assert codec.encode_reply(Reply()) == b"\x00"


@pytest.mark.parametrize(
    "data",
    [
        b"",  # empty frame
        b"\x05\x08",  # record longer than the frame
        b"\x02\x08\xff",  # truncated varint
        b"\x02\x0a\x01",  # id sent with wire type 2
        b"\x04\x22\x02\x0a\xff",  # connect.token (string) running past its message
        b"\x05\x22\x03\x0a\x01\xff",  # connect.token not UTF-8
        b"\x0b" + b"\x08" + b"\xff" * 10,  # overlong varint
    ],
)
def test_malformed_input_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        codec.decode_commands(data)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    try:
        commands = codec.decode_commands(data)
    except ProtocolError:
        return
    assert all(isinstance(command, Command) for command in commands)


@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.text(),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.binary(),
)
def test_round_trip_through_the_oracle(
    command_id: int, channel: str, offset: int, data: bytes
) -> None:
    message = pb.Command(
        id=command_id,
        subscribe=pb.SubscribeRequest(channel=channel, offset=offset, data=data, flag=-1),
    )
    (command,) = codec.decode_commands(frame(message))
    assert command.id == command_id
    assert command.subscribe is not None
    assert (command.subscribe.channel, command.subscribe.offset) == (channel, offset)
    assert bytes(command.subscribe.data) == data
    assert command.subscribe.flag == -1


def test_decodes_a_tags_filter() -> None:
    tf = pb.FilterNode(
        op="or",
        nodes=[
            pb.FilterNode(key="ticker", cmp="eq", val="AAPL"),
            pb.FilterNode(key="src", cmp="nin", vals=["a", "b", ""]),
        ],
    )
    message = pb.Command(id=2, subscribe=pb.SubscribeRequest(channel="t:1", tf=tf))
    (command,) = codec.decode_commands(frame(message))
    assert command.subscribe is not None
    assert command.subscribe.tf == FilterNode(
        op="or",
        nodes=[
            FilterNode(key="ticker", cmp="eq", val="AAPL"),
            FilterNode(key="src", cmp="nin", vals=["a", "b", ""]),
        ],
    )


def _nested(depth: int) -> bytes:
    """A subscribe command whose tags filter nests ``depth`` FilterNode.nodes levels."""
    body = b""
    for _ in range(depth):
        body = b"\x32" + _VarintBytes(len(body)) + body  # FilterNode.nodes
    subscribe = b"\x0a\x01c\x6a" + _VarintBytes(len(body)) + body  # channel "c", tf
    command = b"\x08\x02\x2a" + _VarintBytes(len(subscribe)) + subscribe  # id 2, subscribe
    return _VarintBytes(len(command)) + command


def test_messages_nested_too_deeply_are_a_protocol_error() -> None:
    """Command > SubscribeRequest > FilterNode > ...: past MAX_DEPTH levels of messages,
    refused before the decoder's recursion could exhaust the stack."""
    (command,) = codec.decode_commands(_nested(MAX_DEPTH - 2))
    assert command.subscribe is not None
    assert command.subscribe.tf is not None
    for depth in (MAX_DEPTH - 1, 5000):
        with pytest.raises(ProtocolError):
            codec.decode_commands(_nested(depth))


def test_delta_fields_are_what_the_oracle_reads() -> None:
    pub = Publication(data=codec.delta_data(b"3\n\xff\x00"), offset=2, delta=True)
    replies = [
        Reply(id=2, subscribe=SubscribeResult(positioned=True, delta=True)),
        Reply(push=Push(channel="c", pub=pub)),
    ]
    parsed = parse_replies(codec.join([codec.encode_reply(reply) for reply in replies]))
    assert parsed[0].subscribe.delta
    assert (parsed[1].push.pub.data, parsed[1].push.pub.delta) == (b"3\n\xff\x00", True)
