"""What an HTTP event proxy costs: connects/s and RPC round trips/s when a backend decides
over HTTP (Centrifugo's event proxies) vs when in-process handlers do, same run.

    .venv/bin/python bench/proxy.py                   # ~30 s; updates its section of bench/RESULTS.md
    .venv/bin/python bench/proxy.py --rounds 1 --output /tmp/proxy.md
    .venv/bin/python bench/proxy.py --smoke --output /tmp/proxy.md    # seconds (tests)

Two cases, each on a fresh ``wirehub serve`` (bench/wirehub.toml) pinned to core 0, in
alternating order every round:

- in-process: ``--app bench/proxy.py:create_node``: an ``on_connecting`` handler maps
  the session cookie to a user, an ``on_rpc`` handler echoes the data;
- HTTP proxy: ``client.proxy.connect`` (forwarding ``Cookie``) and ``rpc.proxy`` point at
  a backend doing the same: this module's minimal Starlette ``app`` under uvicorn
  (uvloop, httptools, no access log), pinned to core 1 with the load generator.

The load (``bench/proxy_load.mjs``, Node ``ws``, no SDK): C workers open a connection
with the cookie, connect, close, again (connects/s); then C connections send RPCs one
after another, each checked to come back with its own data (round trips/s). Reported:
medians of the rounds, and the CPU (utime + stime) of wirehub and of the backend per
operation. The section it writes in RESULTS.md is one that ``run.py`` keeps.
"""

# ruff: noqa: RUF001

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import sys
import tempfile
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    BENCH,
    KEPT,
    LOADGEN_CORE,
    SERVER_CORE,
    LoadGen,
    alternating_rounds,
    cpu_seconds,
    free_port,
    listening,
    machine,
    raise_fd_limit,
    save_section,
)

from wirehub import Config, ConnectingEvent, ConnectingReply, Credentials, Node, RPCEvent, RPCReply

RESULTS = BENCH / "results"
SESSION = "bench-session-0123456789"
SESSIONS = {SESSION: "bench-user"}
CASES = ("in-process handlers", "HTTP proxy")
PROXY_CONFIG = """
[client.proxy.connect]
enabled = true
endpoint = "{base}/connect"
timeout = 5.0
http_headers = ["Cookie"]

[rpc.proxy]
endpoint = "{base}/rpc"
timeout = 5.0

[rpc.without_namespace]
proxy_enabled = true
"""


# ---- the deciders: in-process handlers, and the same over HTTP ---------------------------
def _user(cookie_header: str) -> str | None:
    morsel = SimpleCookie(cookie_header).get("session")
    return SESSIONS.get(morsel.value) if morsel is not None else None


def create_node(config: Config) -> Node:
    """``wirehub serve --app bench/proxy.py:create_node``: the in-process case."""
    node = Node(config)

    @node.on_connecting
    async def connecting(event: ConnectingEvent) -> ConnectingReply | None:
        user = _user(event.transport.headers.get("cookie", ""))
        return ConnectingReply(credentials=Credentials(user=user)) if user else None

    @node.on_rpc
    async def echo(event: RPCEvent) -> RPCReply:
        return RPCReply(data=event.data)

    return node


def _json(answer: Any) -> Response:
    return Response(json.dumps(answer, separators=(",", ":")), media_type="application/json")


async def _connect(request: Request) -> Response:
    await request.body()
    user = _user(request.headers.get("cookie", ""))
    if user is None:
        return _json({"error": {"code": 401, "message": "unknown session"}})
    return _json({"result": {"user": user}})


async def _rpc(request: Request) -> Response:
    body = json.loads(await request.body())
    return _json({"result": {"data": body.get("data")}})


app = Starlette(
    routes=[Route("/connect", _connect, methods=["POST"]), Route("/rpc", _rpc, methods=["POST"])]
)
"""The HTTP proxy case's backend: ``uvicorn proxy:app --app-dir bench``."""


# ---- one measurement ---------------------------------------------------------------------
def measure(case: str, args: argparse.Namespace, tmp: Path, n: int) -> dict[str, Any]:
    """One round of one case: connects, then RPCs, on fresh processes."""
    config = tmp / f"{n}-wirehub.toml"
    text = (BENCH / "wirehub.toml").read_text(encoding="utf-8")
    port, backend_port = free_port(), free_port()
    wirehub = [sys.executable, "-m", "wirehub", "serve", "--config", str(config)]
    wirehub += ["--port", str(port)]
    with contextlib.ExitStack() as stack:
        backend = None
        if case == "HTTP proxy":
            text += PROXY_CONFIG.format(base=f"http://127.0.0.1:{backend_port}")
            uvicorn = [sys.executable, "-m", "uvicorn", "proxy:app", "--app-dir", str(BENCH)]
            uvicorn += ["--port", str(backend_port), "--log-level", "warning", "--no-access-log"]
            uvicorn += ["--loop", "uvloop", "--http", "httptools"]
            backend = stack.enter_context(
                listening(uvicorn, LOADGEN_CORE, tmp / f"{n}-backend.log", backend_port)
            )
        else:
            wirehub += ["--app", f"{BENCH / 'proxy.py'}:create_node"]
        config.write_text(text, encoding="utf-8")
        server = stack.enter_context(
            listening(wirehub, SERVER_CORE, tmp / f"{n}-wirehub.log", port)
        )
        run: dict[str, Any] = {}
        for mode in ("connect", "rpc"):
            figures = _phase(mode, port, server.pid, backend.pid if backend else None, args, tmp, n)
            run.update({f"{mode}_{key}": value for key, value in figures.items()})
    return run


def _phase(
    mode: str,
    port: int,
    server_pid: int,
    backend_pid: int | None,
    args: argparse.Namespace,
    tmp: Path,
    n: int,
) -> dict[str, Any]:
    options = {
        "url": f"ws://127.0.0.1:{port}/connection/websocket",
        "mode": mode,
        "clients": args.clients,
        "count": args.connects if mode == "connect" else args.rpcs,
        "headers": {"Cookie": f"session={SESSION}"},
    }
    load = LoadGen(options, tmp / f"{n}-{mode}-load.log", script="proxy_load.mjs")
    try:
        load.expect("READY", 60)
        server0, load0 = cpu_seconds(server_pid), cpu_seconds(load.proc.pid)
        backend0 = cpu_seconds(backend_pid) if backend_pid else 0.0
        load.send("GO")
        result = load.expect("RESULT", 300)
        server_cpu = cpu_seconds(server_pid) - server0
        load_cpu = cpu_seconds(load.proc.pid) - load0
        backend_cpu = cpu_seconds(backend_pid) - backend0 if backend_pid else 0.0
    finally:
        load.close()
    ops = result["ops"]
    return {
        "complete": result["failed"] == 0,
        "ops_per_s": result["ops_per_s"],
        "server_us": server_cpu / ops * 1e6,
        "backend_us": backend_cpu / ops * 1e6 if backend_pid else None,
        # Share of a core each process used during the phase: which one was the limit.
        "server_busy": server_cpu / result["seconds"],
        "load_busy": load_cpu / result["seconds"],
        "backend_busy": backend_cpu / result["seconds"] if backend_pid else None,
    }


# ---- the report --------------------------------------------------------------------------
def med(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def _cell(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def section(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = [
        "## EVENT PROXIES (issue 12): connects and RPCs decided over HTTP vs in-process",
        KEPT,
        "",
        f"Written by `bench/proxy.py` (not by `run.py`, which keeps this section): "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine()}; "
        f"`{' '.join(['python', 'bench/proxy.py', *sys.argv[1:]])}`; C = {args.clients} "
        f"concurrent clients, {args.connects} connects, then {args.rpcs} RPCs per client; "
        f"median of {args.rounds} round(s), both cases in every round (fresh processes). "
        "wirehub on core 0; the backend (Starlette under uvicorn) and the load on core 1. "
        "The machine is shared: indicative figures.",
        "",
        "| decided by | connects/s | wirehub CPU µs per connect | backend CPU µs per connect "
        "| RPC round trips/s | wirehub CPU µs per RPC | backend CPU µs per RPC "
        "| complete rounds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case, case_runs in runs.items():
        complete = sum(1 for run in case_runs if run["connect_complete"] and run["rpc_complete"])
        lines.append(
            f"| {case} | {_cell(med(case_runs, 'connect_ops_per_s'), ',.0f')} "
            f"| {_cell(med(case_runs, 'connect_server_us'), '.0f')} "
            f"| {_cell(med(case_runs, 'connect_backend_us'), '.0f')} "
            f"| {_cell(med(case_runs, 'rpc_ops_per_s'), ',.0f')} "
            f"| {_cell(med(case_runs, 'rpc_server_us'), '.0f')} "
            f"| {_cell(med(case_runs, 'rpc_backend_us'), '.0f')} "
            f"| {complete}/{len(case_runs)} |"
        )
    inproc, proxy = (runs[case] for case in CASES)
    ratios = []
    for key, what in (("connect", "connects/s"), ("rpc", "RPC round trips/s")):
        fast, slow = med(inproc, f"{key}_ops_per_s"), med(proxy, f"{key}_ops_per_s")
        cpu_in, cpu_proxy = med(inproc, f"{key}_server_us"), med(proxy, f"{key}_server_us")
        if fast and slow and cpu_in and cpu_proxy:
            ratios.append(
                f"{what}: the proxy gives {slow / fast:.2f}× the in-process rate, at "
                f"{cpu_proxy / cpu_in:.2f}× wirehub's CPU per operation"
            )
    lines += ["", "; ".join(ratios) + "." if ratios else "", ""]
    lines.append(
        "Through the proxy, each connect and each RPC is also an HTTP POST from wirehub's "
        "pooled keep-alive client to the backend and its JSON answer: wirehub's added CPU is "
        "building the request, the HTTP exchange and decoding the answer; the backend's is "
        "its own (a real one does more: a database, a session store)."
    )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--connects", type=int, default=3000)
    parser.add_argument("--rpcs", type=int, default=500, help="per client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="raw JSON")
    parser.add_argument("--smoke", action="store_true", help="a few clients and ops, 1 round")
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.connects, args.rpcs, args.rounds = 4, 40, 10, 1
    raise_fd_limit(args.clients * 4 + 200)
    with tempfile.TemporaryDirectory() as directory:
        runs = alternating_rounds(
            CASES, args.rounds, lambda case, n: measure(case, args, Path(directory), n)
        )
    save_section(args.output, section(runs, args), args.results_dir / "proxy.json", runs)
    complete = all(
        run["connect_complete"] and run["rpc_complete"] for r in runs.values() for run in r
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
