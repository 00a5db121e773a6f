"""A tiny raw WebSocket client over a plain socket, for tests that must break the rules.

It writes exactly the bytes it is told to: any opcode, FIN and RSV bits, masked or not,
a declared length that differs from the payload. It reads frames as they come, close
code and reason included. Every read has a deadline scaled by ``timeout()``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.server import timeout

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "TEXT",
    "Closed",
    "Frame",
    "HttpResponse",
    "RawWebSocket",
    "close_payload",
    "frame",
    "http_upgrade",
]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

READ_TIMEOUT = timeout(5.0)
_CHUNK = 65536


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """One client frame. ``rsv`` holds RSV1-3 as bits 0b100, 0b010, 0b001; ``length``
    overrides the declared payload length (the payload is still sent as given)."""
    declared = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 0b111) << 4 | (opcode & 0x0F)])
    mask_bit = 0x80 if mask else 0
    if declared < 126:
        head += bytes([mask_bit | declared])
    elif declared < 65536:
        head += struct.pack("!BH", mask_bit | 126, declared)
    else:
        head += struct.pack("!BQ", mask_bit | 127, declared)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _apply_mask(payload, key)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def _apply_mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes
    rsv: int = 0


@dataclass
class Closed:
    """The server's close frame, and the frames that came before it."""

    code: int
    reason: str
    before: list[Frame] = field(default_factory=list)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The JSON protocol messages of the text frames before the close."""
        return [m for f in self.before if f.opcode == TEXT for m in _json_lines(f.payload)]


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class _Reader:
    """Buffered reads with a deadline on a socket."""

    def __init__(self, sock: socket.socket, buffer: bytes = b"") -> None:
        self.sock = sock
        self.buffer = bytearray(buffer)

    def fill(self, deadline: float) -> bool:
        """Read more; False at EOF (a reset after everything was read counts as EOF)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the server sent nothing in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(_CHUNK)
        except ConnectionResetError:
            return False
        except TimeoutError:
            raise TimeoutError("the server sent nothing in time") from None
        self.buffer += chunk
        return bool(chunk)

    def exact(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            if not self.fill(deadline):
                raise EOFError(f"EOF after {len(self.buffer)} of {n} bytes")
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def until(self, marker: bytes, deadline: float) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            if not self.fill(deadline):
                raise EOFError(f"EOF before {marker!r}")
        data = bytes(self.buffer[: end + len(marker)])
        del self.buffer[: end + len(marker)]
        return data

    def at_eof(self, deadline: float) -> bool:
        """True if the server closed the TCP connection (with nothing more to read)."""
        if self.buffer:
            return False
        try:
            return not self.fill(deadline)
        except TimeoutError:
            return False


def _request(port: int, path: str, headers: Mapping[str, str | None]) -> bytes:
    fields: dict[str, str | None] = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    fields.update(headers)
    lines = [f"GET {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in fields.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_upgrade(
    port: int,
    path: str = "/connection/websocket",
    headers: Mapping[str, str | None] | None = None,
) -> tuple[HttpResponse, socket.socket, bytes]:
    """Send an upgrade request; a header given as None is left out. Returns the
    response, the socket and any bytes read past the response head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
    try:
        sock.sendall(_request(port, path, headers or {}))
        reader = _Reader(sock)
        deadline = time.monotonic() + READ_TIMEOUT
        head = reader.until(b"\r\n\r\n", deadline).decode("latin-1")
        status_line, *header_lines = head.split("\r\n")[:-2]
        parsed = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
        response = HttpResponse(int(status_line.split()[1]), parsed, b"")
        if response.status != 101:
            length = int(parsed.get("content-length", "0"))
            response.body = reader.exact(length, deadline)
        return response, sock, bytes(reader.buffer)
    except BaseException:
        sock.close()
        raise


class RawWebSocket:
    """An open WebSocket connection driven byte by byte."""

    def __init__(self, sock: socket.socket, buffer: bytes = b"") -> None:
        self.sock = sock
        self._reader = _Reader(sock, buffer)
        self._next_id = 1

    @classmethod
    def open(
        cls,
        port: int,
        path: str = "/connection/websocket",
        headers: Mapping[str, str | None] | None = None,
    ) -> RawWebSocket:
        response, sock, rest = http_upgrade(port, path, headers)
        if response.status != 101:
            sock.close()
            raise AssertionError(f"handshake refused: {response.status} {response.body!r}")
        return cls(sock, rest)

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # Writing.

    def send_raw(self, data: bytes) -> None:
        """Send bytes; a server that already hung up is not an error here (the test
        then reads what it answered)."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **options: Any) -> None:
        self.send_raw(frame(opcode, payload, **options))

    def send_text(self, data: bytes | str) -> None:
        self.send_frame(TEXT, data.encode() if isinstance(data, str) else data)

    def send_commands(self, *commands: dict[str, Any]) -> list[int]:
        """Send commands in one text frame, numbering those without an id."""
        ids = []
        for command in commands:
            if "id" not in command:
                command["id"] = self._next_id
                self._next_id += 1
            ids.append(command["id"])
        self.send_text("\n".join(json.dumps(c, separators=(",", ":")) for c in commands))
        return ids

    # Reading.

    def recv_frame(self, wait: float = READ_TIMEOUT) -> Frame:
        deadline = time.monotonic() + wait
        head = self._reader.exact(2, deadline)
        if head[1] & 0x80:
            raise AssertionError("the server sent a masked frame")
        length = head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._reader.exact(2, deadline))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._reader.exact(8, deadline))
        payload = self._reader.exact(length, deadline)
        return Frame(bool(head[0] & 0x80), head[0] & 0x0F, payload, (head[0] >> 4) & 0b111)

    def recv_messages(self, wait: float = READ_TIMEOUT) -> list[dict[str, Any]]:
        """The JSON messages of the next text frame (server pings included)."""
        received = self.recv_frame(wait)
        if received.opcode != TEXT:
            raise AssertionError(f"expected a text frame, got {received}")
        return _json_lines(received.payload)

    def recv_reply(self, command_id: int, wait: float = READ_TIMEOUT) -> dict[str, Any]:
        """Read until the reply to ``command_id``; other messages are dropped."""
        deadline = time.monotonic() + wait
        while True:
            for message in self.recv_messages(deadline - time.monotonic()):
                if message.get("id") == command_id:
                    return message

    def connect(self) -> dict[str, Any]:
        """Connect anonymously; return the connect result."""
        (command_id,) = self.send_commands({"connect": {}})
        reply = self.recv_reply(command_id)
        assert "connect" in reply, reply
        return dict(reply["connect"])

    def recv_close(self, wait: float = READ_TIMEOUT) -> Closed:
        """Read until the server's close frame; answer it as a client should."""
        deadline = time.monotonic() + wait
        before = []
        while True:
            received = self.recv_frame(deadline - time.monotonic())
            if received.opcode == CLOSE:
                break
            before.append(received)
        payload = received.payload
        if len(payload) >= 2:
            (code,) = struct.unpack("!H", payload[:2])
            closed = Closed(code, payload[2:].decode(), before)
        else:
            closed = Closed(1005, "", before)
        self.send_frame(CLOSE, payload[:2])
        return closed

    def expect_close(self, code: int, wait: float = READ_TIMEOUT) -> Closed:
        """The server closes with ``code`` (35xx with a reason) and then ends TCP."""
        closed = self.recv_close(wait)
        assert closed.code == code, f"expected close {code}, got {closed}"
        if 3500 <= code < 4000:
            assert closed.reason, f"close {code} carries no reason"
        self.expect_eof()
        return closed

    def expect_eof(self, wait: float = READ_TIMEOUT) -> None:
        deadline = time.monotonic() + wait
        assert self._reader.at_eof(deadline), "the server kept the TCP connection open"


def _json_lines(payload: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in payload.split(b"\n") if line.strip()]
