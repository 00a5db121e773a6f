"""What the Redis engine costs, next to the memory engine, in the same run.

    .venv/bin/python bench/redis_engine.py                 # ~2 min; writes bench/REDIS.md
    .venv/bin/python bench/redis_engine.py --clients 500 --rounds 1 --output /tmp/r.md
    .venv/bin/python bench/redis_engine.py --smoke --output /tmp/r.md --results-dir /tmp

PUBLISH THROUGH A NODE: ``wirehub serve`` on each engine (core 0), its server API
publishing into a channel with history, 50 requests in flight from this process (core
1), one WebSocket subscriber of the channel; server CPU per publication, counted until
the subscriber has received every publication of the measured phase.

PUBLISH, ONE BROKER ALONE: publications/s and CPU per publication through one broker, in a process of its
own pinned to core 0 on uvloop (the server's event loop), sequential (each awaited) and
concurrent (1000 at a time), with history (size 100) and the broker subscribed to the
channel, so the cost of receiving the publication back over PUB/SUB is counted too.

FAN-OUT: a burst of publications to C subscribers of one channel (bench/loadgen.mjs on
core 1), served by one node on the memory engine, one node on Redis, two nodes on Redis
(subscribers alternate between them; the publisher is on the first), and
``wirehub serve --workers 2`` on Redis. Server CPU is the sum over the wirehub processes.

Redis is this script's own redis-server, pinned to core 1 with the load generator
(its CPU is reported on its own). Figures are indicative: the machine is shared.
"""

# ruff: noqa: RUF001

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    BENCH,
    LOADGEN_CORE,
    PYTHON,
    ROOT,
    SERVER_CORE,
    ApiConnection,
    LoadGen,
    _wirehub_bin,
    cpu_seconds,
    free_port,
    machine,
    pinned,
    raise_fd_limit,
    stop_group,
)

RESULTS = BENCH / "results"


# ---- PUBLISH, in a worker process ----------------------------------------------------------


async def publish_worker(engine: str, mode: str, count: int, url: str) -> dict[str, float]:
    from msgspec import Raw

    from wirehub.brokers.base import PublishOptions
    from wirehub.protocol.types import ClientInfo, Publication

    received = 0
    done = asyncio.Event()
    first = asyncio.Event()

    class Counter:
        def handle_publication(self, *_: Any) -> None:
            nonlocal received
            received += 1
            first.set()
            if received == count:
                done.set()

        def handle_join(self, *_: Any) -> None: ...
        def handle_leave(self, *_: Any) -> None: ...
        def handle_gap(self, *_: Any) -> None: ...

    if engine == "memory":
        from wirehub.brokers.memory import MemoryBroker

        broker: Any = MemoryBroker()
    else:
        from wirehub.brokers.redis.engine import create_engine

        broker = create_engine(url, prefix=f"bench-{os.getpid()}").broker
    await broker.start(Counter())
    await broker.subscribe("chat:bench")
    options = PublishOptions(history_size=100, history_ttl=300)
    info = ClientInfo(user="42", client="c1")
    publication = Publication(data=Raw(b'{"i":1,"p":"' + b"x" * 64 + b'"}'), info=info)
    await broker.publish("chat:bench", publication, options)  # connections warm
    await asyncio.wait_for(first.wait(), 10)
    received = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if mode == "sequential":
        for _ in range(count):
            await broker.publish("chat:bench", publication, options)
    else:
        for start in range(0, count, 1000):
            batch = min(1000, count - start)
            await asyncio.gather(
                *(broker.publish("chat:bench", publication, options) for _ in range(batch))
            )
    await asyncio.wait_for(done.wait(), 60)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await broker.close()
    return {"publications_per_s": count / wall, "us_per_publication": cpu / count * 1e6}


def measure_publish(engine: str, mode: str, count: int, url: str) -> dict[str, float]:
    argv = [PYTHON, __file__, "--publish-worker", engine, mode, str(count), url]
    out = subprocess.run(
        pinned(SERVER_CORE, argv), capture_output=True, text=True, check=True, cwd=ROOT
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ---- Redis -----------------------------------------------------------------------------------


@contextlib.contextmanager
def own_redis(directory: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        pinned(
            LOADGEN_CORE,
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""),
                *("--appendonly", "no", "--dir", str(directory)),
            ],
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True
            ).stdout.strip()
            != b"PONG"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield port
    finally:
        stop_group(proc, wait=3)


def redis_cpu(port: int) -> float:
    info = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "cpu"], capture_output=True, text=True
    ).stdout
    values = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return float(values["used_cpu_user"]) + float(values["used_cpu_sys"])


# ---- FAN-OUT -----------------------------------------------------------------------------------

FANOUT_CASES = ("memory, 1 node", "redis, 1 node", "redis, 2 nodes", "redis, --workers 2")


def config_file(directory: Path, engine: str, redis_port: int, prefix: str) -> Path:
    text = (BENCH / "wirehub.toml").read_text()
    if engine == "redis":
        text += (
            f'\n[engine]\ntype = "redis"\n\n[engine.redis]\n'
            f'address = "redis://127.0.0.1:{redis_port}"\nprefix = "{prefix}"\n'
        )
    path = directory / f"wirehub-{engine}.toml"
    path.write_text(text)
    return path


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in (task / "children").read_text().split())
    return found


@contextlib.contextmanager
def wirehub(config: Path, log: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    argv = [_wirehub_bin(), "serve", "--config", str(config), "--port", str(port)]
    argv += ["--log-level", "info", *extra]
    out = log.open("wb")
    proc = subprocess.Popen(
        pinned(SERVER_CORE, argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        ready = 2 if extra else 1
        deadline = time.monotonic() + 30
        while log.read_text(errors="replace").count("serving ws://") < ready:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"wirehub did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield proc, port
    finally:
        stop_group(proc, wait=10)
        out.close()


def measure_fanout(
    case: str, args: argparse.Namespace, tmp: Path, redis_port: int, n: int
) -> dict[str, Any]:
    engine = "memory" if case.startswith("memory") else "redis"
    config = config_file(tmp, engine, redis_port, f"bench-{n}")
    with contextlib.ExitStack() as stack:
        extra = ("--workers", "2") if "workers" in case else ()
        first, port = stack.enter_context(wirehub(config, tmp / f"{n}-a.log", *extra))
        pids = children(first.pid) if extra else [first.pid]
        urls = [f"ws://127.0.0.1:{port}/connection/websocket"]
        if case == "redis, 2 nodes":
            second, port2 = stack.enter_context(wirehub(config, tmp / f"{n}-b.log"))
            pids.append(second.pid)
            urls.append(f"ws://127.0.0.1:{port2}/connection/websocket")
        time.sleep(0.3)
        options = {
            "proto": "centrifugo",
            "url": urls[0],
            "urls": urls,
            "clients": args.clients,
            "scenario": "fanout",
            "messages": args.messages,
            "payload": 64,
            "timeout": 60,
            "concurrency": 100,
        }
        loadgen = LoadGen(options, tmp / f"{n}-loadgen.log")
        try:
            loadgen.expect("READY", 60 + args.clients / 50)
            time.sleep(0.5)
            cpu0 = sum(cpu_seconds(pid) for pid in pids)
            redis0 = redis_cpu(redis_port)
            loadgen.send("GO")
            result = loadgen.expect("RESULT", 120)
            cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
            redis = redis_cpu(redis_port) - redis0
        finally:
            loadgen.close()
    delivered = result["delivered"]
    return {
        "complete": result["complete"],
        "deliveries_per_s": result["deliveries_per_s"],
        "us_per_delivery": cpu / delivered * 1e6 if delivered else None,
        "redis_cpu_ms": redis * 1000 if engine == "redis" else None,
    }


# ---- PUBLISH THROUGH A NODE -------------------------------------------------------------

API_KEY = "bench-api-key"
NODE_CHANNEL = "kept:bench"
NODE_IN_FLIGHT = 50
KEPT_NAMESPACE = """
[[channel.namespaces]]
name = "kept"
history_size = 100
history_ttl = "300s"
allow_subscribe_for_anonymous = true
allow_subscribe_for_client = true
"""


async def _subscriber(port: int, seen: list[int], ready: asyncio.Event) -> None:
    """One WebSocket client of ``NODE_CHANNEL``, counting the publications it gets."""
    import websockets

    url = f"ws://127.0.0.1:{port}/connection/websocket"
    async with websockets.connect(url, max_size=None) as ws:
        subscribe = {"subscribe": {"channel": NODE_CHANNEL}, "id": 2}
        await ws.send('{"connect":{},"id":1}\n' + json.dumps(subscribe))
        async for frame in ws:
            text = frame if isinstance(frame, str) else frame.decode()
            if '"id":2' in text:
                ready.set()
            seen[0] += text.count('"pub":')


async def node_publish(port: int, pid: int, duration: float) -> dict[str, Any]:
    """Publications through the server API, ``NODE_IN_FLIGHT`` at a time, for
    ``duration`` seconds after a one-second warm-up; the server's CPU from the start of
    the measured phase until the subscriber has received every publication of it."""
    body = {"channel": NODE_CHANNEL, "data": {"text": "x" * 64}}
    connections = [ApiConnection(port, API_KEY, body) for _ in range(NODE_IN_FLIGHT)]
    seen, ready = [0], asyncio.Event()
    subscriber = asyncio.create_task(_subscriber(port, seen, ready))
    published = 0
    stop_at = 0.0

    async def worker(connection: ApiConnection) -> None:
        nonlocal published
        while time.monotonic() < stop_at:
            await connection.post()
            published += 1

    async def all_seen(what: str) -> None:
        deadline = time.monotonic() + 30
        while seen[0] < published:  # polled: the bench's own client, not a test
            if time.monotonic() > deadline or subscriber.done():
                raise RuntimeError(f"{what}: {seen[0]} of {published} publications delivered")
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(ready.wait(), 10)
        stop_at = time.monotonic() + 1.0
        await asyncio.gather(*(worker(c) for c in connections))
        await all_seen("warm-up")
        seen[0] = published = 0
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        stop_at = wall0 + duration
        await asyncio.gather(*(worker(c) for c in connections))
        wall = time.monotonic() - wall0
        await all_seen("measured phase")
        cpu = cpu_seconds(pid) - cpu0
    finally:
        subscriber.cancel()
        for connection in connections:
            connection.close()
    return {"publications_per_s": published / wall, "us_per_publication": cpu / published * 1e6}


def measure_node_publish(
    engine: str, args: argparse.Namespace, tmp: Path, redis_port: int, n: int
) -> dict[str, Any]:
    config = config_file(tmp, engine, redis_port, f"bench-node-{n}")
    config.write_text(config.read_text() + KEPT_NAMESPACE)
    os.environ["WIREHUB_HTTP_API__KEY"] = API_KEY
    with wirehub(config, tmp / f"node-{n}-{engine}.log") as (proc, port):
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {int(LOADGEN_CORE)})
        try:
            return uvloop.run(node_publish(port, proc.pid, args.node_duration))
        finally:
            os.sched_setaffinity(0, affinity)


# ---- report ----------------------------------------------------------------------------------


def med(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def report(
    publish: dict[str, list[dict[str, Any]]],
    node: dict[str, list[dict[str, Any]]],
    fanout: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
) -> str:
    lines = [
        "# Redis engine bench (indicative)",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine()}; "
        f"`{' '.join(['bench/redis_engine.py', *sys.argv[1:]])}`; median of {args.rounds} round(s). "
        "The machine is shared with other work: read the ratios, not the absolute figures.",
        "",
        f"## PUBLISH THROUGH A NODE (server API, {NODE_IN_FLIGHT} requests in flight, "
        "history on, one subscriber)",
        "",
        "| engine | publications/s | server CPU µs/publication |",
        "|---|---|---|",
    ]
    for engine, runs in node.items():
        lines.append(
            f"| {engine} | {med(runs, 'publications_per_s'):,.0f} | "
            f"{med(runs, 'us_per_publication'):.1f} |"
        )
    node_memory = med(node["memory"], "us_per_publication") or 0
    node_redis = med(node["redis"], "us_per_publication") or 0
    node_ratio = node_redis / node_memory if node_memory else float("nan")
    lines += [
        "",
        "Target: concurrent publish through a node on Redis within 2× the server CPU per "
        "publication of the same node on the memory broker. Measured: "
        f"**{node_ratio:.2f}×** ({'met' if node_ratio <= 2 else 'missed'}); Redis adds "
        f"{node_redis - node_memory:.1f} µs per publication.",
        "",
        "## PUBLISH, ONE BROKER ALONE (history on, subscribed to its channel)",
        "",
        "| engine, mode | publications/s | CPU µs/publication |",
        "|---|---|---|",
    ]
    for key, runs in publish.items():
        lines.append(
            f"| {key} | {med(runs, 'publications_per_s'):,.0f} | {med(runs, 'us_per_publication'):.1f} |"
        )
    memory = med(publish["memory, concurrent"], "us_per_publication") or 0
    redis = med(publish["redis, concurrent"], "us_per_publication") or 0
    ratio = redis / memory if memory else float("nan")
    lines += [
        "",
        f"Concurrent, the broker alone on Redis costs **{ratio:.1f}×** the memory broker "
        f"({redis - memory:.1f} µs more per publication). This is what Redis adds with nothing",
        "around it: the memory broker's publish is an in-process append, and most of its",
        "figure is the harness's own task per publish. Until 2026-12-06 13:34 UTC this",
        "report set the 2× target on this ratio (3.4× then); the issue asks for server CPU",
        "per publication, which the table above measures.",
        "",
        "Where the Redis path's extra CPU goes (sampling profile of 300,000 concurrent",
        "publications on uvloop, 2026-12-06): about 2.5 µs building and queueing the script",
        "call (the fixed part of the call is packed once per channel), about 2 µs reading",
        "the replies and the PUB/SUB messages (1 µs of it decoding the publication that",
        "comes back, as every node must), and the rest in the event loop's C code: waking",
        "each publisher's task on its reply, which a memory publish never needs, and the",
        "socket I/O.",
        "",
        f"## FAN-OUT, C = {args.clients} subscribers of one channel, burst of {args.messages}",
        "",
        "| served by | deliveries/s | server CPU µs/delivery | Redis CPU ms |",
        "|---|---|---|---|",
    ]
    for case, runs in fanout.items():
        redis_ms = med(runs, "redis_cpu_ms")
        complete = all(run["complete"] for run in runs)
        lines.append(
            f"| {case}{'' if complete else ' (incomplete!)'} | {med(runs, 'deliveries_per_s'):,.0f} | "
            f"{med(runs, 'us_per_delivery'):.2f} | {'' if redis_ms is None else f'{redis_ms:.0f}'} |"
        )
    single = med(fanout["redis, 1 node"], "deliveries_per_s") or 0
    for case in ("redis, 2 nodes", "redis, --workers 2"):
        value = med(fanout[case], "deliveries_per_s") or 0
        share = value / single if single else float("nan")
        lines.append(
            f"\nTarget: {case} within 20% of one node on Redis. Measured: **{share:.2f}×** "
            f"({'met' if share >= 0.8 else 'missed'})."
        )
    versus = (med(fanout["redis, 1 node"], "deliveries_per_s") or 0) / (
        med(fanout["memory, 1 node"], "deliveries_per_s") or 1
    )
    lines.append(f"\nOne node on Redis vs on memory: {versus:.2f}× the deliveries/s.")
    lines += [
        "",
        "Why one node on Redis fans a burst out more slowly than on memory: the burst comes",
        "from one client, whose commands run one at a time (each publish waits for its reply,",
        "and on Redis that is a round trip), so its publications reach the node one round trip",
        "apart and each is written to every subscriber separately. On memory the whole burst",
        "is fanned out in one event-loop tick and written once per subscriber. Publications",
        "issued concurrently (many publishers, the in-process or HTTP API) share round trips",
        "and arrive together (PUBLISH, concurrent).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--publish-worker", nargs=4, metavar=("ENGINE", "MODE", "COUNT", "URL"))
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--sequential", type=int, default=3000)
    parser.add_argument("--concurrent", type=int, default=20000)
    parser.add_argument("--node-duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=BENCH / "REDIS.md")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="raw JSON")
    parser.add_argument("--smoke", action="store_true", help="a few of everything, 1 round")
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.messages, args.sequential, args.concurrent = 20, 5, 50, 500
        args.node_duration, args.rounds = 0.5, 1
    if args.publish_worker:
        engine, mode, count, url = args.publish_worker
        # uvloop, as under `wirehub serve` (and uvicorn[standard] when embedded).
        print(json.dumps(uvloop.run(publish_worker(engine, mode, int(count), url))))
        return 0
    raise_fd_limit(args.clients * 4 + 100)
    publish: dict[str, list[dict[str, Any]]] = {}
    node: dict[str, list[dict[str, Any]]] = {}
    fanout: dict[str, list[dict[str, Any]]] = {case: [] for case in FANOUT_CASES}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory, own_redis(Path(directory)) as redis_port:
        tmp = Path(directory)
        url = f"redis://127.0.0.1:{redis_port}"
        for round_ in range(args.rounds):
            for engine in ("memory", "redis"):
                for mode, count in (
                    ("sequential", args.sequential),
                    ("concurrent", args.concurrent),
                ):
                    run = measure_publish(engine, mode, count, url)
                    publish.setdefault(f"{engine}, {mode}", []).append(run)
                    print(f"round {round_ + 1}: publish {engine} {mode}: {run}", flush=True)
            for engine in ("memory", "redis"):
                run = measure_node_publish(engine, args, tmp, redis_port, round_)
                node.setdefault(engine, []).append(run)
                print(f"round {round_ + 1}: node publish {engine}: {run}", flush=True)
            for n, case in enumerate(FANOUT_CASES):
                run = measure_fanout(case, args, tmp, redis_port, round_ * 10 + n)
                fanout[case].append(run)
                print(f"round {round_ + 1}: fan-out {case}: {run}", flush=True)
    text = report(publish, node, fanout, args)
    args.output.write_text(text)
    (args.results_dir / "redis_engine.json").write_text(
        json.dumps({"publish": publish, "node": node, "fanout": fanout}, indent=1)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
