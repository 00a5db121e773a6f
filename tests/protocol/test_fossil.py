"""The fossil delta encoder (``wirehub.protocol.fossil``), with the SDKs as oracles.

Every delta wirehub makes must turn the source into the target for the clients:
centrifuge-python's ``apply_delta`` is checked in-process (hypothesis round trips),
centrifuge-js's in Node (a batch of cases, through its JSON codec for text and its
Protobuf codec for bytes). Deltas of UTF-8 text are UTF-8 themselves (the JSON protocol
carries them as strings).
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import subprocess

import pytest
from centrifuge.fossil import apply_delta as sdk_apply_delta
from hypothesis import given, settings, strategies as st

from tests.interop.test_js_sdk import JS_DIR, _node
from tests.support.server import timeout
from wirehub.protocol.fossil import DeltaError, apply_delta, checksum, create_delta


def sdk_apply(source: bytes, delta: bytes) -> bytes:
    return bytes(sdk_apply_delta(source, delta))


def dashboard(rng: random.Random, fields: int = 40) -> dict[str, object]:
    return {
        "title": "Operations",
        "metrics": {
            f"m{i}": {"value": rng.randint(0, 10**6), "label": f"Métrique n°{i}", "ok": True}
            for i in range(fields)
        },
    }


def evolve(rng: random.Random, doc: dict[str, object], steps: int) -> list[bytes]:
    """``steps`` successive JSON texts of ``doc``, one field changed each time."""
    texts = []
    metrics = doc["metrics"]
    assert isinstance(metrics, dict)
    for _ in range(steps):
        field = metrics[rng.choice(sorted(metrics))]
        if rng.random() < 0.5:
            field["value"] = rng.randint(0, 10**6)
        else:
            field["label"] = rng.choice(["éclair", "naïve", "日本", "ok", "€ 10"])
        texts.append(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())
    return texts


# Golden vectors, worked out by hand from the format's description.


def test_an_insert_only_delta() -> None:
    # "abc": size 3, insert 3 bytes, checksum 0x61626300 = 1633837824 = base 64
    # digits 1 33 24 38 12 0 -> "1XObC0".
    delta = create_delta(b"", b"abc")
    assert delta == b"3\n3:abc1XObC0;"
    assert checksum(b"abc") == 0x61626300
    assert sdk_apply(b"", delta) == b"abc"


def test_an_unchanged_target_is_one_copy() -> None:
    source = b"0123456789abcdefghij" * 4
    delta = create_delta(source, source)
    assert delta.startswith(b"1G\n1G@0,")  # 80 = 1 * 64 + 16
    assert apply_delta(source, delta) == sdk_apply(source, delta) == source


def test_a_changed_field_costs_a_few_bytes() -> None:
    rng = random.Random(1)
    doc = dashboard(rng)
    before = json.dumps(doc).encode()
    doc["metrics"]["m17"]["value"] = 42  # type: ignore[index]
    after = json.dumps(doc).encode()
    delta = create_delta(before, after)
    assert len(after) > 2000
    assert len(delta) < 40
    assert sdk_apply(before, delta) == after


def test_an_empty_target() -> None:
    assert sdk_apply(b"something", create_delta(b"something", b"")) == b""


def test_bad_deltas_are_refused() -> None:
    source = b"0123456789abcdefghij"
    good = create_delta(source, source + b"!")
    for bad in (
        b"",
        b"3",
        b"3\n3:ab",
        good[:-1],
        good.replace(b";", b"!"),
        b"3\n3@100,1XObC0;",
        b"3\n3:abc0;",
        b"2\n3:abc1XObC0;",
    ):
        with pytest.raises(DeltaError):
            apply_delta(source, bad)


@settings(max_examples=300)
@given(st.binary(max_size=600), st.binary(max_size=600))
def test_any_bytes_round_trip(source: bytes, target: bytes) -> None:
    delta = create_delta(source, target)
    assert apply_delta(source, delta) == target
    assert sdk_apply(source, delta) == target


edits = st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 40), st.text(max_size=40)),
    max_size=6,
)


@settings(max_examples=300)
@given(st.text(min_size=0, max_size=800), edits)
def test_edited_text_round_trips_and_its_delta_is_utf8(text: str, changes: list) -> None:
    """Copies end on character boundaries: the delta of UTF-8 text is UTF-8 text."""
    target = text
    for at, cut, insert in changes:
        at %= len(target) + 1
        target = target[:at] + insert + target[at + cut :]
    source_bytes, target_bytes = text.encode(), target.encode()
    delta = create_delta(source_bytes, target_bytes)
    delta.decode()  # raises if not UTF-8
    assert sdk_apply(source_bytes, delta) == target_bytes


def test_dissimilar_payloads_still_round_trip() -> None:
    rng = random.Random(7)
    source, target = rng.randbytes(50_000), rng.randbytes(50_000)
    assert sdk_apply(source, create_delta(source, target)) == target


def test_repetitive_payloads_round_trip() -> None:
    source = b'{"a":1,' * 500 + b"}"
    target = b'{"a":1,' * 250 + b'{"b":2,' + b'{"a":1,' * 249 + b"}"
    delta = create_delta(source, target)
    assert len(delta) < 60
    assert sdk_apply(source, delta) == target


def js_apply(cases: list[tuple[bytes, bytes, bool]]) -> list[bytes | str]:
    """Apply each (source, delta, as JSON) with centrifuge-js in Node."""
    payload = [
        {
            "source": base64.b64encode(source).decode(),
            "delta": base64.b64encode(delta).decode(),
            "json": as_json,
        }
        for source, delta, as_json in cases
    ]
    done = subprocess.run(
        [_node(), str(JS_DIR / "fossil_oracle.mjs")],
        input=json.dumps(payload).encode(),
        capture_output=True,
        cwd=JS_DIR,
        timeout=timeout(60),
        check=True,
    )
    return [
        base64.b64decode(item["target"]) if "target" in item else item["error"]
        for item in json.loads(done.stdout)
    ]


def test_centrifuge_js_reconstructs_every_target() -> None:
    rng = random.Random(11)
    cases: list[tuple[bytes, bytes, bool]] = []
    expected: list[bytes] = []
    texts = evolve(rng, dashboard(rng), 60)
    for source, target in itertools.pairwise(texts):
        cases.append((source, create_delta(source, target), True))
        expected.append(target)
    for _ in range(60):
        source = rng.randbytes(rng.randrange(0, 3000))
        if rng.random() < 0.7 and source:  # an edited copy: copies and inserts
            cut = rng.randrange(len(source))
            target = source[:cut] + rng.randbytes(rng.randrange(0, 50)) + source[cut + 7 :]
        else:
            target = rng.randbytes(rng.randrange(0, 3000))
        cases.append((source, create_delta(source, target), False))
        expected.append(target)
    assert js_apply(cases) == expected
