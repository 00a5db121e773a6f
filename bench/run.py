"""wirehub bench orchestrator: wirehub and its peers measured in the same run, as ratios.

    python bench/run.py --setup                      # npm ci + pip install -r requirements
    python bench/run.py --scenario all --rounds 3    # what `make bench` runs
    python bench/run.py --scenario fanout --clients 1000 --rounds 3 --stacks wirehub node-ws
    python bench/run.py --scenario rpc channels --rounds 1    # the RPC and MANY CHANNELS
    python bench/run.py --smoke                      # seconds; CI keeps the harness working

Each server runs pinned to core 0 (taskset -c 0), the Node load generator (loadgen.mjs)
to core 1. Server CPU is read from /proc/<pid>/stat (utime+stime) over the measured
window, RSS from /proc/<pid>/status. Within a round every stack is measured once, in an
order rotated from round to round; each figure is the median over rounds, and each ratio
the median of per-round ratios against Node ws and python-socketio from the same round.
See bench/README.md.
"""

# ruff: noqa: RUF001  (the report is meant to print multiplication signs and dashes)

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS_DIR = BENCH / "results"  # raw JSON and server logs; not committed
CHARTS_DIR = BENCH / "charts"
PYTHON = sys.executable
NODE = shutil.which("node") or "node"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CORE = "0"
LOADGEN_CORE = "1"


SCENARIOS = ("fanout", "latency", "rpc", "channels", "fairness")  # "channels": MANY CHANNELS


# ---- stacks ------------------------------------------------------------------------------
# What the raw peers do with a client's message, per scenario ("{mode}" in their argv).
PEER_MODES = {
    "fanout": "broadcast",
    "latency": "broadcast",
    "rpc": "echo",
    "channels": "rooms",
    "fairness": "broadcast",
}
# Scenarios only the Centrifugo protocol can run (channels, replies, positions in time).
CENTRIFUGO_ONLY = ("fairness",)


@dataclass(frozen=True)
class Stack:
    name: str
    label: str
    proto: str  # what the loadgen speaks: raw | centrifugo | socketio
    argv: tuple[str, ...]  # "{port}" and "{mode}" (PEER_MODES) are replaced
    path: str  # URL path of the WebSocket endpoint
    scenario_argv: tuple[tuple[str, tuple[str, ...]], ...] = ()  # per-scenario argv
    transport: str = "websocket"  # subscribers' transport (centrifugo: or http_stream, sse)
    scenarios: tuple[str, ...] = SCENARIOS  # what it can run

    def command(self, port: int, scenario: str = "fanout") -> list[str]:
        argv = dict(self.scenario_argv).get(scenario, self.argv)
        mode = PEER_MODES.get(scenario, "broadcast")
        return [arg.replace("{port}", str(port)).replace("{mode}", mode) for arg in argv]

    def url(self, port: int) -> str:
        return f"ws://127.0.0.1:{port}{self.path}"


def _wirehub_bin() -> str:
    candidate = Path(PYTHON).with_name("wirehub")
    return str(candidate) if candidate.exists() else "wirehub"


STACKS: dict[str, Stack] = {
    stack.name: stack
    for stack in (
        Stack(
            "wirehub",
            "wirehub (standalone)",
            "centrifugo",
            (
                _wirehub_bin(),
                "serve",
                "--config",
                str(BENCH / "wirehub.toml"),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ),
            "/connection/websocket",
            # RPC needs an on_rpc handler: the same server (cli.run) with a Node built in code.
            (
                (
                    "rpc",
                    (
                        PYTHON,
                        str(BENCH / "wirehub_rpc.py"),
                        "--config",
                        str(BENCH / "wirehub.toml"),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "{port}",
                    ),
                ),
            ),
        ),
        *(
            Stack(
                f"wirehub-{transport.replace('_', '-')}",
                f"wirehub ({label})",
                "centrifugo",
                (
                    _wirehub_bin(),
                    "serve",
                    "--config",
                    str(BENCH / "wirehub.toml"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                ),
                "/connection/websocket",  # the publisher's; subscribers use the transport
                transport=transport,
                scenarios=("fanout", "latency"),
            )
            for transport, label in (("http_stream", "HTTP-streaming"), ("sse", "SSE"))
        ),
        Stack(
            "wirehub-embedded",
            "wirehub (FastAPI, stock uvicorn)",
            "centrifugo",
            (PYTHON, str(BENCH / "embedded_app.py"), "--port", "{port}"),
            "/rt/connection/websocket",
        ),
        Stack(
            "node-ws",
            "Node ws",
            "raw",
            (NODE, str(BENCH / "peers/ws_server.mjs"), "{port}", "{mode}"),
            "/",
        ),
        Stack(
            "node-socketio",
            "Node socket.io",
            "socketio",
            (NODE, str(BENCH / "peers/socketio_server.mjs"), "{port}"),
            "/socket.io/?EIO=4&transport=websocket",
        ),
        Stack(
            "python-socketio",
            "python-socketio (uvicorn)",
            "socketio",
            (PYTHON, str(BENCH / "peers/socketio_server.py"), "--port", "{port}"),
            "/socket.io/?EIO=4&transport=websocket",
        ),
        Stack(
            "websockets",
            "websockets broadcast()",
            "raw",
            (
                PYTHON,
                str(BENCH / "peers/websockets_server.py"),
                "--port",
                "{port}",
                "--mode",
                "{mode}",
            ),
            "/",
        ),
    )
}
REFERENCES = ("node-ws", "python-socketio")


# ---- /proc -------------------------------------------------------------------------------
def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    return sum(cpu_times(pid))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        raise SystemExit(f"bench: need {needed} file descriptors, the hard limit is {hard}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: str, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", core, *argv]
    return argv


# ---- processes ---------------------------------------------------------------------------
def stop_group(proc: subprocess.Popen[Any], wait: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    else:
        # The leader is gone; make sure nothing else of its group survives.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def listening(
    argv: list[str], core: str, log_path: Path, port: int, *, name: str = "", wait: float = 5.0
) -> Iterator[subprocess.Popen[bytes]]:
    """A process pinned to ``core``, once something accepts connections on ``port``;
    its whole process group stopped afterwards (``wait`` seconds for a clean exit)."""
    name = name or " ".join(argv[:3])
    log = log_path.open("wb")
    proc = subprocess.Popen(
        pinned(core, argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {tail(log_path)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not listen within 30 s: {tail(log_path)}")
            time.sleep(0.05)
        yield proc
    finally:
        stop_group(proc, wait=wait)
        log.close()


class ApiConnection:
    """A minimal keep-alive HTTP/1.1 client of the server API, one request in flight:
    cheap enough that one bench process keeps a server core busy (httpx's async client
    costs more CPU per request than the server does)."""

    def __init__(self, port: int, key: str, body: dict[str, Any], method: str = "publish") -> None:
        self.port = port
        payload = json.dumps(body).encode()
        self.request = (
            b"POST /api/%s HTTP/1.1\r\nHost: bench\r\nX-API-Key: %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        ) % (method.encode(), key.encode(), len(payload), payload)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self) -> None:
        """One request; raises unless it is answered 200 with a ``result``."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        body = await self.reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200") or b'"result"' not in body:
            raise RuntimeError(f"bad answer: {head!r} {body!r}")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@contextlib.contextmanager
def server(
    stack: Stack, log_path: Path, scenario: str = "fanout"
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    # The figures are read; a server still busy with 5000 disconnects (python-socketio
    # takes ~9 s) is not waited for long.
    argv = stack.command(port, scenario)
    with listening(argv, SERVER_CORE, log_path, port, name=stack.name, wait=3.0) as proc:
        yield proc, port


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class LoadGen:
    """bench/loadgen.mjs (or another ``script`` speaking the same protocol) pinned to the
    other core; READY / GO / RESULT over pipes."""

    def __init__(
        self, options: dict[str, Any], log_path: Path, script: str = "loadgen.mjs"
    ) -> None:
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(
            pinned(LOADGEN_CORE, [NODE, str(BENCH / script), json.dumps(options)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=BENCH,
            start_new_session=True,
        )
        self.log_path = log_path
        self._lines: list[bytes] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._lines.append(b"")  # EOF
            self._cond.notify_all()

    def expect(self, tag: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._lines:
                    line = self._lines.pop(0)
                    if not line:
                        raise RuntimeError(f"loadgen exited before {tag}: {tail(self.log_path)}")
                    text = line.decode(errors="replace").strip()
                    if text.startswith(tag + " "):
                        result: dict[str, Any] = json.loads(text[len(tag) + 1 :])
                        return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(
                        f"loadgen: no {tag} within {timeout:.0f} s: {tail(self.log_path)}"
                    )
                self._cond.wait(left)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()

    def close(self) -> None:
        self.send("EXIT")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        stop_group(self.proc, wait=2)
        if self.proc.stdin:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.log.close()


# ---- one measurement ---------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    scenario: str  # fanout | latency | rpc | channels
    clients: int
    messages: int  # channels: publications per group channel
    rate: float = 0.0  # latency: publications per second
    duration: float = 0.0  # rpc: seconds of closed-loop round trips
    group_size: int = 0  # channels: clients per group channel
    flooders: int = 0  # fairness: connections flooding the other channel

    @property
    def key(self) -> str:
        return f"{self.scenario}-c{self.clients}"

    @property
    def title(self) -> str:
        if self.scenario == "fanout":
            return (
                f"FANOUT, C = {self.clients} subscribers of one channel, burst of {self.messages}"
            )
        if self.scenario == "rpc":
            return (
                f"RPC, C = {self.clients} clients, closed-loop echo round trips for "
                f"{self.duration:g} s"
            )
        if self.scenario == "fairness":
            return (
                f"FAIRNESS, a canary on its own channel at {self.rate:g} publications/s, "
                f"{self.duration:g} s alone then {self.duration:g} s during a flood of another "
                f"channel ({self.clients} subscribers) from {self.flooders} connection(s)"
            )
        if self.scenario == "channels":
            groups = -(-self.clients // self.group_size)
            return (
                f"MANY CHANNELS, C = {self.clients} clients, each on a personal channel and on "
                f"one of {groups} group channels of {self.group_size}; burst of "
                f"{self.messages} publications per group ({groups * self.messages} in all)"
            )
        duration = self.messages / self.rate
        return (
            f"LATENCY, C = {self.clients} subscribers, {self.rate:g} publications/s for "
            f"{duration:g} s"
        )


def measure(stack: Stack, case: Case, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    logs = args.results_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    options = {
        "proto": stack.proto,
        "transport": stack.transport,
        "clients": case.clients,
        "scenario": case.scenario,
        "messages": case.messages,
        "rate": case.rate or 20,
        "payload": args.payload,
        "timeout": args.timeout,
        "concurrency": args.concurrency,
        "duration": case.duration,
        "group_size": case.group_size or 10,
        "flooders": case.flooders or 1,
        "window": args.flood_window,
    }
    if case.scenario == "fairness":
        options["channel"] = "chat:flood"
    server_log = logs / f"{tag}-{stack.name}-server.log"
    with server(stack, server_log, case.scenario) as (proc, port):
        time.sleep(0.3)  # let it settle after binding
        rss_base = rss_bytes(proc.pid)
        cpu_connect0 = cpu_seconds(proc.pid)
        loadgen = LoadGen(
            {**options, "url": stack.url(port)}, logs / f"{tag}-{stack.name}-loadgen.log"
        )
        try:
            ready = loadgen.expect("READY", 30 + case.clients / 50)
            cpu_connect = cpu_seconds(proc.pid) - cpu_connect0
            time.sleep(0.5)  # connection bookkeeping settles before the idle RSS reading
            rss_ready = rss_bytes(proc.pid)
            user0, sys0 = cpu_times(proc.pid)
            loadgen.send("GO")
            result = loadgen.expect("RESULT", args.timeout + case.duration + 30)
            user1, sys1 = cpu_times(proc.pid)
            cpu = user1 - user0 + sys1 - sys0
            rss_after = rss_bytes(proc.pid)
        finally:
            loadgen.close()
        if proc.poll() is not None:
            raise RuntimeError(f"{stack.name} died during the run: {tail(server_log)}")
    delivered = result["delivered"]
    run: dict[str, Any] = {
        "stack": stack.name,
        "complete": result["complete"],
        "delivered": delivered,
        "expected": result["expected"],
        "lost_connections": result["lost_connections"],
        "deliveries_per_s": result["deliveries_per_s"],
        "elapsed_s": result["elapsed_s"],
        "server_cpu_s": cpu,
        "server_sys_pct": 100 * (sys1 - sys0) / cpu if cpu else None,
        "us_per_delivery": cpu / delivered * 1e6 if delivered else None,
        "server_cpu_pct": 100 * cpu / result["loadgen_wall_s"]
        if result["loadgen_wall_s"]
        else None,
        "loadgen_cpu_pct": 100 * result["loadgen_cpu_s"] / result["loadgen_wall_s"]
        if result["loadgen_wall_s"]
        else None,
        "p50_ms": result.get("p50_ms"),
        "p99_ms": result.get("p99_ms"),
        "rss_base_mib": rss_base / 2**20,
        "rss_ready_mib": rss_ready / 2**20,
        "rss_after_mib": rss_after / 2**20,
        "rss_per_1000_mib": (rss_ready - rss_base) / 2**20 / case.clients * 1000,
        "connects_per_s": case.clients / ready["connect_s"],
        "us_per_connect": cpu_connect / case.clients * 1e6,
    }
    if case.scenario == "rpc":
        # delivered = round trips answered; the window holds nothing else.
        run["round_trips_per_s"] = result["round_trips_per_s"]
        run["us_per_round_trip"] = run["us_per_delivery"]
        run["errors"] = result["errors"]
    if case.scenario == "channels":
        run["publications"] = result["publications"]
    if case.scenario == "fairness":
        for key in (
            "quiet_p50_ms",
            "quiet_p99_ms",
            "flood_p50_ms",
            "flood_p99_ms",
            "flood_max_ms",
            "flood_publications_per_s",
            "flood_deliveries_per_s",
            "canary_lost",
            "flood_errors",
        ):
            run[key] = result[key]
    return run


# ---- statistics and report ---------------------------------------------------------------
# metric -> (heading, True when higher is better, format)
METRICS: dict[str, tuple[str, bool, str]] = {
    "deliveries_per_s": ("deliveries/s", True, "{:,.0f}"),
    "us_per_delivery": ("server CPU µs/delivery", False, "{:.2f}"),
    "round_trips_per_s": ("round trips/s", True, "{:,.0f}"),
    "us_per_round_trip": ("server CPU µs/round trip", False, "{:.2f}"),
    "p50_ms": ("p50 ms", False, "{:.2f}"),
    "p99_ms": ("p99 ms", False, "{:.2f}"),
    "rss_per_1000_mib": ("RSS MiB per 1000 subscribed", False, "{:.1f}"),
    "connects_per_s": ("connect+subscribe/s", True, "{:,.0f}"),
    "us_per_connect": ("server CPU µs/connect", False, "{:.0f}"),
    "server_sys_pct": ("of which kernel %", False, "{:.0f}"),
    "loadgen_cpu_pct": ("loadgen CPU %", False, "{:.0f}"),
    "quiet_p50_ms": ("canary p50 ms, alone", False, "{:.2f}"),
    "quiet_p99_ms": ("canary p99 ms, alone", False, "{:.2f}"),
    "flood_p50_ms": ("canary p50 ms, during the flood", False, "{:.2f}"),
    "flood_p99_ms": ("canary p99 ms, during the flood", False, "{:.2f}"),
    "flood_max_ms": ("canary max ms, during the flood", False, "{:.2f}"),
    "flood_publications_per_s": ("flood publications/s", True, "{:,.0f}"),
    "flood_deliveries_per_s": ("flood deliveries/s", True, "{:,.0f}"),
    "canary_lost": ("canary publications lost", False, "{:.0f}"),
}
CASE_COLUMNS = {
    "fanout": (
        ("deliveries_per_s", True),
        ("us_per_delivery", True),
        ("rss_per_1000_mib", False),
        ("connects_per_s", False),
        ("us_per_connect", False),
        ("loadgen_cpu_pct", False),
    ),
    "latency": (
        ("p50_ms", True),
        ("p99_ms", True),
        ("us_per_delivery", True),
        ("loadgen_cpu_pct", False),
    ),
    "rpc": (
        ("round_trips_per_s", True),
        ("p50_ms", True),
        ("p99_ms", True),
        ("us_per_round_trip", True),
        ("server_sys_pct", False),
        ("loadgen_cpu_pct", False),
    ),
    "channels": (
        ("deliveries_per_s", True),
        ("us_per_delivery", True),
        ("rss_per_1000_mib", False),
        ("connects_per_s", False),
        ("us_per_connect", False),
        ("loadgen_cpu_pct", False),
    ),
    "fairness": (
        ("quiet_p50_ms", False),
        ("quiet_p99_ms", False),
        ("flood_p50_ms", False),
        ("flood_p99_ms", False),
        ("flood_max_ms", False),
        ("flood_publications_per_s", False),
        ("flood_deliveries_per_s", False),
        ("canary_lost", False),
        ("loadgen_cpu_pct", False),
    ),
}


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def advantage(value: float | None, ref: float | None, higher_better: bool) -> float | None:
    """How many times better than the reference (> 1: better), whatever the metric's sense."""
    if value is None or ref is None or value <= 0 or ref <= 0:
        return None
    return value / ref if higher_better else ref / value


@dataclass
class CaseResults:
    case: Case
    rounds: list[dict[str, dict[str, Any]]] = field(default_factory=list)  # round -> stack -> run

    def stacks(self) -> list[str]:
        seen: list[str] = []
        for rnd in self.rounds:
            seen += [name for name in rnd if name not in seen]
        return [name for name in STACKS if name in seen]

    def med(self, stack: str, metric: str) -> float | None:
        return median([rnd[stack].get(metric) for rnd in self.rounds if stack in rnd])

    def ratio(self, stack: str, metric: str, ref: str) -> float | None:
        higher = METRICS[metric][1]
        per_round = [
            advantage(rnd[stack].get(metric), rnd[ref].get(metric), higher)
            for rnd in self.rounds
            if stack in rnd and ref in rnd
        ]
        return median(per_round)

    def complete(self, stack: str) -> str:
        runs = [rnd[stack] for rnd in self.rounds if stack in rnd]
        return f"{sum(1 for r in runs if r['complete'])}/{len(runs)}"


def fmt(metric: str, value: float | None) -> str:
    return "–" if value is None else METRICS[metric][2].format(value)


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def case_table(res: CaseResults) -> list[str]:
    refs = [ref for ref in REFERENCES if ref in res.stacks()]
    heads = ["stack"]
    for metric, with_ratios in CASE_COLUMNS[res.case.scenario]:
        heads.append(METRICS[metric][0])
        if with_ratios:
            heads += [f"vs {STACKS[ref].label}" for ref in refs]
    heads.append("complete rounds")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for name in res.stacks():
        row = [STACKS[name].label]
        for metric, with_ratios in CASE_COLUMNS[res.case.scenario]:
            row.append(fmt(metric, res.med(name, metric)))
            if with_ratios:
                row += [fmt_ratio(res.ratio(name, metric, ref)) for ref in refs]
        row.append(res.complete(name))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as f:
        mem = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB RAM"
    return f"{platform.node() or 'host'}: {model or platform.machine()}, {os.cpu_count()} cores, {mem}, Linux {platform.release()}"


def versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    with contextlib.suppress(Exception):
        parts.append(
            "Node "
            + subprocess.run(
                [NODE, "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        )
    from importlib import metadata

    for dist in ("wirehub", "uvicorn", "websockets", "python-socketio", "fastapi"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{dist} {metadata.version(dist)}")
    for pkg in ("ws", "socket.io"):
        with contextlib.suppress(OSError, ValueError):
            version = json.loads((BENCH / "node_modules" / pkg / "package.json").read_text())[
                "version"
            ]
            parts.append(f"{pkg} {version}")
    return ", ".join(parts)


KEPT = "<!-- kept by run.py -->"
"""The line right under a ``## `` heading of the report that makes run.py carry the
section over when it rewrites the file: sections written by hand or by other scripts
(bench/delta.py)."""


def _sections(text: str) -> list[str]:
    """``text`` cut before each ``## `` heading: the header, then one part per section."""
    return re.split(r"(?m)^(?=## )", text)


def _kept(section: str) -> bool:
    lines = section.split("\n", 2)
    return section.startswith("## ") and len(lines) > 1 and lines[1].strip() == KEPT


def with_kept_sections(text: str, previous: Path) -> str:
    """``text`` with the kept sections of the report at ``previous`` (if any) inserted
    after its header, in their order."""
    try:
        old = previous.read_text(encoding="utf-8")
    except OSError:
        return text
    kept = [part.rstrip("\n") + "\n\n" for part in _sections(old) if _kept(part)]
    if not kept:
        return text
    header, *rest = _sections(text)
    return "".join([header, *kept, *rest])


def alternating_rounds(
    cases: Iterable[str], rounds: int, measure: Callable[[str, int], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """``measure(case, n)`` for every case in every round, on fresh processes, the order
    reversed every other round so that no case always runs first; ``n`` counts runs."""
    names = list(cases)
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in names}
    for round_ in range(rounds):
        order = names if round_ % 2 == 0 else list(reversed(names))
        for index, case in enumerate(order):
            run = measure(case, round_ * len(names) + index)
            runs[case].append(run)
            print(f"round {round_ + 1}: {case}: {run}", flush=True)
    return runs


def save_section(output: Path, text: str, raw: Path, runs: Any) -> None:
    """A scenario script's kept section into ``output`` (created if missing) and its raw
    runs as JSON into ``raw``; the section is printed too."""
    if output.exists():
        replace_section(output, text)
    else:
        output.write_text(text, encoding="utf-8")
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(runs, indent=1))
    print(text)


def replace_section(path: Path, section: str) -> None:
    """Write ``section`` (a kept ``## `` section) into the report at ``path``, in place of
    the one with the same heading, else after the last kept section (or the header)."""
    heading = section.split("\n", 1)[0]
    parts = _sections(path.read_text(encoding="utf-8"))
    body = section.rstrip("\n") + "\n\n"
    for index, part in enumerate(parts):
        if part.split("\n", 1)[0] == heading:
            parts[index] = body
            break
    else:  # after the last kept section, or the header
        kept = [index for index, part in enumerate(parts) if _kept(part)]
        parts.insert(kept[-1] + 1 if kept else 1, body)
    path.write_text("".join(parts).rstrip("\n") + "\n", encoding="utf-8")


def report(
    results: list[CaseResults],
    args: argparse.Namespace,
    started: dt.datetime,
    charts: list[Path],
) -> str:
    out = [
        "# wirehub bench results",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, {((dt.datetime.now(dt.UTC) - started).total_seconds()) / 60:.1f} min",
        f"- machine: {machine()}",
        f"- versions: {versions()}",
        f"- command: `{' '.join(shlex.quote(a) for a in ['python', 'bench/run.py', *sys.argv[1:]])}`",
        f"- rounds: {args.rounds} (figures are medians over rounds; ratios are medians of "
        "per-round ratios against the reference measured in the same round)",
        f"- pinning: servers on core {SERVER_CORE}, load generator on core {LOADGEN_CORE} (taskset); "
        "loopback only",
        "",
        'Ratios read "times better than the reference": above 1 is better whatever the metric '
        "(throughput: stack / reference; CPU, latency, memory: reference / stack).",
        "",
    ]
    if args.note:
        out += [f"**Note:** {args.note}", ""]
    for res in results:
        out += [f"## {res.case.title}", ""]
        out += case_table(res)
        out.append("")
    if charts:
        out += ["## Charts", ""]
        out += [f"![{path.stem}](charts/{path.name})" for path in charts]
        out.append("")
    scenarios = {res.case.scenario for res in results}
    out += [
        "## How to read this",
        "",
        "- deliveries/s = C × publications / (first publish sent → last publication received "
        "by the last client), measured by the load generator (MANY CHANNELS: C × publications "
        "per group, each client receiving only its group's).",
        "- server CPU µs/delivery = server utime+stime (/proc/<pid>/stat) over the measured "
        "window / publications delivered. Includes handling the publisher's commands.",
        "- RSS MiB per 1000 subscribed = (RSS once every client is connected and subscribed − "
        "RSS of the fresh server) / C × 1000 (IDLE MEMORY).",
        "- connect+subscribe/s: C / time to connect and subscribe every client with "
        f"{args.concurrency} handshakes in flight (CONNECT RATE); the loadgen's cost is in it.",
        "- loadgen CPU %: the load generator's CPU over the measured window; near 100 % it, "
        "not the server, may be the bottleneck.",
        "- Trigger path: raw peers (Node ws, websockets) broadcast every text message the "
        'publisher connection sends; socket.io peers emit a "pub" event to the room; wirehub\'s '
        "publisher is a Centrifugo client sending `publish` commands (answered with a reply). "
        "Each publication is one WebSocket message from one publisher connection for every stack.",
    ]
    if "rpc" in scenarios:
        out += [
            "- RPC: each client sends its next request when the answer to the previous one "
            "arrived (closed loop), for the stated seconds; the requests in flight at the end "
            "are answered and counted. round trips/s = answered requests / (first request sent "
            "→ last answer); p50/p99 = per-request send → answer times (load generator clock); "
            "server CPU µs/round trip = server utime+stime over the window / round trips; "
            "of which kernel % = the stime share of that CPU. "
            "Every answer is checked to carry its request's sequence number.",
            "- RPC requests: wirehub a Centrifugo `rpc` command (method `echo`) answered by an "
            "`on_rpc` handler returning the request's data (standalone: bench/wirehub_rpc.py, "
            "served by `wirehub.cli.run` as `wirehub serve` serves); Node ws and websockets "
            "echo the message; socket.io peers acknowledge an `echo` emit with its data "
            "(emit with a callback).",
        ]
    if "fairness" in scenarios:
        out += [
            "- FAIRNESS (Centrifugo protocol only): a canary publisher sends `--rate` "
            "publications/s, each with its send time, to a channel with one canary subscriber; "
            "its send → receive time (load generator clock) is measured for `--fair-duration` s "
            "alone, then for as long again while `--flooders` connections each keep "
            "`--flood-window` publishes to another channel in flight (the next sent as each "
            "reply arrives), fanned out to C subscribers. Same server, same run. The rate "
            "limit is off in bench/wirehub.toml, so the flood goes as fast as the server "
            "answers.",
        ]
    if "channels" in scenarios:
        out += [
            "- MANY CHANNELS: each client subscribes to its personal channel and its group's "
            "channel (RSS and connect+subscribe/s include both subscriptions); only group "
            "channels are published to, interleaved across groups, back to back, one WebSocket "
            "message per publication. Raw peers keep a room → sockets map (`join <room>`, "
            "`pub <room> <payload>`); socket.io peers use rooms (`pubto` event).",
        ]
    out += [
        "- A shared 2-core machine is noisy: trust ratios from the same round more than absolute figures.",
        "",
    ]
    return "\n".join(out)


def charts_for(results: list[CaseResults]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    CHARTS_DIR.mkdir(exist_ok=True)
    written = []
    for res in results:
        stacks = res.stacks()
        labels = [STACKS[s].label for s in stacks]
        metrics = [
            m
            for m, _ in CASE_COLUMNS[res.case.scenario]
            if m not in ("loadgen_cpu_pct", "server_sys_pct")
        ]
        ncols = min(3, len(metrics))
        nrows = -(-len(metrics) // ncols)
        fig, grid = plt.subplots(
            nrows, ncols, figsize=(4.6 * ncols, (0.45 * len(stacks) + 1.2) * nrows), squeeze=False
        )
        axes = list(grid.flat)
        for ax in axes[len(metrics) :]:
            ax.set_visible(False)
        for i, (ax, metric) in enumerate(zip(axes, metrics, strict=False)):
            values = [res.med(s, metric) or 0 for s in stacks]
            colors = ["tab:blue" if s.startswith("wirehub") else "tab:gray" for s in stacks]
            ax.barh(labels, values, color=colors)
            ax.invert_yaxis()
            heading, higher, _ = METRICS[metric]
            ax.set_title(f"{heading} ({'higher' if higher else 'lower'} is better)", fontsize=9)
            ax.tick_params(labelsize=8)
            if i % ncols:
                ax.set_yticklabels([])
        fig.suptitle(res.case.title, fontsize=10)
        fig.tight_layout()
        path = CHARTS_DIR / f"{res.case.key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


# ---- main --------------------------------------------------------------------------------
def setup() -> None:
    print("bench setup: npm ci --prefix bench; pip install -r bench/requirements.txt", flush=True)
    subprocess.run(["npm", "ci", "--prefix", str(BENCH), "--no-audit", "--no-fund"], check=True)
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "--quiet", "-r", str(BENCH / "requirements.txt")],
        check=True,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="wirehub vs peers, same run, as ratios.")
    parser.add_argument(
        "--setup", action="store_true", help="install the bench's dependencies and exit"
    )
    parser.add_argument(
        "--scenario",
        nargs="+",
        default=["all"],
        choices=[*SCENARIOS, "all"],
        help="fanout, latency, rpc, channels (MANY CHANNELS) or all (the default)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        help="fanout: C values (default 1000 5000); latency: first value (default 1000)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stacks", nargs="+", choices=list(STACKS), default=list(STACKS))
    parser.add_argument("--messages", type=int, default=100, help="fanout: publications per burst")
    parser.add_argument("--rate", type=float, default=20, help="latency: publications per second")
    parser.add_argument("--duration", type=float, default=10, help="latency: seconds of publishing")
    parser.add_argument(
        "--rpc-clients", type=int, default=100, help="rpc: clients in the closed loop"
    )
    parser.add_argument("--rpc-duration", type=float, default=5, help="rpc: seconds of round trips")
    parser.add_argument("--channel-clients", type=int, default=5000, help="channels: C (clients)")
    parser.add_argument("--group-size", type=int, default=10, help="channels: clients per group")
    parser.add_argument(
        "--group-messages", type=int, default=20, help="channels: publications per group"
    )
    parser.add_argument(
        "--fair-clients", type=int, default=200, help="fairness: subscribers of the flood"
    )
    parser.add_argument(
        "--fair-duration", type=float, default=5, help="fairness: seconds per phase"
    )
    parser.add_argument("--flooders", type=int, default=2, help="fairness: flooding connections")
    parser.add_argument(
        "--flood-window", type=int, default=50, help="fairness: publishes in flight per flooder"
    )
    parser.add_argument("--payload", type=int, default=64, help="bytes of padding per publication")
    parser.add_argument("--timeout", type=float, default=60, help="bound on one measured window, s")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--output", type=Path, help="report file (default bench/RESULTS.md)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="raw JSON and logs")
    parser.add_argument("--no-charts", action="store_true")
    parser.add_argument("--note", default="", help="a sentence added at the top of the report")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="seconds: 5 clients, 1 round, wirehub (WebSocket, HTTP-streaming, SSE) + Node ws, "
        "no charts",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.clients = args.clients or [5]
        args.rounds = 1
        if args.stacks == list(STACKS):
            args.stacks = ["wirehub", "node-ws", "wirehub-http-stream", "wirehub-sse"]
        args.messages = min(args.messages, 10)
        args.duration = 1.0
        args.rpc_clients = min(args.rpc_clients, 5)
        args.rpc_duration = min(args.rpc_duration, 1.0)
        args.channel_clients = min(args.channel_clients, 20)
        args.group_messages = min(args.group_messages, 3)
        args.fair_clients = min(args.fair_clients, 5)
        args.fair_duration = min(args.fair_duration, 1.0)
        args.timeout = min(args.timeout, 15)
        args.no_charts = True
        args.output = args.output or args.results_dir / "SMOKE.md"
    args.output = args.output or BENCH / "RESULTS.md"
    return args


def cases(args: argparse.Namespace) -> list[Case]:
    wanted = set(SCENARIOS) if "all" in args.scenario else set(args.scenario)
    out = []
    if "fanout" in wanted:
        out += [Case("fanout", c, args.messages) for c in (args.clients or [1000, 5000])]
    if "latency" in wanted:
        clients = (args.clients or [1000])[0]
        out.append(Case("latency", clients, max(1, round(args.rate * args.duration)), args.rate))
    if "rpc" in wanted:
        out.append(Case("rpc", args.rpc_clients, 0, duration=args.rpc_duration))
    if "channels" in wanted:
        out.append(
            Case("channels", args.channel_clients, args.group_messages, group_size=args.group_size)
        )
    if "fairness" in wanted:
        out.append(
            Case(
                "fairness",
                args.fair_clients,
                0,
                args.rate,
                duration=args.fair_duration,
                flooders=args.flooders,
            )
        )
    return out


def runnable(stacks: list[Stack], case: Case) -> list[Stack]:
    """The stacks that can run ``case`` (FAIRNESS needs the Centrifugo protocol; the
    emulation transports run FANOUT and LATENCY)."""
    stacks = [stack for stack in stacks if case.scenario in stack.scenarios]
    if case.scenario in CENTRIFUGO_ONLY:
        return [stack for stack in stacks if stack.proto == "centrifugo"]
    return stacks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup:
        setup()
        return 0
    if not (BENCH / "node_modules" / "ws").is_dir():
        print(
            "bench: bench/node_modules is missing; run `npm ci --prefix bench` (or `make bench`)",
            file=sys.stderr,
        )
        return 2
    todo = cases(args)
    raise_fd_limit(max(c.clients for c in todo) + 1024)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    results = [CaseResults(case) for case in todo]
    stacks = [STACKS[name] for name in args.stacks]
    total = args.rounds * sum(len(runnable(stacks, case)) for case in todo)
    step = 0
    t0 = time.monotonic()
    raw: list[dict[str, Any]] = []
    failures: list[str] = []
    for rnd in range(args.rounds):
        for res in results:
            res.rounds.append({})
            # Interleave: every stack once per round, in an order rotated each round.
            order = stacks[rnd % len(stacks) :] + stacks[: rnd % len(stacks)]
            for stack in runnable(order, res.case):
                step += 1
                prefix = (
                    f"[{step:>3}/{total}] {time.monotonic() - t0:6.1f}s round {rnd + 1}/{args.rounds} "
                    f"{res.case.key} {stack.name:<16}"
                )
                if sys.stdout.isatty():
                    print(f"{prefix} ...", end="\r", flush=True)
                try:
                    run = measure(stack, res.case, args, f"r{rnd + 1}-{res.case.key}")
                except (RuntimeError, OSError, ValueError) as exc:
                    failures.append(f"round {rnd + 1} {res.case.key} {stack.name}: {exc}")
                    print(f"{prefix} FAILED: {exc}", flush=True)
                    continue
                res.rounds[-1][stack.name] = run
                raw.append({"round": rnd + 1, "case": res.case.key, **run})
                summary = (
                    f"{fmt('deliveries_per_s', run['deliveries_per_s'])} deliv/s, "
                    f"{fmt('us_per_delivery', run['us_per_delivery'])} µs/deliv"
                )
                if res.case.scenario == "rpc":
                    summary = (
                        f"{fmt('round_trips_per_s', run['round_trips_per_s'])} rt/s, "
                        f"{fmt('us_per_round_trip', run['us_per_round_trip'])} µs/rt, "
                        f"p50 {fmt('p50_ms', run['p50_ms'])} p99 {fmt('p99_ms', run['p99_ms'])} ms, "
                        f"kernel {fmt('server_sys_pct', run['server_sys_pct'])}%"
                    )
                elif res.case.scenario == "fairness":
                    summary = (
                        f"canary p50/p99 {fmt('quiet_p50_ms', run['quiet_p50_ms'])}/"
                        f"{fmt('quiet_p99_ms', run['quiet_p99_ms'])} ms alone, "
                        f"{fmt('flood_p50_ms', run['flood_p50_ms'])}/"
                        f"{fmt('flood_p99_ms', run['flood_p99_ms'])} ms during the flood "
                        f"({fmt('flood_publications_per_s', run['flood_publications_per_s'])} pub/s)"
                    )
                elif res.case.scenario == "latency":
                    summary += f", p50 {fmt('p50_ms', run['p50_ms'])} p99 {fmt('p99_ms', run['p99_ms'])} ms"
                else:
                    summary += f", {fmt('rss_per_1000_mib', run['rss_per_1000_mib'])} MiB/1k"
                summary += f", loadgen {fmt('loadgen_cpu_pct', run['loadgen_cpu_pct'])}%"
                if not run["complete"]:
                    summary += f" INCOMPLETE {run['delivered']}/{run['expected']}"
                print(f"{prefix} {summary}", flush=True)
    raw_path = args.results_dir / f"{started:%Y%m%dT%H%M%S}.json"
    raw_path.write_text(json.dumps(raw, indent=1))
    chart_paths = [] if args.no_charts else charts_for(results)
    text = report(results, args, started, chart_paths)
    if failures:
        text += (
            "\n## Failed measurements\n\n"
            + "\n".join(f"- {f.splitlines()[0]}" for f in failures)
            + "\n"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(with_kept_sections(text, args.output), encoding="utf-8")
    print()
    for res in results:
        print(res.case.title)
        print("\n".join(case_table(res)))
        print()
    print(f"bench: wrote {args.output} (raw: {raw_path})", flush=True)
    if failures:
        print(
            f"bench: {len(failures)} measurement(s) failed:\n" + "\n".join(failures),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
