"""Server API publish throughput: ``POST /api/publish`` requests per second.

Starts ``wirehub serve --config bench/wirehub.toml`` (an API key from the
environment, metrics off) pinned to core 0, then, from this process pinned to core 1,
publishes at each concurrency (requests in flight; 1 and 50 by default) for
``--duration`` seconds after a one-second warm-up, with a keep-alive
``httpx.AsyncClient`` and with a minimal asyncio keep-alive client (``raw``: one
connection per request in flight; it shows what the server sustains when the client
is not the limit: httpx's async client costs more CPU per request than the server).
Every answer is checked (200 with a ``result``). Prints a Markdown table: requests/s,
mean latency, server CPU per request.

    .venv/bin/python bench/api_publish.py                 # 1 and 50 in flight, 5 s each
    .venv/bin/python bench/api_publish.py --concurrency 1 10 50 --duration 10

The channel has no subscribers: this measures the API path (HTTP parsing, auth, JSON
decoding, the node's publish, the answer), not fan-out. On a shared machine the
figures are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import ApiConnection  # noqa: E402

ROOT = BENCH.parent
KEY = "bench-api-key"
CLK_TCK = os.sysconf("SC_CLK_TCK")
_READY = re.compile(rb"serving ws://127\.0\.0\.1:(\d+)/")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    wirehub = Path(sys.executable).with_name("wirehub")
    argv = [str(wirehub), "serve", "--config", str(BENCH / "wirehub.toml"), "--port", "0"]
    argv += ["--log-level", "info"]  # the "serving" line tells the port
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        argv = ["taskset", "-c", "0", *argv]
    env = {**os.environ, "WIREHUB_HTTP_API__KEY": KEY, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if match := _READY.search(line):
            return proc, int(match.group(1))
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("the server did not start")


BODY = {"channel": "chat:api", "data": {"text": "x" * 64}}


async def measure(
    port: int, pid: int, concurrency: int, duration: float, client: str
) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/api/publish"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"X-API-Key": KEY}
    raw = [ApiConnection(port, KEY, BODY) for _ in range(concurrency)]
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30) as http:
        done = 0
        latency = 0.0
        measuring = False
        stop_at = 0.0

        async def post_httpx() -> None:
            response = await http.post(url, json=BODY)
            if response.status_code != 200 or "result" not in response.json():
                raise RuntimeError(f"bad answer: {response.status_code} {response.text}")

        async def worker(n: int) -> None:
            nonlocal done, latency
            post = post_httpx if client == "httpx" else raw[n].post
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                await post()
                if measuring:
                    done += 1
                    latency += time.perf_counter() - started

        stop_at = time.monotonic() + 1.0  # warm-up: connections opened, caches hot
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        measuring = True
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        stop_at = started + duration
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
    for connection in raw:
        connection.close()
    return {
        "rps": done / elapsed,
        "latency_ms": 1000 * latency / max(done, 1),
        "cpu_us": 1e6 * cpu / max(done, 1),
        "cpu_pct": 100 * cpu / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--pin", action="store_true", help="client on core 1 (server: core 0)")
    parser.add_argument(
        "--client",
        nargs="+",
        choices=["httpx", "raw"],
        default=["httpx", "raw"],
        help="httpx.AsyncClient, or a minimal asyncio keep-alive client (the server's ceiling)",
    )
    args = parser.parse_args()
    if args.pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    proc, port = start_server()
    try:
        print(
            "| client | in flight | requests/s | mean latency (ms) "
            "| server CPU per request (µs) | server CPU % |"
        )
        print("|---|---|---|---|---|---|")
        for client in args.client:
            for concurrency in args.concurrency:
                result = asyncio.run(measure(port, proc.pid, concurrency, args.duration, client))
                print(
                    f"| {client} | {concurrency} | {result['rps']:.0f} "
                    f"| {result['latency_ms']:.2f} | {result['cpu_us']:.0f} "
                    f"| {result['cpu_pct']:.0f} |",
                    flush=True,
                )
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
