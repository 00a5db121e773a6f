"""The one payload check (``wirehub.protocol.payload``): what it accepts, every codec can
carry and every client can parse back (reliability.md A1, A2, P2).

The property test is the contract: any payload accepted at publish encodes for every
codec, and the JSON frame it lands in parses with the stdlib ``json`` module (what
centrifuge-python uses) and with msgspec, to the same value; the Protobuf reply parses
with centrifuge-python's compiled schema to the same bytes.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec
import pytest
from centrifuge.protocol import client_pb2 as pb
from hypothesis import example, given, settings, strategies as st
from msgspec import Raw

from wirehub.protocol.json_codec import JSON_CODEC
from wirehub.protocol.payload import MAX_JSON_DEPTH, PayloadError, check_payload
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC
from wirehub.protocol.types import Publication, Push, Reply


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """``depth`` containers, objects and arrays in turn, around ``inner``."""
    opening = [b'{"a":' if level % 2 == 0 else b"[" for level in range(depth)]
    closing = [b"}" if level % 2 == 0 else b"]" for level in reversed(range(depth))]
    return b"".join(opening) + inner + b"".join(closing)


@pytest.mark.parametrize(
    "data",
    [
        b"1e999999",
        b"-1e999999",
        b"1E400",
        b"9" * 5000,
        b"-" + b"9" * 4301,
        b"1" + b"0" * 400 + b".5",
        b"NaN",
        b"Infinity",
        b'"\xff"',
        b'"\\ud800"',  # a lone surrogate: not a Unicode string
        b"\x00\xffbinary",
        b'"a\nb"',
        b"{",
        b"",
        nested(MAX_JSON_DEPTH + 1),
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_json_formats_refuse(data: bytes) -> None:
    for data_format in ("", "json", "json_object"):
        with pytest.raises(PayloadError):
            check_payload(data, data_format)


@pytest.mark.parametrize(
    ("data", "stored"),
    [
        (b'{"a":1}', b'{"a":1}'),
        (b"9" * 4300, b"9" * 4300),
        (b"1.7976931348623157e308", b"1.7976931348623157e308"),
        (b'{\n"a":\n[1,\n2]}\n', b'{"a":[1,2]}'),
        (nested(MAX_JSON_DEPTH), nested(MAX_JSON_DEPTH)),
        (b"[" * 40 + b"]" * 40, b"[" * 40 + b"]" * 40),
    ],
)
def test_json_accepts_and_strips_newlines(data: bytes, stored: bytes) -> None:
    assert check_payload(data, "json") == stored
    assert check_payload(data, "") == stored


def test_json_object_wants_an_object() -> None:
    assert check_payload(b'{"a":[1]}', "json_object") == b'{"a":[1]}'
    for data in (b"[1]", b'"x"', b"1", b"null"):
        check_payload(data, "json")
        with pytest.raises(PayloadError, match="object"):
            check_payload(data, "json_object")


def test_binary_takes_anything_even_nothing() -> None:
    for data in (b"", b"\x00\xff", b"1e999999", b"a\nb"):
        assert check_payload(data, "binary") == data


def test_many_brackets_but_shallow() -> None:
    """More brackets than the depth limit, side by side: accepted (walked, not counted)."""
    data = b"[" + b",".join([b"[]"] * 1000) + b"]"
    assert check_payload(data) == data


def test_depth_check_does_not_depend_on_the_stack() -> None:
    """The same answer at the bottom of a deep call stack: what was accepted at publish
    is accepted by any later check, wherever it runs."""
    at_limit, over = nested(MAX_JSON_DEPTH), nested(MAX_JSON_DEPTH + 1)

    def deep(frames: int) -> tuple[bool, bool]:
        if frames:
            return deep(frames - 1)
        accepted = check_payload(at_limit) == at_limit
        try:
            check_payload(over)
        except PayloadError:
            return accepted, False
        return accepted, True

    margin = 4 * MAX_JSON_DEPTH + 50
    assert deep(sys.getrecursionlimit() - margin) == (True, False)


# The property: accepted => deliverable to every codec.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)


def _dumps(value: Any, indent: int | None) -> bytes:
    return json.dumps(value, indent=indent, ensure_ascii=False).encode("utf-8", "surrogatepass")


candidates = st.one_of(
    st.binary(max_size=40),
    st.builds(_dumps, json_values, st.sampled_from([None, 1])),
    st.integers(min_value=1, max_value=6000).map(lambda n: b"7" * n),
    st.sampled_from([b"1e999999", b"-1e999999", b"1e308", b"-0.0e-999", b"1E309", b"-1"]),
    st.integers(min_value=0, max_value=3 * MAX_JSON_DEPTH).map(nested),
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def _push(data: bytes) -> Reply:
    return Reply(push=Push(channel="c", pub=Publication(data=Raw(data))))


@settings(max_examples=400)
@given(candidates)
@example(b'{"a":\n1}')
@example(nested(MAX_JSON_DEPTH))
def test_accepted_payloads_encode_for_every_codec(data: bytes) -> None:
    try:
        stored = check_payload(data, "json")
    except PayloadError:
        return
    assert check_payload(stored, "json") == stored  # checking again changes nothing
    expected = json.loads(data)
    # JSON: one line of the frame, parsed by what the SDKs use.
    frame = JSON_CODEC.join([JSON_CODEC.encode_reply(_push(stored))] * 2)
    lines = frame.split(b"\n")
    assert len(lines) == 2
    for line in lines:
        assert json.loads(line)["push"]["pub"]["data"] == expected
        assert msgspec.json.decode(line)["push"]["pub"]["data"] == expected
    # Protobuf: the bytes, exactly.
    encoded = PROTOBUF_CODEC.encode_reply(_push(stored))
    reply = pb.Reply()
    reply.ParseFromString(_strip_varint(encoded))
    assert reply.push.pub.data == stored


@given(st.binary(max_size=64))
def test_binary_payloads_encode_for_protobuf(data: bytes) -> None:
    stored = check_payload(data, "binary")
    reply = pb.Reply()
    reply.ParseFromString(_strip_varint(PROTOBUF_CODEC.encode_reply(_push(stored))))
    assert reply.push.pub.data == data


def _strip_varint(record: bytes) -> bytes:
    pos = 0
    while record[pos] & 0x80:
        pos += 1
    return record[pos + 1 :]
