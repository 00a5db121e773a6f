"""The codecs of HTTP-streaming, SSE and the unidirectional transports, and the body of
``POST /emulation``: exact bytes in, exact bytes out (``centrifugo-protocol.md`` §6)."""

from __future__ import annotations

import pytest
from centrifuge.protocol import client_pb2 as pb
from msgspec import Raw

from wirehub.protocol.emulation import decode_emulation_request
from wirehub.protocol.errors import ProtocolError
from wirehub.protocol.framing import (
    HTTP_STREAM_JSON,
    HTTP_STREAM_PROTOBUF,
    SSE_JSON,
    UNI_HTTP_STREAM,
    UNI_SSE,
    UNI_WEBSOCKET,
)
from wirehub.protocol.json_codec import JSON_CODEC
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC, encode_message
from wirehub.protocol.types import (
    Command,
    Connect,
    ConnectRequest,
    ConnectResult,
    Disconnect,
    EmulationRequest,
    Publication,
    Push,
    Reply,
)

PUB = Reply(push=Push(channel="c", pub=Publication(data=Raw(b'{"a":1}'))))
PUB_JSON = b'{"push":{"channel":"c","pub":{"data":{"a":1}}}}'


def test_http_stream_json_ends_every_reply_with_a_newline() -> None:
    assert HTTP_STREAM_JSON.encode_reply(PUB) == PUB_JSON + b"\n"
    assert HTTP_STREAM_JSON.ping == b"{}\n"
    assert HTTP_STREAM_JSON.join([b"{}\n", PUB_JSON + b"\n"]) == b"{}\n" + PUB_JSON + b"\n"
    assert (HTTP_STREAM_JSON.name, HTTP_STREAM_JSON.transport) == (
        "json/http_stream",
        "http_stream",
    )
    assert HTTP_STREAM_JSON.decode_commands(b'{"id":1,"connect":{}}') == [
        Command(id=1, connect=ConnectRequest())
    ]


def test_http_stream_protobuf_is_varint_delimited_as_on_websocket() -> None:
    assert HTTP_STREAM_PROTOBUF.encode_reply(PUB) == PROTOBUF_CODEC.encode_reply(PUB)
    assert HTTP_STREAM_PROTOBUF.ping == b"\x00"
    assert HTTP_STREAM_PROTOBUF.binary
    assert HTTP_STREAM_PROTOBUF.name != PROTOBUF_CODEC.name  # counted as its own transport


def test_sse_is_one_data_event_per_reply() -> None:
    assert SSE_JSON.encode_reply(PUB) == b"data: " + PUB_JSON + b"\n\n"
    assert SSE_JSON.ping == b"data: {}\n\n"
    joined = SSE_JSON.join([SSE_JSON.ping, SSE_JSON.encode_reply(PUB)])
    assert joined == b"data: {}\n\ndata: " + PUB_JSON + b"\n\n"
    assert not SSE_JSON.binary


def test_unidirectional_codecs_send_bare_pushes() -> None:
    assert UNI_HTTP_STREAM.encode_reply(PUB) == b'{"channel":"c","pub":{"data":{"a":1}}}\n'
    assert UNI_SSE.encode_reply(PUB) == b'data: {"channel":"c","pub":{"data":{"a":1}}}\n\n'
    assert UNI_WEBSOCKET.encode_reply(PUB) == b'{"channel":"c","pub":{"data":{"a":1}}}'
    assert (UNI_HTTP_STREAM.ping, UNI_SSE.ping, UNI_WEBSOCKET.ping) == (
        b"{}\n",
        b"data: {}\n\n",
        b"{}",
    )
    assert UNI_WEBSOCKET.encode_reply(Reply()) == b"{}"  # the ping reply
    assert UNI_WEBSOCKET.join([b"{}", b"{}"]) == b"{}\n{}"  # lines; the transport splits
    assert UNI_HTTP_STREAM.join([b"{}\n", b"{}\n"]) == b"{}\n{}\n"
    disconnect = Reply(push=Push(disconnect=Disconnect(code=3005, reason="expired")))
    assert UNI_HTTP_STREAM.encode_reply(disconnect) == (
        b'{"disconnect":{"code":3005,"reason":"expired"}}\n'
    )


def test_a_connect_result_becomes_a_connect_push() -> None:
    result = ConnectResult(client="c", version="1", ping=25, session="s")
    encoded = UNI_WEBSOCKET.encode_reply(Reply(id=1, connect=result))
    assert encoded == b'{"connect":{"client":"c","version":"1","ping":25,"session":"s"}}'


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"", ConnectRequest()),
        (b"null", ConnectRequest()),
        (b" {} ", ConnectRequest()),
        (b'{"token":"t","name":"n"}', ConnectRequest(token="t", name="n")),
    ],
)
def test_a_unidirectional_client_sends_a_connect_request(
    frame: bytes, expected: ConnectRequest
) -> None:
    assert UNI_SSE.decode_commands(frame) == [Command(id=1, connect=expected)]


@pytest.mark.parametrize("frame", [b"{", b"[]", b'{"token": 1}', b"\xff", b"[" * 100_000])
def test_a_bad_connect_request_is_a_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        UNI_HTTP_STREAM.decode_commands(frame)


def test_the_connect_push_in_protobuf_is_client_proto_field_10() -> None:
    decoded = pb.Push()
    decoded.ParseFromString(encode_message(Push(connect=Connect(client="c", session="s", ping=25))))
    assert (decoded.connect.client, decoded.connect.session, decoded.connect.ping) == ("c", "s", 25)


def test_emulation_request_json_and_protobuf() -> None:
    json_body = b'{"node":"n","session":"s","data":"{\\"id\\":2}\\n{}"}'
    request = decode_emulation_request(json_body)
    assert (request.node, request.session, bytes(request.data)) == ("n", "s", b'{"id":2}\n{}')
    sdk = pb.EmulationRequest(node="n", session="s", data=b"\x02\x08\x02")
    request = decode_emulation_request(sdk.SerializeToString(), protobuf=True)
    assert (request.node, request.session, bytes(request.data)) == ("n", "s", b"\x02\x08\x02")
    ours = encode_message(EmulationRequest(node="n", session="s", data=Raw(b"\x00")))
    assert pb.EmulationRequest.FromString(ours).data == b"\x00"


@pytest.mark.parametrize(
    "body", [b"", b"{", b'{"node":"n","session":"s"}', b'{"session":"s","data":"{}"}', b"1"]
)
def test_bad_emulation_requests(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_emulation_request(body)
    with pytest.raises(ProtocolError):
        decode_emulation_request(b"\x0a\x05ab", protobuf=True)


def test_plain_codecs_are_websocket_ones() -> None:
    assert (JSON_CODEC.transport, PROTOBUF_CODEC.transport) == ("websocket", "websocket")
