"""Fossil deltas: what a ``delta: "fossil"`` subscription receives instead of a payload.

Written from the format's published description (Fossil SCM, "Delta Format" and "Delta
Encoder Algorithm"); the SDKs apply such deltas (``centrifugo-protocol.md`` §2.7).

Format rules:

1. A delta is: the target's length, ``\\n``; then segments; then the target's checksum
   and ``;``. A segment copies ``N@O,`` (``N`` bytes of the source from offset ``O``)
   or inserts ``N:`` followed by ``N`` literal bytes.
2. Numbers are written in base 64, most significant digit first, with the digits
   ``0-9 A-Z _ a-z ~``.
3. The checksum is the sum, modulo 2**32, of the target read as big-endian 32-bit
   words (the last one padded with zero bytes).

Encoder rules (:func:`create_delta`):

4. The source is indexed by blocks of :data:`NHASH` bytes at multiples of ``NHASH``;
   the target is scanned one byte at a time for a window equal to an indexed block.
   A candidate match is grown forwards and backwards (not past the pending literal),
   and taken when it is worth its encoding; the longest of at most
   :data:`_CANDIDATES` candidates wins.
5. Copies start and end on UTF-8 character boundaries of the target (a copy never
   starts at, and is never followed by, a continuation byte ``0x80-0xBF``). So every
   inserted literal of a delta of valid UTF-8 text is valid UTF-8 itself, and the
   whole delta is text the JSON protocol can carry as a string, which both SDKs turn
   back into bytes with a UTF-8 encoder before applying it.
6. A target with no useful match costs one dictionary look-up per byte: linear.

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["NHASH", "DeltaError", "apply_delta", "checksum", "create_delta"]

NHASH: Final = 16
"""Size of the blocks matched between source and target."""

_CANDIDATES: Final = 8
"""Source blocks tried per target window (Fossil tries up to 250 hash collisions; here
equal windows are exact matches, so few are needed)."""

_MARGIN: Final = 512
"""Bytes of the source indexed before and after the part that differs."""

_DIGITS: Final = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_VALUE: Final = {digit: value for value, digit in enumerate(_DIGITS)}
_CHUNK: Final = 32


class DeltaError(ValueError):
    """A delta that does not apply to the given source."""


def _number(value: int) -> bytes:
    if value == 0:
        return b"0"
    out = bytearray()
    while value:
        out.append(_DIGITS[value & 63])
        value >>= 6
    out.reverse()
    return bytes(out)


def _digits(value: int) -> int:
    count = 1
    while value >= 64:
        value >>= 6
        count += 1
    return count


def checksum(data: bytes) -> int:
    """The format's checksum of ``data`` (rule 3)."""
    tail = len(data) & 3
    if tail:
        data = data + bytes(4 - tail)
    words: tuple[int, ...] = struct.unpack(f">{len(data) >> 2}I", data)
    return sum(words) & 0xFFFFFFFF


def _forward(source: bytes, a: int, target: bytes, b: int, end: int) -> int:
    """How many bytes ``source[a:]`` and ``target[b:end]`` have in common at their start.

    Compared in growing chunks; the first chunk that differs is read as two numbers
    whose XOR locates the first different byte (no loop over bytes)."""
    limit = min(len(source) - a, end - b)
    count, size = 0, _CHUNK
    while count < limit:
        n = min(size, limit - count)
        x, y = source[a + count : a + count + n], target[b + count : b + count + n]
        if x != y:
            diff = int.from_bytes(x, "big") ^ int.from_bytes(y, "big")
            return count + n - (diff.bit_length() + 7) // 8
        count += n
        size <<= 2
    return count


def _backward(source: bytes, a: int, target: bytes, b: int, limit: int) -> int:
    """How many bytes ``source[:a]`` and ``target[:b]`` have in common at their end,
    at most ``limit``."""
    limit = min(limit, a, b)
    count, size = 0, _CHUNK
    while count < limit:
        n = min(size, limit - count)
        x, y = source[a - count - n : a - count], target[b - count - n : b - count]
        if x != y:
            diff = int.from_bytes(x, "little") ^ int.from_bytes(y, "little")
            return count + n - (diff.bit_length() + 7) // 8
        count += n
        size <<= 2
    return count


def _continuation(byte: int) -> bool:
    return 0x80 <= byte < 0xC0


def _ends(source: bytes, target: bytes) -> tuple[int, int]:
    """The common prefix and suffix of source and target, not overlapping, each
    ending on a UTF-8 boundary of the target (rule 5)."""
    size = min(len(source), len(target))
    head = _forward(source, 0, target, 0, size)
    while head and head < len(target) and _continuation(target[head]):
        head -= 1
    rest = size - head
    tail = _backward(source, len(source), target, len(target), rest)
    while tail and _continuation(target[len(target) - tail]):
        tail -= 1
    return head, tail


def create_delta(source: bytes, target: bytes) -> bytes:
    """A delta that turns ``source`` into ``target`` (any bytes; see rule 5 for text)."""
    out = [_number(len(target)), b"\n"]
    head, tail = _ends(source, target)
    if head:
        out += (_number(head), b"@0,")
    end = len(target) - tail
    base = head
    if len(source) >= NHASH and end - head >= NHASH:
        base = _segments(source, target, head, end, out)
    if base < end:
        out += (_number(end - base), b":", target[base:end])
    if tail:
        out += (_number(tail), b"@", _number(len(source) - tail), b",")
    out += (_number(checksum(target)), b";")
    return b"".join(out)


def _segments(source: bytes, target: bytes, start: int, end: int, out: list[bytes]) -> int:
    """Write the copies of ``target[start:end]`` (and the literals before them); return
    where the last literal starts."""
    # The source is indexed around the part that differs (rule 4): what changed is
    # mostly found near where it was, and the index costs a fraction of a big source.
    low = max(0, start - _MARGIN)
    high = min(len(source), len(source) - (len(target) - end) + _MARGIN)
    index: dict[bytes, list[int]] = {}
    for offset in range(low, high - NHASH + 1, NHASH):
        index.setdefault(source[offset : offset + NHASH], []).append(offset)
    budget = (end - start) // 4 + 64  # rule 6: dissimilar data is given up on
    base = pos = start
    while pos + NHASH <= end:
        candidates = index.get(target[pos : pos + NHASH])
        match = None if candidates is None else _best(source, target, base, pos, end, candidates)
        if match is None:
            budget -= 1
            if not budget:
                break
            pos += 1
            continue
        copy, count, offset = match
        if copy > base:
            out += (_number(copy - base), b":", target[base:copy])
        out += (_number(count), b"@", _number(offset), b",")
        base = pos = copy + count
    return base


def _best(
    source: bytes, target: bytes, base: int, pos: int, end: int, candidates: list[int]
) -> tuple[int, int, int] | None:
    """The best copy through the window at ``pos``: (target start, length, source
    offset), aligned on UTF-8 boundaries; None if none is worth its encoding."""
    best: tuple[int, int, int] | None = None
    best_count = 0
    for block in candidates[:_CANDIDATES]:
        ahead = _forward(source, block + NHASH, target, pos + NHASH, end)
        back = _backward(source, block, target, pos, pos - base)
        start, stop, offset = pos - back, pos + NHASH + ahead, block - back
        while start < stop and _continuation(target[start]):
            start += 1
            offset += 1
        while start < stop < len(target) and _continuation(target[stop]):
            stop -= 1
        count = stop - start
        cost = _digits(start - base) + _digits(count) + _digits(offset) + 3
        if count > best_count and count >= cost:
            best, best_count = (start, count, offset), count
            if stop == end:
                break  # nothing can go further
    return best


def _read_number(delta: bytes, pos: int) -> tuple[int, int]:
    value = 0
    start = pos
    while pos < len(delta):
        digit = _VALUE.get(delta[pos])
        if digit is None:
            break
        value = (value << 6) | digit
        pos += 1
    if pos == start:
        raise DeltaError("a number was expected")
    return value, pos


def apply_delta(source: bytes, delta: bytes) -> bytes:
    """Apply ``delta`` to ``source`` and return the target.

    Raises:
        DeltaError: the delta is malformed, does not fit the source, or its checksum
            or length do not match what it produced.
    """
    size, pos = _read_number(delta, 0)
    if delta[pos : pos + 1] != b"\n":
        raise DeltaError("the target size is not followed by a newline")
    pos += 1
    out = bytearray()
    while pos < len(delta):
        count, pos = _read_number(delta, pos)
        op = delta[pos : pos + 1]
        pos += 1
        if op == b"@":
            offset, pos = _read_number(delta, pos)
            if delta[pos : pos + 1] != b",":
                raise DeltaError("a copy is not terminated by a comma")
            pos += 1
            if offset + count > len(source):
                raise DeltaError("a copy extends past the end of the source")
            out += source[offset : offset + count]
        elif op == b":":
            if pos + count > len(delta):
                raise DeltaError("an insert extends past the end of the delta")
            out += delta[pos : pos + count]
            pos += count
        elif op == b";":
            if len(out) != size:
                raise DeltaError("the target has not the announced size")
            if count != checksum(bytes(out)):
                raise DeltaError("bad checksum")
            return bytes(out)
        else:
            raise DeltaError("unknown delta operator")
        if len(out) > size:
            raise DeltaError("the target grows past the announced size")
    raise DeltaError("unterminated delta")
