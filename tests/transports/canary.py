"""A well-behaved client that keeps using the server while a test attacks it.

:class:`Canary` connects (raw WebSocket, JSON), subscribes to a channel of its own and,
from a background thread, publishes into it one message at a time, timing each one from
the publish to its delivery back. The test attacks meanwhile, then asserts with
:meth:`Canary.served_since` that the canary's connection survived and that deliveries
went on after the attack began. Latencies are recorded, never asserted on.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from tests.support.server import timeout
from tests.transports.rawws import RawWebSocket

__all__ = ["CANARY_NAMESPACE", "Canary", "Delivery"]

CANARY_NAMESPACE = """
[[channel.namespaces]]
name = "canary"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_subscriber = true
allow_publish_for_anonymous = true
"""
"""A namespace for the canary: append it to a test server's TOML (anonymous clients on)."""

_PACE = 0.02  # between two publications; pacing only, nothing waits on it


@dataclass(frozen=True)
class Delivery:
    sent_at: float
    latency: float


class Canary:
    """``with Canary(port) as canary:`` ... ``canary.served_since(t)``."""

    def __init__(self, port: int, *, path: str = "/connection/websocket") -> None:
        self.channel = f"canary:{uuid.uuid4().hex}"
        self.deliveries: list[Delivery] = []
        self.error: BaseException | None = None
        self._ws = RawWebSocket.open(port, path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="canary", daemon=True)

    def __enter__(self) -> Self:
        self._ws.connect()
        (sub_id,) = self._ws.send_commands({"subscribe": {"channel": self.channel}})
        reply = self._ws.recv_reply(sub_id)
        assert "subscribe" in reply, reply
        self._thread.start()
        self.wait_for_deliveries(1)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout(10.0))
        self._ws.close()

    def wait_for_deliveries(self, count: int, *, after: float = 0.0) -> None:
        """Wait until ``count`` publications sent after ``after`` came back."""
        deadline = time.monotonic() + timeout(10.0)
        while sum(d.sent_at >= after for d in self.deliveries) < count:
            if self.error is not None:
                raise AssertionError(f"the canary failed: {self.error!r}") from self.error
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError(f"the canary got {len(self.deliveries)} deliveries only")
            self._stop.wait(0.01)

    def served_since(self, start: float, *, count: int = 3) -> list[float]:
        """Assert that deliveries went on after ``start`` (``time.monotonic()``), with
        nothing lost; return the latencies (seconds) of those since ``start``."""
        self.wait_for_deliveries(count, after=start)
        assert self.error is None, self.error
        latencies = [d.latency for d in self.deliveries if d.sent_at >= start]
        return latencies

    def summary(self, start: float) -> str:
        latencies = [d.latency * 1000 for d in self.deliveries if d.sent_at >= start]
        if not latencies:
            return "canary: no deliveries"
        return (
            f"canary: {len(latencies)} deliveries, p50 {statistics.median(latencies):.1f} ms,"
            f" max {max(latencies):.1f} ms"
        )

    def _run(self) -> None:
        try:
            sequence = 0
            while not self._stop.is_set():
                sequence += 1
                self._round_trip(sequence)
                self._stop.wait(_PACE)
        except BaseException as exc:
            if not self._stop.is_set():
                self.error = exc

    def _round_trip(self, sequence: int) -> None:
        sent_at = time.monotonic()
        data = {"n": sequence}
        (publish_id,) = self._ws.send_commands({"publish": {"channel": self.channel, "data": data}})
        replied = delivered = False
        deadline = sent_at + timeout(10.0)
        while not (replied and delivered):
            for message in self._ws.recv_messages(deadline - time.monotonic()):
                if message.get("id") == publish_id:
                    assert "error" not in message, message
                    replied = True
                pub = message.get("push", {}).get("pub")
                if pub is not None:
                    assert pub["data"] == data, f"expected {data}, got {pub['data']}: lost"
                    delivered = True
        self.deliveries.append(Delivery(sent_at, time.monotonic() - sent_at))
