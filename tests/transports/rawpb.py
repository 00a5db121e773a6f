"""A raw Protobuf client over :mod:`tests.transports.rawws`, and JSON helpers, for tests
against a real server. Commands are built and replies parsed with the schema compiled
by centrifuge-python (the oracle), not with wirehub's codec."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from centrifuge.protocol import client_pb2 as pb

from tests.support.server import timeout
from tests.transports.rawws import BINARY, HttpResponse, RawWebSocket, http_upgrade

__all__ = [
    "PROTOBUF",
    "PbClient",
    "json_client_receives",
    "json_subscribe",
    "open_upgrade",
    "pb_frame",
    "pb_replies",
    "read_varint",
    "varint",
]

WAIT = timeout(5.0)
PROTOBUF = "centrifuge-protobuf"


# Protobuf framing, by hand: every record is prefixed by its varint length (§1.3).


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def pb_frame(*commands: pb.Command) -> bytes:
    return b"".join(varint(len(body)) + body for body in (c.SerializeToString() for c in commands))


def pb_replies(payload: bytes) -> list[pb.Reply]:
    """Parse a frame of varint-delimited replies; the records must fill it exactly."""
    replies, pos = [], 0
    while pos < len(payload):
        length, pos = read_varint(payload, pos)
        assert pos + length <= len(payload), f"a record runs past its frame: {payload!r}"
        reply = pb.Reply()
        reply.ParseFromString(payload[pos : pos + length])
        replies.append(reply)
        pos += length
    return replies


class PbClient:
    """A raw protobuf client: binary frames out, binary frames (checked) in."""

    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self._inbox: list[pb.Reply] = []  # received, not yet taken
        self._next_id = 1

    def send(self, *commands: pb.Command) -> list[int]:
        """Send commands in one binary frame, numbering them; return their ids."""
        ids = []
        for command in commands:
            command.id = self._next_id
            ids.append(self._next_id)
            self._next_id += 1
        self.ws.send_frame(BINARY, pb_frame(*commands))
        return ids

    def recv(self, wait: float = WAIT) -> list[pb.Reply]:
        """The replies of the next frame, which must be binary."""
        received = self.ws.recv_frame(wait)
        assert received.opcode == BINARY, f"expected a binary frame, got {received}"
        return pb_replies(received.payload)

    def take(self, predicate: Callable[[pb.Reply], bool], wait: float = WAIT) -> pb.Reply:
        """The first reply received that matches; server pings are answered, as SDKs do."""
        deadline = time.monotonic() + wait
        while True:
            for reply in self._inbox:
                if predicate(reply):
                    self._inbox.remove(reply)
                    return reply
            for reply in self.recv(deadline - time.monotonic()):
                if reply.ByteSize():
                    self._inbox.append(reply)
                else:
                    self.ws.send_frame(BINARY, b"\x00")  # the pong: an empty Command

    def recv_reply(self, command_id: int, wait: float = WAIT) -> pb.Reply:
        return self.take(lambda reply: reply.id == command_id, wait)

    def recv_publication(self, channel: str, wait: float = WAIT) -> pb.Publication:
        def matches(reply: pb.Reply) -> bool:
            return reply.push.channel == channel and reply.push.HasField("pub")

        return self.take(matches, wait).push.pub

    def connect(self) -> pb.ConnectResult:
        (command_id,) = self.send(pb.Command(connect=pb.ConnectRequest()))
        reply = self.recv_reply(command_id)
        assert reply.HasField("connect"), reply
        return reply.connect

    def subscribe(self, channel: str) -> None:
        (command_id,) = self.send(pb.Command(subscribe=pb.SubscribeRequest(channel=channel)))
        assert self.recv_reply(command_id).HasField("subscribe")

    def publish(self, channel: str, data: bytes) -> None:
        request = pb.PublishRequest(channel=channel, data=data)
        (command_id,) = self.send(pb.Command(publish=request))
        reply = self.recv_reply(command_id)
        assert reply.HasField("publish"), reply


def open_upgrade(
    port: int, path: str = "/connection/websocket", **headers: str
) -> tuple[HttpResponse, RawWebSocket]:
    """Upgrade with extra headers (``Sec_WebSocket_Protocol="..."``); 101 expected."""
    fields = {name.replace("_", "-"): value for name, value in headers.items()}
    response, sock, rest = http_upgrade(port, path, fields)
    ws = RawWebSocket(sock, rest)
    if response.status != 101:
        ws.close()
        raise AssertionError(f"handshake refused: {response.status} {response.body!r}")
    return response, ws


def json_client_receives(ws: RawWebSocket, channel: str, wait: float = WAIT) -> Any:
    """The data of the next publication in ``channel`` a JSON client receives."""
    deadline = time.monotonic() + wait
    while True:
        for message in ws.recv_messages(deadline - time.monotonic()):
            push = message.get("push", {})
            if push.get("channel") == channel and "pub" in push:
                return push["pub"]["data"]


def json_subscribe(ws: RawWebSocket, channel: str) -> None:
    (command_id,) = ws.send_commands({"subscribe": {"channel": channel}})
    assert "subscribe" in ws.recv_reply(command_id)
