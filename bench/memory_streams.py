"""Memory left behind by channels and streams, in one process (no peers, no sockets).

Two measurements, each printed as one line (README of bench/ has the context):

- **churn**: ``--channels`` unique channel names, each subscribed and unsubscribed once
  through a real node (connections of an in-memory transport, 100 subscribes per
  frame), half of them positioned in a namespace with history, then as many
  publications into other unique channels with ``--ttl`` seconds of history. Memory is
  read right after, after the TTL, and after the stream metadata's TTL (``--meta-ttl``).
- **big**: ``--big-channels`` channels each given one ``--big-size``-byte publication
  with ``--ttl`` seconds of history; memory after the TTL, without any read.

Each runs twice in one process, with new names the second time: what was freed in the
first round is reused in the second, so the resident set does not grow again.

Memory is the growth over a baseline taken after start-up: Python's live allocations
(``tracemalloc``, exact) and the resident set (``VmRSS``, what the OS sees; freed memory
is not always handed back to it, and tracemalloc's own records count in it). Expiry
happens in the broker's own sweeps, in real time; to get past a TTL the broker's clock
jumps forward (it takes ``clock=``), so the meta TTL can keep its default of 720 h.

    .venv/bin/python bench/memory_streams.py
    .venv/bin/python bench/memory_streams.py --channels 20000 --big-channels 500
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from wirehub import ConfigError, Node, TransportInfo, load_config
from wirehub.brokers.memory import MemoryBroker
from wirehub.errors import Disconnect
from wirehub.protocol.json_codec import JSON_CODEC

PER_FRAME = 100
CONNECTIONS = 10


class _Transport:
    """Counts the messages the core writes, and wakes whoever waits for a number."""

    info = TransportInfo("bench", "json", "127.0.0.1:0", {})

    def __init__(self) -> None:
        self.messages = 0
        self._changed = asyncio.Event()

    def write_frame(self, data: bytes) -> None:
        self.messages += data.count(b"\n") + 1
        self._changed.set()

    def close(self, disconnect: Disconnect) -> None:
        self._changed.set()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    async def wait_messages(self, count: int) -> None:
        while self.messages < count:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), 30)


class _Clock:
    """Monotonic time that can jump forward."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skew


def _node(args: argparse.Namespace) -> tuple[Node, _Clock]:
    clock = _Clock()
    return Node(_config(args.ttl, args.meta_ttl), broker=MemoryBroker(clock=clock)), clock


async def _jump(clock: _Clock, seconds: float) -> None:
    clock.skew += seconds
    await asyncio.sleep(2.5)  # the memory broker sweeps about once a second


def _config(ttl: float, meta_ttl: float) -> Any:
    namespace = {
        "name": "h",
        "allow_subscribe_for_client": True,
        "allow_subscribe_for_anonymous": True,
        "history_size": 10,
        "history_ttl": ttl,
        "force_recovery": True,
    }
    channel: dict[str, Any] = {
        "without_namespace": {
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
        },
        "namespaces": [namespace],
    }
    config = {"client": {"allow_anonymous_connect_without_token": True}, "channel": channel}
    try:
        with_meta = {**config, "channel": {**channel, "history_meta_ttl": meta_ttl}}
        return load_config(None, with_meta, environ=False)
    except ConfigError:  # a wirehub without history_meta_ttl (before it existed)
        return load_config(None, config, environ=False)


def _measure() -> tuple[int, int]:
    gc.collect()
    with open("/proc/self/status", encoding="ascii") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    return tracemalloc.get_traced_memory()[0], rss


def _mb(value: int) -> str:
    return f"{value / 1e6:+.1f} MB"


def _growth(label: str, base: tuple[int, int], count: int) -> None:
    traced, rss = _measure()
    per = (traced - base[0]) / count
    print(
        f"  {label:<34} python {_mb(traced - base[0])} ({per:,.0f} B/channel), "
        f"RSS {_mb(rss - base[1])}",
        flush=True,
    )


async def _connect(node: Node) -> tuple[Any, _Transport]:
    transport = _Transport()
    client = node.attach(transport, JSON_CODEC)
    client.handle_frame(b'{"id":1,"connect":{}}')
    await transport.wait_messages(1)
    return client, transport


async def _churn(node: Node, channels: int, tag: str) -> None:
    connections = [await _connect(node) for _ in range(CONNECTIONS)]
    command_id = 1
    for start in range(0, channels, PER_FRAME * CONNECTIONS):
        for index, (client, transport) in enumerate(connections):
            first = start + index * PER_FRAME
            names = [
                f"h:churn{tag}-{n}" if n % 2 else f"churn{tag}-{n}"
                for n in range(first, min(first + PER_FRAME, channels))
            ]
            if not names:
                continue
            for method in ("subscribe", "unsubscribe"):
                lines = []
                for name in names:
                    command_id += 1
                    lines.append(f'{{"id":{command_id},"{method}":{{"channel":"{name}"}}}}')
                expected = transport.messages + len(names)
                client.handle_frame("\n".join(lines).encode())
                await transport.wait_messages(expected)
    for client, _ in connections:
        client.transport_closed()


async def churn(args: argparse.Namespace) -> None:
    node, clock = _node(args)
    names = 2 * args.channels
    async with node:
        base = _measure()
        for rnd in (1, 2):  # round 2: new names, to show that freed memory is reused
            began = time.perf_counter()
            await _churn(node, args.channels, str(rnd))
            for n in range(args.channels):
                await node.publish(f"h:pub{rnd}-{n}", {"n": n})
            took = time.perf_counter() - began
            print(
                f"churn, round {rnd}: {args.channels:,} channel names subscribed and "
                f"unsubscribed, {args.channels:,} more published into ({took:.1f} s)"
            )
            _growth("right after", base, names)
            await _jump(clock, args.ttl)
            _growth(f"after history_ttl ({args.ttl:g} s)", base, names)
            await _jump(clock, args.meta_ttl)
            _growth(f"after history_meta_ttl ({args.meta_ttl:g} s)", base, names)


async def big(args: argparse.Namespace) -> None:
    node, clock = _node(args)
    async with node:
        base = _measure()
        for rnd in (1, 2):
            for n in range(args.big_channels):
                # Distinct payloads, as publications from clients are.
                payload = b'"%08d' % n + b"x" * (args.big_size - 10) + b'"'
                await node.publish(f"h:big{rnd}-{n}", payload)
            print(
                f"big, round {rnd}: {args.big_channels:,} channels x one "
                f"{args.big_size:,}-byte publication"
            )
            _growth("right after", base, args.big_channels)
            await _jump(clock, args.ttl)
            _growth(f"after history_ttl ({args.ttl:g} s)", base, args.big_channels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["churn", "big"], help="one measurement, here")
    parser.add_argument("--channels", type=int, default=100_000)
    parser.add_argument("--big-channels", type=int, default=3000)
    parser.add_argument("--big-size", type=int, default=60 * 1024)
    parser.add_argument("--ttl", type=float, default=2.0, help="history_ttl, seconds")
    parser.add_argument("--meta-ttl", type=float, default=2_592_000.0, help="history_meta_ttl")
    args = parser.parse_args()
    if args.only is None:
        # One process per measurement: memory freed by one would hide the other's RSS.
        for only in ("churn", "big"):
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", only], check=True)
        return
    tracemalloc.start()
    asyncio.run(churn(args) if args.only == "churn" else big(args))


if __name__ == "__main__":
    main()
