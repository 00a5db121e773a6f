"""What the dashboard shows: this machine's CPU, memory and network, read from ``/proc``
(Linux), and a simulated order book; published several times a second.

Every publication carries ``seq``, one more than the previous one on its channel, so a page
can prove it missed nothing: after a reconnect, recovery must fill the gap exactly.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wirehub import Node

__all__ = ["ORDER_BOOK", "SYSTEM", "OrderBook", "SystemSampler", "produce"]

SYSTEM = "metrics:system"
ORDER_BOOK = "metrics:orderbook"
PROC = Path("/proc")


async def produce(node: Node, *, rate: float) -> None:
    """Publish a system sample and an order book ``rate`` times a second, forever."""
    system, book = SystemSampler(), OrderBook(random.Random())
    loop = asyncio.get_running_loop()
    period = 1.0 / rate
    next_at = loop.time()
    seq = 0
    while True:
        seq += 1
        now = time.time()
        await node.publish(SYSTEM, {"seq": seq, "time": now, **system.sample()})
        await node.publish(ORDER_BOOK, {"seq": seq, "time": now, **book.step()})
        # A fixed rate, whatever the publishing took; a late tick is not made up for.
        next_at = max(next_at + period, loop.time())
        await asyncio.sleep(next_at - loop.time())


@dataclass
class SystemSampler:
    """CPU use (since the previous sample), memory use and network throughput."""

    _cpu: tuple[int, int] | None = None
    _net: tuple[float, int, int] | None = None

    def sample(self) -> dict[str, Any]:
        return {"cpu": self._cpu_percent(), "memory": _memory(), "net": self._net_rates()}

    def _cpu_percent(self) -> float | None:
        # /proc/stat: "cpu  user nice system idle iowait irq softirq steal ..." (jiffies)
        fields = _read(PROC / "stat").split("\n", 1)[0].split()[1:]
        if not fields:
            return None
        ticks = [int(value) for value in fields[:8]]
        busy, total = sum(ticks) - ticks[3] - ticks[4], sum(ticks)
        previous, self._cpu = self._cpu, (busy, total)
        if previous is None or total == previous[1]:
            return None
        return round(100.0 * (busy - previous[0]) / (total - previous[1]), 1)

    def _net_rates(self) -> dict[str, float] | None:
        # /proc/net/dev: "  eth0: rx_bytes rx_packets ... (8 fields) tx_bytes ..."
        rx = tx = 0
        for line in _read(PROC / "net/dev").splitlines()[2:]:
            name, _, counters = line.partition(":")
            values = counters.split()
            if name.strip() != "lo" and len(values) >= 9:
                rx, tx = rx + int(values[0]), tx + int(values[8])
        now = time.monotonic()
        previous, self._net = self._net, (now, rx, tx)
        if previous is None or now == previous[0]:
            return None
        seconds = now - previous[0]
        return {"rx": (rx - previous[1]) / seconds, "tx": (tx - previous[2]) / seconds}


def _memory() -> dict[str, int] | None:
    # /proc/meminfo: "MemTotal:  16318464 kB" ...
    values = {}
    for line in _read(PROC / "meminfo").splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            values[key] = int(rest.split()[0]) * 1024
    if len(values) < 2:
        return None
    return {"total": values["MemTotal"], "used": values["MemTotal"] - values["MemAvailable"]}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except OSError:  # not Linux: the page shows "n/a"
        return ""


@dataclass
class OrderBook:
    """A made-up market: the mid price drifts at random, and so do the sizes resting at
    each price level on either side of it."""

    rng: random.Random
    levels: int = 12
    tick: float = 0.05
    mid: float = 100.0
    _sizes: list[float] = field(default_factory=list)

    def step(self) -> dict[str, Any]:
        self.mid = max(1.0, self.mid * math.exp(self.rng.gauss(0.0, 0.0008)))
        if not self._sizes:
            self._sizes = [self.rng.uniform(5, 40) for _ in range(2 * self.levels)]
        self._sizes = [max(1.0, size * math.exp(self.rng.gauss(0, 0.08))) for size in self._sizes]
        best_bid = math.floor(self.mid / self.tick) * self.tick
        bids = [
            [round(best_bid - i * self.tick, 2), round(self._sizes[i] * (1 + i / 4), 1)]
            for i in range(self.levels)
        ]
        asks = [
            [round(best_bid + (i + 1) * self.tick, 2), round(self._sizes[-1 - i] * (1 + i / 4), 1)]
            for i in range(self.levels)
        ]
        return {"mid": round(self.mid, 4), "bids": bids, "asks": asks}
