"""Test doubles for the core: a transport that records, a token verifier, a clock.

``FakeTransport`` is centrifuge's ``testTransport``: it records every frame the core
writes (decoded the way a JSON client reads them), the disconnect it was closed with,
and read pauses; it can be told to fail writes. Tests wait on it with explicit
conditions under a timeout, never with sleeps. ``ProtobufTransport`` is the same for a
Protobuf client: frames are parsed with centrifuge-python's compiled schema (the oracle).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from tests.support.server import timeout
from wirehub.brokers.base import HistoryOptions, HistoryPage
from wirehub.brokers.memory import MemoryBroker
from wirehub.config import Config, load_config
from wirehub.core.client import Client
from wirehub.core.events import Credentials, SubscriptionCredentials, TransportInfo
from wirehub.core.node import Node
from wirehub.errors import (
    DISCONNECT_INVALID_TOKEN,
    ERROR_PERMISSION_DENIED,
    ERROR_TOKEN_EXPIRED,
    Disconnect,
)
from wirehub.protocol.codec import Codec
from wirehub.protocol.json_codec import JSON_CODEC

__all__ = [
    "WAIT",
    "FakeClock",
    "FakeTransport",
    "FakeVerifier",
    "GatedBroker",
    "ProtobufTransport",
    "connect",
    "frame",
    "make_config",
    "pb_frame",
]

WAIT = timeout(2.0)
"""How long any single expected event may take (scaled for slow machines)."""


def make_config(**sections: Any) -> Config:
    """A Config from nested overrides, ignoring the environment."""
    return load_config(None, sections, environ=False)


def frame(*commands: dict[str, Any]) -> bytes:
    """Commands as a client sends them: compact JSON objects joined by newlines."""
    return b"\n".join(json.dumps(c, separators=(",", ":")).encode() for c in commands)


def decode_message(line: bytes) -> dict[str, Any]:
    """One line of a JSON frame; the codec never writes a blank line or a non-object."""
    assert line, "blank line inside a frame"
    assert b"\n" not in line
    message = json.loads(line)
    assert isinstance(message, dict), line
    return message


class FakeTransport:
    """Records what the core writes; optionally fails writes with ``write_error``."""

    def __init__(self, *, headers: dict[str, str] | None = None) -> None:
        self.info = TransportInfo("fake", "json", "203.0.113.7:5000", headers or {})
        self.frames: list[bytes] = []
        """Every frame written, as bytes."""
        self.closed_with: Disconnect | None = None
        self.close_calls = 0
        self.writes_after_close = 0
        self.reading_paused = False
        self.pause_reading_calls = 0
        self.resume_reading_calls = 0
        self.write_error: Exception | None = None
        """When set, ``write_frame`` raises it (a broken socket)."""
        self._read = 0
        self._changed = asyncio.Event()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message written, across frames, decoded as a JSON client reads them.

        Decoding happens here, on the test's side, so that a malformed frame fails the
        test instead of raising into the core.
        """
        return [decode_message(line) for data in self.frames for line in data.split(b"\n")]

    # Transport.

    def write_frame(self, data: bytes) -> None:
        if self.write_error is not None:
            raise self.write_error
        if self.closed_with is not None:
            self.writes_after_close += 1
            return
        self.frames.append(data)
        self._changed.set()

    def close(self, disconnect: Disconnect) -> None:
        self.close_calls += 1
        if self.closed_with is None:
            self.closed_with = disconnect
        self._changed.set()

    def pause_reading(self) -> None:
        self.reading_paused = True
        self.pause_reading_calls += 1
        self._changed.set()

    def resume_reading(self) -> None:
        self.reading_paused = False
        self.resume_reading_calls += 1
        self._changed.set()

    # Waiting.

    async def wait_for(self, condition: Callable[[], bool], wait: float = WAIT) -> None:
        """Return once ``condition()`` holds; fail after ``wait`` seconds."""
        async with asyncio.timeout(wait):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def next_message(self, wait: float = WAIT) -> dict[str, Any]:
        """The next message not yet returned, waiting for it if needed.

        Fails if the connection is closed before one arrives.
        """
        await self.wait_for(lambda: self._read < len(self.messages) or self.closed, wait)
        if self._read >= len(self.messages):
            raise AssertionError(f"closed with {self.closed_with!r} instead of a message")
        message = self.messages[self._read]
        self._read += 1
        return message

    async def wait_closed(self, wait: float = WAIT) -> Disconnect:
        await self.wait_for(lambda: self.closed, wait)
        assert self.closed_with is not None
        return self.closed_with

    @property
    def closed(self) -> bool:
        return self.closed_with is not None

    @property
    def unread(self) -> list[dict[str, Any]]:
        return self.messages[self._read :]


class FakeVerifier:
    """A TokenVerifier where the token spells the outcome.

    ``"user:42"`` -> user 42; ``"user:42:exp:1700000000"`` -> user 42 expiring then;
    ``"expired"`` -> error 109; a key of ``connections`` -> those credentials; anything
    else -> disconnect 3500.

    Subscription tokens: a key of ``subscriptions`` -> those credentials; ``"expired"``
    -> error 109; anything else -> error 103 (an invalid subscription token).
    """

    def __init__(
        self,
        info: Any = None,
        *,
        connections: dict[str, Credentials] | None = None,
        subscriptions: dict[str, SubscriptionCredentials] | None = None,
    ) -> None:
        self.info = info
        self.tokens: list[str] = []
        self.connections = dict(connections or {})
        self.subscriptions = dict(subscriptions or {})
        self.subscription_tokens: list[str] = []

    def verify_connect(self, token: str) -> Credentials:
        self.tokens.append(token)
        if token in self.connections:
            return self.connections[token]
        if token == "expired":
            raise ERROR_TOKEN_EXPIRED
        parts = token.split(":")
        if len(parts) == 2 and parts[0] == "user":
            return Credentials(user=parts[1], info=self.info)
        if len(parts) == 4 and parts[0] == "user" and parts[2] == "exp":
            return Credentials(user=parts[1], info=self.info, expire_at=int(parts[3]))
        raise DISCONNECT_INVALID_TOKEN

    def verify_subscription(self, token: str) -> SubscriptionCredentials:
        self.subscription_tokens.append(token)
        if token in self.subscriptions:
            return self.subscriptions[token]
        if token == "expired":
            raise ERROR_TOKEN_EXPIRED
        raise ERROR_PERMISSION_DENIED


def pb_frame(*commands: Any) -> bytes:
    """Commands (``client_pb2.Command``) as a Protobuf client sends them: each one
    prefixed by its varint length."""
    from google.protobuf.internal.encoder import _VarintBytes

    parts = []
    for command in commands:
        body = command.SerializeToString()
        parts.append(_VarintBytes(len(body)) + body)
    return b"".join(parts)


class ProtobufTransport(FakeTransport):
    """A FakeTransport for a Protobuf client: ``replies`` parses what the core wrote
    with centrifuge-python's compiled schema; ``messages`` gives them as dicts (bytes
    fields base64, 64-bit integers as strings: the proto3 JSON mapping), enough to
    wait on."""

    def __init__(self, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(headers=headers)
        self.info = TransportInfo("fake", "protobuf", "203.0.113.8:5000", headers or {})
        self._replies_read = 0

    @property
    def replies(self) -> list[Any]:
        """Every reply written, across frames, as ``client_pb2.Reply``."""
        from centrifuge.protocol import client_pb2 as pb
        from google.protobuf.internal.decoder import _DecodeVarint32

        replies = []
        for data in self.frames:
            pos = 0
            while pos < len(data):
                length, pos = _DecodeVarint32(data, pos)
                assert pos + length <= len(data), "a reply runs past the end of its frame"
                reply = pb.Reply()
                reply.ParseFromString(data[pos : pos + length])
                replies.append(reply)
                pos += length
        return replies

    @property
    def messages(self) -> list[dict[str, Any]]:
        from google.protobuf.json_format import MessageToDict

        return [MessageToDict(r, preserving_proto_field_name=True) for r in self.replies]

    async def next_reply(self, wait: float = WAIT) -> Any:
        """The next ``client_pb2.Reply`` not yet returned by this method."""
        await self.wait_for(lambda: self._replies_read < len(self.replies) or self.closed, wait)
        replies = self.replies
        if self._replies_read >= len(replies):
            raise AssertionError(f"closed with {self.closed_with!r} instead of a reply")
        reply = replies[self._replies_read]
        self._replies_read += 1
        return reply


class GatedBroker(MemoryBroker):
    """The memory broker, whose next ``history()`` call can be held at a gate.

    ``hold(read_first=...)`` arms the gate for the next history read: it waits for
    ``release()`` before reading the stream, or (``read_first=True``) after reading
    it, so a test can publish while a subscribe is between the two. ``entered`` is set
    once the read reached the gate. ``fail`` makes history raise it instead.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entered = asyncio.Event()
        self.fail: Exception | None = None
        self.history_calls: list[tuple[str, HistoryOptions]] = []
        self._gate: asyncio.Event | None = None
        """Armed for the next read; taken by it."""
        self._held: asyncio.Event | None = None
        self._read_first = False

    def hold(self, *, read_first: bool = False) -> None:
        self._gate = self._held = asyncio.Event()
        self._read_first = read_first
        self.entered.clear()

    def release(self) -> None:
        assert self._held is not None, "hold() first"
        self._held.set()

    async def wait_entered(self, wait: float = WAIT) -> None:
        async with asyncio.timeout(wait):
            await self.entered.wait()

    async def history(self, channel: str, options: HistoryOptions) -> HistoryPage:
        self.history_calls.append((channel, options))
        if self.fail is not None:
            raise self.fail
        gate, self._gate = self._gate, None
        if gate is None:
            return await super().history(channel, options)
        if self._read_first:
            page = await super().history(channel, options)
            self.entered.set()
            await gate.wait()
            return page
        self.entered.set()
        await gate.wait()
        return await super().history(channel, options)


class FakeClock:
    """Wall-clock seconds that move only when told."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def connect(
    node: Node,
    token: str = "user:42",
    *,
    transport: FakeTransport | None = None,
    command_id: int = 1,
    codec: Codec = JSON_CODEC,
) -> tuple[Client, FakeTransport]:
    """Attach a fake connection and connect it; fails unless the connect succeeds.

    With ``codec=PROTOBUF_CODEC`` the transport is a ``ProtobufTransport`` and the
    connect goes out, and its reply is read, in Protobuf.
    """
    if transport is None:
        transport = ProtobufTransport() if codec.binary else FakeTransport()
    client = node.attach(transport, codec)
    if codec.binary:
        from centrifuge.protocol import client_pb2 as pb

        pb_request = pb.ConnectRequest(token=token)
        client.handle_frame(pb_frame(pb.Command(id=command_id, connect=pb_request)))
        assert isinstance(transport, ProtobufTransport)
        pb_reply = await transport.next_reply()
        assert pb_reply.id == command_id, pb_reply
        assert pb_reply.HasField("connect"), pb_reply
        transport._read = transport._replies_read  # messages and replies are in step
        return client, transport
    request: dict[str, Any] = {"token": token} if token else {}
    client.handle_frame(frame({"connect": request, "id": command_id}))
    reply = await transport.next_message()
    assert reply.get("id") == command_id, reply
    assert "connect" in reply, reply
    return client, transport
