"""Publication tags filters: a subscriber's ``tf`` tree, checked once, then a predicate.

Rules (``centrifugo-server-side.md`` §9.2; Centrifuge's ``internal/filter``):

1. A leaf (``op`` empty) compares the publication's tag ``key``:
   ``eq`` present and equal; ``neq`` absent or different; ``in``/``nin`` the value
   (``""`` when absent) is / is not one of ``vals``; ``ex``/``nex`` present / absent;
   ``sw``/``ew``/``ct`` present and starts with / ends with / contains ``val``;
   ``gt``/``gte``/``lt``/``lte`` present, a decimal number, and compared as decimals
   (exactly: no float rounding) with ``val``.
2. ``and``: every child matches; ``or``: one does; ``not``: its only child does not.
3. Checked at subscribe (:func:`compile_filter`; error 107 otherwise): a leaf needs a
   ``cmp``; ``eq neq sw ew ct gt gte lt lte`` a non-empty ``val`` and no ``vals``
   (the numeric ones a decimal ``val``: Centrifugo accepts another and never matches);
   ``in``/``nin`` non-empty ``vals`` and no ``val``; ``ex``/``nex`` neither; a ``key``
   except for ``ex``/``nex``; a leaf has no children; ``and``/``or`` one child at
   least, ``not`` exactly one. At most :data:`MAX_DEPTH` levels and
   :data:`MAX_SIZE` nodes and values in all.
4. Subscribers whose filters are equal share one :class:`TagsFilter` key (the
   filter's canonical encoding), so the hub evaluates each distinct filter once per
   publication, however many subscribers share it.

Tags filters and delta compression exclude each other on one subscription (a
filtered subscriber misses publications, so the channel's previous payload is no
base for it): a subscribe asking for both is refused with 107, where the SDKs refuse
to send it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import msgspec

from wirehub.errors import ClientError
from wirehub.protocol.codes import ErrorCode
from wirehub.protocol.types import FilterNode

__all__ = ["MAX_DEPTH", "MAX_SIZE", "TagsFilter", "compile_filter"]

MAX_DEPTH: Final = 16
"""Deepest nesting of a filter (a lone leaf is 1)."""

MAX_SIZE: Final = 256
"""Most nodes plus ``vals`` entries in one filter."""

Tags = Mapping[str, str] | None
Predicate = Callable[[Tags], bool]

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_encode = msgspec.json.Encoder(order="deterministic").encode


@dataclass(frozen=True, slots=True)
class TagsFilter:
    """A checked filter: its identity and its predicate over a publication's tags."""

    key: bytes
    """The canonical encoding: equal filters, equal keys."""
    match: Predicate


def _invalid(reason: str) -> ClientError:
    return ClientError(ErrorCode.BAD_REQUEST, f"bad request: invalid tags filter: {reason}")


def compile_filter(node: FilterNode) -> TagsFilter:
    """Check ``node`` (rule 3) and turn it into a predicate.

    Raises:
        ClientError: 107, naming what is wrong.
    """
    budget = [MAX_SIZE]
    match = _compile(node, 1, budget)
    return TagsFilter(key=_encode(node), match=match)


def _compile(node: FilterNode, depth: int, budget: list[int]) -> Predicate:
    if depth > MAX_DEPTH:
        raise _invalid(f"nested deeper than {MAX_DEPTH} levels")
    budget[0] -= 1 + len(node.vals or ())
    if budget[0] < 0:
        raise _invalid(f"more than {MAX_SIZE} nodes and values")
    if node.op == "":
        if node.nodes:
            raise _invalid("a comparison has no child nodes")
        return _leaf(node)
    children = [_compile(child, depth + 1, budget) for child in node.nodes or ()]
    if node.key or node.cmp or node.val or node.vals:
        raise _invalid(f"{node.op!r} takes only nodes")
    if node.op == "and" and children:
        return lambda tags: all(child(tags) for child in children)
    if node.op == "or" and children:
        return lambda tags: any(child(tags) for child in children)
    if node.op == "not" and len(children) == 1:
        only = children[0]
        return lambda tags: not only(tags)
    if node.op == "not":
        raise _invalid("'not' takes exactly one node")
    if node.op in ("and", "or"):
        raise _invalid(f"{node.op!r} takes one node at least")
    raise _invalid("unknown op")


_WITH_VAL: Final = frozenset({"eq", "neq", "sw", "ew", "ct", "gt", "gte", "lt", "lte"})
_WITH_VALS: Final = frozenset({"in", "nin"})
_BARE: Final = frozenset({"ex", "nex"})


def _leaf(node: FilterNode) -> Predicate:
    cmp, key, val, vals = node.cmp, node.key, node.val, node.vals
    if cmp in _WITH_VAL:
        if not val or vals:
            raise _invalid(f"{cmp!r} takes a val and no vals")
    elif cmp in _WITH_VALS:
        if not vals or val:
            raise _invalid(f"{cmp!r} takes vals and no val")
    elif cmp in _BARE:
        if val or vals:
            raise _invalid(f"{cmp!r} takes neither val nor vals")
    else:
        raise _invalid("unknown cmp" if cmp else "a comparison needs a cmp")
    if not key and cmp not in _BARE:
        raise _invalid(f"{cmp!r} needs a key")
    if cmp in ("gt", "gte", "lt", "lte"):
        return _numeric(key, cmp, val)
    return _string(key, cmp, val, frozenset(vals or ()))


def _string(key: str, cmp: str, val: str, vals: frozenset[str]) -> Predicate:
    def value(tags: Tags) -> str | None:
        return None if tags is None else tags.get(key)

    if cmp == "eq":
        return lambda tags: value(tags) == val
    if cmp == "neq":
        return lambda tags: value(tags) != val
    if cmp == "in":
        return lambda tags: (value(tags) or "") in vals
    if cmp == "nin":
        return lambda tags: (value(tags) or "") not in vals
    if cmp == "ex":
        return lambda tags: value(tags) is not None
    if cmp == "nex":
        return lambda tags: value(tags) is None
    if cmp == "sw":
        return lambda tags: (v := value(tags)) is not None and v.startswith(val)
    if cmp == "ew":
        return lambda tags: (v := value(tags)) is not None and v.endswith(val)
    return lambda tags: (v := value(tags)) is not None and val in v  # "ct"


def _number(text: str) -> Decimal | None:
    return Decimal(text) if _DECIMAL.fullmatch(text) else None


def _numeric(key: str, cmp: str, val: str) -> Predicate:
    bound = _number(val)
    if bound is None:
        raise _invalid(f"{cmp!r} takes a decimal number")

    def match(tags: Tags) -> bool:
        text = None if tags is None else tags.get(key)
        number = None if text is None else _number(text)
        if number is None:
            return False
        if cmp == "gt":
            return number > bound
        if cmp == "gte":
            return number >= bound
        if cmp == "lt":
            return number < bound
        return number <= bound

    return match
