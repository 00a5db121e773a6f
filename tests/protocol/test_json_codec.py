"""Tests of the JSON codec: exact bytes in and out (centrifugo-protocol.md §1.2, §2).

Golden vectors are the frames of §2.8 (as centrifuge-js 5.8 sends them and Centrifugo
answers); the hypothesis round trips cover every message type; the fuzz contract is
that any input either decodes to commands or raises ProtocolError.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from msgspec import Raw

from wirehub.protocol import JSON_CODEC, ProtocolError, get_codec, json_payload
from wirehub.protocol.types import (
    EMPTY_RAW,
    ClientInfo,
    Command,
    ConnectRequest,
    ConnectResult,
    Error,
    FilterNode,
    HistoryRequest,
    Join,
    Leave,
    Message,
    PresenceRequest,
    PresenceStatsRequest,
    Publication,
    PublishRequest,
    PublishResult,
    Push,
    RefreshRequest,
    Reply,
    RPCRequest,
    SendRequest,
    StreamPosition,
    SubRefreshRequest,
    SubscribeRequest,
    SubscribeResult,
    Unsubscribe,
    UnsubscribeRequest,
    UnsubscribeResult,
)

# Golden vectors: client frames decoded.


def test_decode_connect_and_subscribe_in_one_frame() -> None:
    """centrifuge-js's first frame: connect plus its subscribes, newline-joined."""
    frame = (
        b'{"connect":{"token":"<JWT>","name":"js"},"id":1}\n'
        b'{"subscribe":{"channel":"news:feed","flag":1},"id":2}'
    )
    assert JSON_CODEC.decode_commands(frame) == [
        Command(id=1, connect=ConnectRequest(token="<JWT>", name="js")),
        Command(id=2, subscribe=SubscribeRequest(channel="news:feed", flag=1)),
    ]


@pytest.mark.parametrize(
    ("frame", "command"),
    [
        (b"{}", Command()),  # the pong
        (
            b'{"publish":{"channel":"chat:1","data":{"t":"hi"}},"id":3}',
            Command(id=3, publish=PublishRequest(channel="chat:1", data=Raw(b'{"t":"hi"}'))),
        ),
        (
            b'{"history":{"channel":"news:feed","limit":10,'
            b'"since":{"offset":5,"epoch":"XbGqmWvd"}},"id":4}',
            Command(
                id=4,
                history=HistoryRequest(
                    channel="news:feed",
                    limit=10,
                    since=StreamPosition(offset=5, epoch="XbGqmWvd"),
                ),
            ),
        ),
        (
            b'{"presence":{"channel":"chat:1"},"id":5}',
            Command(id=5, presence=PresenceRequest(channel="chat:1")),
        ),
        (
            b'{"presence_stats":{"channel":"chat:1"},"id":6}',
            Command(id=6, presence_stats=PresenceStatsRequest(channel="chat:1")),
        ),
        (
            b'{"rpc":{"method":"getUser","data":{"id":1}},"id":7}',
            Command(id=7, rpc=RPCRequest(method="getUser", data=Raw(b'{"id":1}'))),
        ),
        (
            b'{"send":{"data":{"any":"thing"}}}',
            Command(send=SendRequest(data=Raw(b'{"any":"thing"}'))),
        ),
        (
            b'{"refresh":{"token":"<JWT>"},"id":8}',
            Command(id=8, refresh=RefreshRequest(token="<JWT>")),
        ),
        (
            b'{"sub_refresh":{"channel":"$private:1","token":"<JWT>"},"id":9}',
            Command(id=9, sub_refresh=SubRefreshRequest(channel="$private:1", token="<JWT>")),
        ),
        (
            b'{"unsubscribe":{"channel":"chat:1"},"id":10}',
            Command(id=10, unsubscribe=UnsubscribeRequest(channel="chat:1")),
        ),
        (
            # centrifuge-python's recovering subscribe: every field sent.
            b'{"id":11,"subscribe":{"channel":"news:feed","token":"","recover":true,'
            b'"epoch":"XbGqmWvd","offset":17,"positioned":false,"recoverable":false,'
            b'"join_leave":false,"flag":3}}',
            Command(
                id=11,
                subscribe=SubscribeRequest(
                    channel="news:feed", recover=True, epoch="XbGqmWvd", offset=17, flag=3
                ),
            ),
        ),
        (
            b'{"connect":{"subs":{"news:feed":{"recover":true,"offset":3,"epoch":"e"}},'
            b'"headers":{"x-app":"1"},"data":"hello","version":"5.8.0"},"id":1}',
            Command(
                id=1,
                connect=ConnectRequest(
                    subs={"news:feed": SubscribeRequest(recover=True, offset=3, epoch="e")},
                    headers={"x-app": "1"},
                    data=Raw(b'"hello"'),
                    version="5.8.0",
                ),
            ),
        ),
    ],
)
def test_decode_golden(frame: bytes, command: Command) -> None:
    assert JSON_CODEC.decode_commands(frame) == [command]


def test_decode_payload_is_passed_through_verbatim() -> None:
    """Raw payloads keep their bytes, whitespace included (§1.2: stored unchanged)."""
    (command,) = JSON_CODEC.decode_commands(b'{"publish":{"channel":"c","data": [1, {"a" : 2}] }}')
    assert command.publish is not None
    assert bytes(command.publish.data) == b'[1, {"a" : 2}]'


@pytest.mark.parametrize(
    "frame",
    [
        b'{"id":1,"connect":{}}\n\n{"id":2,"subscribe":{"channel":"a"}}',  # blank line
        b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"a"}}\n',  # trailing newline
        b'{"id":1,"connect":{}}\r\n{"id":2,"subscribe":{"channel":"a"}}\r\n',  # CRLF
        b'\n  \n{"id":1,"connect":{}}\n \t \n{"id":2,"subscribe":{"channel":"a"}}',
    ],
)
def test_decode_skips_blank_lines(frame: bytes) -> None:
    assert [c.id for c in JSON_CODEC.decode_commands(frame)] == [1, 2]


def test_decode_a_tags_filter() -> None:
    """centrifuge-js's ``tagsFilter`` and centrifuge-python's ``tags_filter`` travel
    as ``tf``."""
    (command,) = JSON_CODEC.decode_commands(
        b'{"subscribe":{"channel":"t:1","tf":{"op":"and","nodes":['
        b'{"key":"ticker","cmp":"eq","val":"AAPL"},'
        b'{"op":"not","nodes":[{"key":"src","cmp":"in","vals":["a","b"]}]}]}},"id":2}'
    )
    assert command.subscribe is not None
    assert command.subscribe.tf == FilterNode(
        op="and",
        nodes=[
            FilterNode(key="ticker", cmp="eq", val="AAPL"),
            FilterNode(op="not", nodes=[FilterNode(key="src", cmp="in", vals=["a", "b"])]),
        ],
    )


def test_a_filter_nested_beyond_the_stack_is_a_protocol_error() -> None:
    depth = 20_000
    tf = b'{"op":"not","nodes":[' * depth + b'{"cmp":"ex"}' + b"]}" * depth
    with pytest.raises(ProtocolError):
        JSON_CODEC.decode_commands(b'{"subscribe":{"channel":"t:1","tf":' + tf + b'},"id":2}')


def test_delta_data_is_a_json_string_of_the_text() -> None:
    """On a delta subscription every payload, full or delta, is a string (§2.7)."""
    payload = '{"a":"é\\"}'.encode()
    data = JSON_CODEC.delta_data(payload)
    reply = Reply(push=Push(channel="c", pub=Publication(data=data, offset=3, delta=True)))
    message = json.loads(JSON_CODEC.encode_reply(reply))
    assert message == {
        "push": {"channel": "c", "pub": {"data": payload.decode(), "offset": 3, "delta": True}}
    }
    assert json.loads(
        JSON_CODEC.encode_reply(Reply(id=2, subscribe=SubscribeResult(delta=True)))
    ) == {
        "id": 2,
        "subscribe": {"delta": True},
    }


def test_decode_ignores_unknown_fields() -> None:
    """Newer SDKs send fields this server does not know (forward compatibility)."""
    (command,) = JSON_CODEC.decode_commands(
        b'{"id":1,"subscribe":{"channel":"a","cursor":"c1","limit":10,"delta":"fossil"},"x":1}'
    )
    assert command.subscribe == SubscribeRequest(channel="a", delta="fossil")


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\n",
        b" \n \r\n",
        b"[]",
        b"null",
        b'"connect"',
        b"{",
        b'{"id":1}{"id":2}',
        b'{"id":-1}',
        b'{"id":4294967296}',  # id is uint32
        b'{"id":1.5}',
        b'{"id":"1"}',
        b'{"id":1e400}',
        b'{"subscribe":{"channel":1},"id":1}',
        b'{"subscribe":{"offset":-1},"id":1}',
        b'{"subscribe":{"offset":18446744073709551616},"id":1}',
        b'{"connect":[],"id":1}',
        b'{"connect":{"token":"\xff"},"id":1}',  # not UTF-8
        b'{"publish":{"channel":"c","data":"\xff\xfe"},"id":1}',  # not UTF-8, in a payload
        b'{"publish":{"channel":"c","data":"\xed\xa0\x80"},"id":1}',  # encoded surrogate
        b'{"publish":{"channel":"c","data":\n{"a":1}},"id":1}',  # payload split by newline
        b'{"id":1,"connect":{}}\n{"id":2,',  # one good, one bad: the frame is bad
        b'{"publish":{"data":' + b"[" * 100_000 + b"]" * 100_000 + b'},"id":1}',
        b"[" * 100_000,
        b"\x00",
    ],
)
def test_decode_rejects(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        JSON_CODEC.decode_commands(frame)


# Golden vectors: server messages encoded, exact bytes.


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(), b"{}"),  # server ping
        (Reply(id=3, publish=PublishResult()), b'{"id":3,"publish":{}}'),
        (Reply(id=10, unsubscribe=UnsubscribeResult()), b'{"id":10,"unsubscribe":{}}'),
        (Reply(id=2, subscribe=SubscribeResult()), b'{"id":2,"subscribe":{}}'),
        (
            Reply(
                id=1,
                connect=ConnectResult(
                    client="0f4e...", version="6.9.1", expires=True, ttl=3599, ping=25, pong=True
                ),
            ),
            b'{"id":1,"connect":{"client":"0f4e...","version":"6.9.1","expires":true,'
            b'"ttl":3599,"ping":25,"pong":true}}',
        ),
        (
            Reply(
                id=1,
                connect=ConnectResult(
                    client="c", version="0.1.0", ping=25, pong=True, data=Raw(b'{"w":1}')
                ),
            ),
            b'{"id":1,"connect":{"client":"c","version":"0.1.0","data":{"w":1},'
            b'"ping":25,"pong":true}}',
        ),
        (
            Reply(
                id=2,
                subscribe=SubscribeResult(
                    recoverable=True, epoch="XbGqmWvd", offset=17, positioned=True
                ),
            ),
            b'{"id":2,"subscribe":{"recoverable":true,"epoch":"XbGqmWvd","offset":17,'
            b'"positioned":true}}',
        ),
        (
            Reply(
                push=Push(
                    channel="news:feed",
                    pub=Publication(data=Raw(b'{"title":"x"}'), offset=18, tags={"k": "v"}),
                )
            ),
            b'{"push":{"channel":"news:feed","pub":{"data":{"title":"x"},"offset":18,'
            b'"tags":{"k":"v"}}}}',
        ),
        (
            Reply(
                push=Push(
                    channel="chat:1",
                    pub=Publication(
                        data=Raw(b'{"t":"hi"}'), info=ClientInfo(user="42", client="0f4e...")
                    ),
                )
            ),
            b'{"push":{"channel":"chat:1","pub":{"data":{"t":"hi"},'
            b'"info":{"user":"42","client":"0f4e..."}}}}',
        ),
        (
            # Anonymous: "user":"" is always present.
            Reply(
                push=Push(
                    channel="chat:1",
                    pub=Publication(data=Raw(b'"hi"'), info=ClientInfo(user="", client="c1")),
                )
            ),
            b'{"push":{"channel":"chat:1","pub":{"data":"hi","info":{"user":"","client":"c1"}}}}',
        ),
        (
            Reply(
                push=Push(
                    channel="chat:1",
                    pub=Publication(
                        data=Raw(b"1"),
                        info=ClientInfo(
                            user="42",
                            client="c1",
                            conn_info=Raw(b'{"name":"Ann"}'),
                            chan_info=Raw(b'{"role":"mod"}'),
                        ),
                    ),
                )
            ),
            b'{"push":{"channel":"chat:1","pub":{"data":1,"info":{"user":"42","client":"c1",'
            b'"conn_info":{"name":"Ann"},"chan_info":{"role":"mod"}}}}}',
        ),
        (
            Reply(
                push=Push(
                    channel="chat:1",
                    join=Join(
                        info=ClientInfo(
                            user="43", client="77aa...", conn_info=Raw(b'{"name":"Ann"}')
                        )
                    ),
                )
            ),
            b'{"push":{"channel":"chat:1","join":{"info":{"user":"43","client":"77aa...",'
            b'"conn_info":{"name":"Ann"}}}}}',
        ),
        (
            Reply(push=Push(channel="chat:1", leave=Leave(info=ClientInfo(user="", client="x")))),
            b'{"push":{"channel":"chat:1","leave":{"info":{"user":"","client":"x"}}}}',
        ),
        (
            Reply(
                push=Push(
                    channel="chat:1",
                    unsubscribe=Unsubscribe(code=2000, reason="server unsubscribe"),
                )
            ),
            b'{"push":{"channel":"chat:1","unsubscribe":{"code":2000,'
            b'"reason":"server unsubscribe"}}}',
        ),
        (
            Reply(push=Push(message=Message(data=Raw(b'{"any":"thing"}')))),
            b'{"push":{"message":{"data":{"any":"thing"}}}}',
        ),
        (
            Reply(id=5, error=Error(code=103, message="permission denied")),
            b'{"id":5,"error":{"code":103,"message":"permission denied"}}',
        ),
        (
            Reply(id=6, error=Error(code=111, message="too many requests", temporary=True)),
            b'{"id":6,"error":{"code":111,"message":"too many requests","temporary":true}}',
        ),
        (
            Reply(id=7, error=Error(code=107, message='caf\u00e9 "q"\n')),
            b'{"id":7,"error":{"code":107,"message":"caf\xc3\xa9 \\"q\\"\\n"}}',
        ),
    ],
)
def test_encode_golden(reply: Reply, expected: bytes) -> None:
    assert JSON_CODEC.encode_reply(reply) == expected


def test_ping_is_the_empty_reply() -> None:
    assert JSON_CODEC.ping == b"{}" == JSON_CODEC.encode_reply(Reply())


def test_join() -> None:
    a, b = b'{"id":1,"publish":{}}', b"{}"
    assert JSON_CODEC.join([a]) is a
    assert JSON_CODEC.join([a, b, a]) == a + b"\n" + b + b"\n" + a


def test_get_codec() -> None:
    assert get_codec("json") is JSON_CODEC
    assert (JSON_CODEC.name, JSON_CODEC.binary) == ("json", False)
    with pytest.raises(ValueError, match="xml"):
        get_codec("xml")


# Strategies for hypothesis.

uint32 = st.integers(0, 2**32 - 1)
uint64 = st.integers(0, 2**63 - 1)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
texts = st.text(max_size=12)
small_dicts = st.dictionaries(texts, texts, max_size=3)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | int64
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
payloads = json_values.map(lambda value: Raw(msgspec.json.encode(value)))
optional_payloads = st.just(EMPTY_RAW) | payloads

filter_nodes = st.recursive(
    st.builds(
        FilterNode,
        key=texts,
        cmp=st.sampled_from(["eq", "in", "ex", "gt"]),
        val=texts,
        vals=st.none() | st.lists(texts, max_size=3),
    ),
    lambda children: st.builds(
        FilterNode, op=st.sampled_from(["and", "or", "not"]), nodes=st.lists(children, max_size=3)
    ),
    max_leaves=6,
)

subscribe_requests = st.builds(
    SubscribeRequest,
    channel=texts,
    token=texts,
    recover=st.booleans(),
    epoch=texts,
    offset=uint64,
    data=optional_payloads,
    positioned=st.booleans(),
    recoverable=st.booleans(),
    join_leave=st.booleans(),
    delta=texts,
    tf=st.none() | filter_nodes,
    flag=int64,
    type=int32,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


commands = st.builds(
    Command,
    id=uint32,
    connect=maybe(
        st.builds(
            ConnectRequest,
            token=texts,
            data=optional_payloads,
            subs=maybe(st.dictionaries(texts, subscribe_requests, max_size=2)),
            name=texts,
            version=texts,
            headers=maybe(small_dicts),
        )
    ),
    subscribe=maybe(subscribe_requests),
    unsubscribe=maybe(st.builds(UnsubscribeRequest, channel=texts)),
    publish=maybe(st.builds(PublishRequest, channel=texts, data=optional_payloads)),
    presence=maybe(st.builds(PresenceRequest, channel=texts)),
    presence_stats=maybe(st.builds(PresenceStatsRequest, channel=texts)),
    history=maybe(
        st.builds(
            HistoryRequest,
            channel=texts,
            limit=int32,
            since=maybe(st.builds(StreamPosition, offset=uint64, epoch=texts)),
            reverse=st.booleans(),
        )
    ),
    ping=maybe(st.just({})),
    send=maybe(st.builds(SendRequest, data=optional_payloads)),
    rpc=maybe(st.builds(RPCRequest, data=optional_payloads, method=texts)),
    refresh=maybe(st.builds(RefreshRequest, token=texts)),
    sub_refresh=maybe(st.builds(SubRefreshRequest, channel=texts, token=texts)),
)

client_infos = st.builds(
    ClientInfo, user=texts, client=texts, conn_info=optional_payloads, chan_info=optional_payloads
)
publications = st.builds(
    Publication,
    data=payloads,
    info=maybe(client_infos),
    offset=uint64,
    tags=maybe(small_dicts),
    delta=st.booleans(),
)
subscribe_results = st.builds(
    SubscribeResult,
    expires=st.booleans(),
    ttl=uint32,
    recoverable=st.booleans(),
    epoch=texts,
    publications=maybe(st.lists(publications, max_size=2)),
    recovered=st.booleans(),
    offset=uint64,
    positioned=st.booleans(),
    data=optional_payloads,
    was_recovering=st.booleans(),
    delta=st.booleans(),
)
replies = st.builds(
    Reply,
    id=uint32,
    error=maybe(st.builds(Error, code=uint32, message=texts, temporary=st.booleans())),
    push=maybe(
        st.builds(
            Push,
            channel=texts,
            pub=maybe(publications),
            join=maybe(st.builds(Join, info=client_infos)),
            leave=maybe(st.builds(Leave, info=client_infos)),
            unsubscribe=maybe(st.builds(Unsubscribe, code=uint32, reason=texts)),
            message=maybe(st.builds(Message, data=payloads)),
        )
    ),
    connect=maybe(
        st.builds(
            ConnectResult,
            client=texts,
            version=texts,
            expires=st.booleans(),
            ttl=uint32,
            data=optional_payloads,
            subs=maybe(st.dictionaries(texts, subscribe_results, max_size=2)),
            ping=uint32,
            pong=st.booleans(),
            session=texts,
            node=texts,
            time=int64,
        )
    ),
    subscribe=maybe(subscribe_results),
    unsubscribe=maybe(st.just(UnsubscribeResult())),
    publish=maybe(st.just(PublishResult())),
)

_decode_reply = msgspec.json.Decoder(Reply).decode


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commands, min_size=1, max_size=4))
def test_commands_round_trip(sent: list[Command]) -> None:
    """Commands encoded as an SDK would (one per line) decode back equal, in order."""
    frame = b"\n".join(msgspec.json.encode(command) for command in sent)
    assert JSON_CODEC.decode_commands(frame) == sent


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(replies, min_size=1, max_size=4))
def test_replies_round_trip(sent: list[Reply]) -> None:
    """Encoded replies hold no newline, and a joined frame splits back into them."""
    encoded = [JSON_CODEC.encode_reply(reply) for reply in sent]
    assert all(b"\n" not in message and message for message in encoded)
    frame = JSON_CODEC.join(encoded)
    assert [_decode_reply(line) for line in frame.split(b"\n")] == sent


@given(client_infos)
def test_client_info_user_and_client_always_written(info: ClientInfo) -> None:
    encoded = json.loads(JSON_CODEC.encode_reply(Reply(push=Push(join=Join(info=info)))))
    assert {"user", "client"} <= encoded["push"]["join"]["info"].keys()


# The fuzz contract: decode or ProtocolError, nothing else.


def decodes_or_protocol_error(frame: bytes) -> None:
    try:
        result = JSON_CODEC.decode_commands(frame)
    except ProtocolError:
        return
    assert isinstance(result, list)
    assert result
    assert all(isinstance(command, Command) for command in result)


@settings(max_examples=500)
@given(st.binary(max_size=256))
@example(b"\xff")
@example(b'{"connect":{"token":"\xc3"}}')
def test_fuzz_bytes(frame: bytes) -> None:
    decodes_or_protocol_error(frame)


_keys = st.sampled_from(
    [
        "id", "connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
        "history", "ping", "send", "rpc", "refresh", "sub_refresh", "channel", "token", "data",
        "subs", "headers", "name", "offset", "epoch", "since", "limit", "flag", "type",
        "recover", "method", "x",
    ]
)  # fmt: skip
_fragments = st.sampled_from(
    [
        "{", "}", "[", "]", ",", ":", '"', "\\", "\\u", "\\ud800", "\n", "\r", " ", "null",
        "true", "false", "0", "-1", "1e400", "4294967296", "18446744073709551616", "1.5",
        '"id"', '"connect"', '"subscribe"', '"data"', '"channel"', "\x00", "é", "\u2028",
    ]
)  # fmt: skip
_almost_commands = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(_keys | st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=10,
).map(lambda value: json.dumps(value).encode())


@settings(max_examples=500)
@given(st.lists(_fragments | _keys.map(json.dumps), max_size=30).map("".join))
def test_fuzz_json_fragments(text: str) -> None:
    decodes_or_protocol_error(text.encode())


@settings(max_examples=500)
@given(
    st.lists(_almost_commands, min_size=1, max_size=3).map(b"\n".join),
    st.integers(0, 200),
    st.binary(max_size=3),
)
def test_fuzz_mutated_json(frame: bytes, at: int, insert: bytes) -> None:
    """Well-formed JSON in the shape of commands, as is and with bytes spliced in."""
    decodes_or_protocol_error(frame)
    decodes_or_protocol_error(frame[:at] + insert + frame[at:])
    decodes_or_protocol_error(frame[:at])


# json_payload.


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a":1}', b'{"a":1}'),
        (b'"hi"', b'"hi"'),
        (b"1", b"1"),
        (b"null", b"null"),
        (b'{\n  "a": [\n    1,\n    2\n  ]\n}\n', b'{  "a": [    1,    2  ]}'),
        # Raw line breaks go (SSE ends a line at either); an escaped one is not a line break.
        (b'\r\n["x\\ny", "\\r"]\r\n', b'["x\\ny", "\\r"]'),
    ],
)
def test_json_payload(data: bytes, expected: bytes) -> None:
    assert bytes(json_payload(data)) == expected


def test_json_payload_keeps_the_bytes_object() -> None:
    data = b'{"a":1}'
    assert json_payload(data) == Raw(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"  ",
        b"{",
        b"hello",
        b"{'a': 1}",
        b'{"a":1} {"b":2}',
        b'"a\nb"',  # a raw newline inside a string is not JSON
        b'"\xff"',
        b"NaN",
        b"[" * 100_000,
    ],
)
def test_json_payload_rejects(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"data required|not JSON"):
        json_payload(data)


@given(json_values, st.sampled_from([None, 1, 2, "\t"]))
def test_json_payload_strips_newlines_only(value: Any, indent: int | str | None) -> None:
    data = json.dumps(value, indent=indent).encode()
    payload = bytes(json_payload(data))
    assert b"\n" not in payload
    assert json.loads(payload) == value
    assert payload == data.replace(b"\n", b"")
