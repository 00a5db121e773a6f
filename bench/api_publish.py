"""Server API publish throughput: ``POST /api/publish`` requests per second.

Starts ``wirehub serve --config bench/wirehub.toml`` (an API key from the
environment, metrics off) pinned to core 0, then, from this process pinned to core 1,
publishes with one keep-alive httpx client at each concurrency (requests in flight;
1 and 50 by default) for ``--duration`` seconds, after a short warm-up. Every answer
is checked (200 with a ``result``). Prints a Markdown table: requests/s, mean latency,
server CPU per request.

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


async def measure(port: int, pid: int, concurrency: int, duration: float) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/api/publish"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"X-API-Key": KEY}
    body = {"channel": "chat:api", "data": {"text": "x" * 64}}
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30) as http:
        done = 0
        latency = 0.0
        measuring = False
        stop_at = 0.0

        async def worker() -> None:
            nonlocal done, latency
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                response = await http.post(url, json=body)
                if response.status_code != 200 or "result" not in response.json():
                    raise RuntimeError(f"bad answer: {response.status_code} {response.text}")
                if measuring:
                    done += 1
                    latency += time.perf_counter() - started

        stop_at = time.monotonic() + 1.0  # warm-up: connections opened, caches hot
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        measuring = True
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        stop_at = started + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
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
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    proc, port = start_server()
    try:
        print("| in flight | requests/s | mean latency (ms) | server CPU per request (µs) | server CPU % |")
        print("|---|---|---|---|---|")
        for concurrency in args.concurrency:
            result = asyncio.run(measure(port, proc.pid, concurrency, args.duration))
            print(
                f"| {concurrency} | {result['rps']:.0f} | {result['latency_ms']:.2f} "
                f"| {result['cpu_us']:.0f} | {result['cpu_pct']:.0f} |",
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
