"""HeadScanner and check_scope: request-head limits on exact bytes (no I/O)."""

from __future__ import annotations

import pytest

from wirehub.transports.head import HeadLimits, HeadScanner, HeadTooLarge, check_scope

LIMITS = HeadLimits(request_line=64, header_line=32, header_count=4, head=200)
REQUEST = b"GET /health HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"


def scan(*chunks: bytes, limits: HeadLimits = LIMITS) -> int:
    """Feed the chunks in turn; the end index within the chunk that ended the head, as a
    position in the concatenated input, or -1."""
    scanner = HeadScanner(limits)
    offset = 0
    for chunk in chunks:
        end = scanner.feed(chunk)
        if end >= 0:
            return offset + end
        offset += len(chunk)
    return -1


def refused(*chunks: bytes, limits: HeadLimits = LIMITS) -> HeadTooLarge:
    with pytest.raises(HeadTooLarge) as info:
        scan(*chunks, limits=limits)
    return info.value


def test_a_head_ends_at_its_empty_line() -> None:
    assert scan(REQUEST + b"body") == len(REQUEST)


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_any_split_finds_the_same_end(size: int) -> None:
    data = REQUEST + b"next"
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    assert scan(*chunks) == len(REQUEST)


def test_bare_lf_line_endings() -> None:
    request = b"GET / HTTP/1.1\nHost: x\n\n"
    assert scan(request) == len(request)


def test_cr_at_the_end_of_one_chunk_lf_at_the_start_of_the_next() -> None:
    assert scan(b"GET / HTTP/1.1\r\nHost: x\r\n\r", b"\nrest") == 27


def test_a_one_byte_header_line_split_before_its_lf_is_not_the_end() -> None:
    # "x" then LF in the next chunk: a (malformed) header line, not the empty line.
    assert scan(b"GET / HTTP/1.1\r\nx", b"\r\n\r\n") == 21


def test_empty_lines_before_the_request_line_are_skipped() -> None:
    assert scan(b"\r\n\r\n" + REQUEST) == 4 + len(REQUEST)


def test_request_line_at_its_limit_and_one_past() -> None:
    # A line's size counts its CR, not its LF.
    line = b"GET /" + b"a" * (63 - 14) + b" HTTP/1.1\r"
    assert len(line) == 64
    assert scan(line + b"\n\r\n") > 0
    refusal = refused(b"a" + line + b"\n\r\n")
    assert refusal.status == 414


def test_a_long_request_line_is_refused_before_its_end_arrives() -> None:
    # No LF ever comes: the scanner refuses on the bytes it has.
    assert refused(b"GET /" + b"a" * 30, b"a" * 30).status == 414


def test_header_line_too_long() -> None:
    assert refused(b"GET / HTTP/1.1\r\nX: " + b"y" * 40).status == 431


def test_header_count() -> None:
    headers = b"".join(b"H%d: v\r\n" % i for i in range(4))
    assert scan(b"GET / HTTP/1.1\r\n" + headers + b"\r\n") > 0
    refusal = refused(b"GET / HTTP/1.1\r\n" + headers + b"H9: v\r\n\r\n")
    assert (refusal.status, refusal.reason) == (431, "more than 4 headers")


def test_total_head_size() -> None:
    headers = b"".join(b"H%d: %s\r\n" % (i, b"v" * 20) for i in range(4))
    big = HeadLimits(request_line=64, header_line=32, header_count=100, head=100)
    assert refused(b"GET / HTTP/1.1\r\n" + headers + b"\r\n", limits=big).status == 431


def test_endless_empty_lines_hit_the_head_limit() -> None:
    assert refused(b"\r\n" * 101).status == 431


def test_reset_starts_a_new_head() -> None:
    scanner = HeadScanner(LIMITS)
    assert scanner.feed(REQUEST) == len(REQUEST)
    assert scanner.started
    scanner.reset()
    assert not scanner.started
    assert scanner.feed(REQUEST + REQUEST, len(REQUEST)) == 2 * len(REQUEST)


def scope(path: str = "/", query: bytes = b"", headers: int = 1, value: bytes = b"v") -> dict:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"h%d" % i, value) for i in range(headers)],
    }


def test_check_scope_accepts_a_normal_request() -> None:
    assert check_scope(scope(), LIMITS) is None


def test_check_scope_counts_the_head_as_on_the_wire() -> None:
    # "GET / HTTP/1.1" CRLF, 4 x ("hN: " + 28 bytes CRLF), CRLF: 16 + 4 x 34 + 2 = 154.
    request = scope(headers=4, value=b"v" * 28)
    assert check_scope(request, HeadLimits(64, 32, 4, head=154)) is None
    refusal = check_scope(request, HeadLimits(64, 32, 4, head=153))
    assert refusal is not None
    assert refusal.status == 431


@pytest.mark.parametrize(
    ("request_scope", "status"),
    [
        (scope(path="/" + "a" * 60), 414),
        (scope(query=b"t=" + b"a" * 60), 414),
        (scope(headers=5), 431),
        (scope(value=b"v" * 40), 431),
    ],
)
def test_check_scope_refuses(request_scope: dict, status: int) -> None:
    refusal = check_scope(request_scope, LIMITS)
    assert refusal is not None
    assert refusal.status == status
