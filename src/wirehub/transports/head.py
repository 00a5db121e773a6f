"""Limits on an HTTP/1.1 request head, counted on raw bytes before any parser holds them.

Pure (no I/O): :class:`HeadScanner` is fed the bytes of a connection as they arrive and
says where the head ends, or raises :class:`HeadTooLarge` as soon as a limit is passed,
having looked at no more than the bytes it was given. uvicorn's parser (httptools) keeps
the URL and every header line in full whatever their size; the standalone server puts
this scanner in front of it (:mod:`wirehub.transports.http`), and the embedded app
applies the same limits to what the host server hands over (:func:`check_scope`).

Rules (websockets' limits, with a total like nginx's):

1. A line ends at LF; its size is what comes before the LF (a CR included). Empty lines
   before the request line are skipped (RFC 9112 §2.2) but count towards the head.
2. The request line holds at most ``request_line`` bytes, else 414.
3. Each header line holds at most ``header_line`` bytes, else 431; there are at most
   ``header_count`` header lines, else 431.
4. The head, request line through the empty line that ends it, holds at most ``head``
   bytes, else 431.
5. A limit is checked as soon as it can be passed: a line is refused while it is still
   arriving, not when its LF comes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wirehub.config import ServerConfig

__all__ = ["HeadLimits", "HeadScanner", "HeadTooLarge", "check_scope", "head_limits"]

_CR = 0x0D


@dataclass(frozen=True, slots=True)
class HeadLimits:
    request_line: int = 8192
    header_line: int = 8192
    header_count: int = 128
    head: int = 32_768


def head_limits(config: ServerConfig) -> HeadLimits:
    """The request-head limits of the ``server`` section."""
    return HeadLimits(
        request_line=config.request_line_size_limit,
        header_line=config.header_line_size_limit,
        header_count=config.header_count_limit,
        head=config.request_head_size_limit,
    )


class HeadTooLarge(Exception):
    """The head passed a limit: answer ``status`` (414 or 431) and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HeadScanner:
    """Follows one request head at a time over a connection's bytes."""

    __slots__ = ("_blank", "_limits", "_line", "_lines", "_size")

    def __init__(self, limits: HeadLimits) -> None:
        self._limits = limits
        self._size = 0  # bytes of this head so far
        self._lines = 0  # complete lines, the request line included
        self._line = 0  # bytes of the line being received
        self._blank = True  # that line is empty so far, or a lone CR

    @property
    def started(self) -> bool:
        """Some byte of the current head arrived."""
        return self._size > 0

    def reset(self) -> None:
        """Start over for the next request's head."""
        self._size = self._lines = self._line = 0
        self._blank = True

    def feed(self, data: bytes, start: int = 0) -> int:
        """Scan ``data[start:]``; return the index just past the head's end, or -1 if the
        head goes on in later data.

        Raises:
            HeadTooLarge: a limit is passed within the scanned bytes.
        """
        end = len(data)
        pos = start
        while pos < end:
            newline = data.find(b"\n", pos)
            stop = end if newline < 0 else newline
            if stop > pos:
                self._blank = self._line == 0 and stop - pos == 1 and data[pos] == _CR
            self._line += stop - pos
            self._check_line()
            if newline < 0:
                self._grow(end - pos)
                return -1
            self._grow(newline + 1 - pos)
            pos = newline + 1
            if self._line_done():
                return pos
        return -1

    def _grow(self, count: int) -> None:
        self._size += count
        if self._size > self._limits.head:
            raise HeadTooLarge(431, f"request head larger than {self._limits.head} bytes")

    def _check_line(self) -> None:
        limits = self._limits
        if self._lines == 0:
            if self._line > limits.request_line:
                raise HeadTooLarge(414, f"request line longer than {limits.request_line} bytes")
        elif self._line > limits.header_line:
            raise HeadTooLarge(431, f"header line longer than {limits.header_line} bytes")

    def _line_done(self) -> bool:
        """A line ended; True if it was the empty line ending the head."""
        empty, self._blank, self._line = self._blank, True, 0
        if not empty:
            self._lines += 1
            if self._lines - 1 > self._limits.header_count:
                raise HeadTooLarge(431, f"more than {self._limits.header_count} headers")
            return False
        return self._lines > 0  # an empty line before the request line is skipped


def check_scope(scope: Mapping[str, Any], limits: HeadLimits) -> HeadTooLarge | None:
    """The same limits applied to an ASGI scope (embedded mode: the host server parsed
    the request). Returns the refusal, or ``None``; sizes are rebuilt as on the wire."""
    target = len(scope.get("raw_path") or scope.get("path", "").encode())
    query = scope.get("query_string") or b""
    method = scope.get("method", "GET")
    request_line = len(method) + 1 + target + (len(query) + 1 if query else 0) + 9
    if request_line > limits.request_line:
        return HeadTooLarge(414, f"request line longer than {limits.request_line} bytes")
    return _check_headers(scope.get("headers") or (), limits, request_line + 2)


def _check_headers(
    headers: Iterable[tuple[bytes, bytes]], limits: HeadLimits, size: int
) -> HeadTooLarge | None:
    for count, (name, value) in enumerate(headers, start=1):
        line = len(name) + 2 + len(value)
        size += line + 2
        if count > limits.header_count:
            return HeadTooLarge(431, f"more than {limits.header_count} headers")
        if line > limits.header_line:
            return HeadTooLarge(431, f"header line longer than {limits.header_line} bytes")
    if size + 2 > limits.head:
        return HeadTooLarge(431, f"request head larger than {limits.head} bytes")
    return None
