"""Tags filters (``wirehub.core.tags_filter``): Centrifugo's semantics, checked at
subscribe, equal filters sharing one key."""

from __future__ import annotations

from typing import Any

import pytest

from wirehub.core.tags_filter import MAX_DEPTH, MAX_SIZE, compile_filter
from wirehub.errors import ClientError
from wirehub.protocol.types import FilterNode


def leaf(key: str, cmp: str, val: str = "", vals: list[str] | None = None) -> FilterNode:
    return FilterNode(key=key, cmp=cmp, val=val, vals=vals)


def matches(node: FilterNode, tags: dict[str, str] | None) -> bool:
    return compile_filter(node).match(tags)


TAGS = {"ticker": "AAPL", "price": "101.50", "empty": "", "name": "Apple Inc."}


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (leaf("ticker", "eq", "AAPL"), True),
        (leaf("ticker", "eq", "MSFT"), False),
        (leaf("missing", "eq", "x"), False),
        (leaf("ticker", "neq", "MSFT"), True),
        (leaf("missing", "neq", "x"), True),  # absent counts as different
        (leaf("ticker", "in", vals=["MSFT", "AAPL"]), True),
        (leaf("missing", "in", vals=["", "x"]), True),  # absent reads as ""
        (leaf("missing", "nin", vals=["x"]), True),
        (leaf("ticker", "nin", vals=["AAPL"]), False),
        (leaf("ticker", "ex"), True),
        (leaf("empty", "ex"), True),
        (leaf("missing", "ex"), False),
        (leaf("missing", "nex"), True),
        (leaf("name", "sw", "Apple"), True),
        (leaf("name", "ew", "Inc."), True),
        (leaf("name", "ct", "le I"), True),
        (leaf("missing", "ct", "x"), False),
        (leaf("empty", "sw", "x"), False),
        (leaf("price", "gt", "101.5"), False),  # decimals, not strings: 101.50 == 101.5
        (leaf("price", "gte", "101.5"), True),
        (leaf("price", "lt", "1000"), True),  # "101.50" < "1000" as numbers too
        (leaf("price", "lte", "-3"), False),
        (leaf("ticker", "gt", "0"), False),  # not a number: no match
        (leaf("missing", "lt", "0"), False),
        (
            FilterNode(op="and", nodes=[leaf("ticker", "eq", "AAPL"), leaf("price", "gt", "100")]),
            True,
        ),
        (
            FilterNode(op="and", nodes=[leaf("ticker", "eq", "AAPL"), leaf("price", "gt", "200")]),
            False,
        ),
        (FilterNode(op="or", nodes=[leaf("ticker", "eq", "X"), leaf("price", "gt", "100")]), True),
        (FilterNode(op="not", nodes=[leaf("ticker", "eq", "AAPL")]), False),
    ],
)
def test_semantics(node: FilterNode, expected: bool) -> None:
    assert matches(node, TAGS) is expected


def test_a_publication_without_tags() -> None:
    assert matches(leaf("a", "nex"), None)
    assert not matches(leaf("a", "eq", "1"), None)
    assert matches(leaf("a", "in", vals=[""]), None)


def test_big_decimals_compare_exactly() -> None:
    big = "123456789012345678901234567890.000000000000000000001"
    assert matches(leaf("n", "gt", "123456789012345678901234567890"), {"n": big})
    assert not matches(leaf("n", "gt", big), {"n": big})


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (FilterNode(), "needs a cmp"),
        (leaf("k", "like", "x"), "unknown cmp"),
        (leaf("k", "eq"), "takes a val"),
        (leaf("k", "eq", "x", ["y"]), "takes a val"),
        (leaf("k", "in"), "takes vals"),
        (leaf("k", "in", "x", ["y"]), "takes vals"),
        (leaf("k", "ex", "x"), "neither"),
        (leaf("", "eq", "x"), "needs a key"),
        (leaf("k", "gt", "ten"), "decimal"),
        (leaf("k", "gt", "1e5"), "decimal"),
        (FilterNode(op="and"), "one node at least"),
        (FilterNode(op="or", nodes=[]), "one node at least"),
        (FilterNode(op="not", nodes=[leaf("k", "ex"), leaf("j", "ex")]), "exactly one"),
        (FilterNode(op="xor", nodes=[leaf("k", "ex")]), "unknown op"),
        (FilterNode(op="and", key="k", nodes=[leaf("k", "ex")]), "only nodes"),
        (FilterNode(key="k", cmp="ex", nodes=[leaf("k", "ex")]), "no child"),
        (FilterNode(op="and", nodes=[leaf("k", "eq")]), "takes a val"),  # a bad child
    ],
)
def test_malformed_filters_are_107(node: FilterNode, reason: str) -> None:
    with pytest.raises(ClientError) as caught:
        compile_filter(node)
    assert caught.value.code == 107
    assert reason in caught.value.message


def _deep(depth: int) -> FilterNode:
    node = leaf("k", "ex")
    for _ in range(depth - 1):
        node = FilterNode(op="not", nodes=[node])
    return node


def test_depth_and_size_are_bounded() -> None:
    assert matches(_deep(MAX_DEPTH), {"k": "1"}) is (MAX_DEPTH % 2 == 1)
    with pytest.raises(ClientError, match="deeper"):
        compile_filter(_deep(MAX_DEPTH + 1))
    fits = FilterNode(op="or", nodes=[leaf("k", "in", vals=["a"])] * ((MAX_SIZE - 1) // 2))
    assert matches(fits, {"k": "a"})
    with pytest.raises(ClientError, match="more than"):
        compile_filter(FilterNode(op="or", nodes=[leaf("k", "in", vals=["a"])] * MAX_SIZE))


def test_equal_filters_share_a_key() -> None:
    def build(**kwargs: Any) -> FilterNode:
        return FilterNode(op="and", nodes=[leaf("a", "eq", "1"), leaf("b", "in", vals=["x"])])

    assert compile_filter(build()).key == compile_filter(build()).key
    assert compile_filter(leaf("a", "eq", "1")).key != compile_filter(leaf("a", "eq", "2")).key
