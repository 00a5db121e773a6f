"""A tiny raw HTTP/1.1 client over a plain socket, curl-like, for the streaming transports.

It sends exactly the request it is given and reads the answer as it comes: the head,
then the body, chunked or not. A streaming body is read message by message: lines of
JSON (HTTP-streaming) or ``data:`` events (SSE). Every read has a deadline scaled by
``timeout()``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.transports.rawws import READ_TIMEOUT, _Reader

__all__ = ["RawStream", "Response", "request"]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


def _request_bytes(
    port: int, method: str, path: str, headers: Mapping[str, str | None], body: bytes
) -> bytes:
    fields: dict[str, str | None] = {"Host": f"127.0.0.1:{port}"}
    if body or method in ("POST", "PUT"):
        fields["Content-Length"] = str(len(body))
    fields.update(headers)
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in fields.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawStream:
    """One request and its (maybe never-ending) response."""

    def __init__(self, sock: socket.socket, response: Response, reader: _Reader) -> None:
        self.sock = sock
        self.response = response
        self._reader = reader
        self._chunked = response.headers.get("transfer-encoding", "").lower() == "chunked"
        self._body = bytearray()
        self._ended = False

    @classmethod
    def open(
        cls,
        port: int,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str | None] | None = None,
        body: bytes = b"",
        send: bool = True,
    ) -> RawStream:
        """Send the request (all of it unless ``send`` is False: then only the head) and
        read the response head."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
        try:
            data = _request_bytes(port, method, path, headers or {}, body)
            sock.sendall(data if send else data[: len(data) - len(body)])
            reader = _Reader(sock)
            deadline = time.monotonic() + READ_TIMEOUT
            head = reader.until(b"\r\n\r\n", deadline).decode("latin-1")
            status_line, *lines = head.split("\r\n")[:-2]
            raw = [(n.strip().lower(), v.strip()) for n, _, v in (x.partition(":") for x in lines)]
            response = Response(int(status_line.split()[1]), dict(raw), raw_headers=raw)
            return cls(sock, response, reader)
        except BaseException:
            sock.close()
            raise

    def __enter__(self) -> RawStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    @property
    def status(self) -> int:
        return self.response.status

    def read_all(self, wait: float = READ_TIMEOUT) -> bytes:
        """The whole body of a response that ends."""
        deadline = time.monotonic() + wait
        while self._more(deadline):
            pass
        return bytes(self._body)

    def _more(self, deadline: float) -> bool:
        """Read the next piece of the body into the buffer; False once it ended."""
        if self._ended:
            return False
        reader = self._reader
        if not self._chunked:
            length = self.response.headers.get("content-length")
            if length is not None:
                self._body += reader.exact(int(length), deadline)
                self._ended = True
                return True
            if not reader.fill(deadline):
                self._ended = True
                return False
            self._body += reader.buffer
            reader.buffer.clear()
            return True
        size = int(reader.until(b"\r\n", deadline)[:-2].split(b";")[0], 16)
        if size == 0:
            reader.until(b"\r\n", deadline)
            self._ended = True
            return False
        self._body += reader.exact(size, deadline)
        reader.exact(2, deadline)
        return True

    def next_message(self, wait: float = READ_TIMEOUT) -> dict[str, Any] | None:
        """The next JSON message of a newline-delimited stream, or of an SSE stream
        (``data:`` events); ``None`` at the end of the response."""
        deadline = time.monotonic() + wait
        while True:
            message = self._cut_message()
            if message is not None:
                return message
            if not self._more(deadline):
                return self._cut_message()

    def _cut_message(self) -> dict[str, Any] | None:
        body = self._body
        sse = self.response.headers.get("content-type", "").startswith("text/event-stream")
        while True:
            end = body.find(b"\n\n" if sse else b"\n")
            if end < 0:
                return None
            item = bytes(body[:end]).strip()
            del body[: end + (2 if sse else 1)]
            if not item:
                continue  # SSE: the opening \r\n
            if sse:
                assert item.startswith(b"data: "), item
                assert b"\n" not in item, f"one data line per event: {item!r}"
                item = item[len(b"data: ") :]
            result: dict[str, Any] = json.loads(item)
            return result

    def messages_until_end(self, wait: float = READ_TIMEOUT) -> list[dict[str, Any]]:
        """Every message left, reading until the server ends the response."""
        deadline = time.monotonic() + wait
        messages = []
        while (message := self.next_message(deadline - time.monotonic())) is not None:
            messages.append(message)
        return messages

    def at_eof(self, wait: float = READ_TIMEOUT) -> bool:
        return self._reader.at_eof(time.monotonic() + wait)


def request(
    port: int,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str | None] | None = None,
    body: bytes = b"",
) -> Response:
    """A request whose response ends; the response with its body."""
    with RawStream.open(port, method, path, headers=headers, body=body) as stream:
        if stream.status == 204 or method == "HEAD":
            return stream.response
        stream.response.body = stream.read_all()
        return stream.response
