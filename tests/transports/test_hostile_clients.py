"""One client must not hurt the others: attacks from the first audit of ``wirehub serve``
(reliability.md C4 A1-A4, C3 P6), against a real server process, raw sockets in JSON
and Protobuf.

- A1/A2: payloads the JSON protocol can't carry get 107; subscribers of both protocols
  stay connected and keep receiving; history and recovery across the offsets work.
- P6: a command flood from one connection gets 111, then 3013.
- A3: pipelined frames are processed with backpressure: readers are never closed (not
  for others' publications, not for their own replies); a reader that does not read
  still gets 3008.
- A4: a flood on one channel does not starve another channel's subscribers.

A well-behaved "bystander" client publishes to itself on its own channel throughout
each attack; the test asserts it was served (its latencies are recorded with
``record_property``, never compared with a threshold).
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from centrifuge.protocol import client_pb2 as pb

from tests.protocol.test_payload import nested
from tests.support.server import ServerProcess, timeout
from tests.transports.rawpb import PROTOBUF, PbClient, open_upgrade
from tests.transports.rawws import CLOSE, TEXT, RawWebSocket, frame
from wirehub.protocol.payload import MAX_JSON_DEPTH

WAIT = timeout(10.0)

NAMESPACE = """
[[channel.namespaces]]
name = "{name}"
history_size = 1000
history_ttl = 300
force_recovery = true
publication_data_format = "{data_format}"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_client = true
allow_publish_for_anonymous = true
allow_history_for_client = true
allow_history_for_anonymous = true
"""

CONFIG = """
[client]
allow_anonymous_connect_without_token = true
{client}
""" + "".join(
    NAMESPACE.format(name=name, data_format=data_format)
    for name, data_format in (("chat", ""), ("bin", "binary"))
)

# A1/A2 and P6: rate limits low enough to reach in a test, in time units no test waits
# for (a token every 90 s): the counts below do not depend on the machine's speed.
HOSTILE = """
[client.rate_limit.client_command.total]
enabled = true
buckets = [{interval = 36000.0, rate = 400}]

[client.rate_limit.client_command.refused]
interval = 36000.0
rate = 50
"""

# A3/A4: no rate limit (backpressure alone), a queue small enough that a frame's
# publications, queued in one tick as they used to be, would pass it.
PIPELINED = """
queue_max_size = 65536

[client.rate_limit.client_command]
enabled = false
"""


def start(tmp_path_factory: pytest.TempPathFactory, name: str, client: str) -> ServerProcess:
    path: Path = tmp_path_factory.mktemp(name) / "wirehub.toml"
    path.write_text(CONFIG.format(client=client), encoding="utf-8")
    return ServerProcess(path).start()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start(tmp_path_factory, "hostile", HOSTILE)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pipelined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start(tmp_path_factory, "pipelined", PIPELINED)
    try:
        yield server
    finally:
        server.stop()


def channel(namespace: str = "chat") -> str:
    return f"{namespace}:{uuid.uuid4().hex[:12]}"


# Helpers: JSON clients that read in the background.


class Bystander:
    """A well-behaved client publishing to itself on its own channel, one publication
    at a time, recording each round trip, in a thread, until stopped."""

    def __init__(self, port: int) -> None:
        self.ws = RawWebSocket.open(port)
        self.ws.connect()
        self.channel = channel()
        (sub_id,) = self.ws.send_commands({"subscribe": {"channel": self.channel}})
        assert "subscribe" in self.ws.recv_reply(sub_id)
        self.latencies: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Bystander:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.ws.close()

    def _run(self) -> None:
        try:
            n = 0
            while not self._stop.is_set():
                n += 1
                sent = time.monotonic()
                (pub_id,) = self.ws.send_commands({"publish": {"channel": self.channel, "data": n}})
                replied = delivered = False
                while not (replied and delivered):
                    for message in self.ws.recv_messages(WAIT):
                        assert "error" not in message, message
                        replied = replied or message.get("id") == pub_id
                        pub = message.get("push", {}).get("pub")
                        delivered = delivered or (pub is not None and pub["data"] == n)
                self.latencies.append(time.monotonic() - sent)
                self._stop.wait(0.02)
        except BaseException as exc:  # reported by served()
            self.error = exc

    def served(self, record: Callable[[str, object], None], *, during: int = 1) -> None:
        """Assert the bystander was served throughout (at least ``during`` round trips)."""
        deadline = time.monotonic() + WAIT
        while len(self.latencies) < during and self.error is None:
            assert time.monotonic() < deadline, "the bystander got no round trip"
            time.sleep(0.01)
        assert self.error is None, f"the bystander failed: {self.error!r}"
        record("bystander_round_trips", len(self.latencies))
        record("bystander_p50_ms", round(statistics.median(self.latencies) * 1000, 2))
        record("bystander_max_ms", round(max(self.latencies) * 1000, 2))


class Counter:
    """A JSON subscriber that reads in a thread and counts the pushes of its channel,
    without parsing them; it stops at ``expected`` or at a close."""

    def __init__(self, port: int, chan: str) -> None:
        self.ws = RawWebSocket.open(port)
        self.ws.connect()
        (sub_id,) = self.ws.send_commands({"subscribe": {"channel": chan}})
        assert "subscribe" in self.ws.recv_reply(sub_id)
        self.marker = b'"push":{"channel":"%s","pub"' % chan.encode()
        self.count = 0
        self.closed: int | None = None
        self.expected = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, expected: int) -> None:
        self.expected = expected
        self._thread.start()

    def _run(self) -> None:
        while self.count < self.expected:
            received = self.ws.recv_frame(WAIT)
            if received.opcode == CLOSE:
                self.closed = int.from_bytes(received.payload[:2], "big")
                return
            if received.opcode == TEXT:
                self.count += received.payload.count(self.marker)

    def join(self) -> None:
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), f"still reading: {self.count}/{self.expected}"
        self.ws.close()


def json_publish_raw(ws: RawWebSocket, chan: str, data: bytes, command_id: int) -> dict[str, Any]:
    ws.send_text(
        b'{"id":%d,"publish":{"channel":"%s","data":%s}}' % (command_id, chan.encode(), data)
    )
    return ws.recv_reply(command_id)


def json_recv_pub(ws: RawWebSocket, chan: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        for message in ws.recv_messages(deadline - time.monotonic()):
            push = message.get("push", {})
            if push.get("channel") == chan and "pub" in push:
                return dict(push["pub"])


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY: Any = _Any()


def pb_publish(client: PbClient, chan: str, data: bytes) -> pb.Reply:
    (command_id,) = client.send(pb.Command(publish=pb.PublishRequest(channel=chan, data=data)))
    return client.recv_reply(command_id)


# A1, A2: payloads the JSON protocol can't carry.

REFUSED = [
    pytest.param("json", b"1e999999", id="1e999999"),
    pytest.param("json", b"-1e999999", id="-1e999999"),
    pytest.param("json", b"9" * 5000, id="5000-digit-integer"),
    pytest.param("json", nested(MAX_JSON_DEPTH + 1), id="nested-too-deep"),
    pytest.param("protobuf", b"\x00\xff\xfebinary", id="protobuf-binary"),
    pytest.param("protobuf", b"1e999999", id="protobuf-1e999999"),
]


@pytest.mark.parametrize(("protocol", "data"), REFUSED)
def test_unparseable_payload_is_refused_and_subscribers_keep_everything(
    hostile: ServerProcess, protocol: str, data: bytes, record_property: Any
) -> None:
    """107 to the attacker; JSON and Protobuf subscribers (recovering, positioned) stay
    connected and receive the next publication at the next offset; history and a
    recovery across those offsets hold exactly the good publications."""
    chan = channel()
    port = hostile.port
    _, raw_pb = open_upgrade(port, Sec_WebSocket_Protocol=PROTOBUF)
    with Bystander(port) as bystander, RawWebSocket.open(port) as json_sub, raw_pb:
        pb_sub = PbClient(raw_pb)
        pb_sub.connect()
        pb_sub.subscribe(chan)
        json_sub.connect()
        (sub_id,) = json_sub.send_commands({"subscribe": {"channel": chan}})
        epoch = json_sub.recv_reply(sub_id)["subscribe"]["epoch"]

        with RawWebSocket.open(port) as attacker:
            attacker.connect()
            assert "publish" in json_publish_raw(attacker, chan, b'"before"', 50)
            if protocol == "json":
                reply = json_publish_raw(attacker, chan, data, 51)
                assert reply["error"]["code"] == 107, reply
            else:
                _, raw = open_upgrade(port, Sec_WebSocket_Protocol=PROTOBUF)
                with raw:
                    pb_attacker = PbClient(raw)
                    pb_attacker.connect()
                    assert pb_publish(pb_attacker, chan, data).error.code == 107
            assert "publish" in json_publish_raw(attacker, chan, b'"after"', 52)

        assert json_recv_pub(json_sub, chan) == {"data": "before", "offset": 1, "info": ANY}
        assert json_recv_pub(json_sub, chan)["offset"] == 2  # "after": no hole, no poison
        assert [pb_sub.recv_publication(chan).data for _ in range(2)] == [b'"before"', b'"after"']

        with RawWebSocket.open(port) as late:
            late.connect()
            (hist_id,) = late.send_commands({"history": {"channel": chan, "limit": -1}})
            history = late.recv_reply(hist_id)["history"]
            assert [p["data"] for p in history["publications"]] == ["before", "after"]
            request = {"channel": chan, "recover": True, "offset": 0, "epoch": epoch}
            (rec_id,) = late.send_commands({"subscribe": request})
            result = late.recv_reply(rec_id)["subscribe"]
            assert result["recovered"] is True
            assert [p["offset"] for p in result["publications"]] == [1, 2]
        bystander.served(record_property)
    assert "Traceback" not in hostile.log


@pytest.mark.parametrize(
    ("protocol", "data", "json_data"),
    [
        pytest.param("json", nested(MAX_JSON_DEPTH), None, id="deep-but-allowed"),
        pytest.param("protobuf", b'{"a":\n[1,\n2]}\n', {"a": [1, 2]}, id="raw-newlines"),
    ],
)
def test_accepted_payload_reaches_both_protocols_and_recovers(
    hostile: ServerProcess, protocol: str, data: bytes, json_data: Any
) -> None:
    chan = channel()
    port = hostile.port
    _, raw_pb = open_upgrade(port, Sec_WebSocket_Protocol=PROTOBUF)
    with RawWebSocket.open(port) as json_sub, raw_pb:
        pb_sub = PbClient(raw_pb)
        pb_sub.connect()
        pb_sub.subscribe(chan)
        json_sub.connect()
        (sub_id,) = json_sub.send_commands({"subscribe": {"channel": chan}})
        epoch = json_sub.recv_reply(sub_id)["subscribe"]["epoch"]
        if protocol == "json":
            with RawWebSocket.open(port) as publisher:
                publisher.connect()
                assert json_publish_raw(publisher, chan, data, 9) == {"id": 9, "publish": {}}
        else:
            assert pb_publish(pb_sub, chan, data).HasField("publish")
        stored = data.replace(b"\n", b"")
        pub = json_recv_pub(json_sub, chan)
        assert pub["offset"] == 1
        if json_data is not None:
            assert pub["data"] == json_data
        assert pb_sub.recv_publication(chan).data == stored
        with RawWebSocket.open(port) as late:
            late.connect()
            request = {"channel": chan, "recover": True, "offset": 0, "epoch": epoch}
            (rec_id,) = late.send_commands({"subscribe": request})
            result = late.recv_reply(rec_id)["subscribe"]
            assert result["recovered"] is True
            assert result["publications"][0]["data"] == pub["data"]


def test_binary_channel_refuses_json_subscribers_keeps_protobuf(hostile: ServerProcess) -> None:
    chan = channel("bin")
    _, raw_pb = open_upgrade(hostile.port, Sec_WebSocket_Protocol=PROTOBUF)
    with RawWebSocket.open(hostile.port) as json_ws, raw_pb:
        json_ws.connect()
        (sub_id,) = json_ws.send_commands({"subscribe": {"channel": chan}})
        assert json_ws.recv_reply(sub_id)["error"]["code"] == 107
        pb_client = PbClient(raw_pb)
        pb_client.connect()
        pb_client.subscribe(chan)
        assert pb_publish(pb_client, chan, b"\x00\xff\n").HasField("publish")
        assert pb_client.recv_publication(chan).data == b"\x00\xff\n"
        assert json_publish_raw(json_ws, chan, b'{"from":"json"}', 7) == {"id": 7, "publish": {}}
        assert pb_client.recv_publication(chan).data == b'{"from":"json"}'


# P6: a command flood from one connection.


def test_command_flood_gets_111_then_3013(hostile: ServerProcess, record_property: Any) -> None:
    chan = channel()
    with Bystander(hostile.port) as bystander:
        subscriber = Counter(hostile.port, chan)
        with RawWebSocket.open(hostile.port) as attacker:
            attacker.connect()  # 1 of the 400 tokens
            subscriber.start(399)
            attacker.send_raw(publish_frames(chan, 2000))
            closed = attacker.recv_close(WAIT)
            assert (closed.code, closed.reason) == (3013, "too many requests")
            errors = [m for m in closed.messages if "error" in m]
            assert {m["error"]["code"] for m in errors} == {111}
            assert all(m["error"]["temporary"] for m in errors)
            assert sum("publish" in m for m in closed.messages) == 399
        subscriber.join()
        assert subscriber.count == 399
        assert subscriber.closed is None
        bystander.served(record_property)


def _text_frame(payload: bytes) -> bytes:
    return frame(TEXT, payload)


# A3: pipelined frames and backpressure.


def publish_frames(chan: str, count: int, pad: int = 0, limit: int = 60_000) -> bytes:
    """``count`` publish commands in as few text frames as fit under ``limit`` bytes."""
    data = '{"n":%d,"p":"' + "x" * pad + '"}'
    commands = [
        f'{{"id":{i + 10},"publish":{{"channel":"{chan}","data":{data % i}}}}}'.encode()
        for i in range(count)
    ]
    frames, current, size = [], [], 0
    for command in commands:
        if size + len(command) + 1 > limit:
            frames.append(_text_frame(b"\n".join(current)))
            current, size = [], 0
        current.append(command)
        size += len(command) + 1
    frames.append(_text_frame(b"\n".join(current)))
    return b"".join(frames)


def test_pipelined_publishes_never_close_readers(
    pipelined: ServerProcess, record_property: Any
) -> None:
    """2605 publishes sent at once, 50 reading subscribers: every one gets every
    publication (they used to be queued in one tick, past queue_max_size: 3008)."""
    chan = channel()
    port = pipelined.port
    with Bystander(port) as bystander:
        subscribers = [Counter(port, chan) for _ in range(50)]
        for subscriber in subscribers:
            subscriber.start(2605)
        with RawWebSocket.open(port) as publisher:
            publisher.connect()
            publisher.send_raw(publish_frames(chan, 2605))
            assert "publish" in publisher.recv_reply(2614, WAIT)
        for subscriber in subscribers:
            subscriber.join()
        assert [s.closed for s in subscribers] == [None] * 50
        assert [s.count for s in subscribers] == [2605] * 50
        bystander.served(record_property)


def test_pipelined_history_reaches_its_reading_sender(pipelined: ServerProcess) -> None:
    """Ten history calls in one small frame, replies of ~50 KB each (queue_max_size is
    64 KB): the sender, reading, gets all ten (it used to be closed with 3008)."""
    chan = channel()
    with RawWebSocket.open(pipelined.port) as ws:
        ws.connect()
        ws.send_raw(publish_frames(chan, 120, pad=300))
        ws.recv_reply(129, WAIT)
        calls = [{"history": {"channel": chan, "limit": -1}, "id": 1000 + i} for i in range(10)]
        ws.send_commands(*calls)
        for i in range(10):
            history = ws.recv_reply(1000 + i, WAIT)["history"]
            assert len(history["publications"]) == 120


def test_a_subscriber_that_does_not_read_gets_3008(pipelined: ServerProcess) -> None:
    """The flood reaches a subscriber that never reads: once the socket buffers are
    full, its queue passes queue_max_size and it is closed with 3008; a reading
    subscriber of the same channel gets everything."""
    chan = channel()
    port = pipelined.port
    stalled = RawWebSocket.open(port)
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    count = 10_000  # 10 MB: more than the kernel's buffers can hold (4 MB send buffer)
    with stalled:
        stalled_id = stalled.connect()["client"]
        (sub_id,) = stalled.send_commands({"subscribe": {"channel": chan}})
        assert "subscribe" in stalled.recv_reply(sub_id)
        reader = Counter(port, chan)
        reader.start(count)
        with RawWebSocket.open(port) as publisher:
            publisher.connect()
            publisher.send_raw(publish_frames(chan, count, pad=1000))
            publisher.recv_reply(count + 9, WAIT)
        reader.join()
        assert (reader.count, reader.closed) == (count, None)
        pipelined.wait_for(f"client {stalled_id} is too slow")


# A4: fairness.


def test_flood_on_one_channel_does_not_starve_another(
    pipelined: ServerProcess, record_property: Any
) -> None:
    """While a flood of 40000 publications to channel X is being fanned out, the
    bystander on its own channel keeps its round trips going: it is served before the
    flood is over."""
    chan = channel()
    port = pipelined.port
    flooded = [Counter(port, chan) for _ in range(5)]
    for subscriber in flooded:
        subscriber.start(40_000)
    with RawWebSocket.open(port) as flooder:
        flooder.connect()
        frames = publish_frames(chan, 40_000)
        with Bystander(port) as bystander:
            before = len(bystander.latencies)
            sender = threading.Thread(target=flooder.send_raw, args=(frames,), daemon=True)
            sender.start()  # sendall blocks while the server works through the flood
            bystander.served(record_property, during=before + 2)
            during_flood = min(s.count for s in flooded) < 40_000
            sender.join(WAIT)
            flooder.recv_reply(20_009, WAIT)
        for subscriber in flooded:
            subscriber.join()
        assert [s.count for s in flooded] == [40_000] * 5
    record_property("bystander_served_before_the_flood_ended", during_flood)
    assert during_flood
