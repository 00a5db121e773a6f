"""The bench harness keeps working: `bench/run.py --smoke` runs every scenario (FANOUT,
LATENCY, RPC, MANY CHANNELS, and FAIRNESS, which only the Centrifugo protocol can run)
for wirehub standalone and Node ws, and FANOUT and LATENCY for wirehub's subscribers over
HTTP-streaming and SSE, with a handful of clients for one round and reports numbers for
each; `bench/delta.py --smoke` runs the DELTA comparison, `bench/proxy.py --smoke` the
EVENT PROXIES one, `bench/redis_engine.py --smoke` the Redis engine's tables.

Asserts that it runs, delivers every publication and reports figures; never a timing
threshold (see bench/README.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import timeout

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
NUMBER = re.compile(r"\d[\d,]*(\.\d+)?")


def test_bench_smoke_reports_numbers_for_wirehub_and_node_ws(tmp_path: Path) -> None:
    if not (BENCH / "node_modules" / "ws").is_dir():
        pytest.fail("bench/node_modules is missing: run `npm ci --prefix bench`")
    report_path = tmp_path / "SMOKE.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--smoke",
            "--output",
            str(report_path),
            "--results-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout(90),
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    report = report_path.read_text(encoding="utf-8")
    for heading in ("## FANOUT", "## LATENCY", "## RPC", "## MANY CHANNELS", "## FAIRNESS"):
        assert heading in report, f"{heading} missing from\n{report}"
    for label, scenarios in (
        ("wirehub (standalone)", 5),
        ("Node ws", 4),
        ("wirehub (HTTP-streaming)", 2),  # FANOUT and LATENCY
        ("wirehub (SSE)", 2),
    ):
        rows = [line for line in report.splitlines() if line.startswith(f"| {label} |")]
        assert len(rows) == scenarios, f"{label}: one row per scenario expected in\n{report}"
        for row in rows:
            cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
            # First figure: deliveries/s (fanout, many channels), p50 ms (latency, fairness)
            # or round trips/s (rpc); last: rounds complete (every publication delivered,
            # every RPC answered with its own data, no canary publication lost).
            assert NUMBER.fullmatch(cells[1]), row
            assert cells[-1] == "1/1", f"incomplete: {row}"
        assert label in proc.stdout


def scenario_report(script: str, tmp_path: Path, wait: float = 90) -> str:
    """Run ``bench/<script> --smoke`` with its report and raw JSON in ``tmp_path``; the
    report (or kept section) it wrote."""
    if not (BENCH / "node_modules" / "ws").is_dir():
        pytest.fail("bench/node_modules is missing: run `npm ci --prefix bench`")
    report_path = tmp_path / "REPORT.md"
    proc = subprocess.run(
        [
            *(sys.executable, str(BENCH / script), "--smoke"),
            *("--output", str(report_path), "--results-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout(wait),
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return report_path.read_text(encoding="utf-8")


def test_delta_bench_smoke_shows_fewer_bytes_with_delta(tmp_path: Path) -> None:
    """`bench/delta.py --smoke`: both cases complete; a delta subscriber receives fewer
    bytes per delivery (a count of bytes, not a timing)."""
    report = scenario_report("delta.py", tmp_path)
    assert report.startswith("## DELTA")
    rows = {}
    for line in report.splitlines():
        if line.startswith(("| full payloads |", '| delta: "fossil" |')):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            assert cells[-1] == "1/1", f"incomplete: {line}"
            rows[cells[0]] = float(cells[1].replace(",", ""))
    assert rows["full payloads"] > 2000
    assert rows['delta: "fossil"'] < rows["full payloads"] / 3


def test_proxy_bench_smoke_reports_both_cases(tmp_path: Path) -> None:
    """`bench/proxy.py --smoke`: connects and RPCs decided in-process and by an HTTP proxy
    backend, every connect accepted and every RPC answered with its own data, in both."""
    report = scenario_report("proxy.py", tmp_path)
    assert report.startswith("## EVENT PROXIES")
    for case in ("in-process handlers", "HTTP proxy"):
        (row,) = [line for line in report.splitlines() if line.startswith(f"| {case} |")]
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        # connects/s and RPC round trips/s; the backend's CPU only where there is one.
        assert NUMBER.fullmatch(cells[1]), row
        assert NUMBER.fullmatch(cells[4]), row
        assert (cells[3] == "n/a") == (case == "in-process handlers"), row
        assert cells[-1] == "1/1", f"incomplete: {row}"


def test_redis_engine_bench_smoke_reports_every_table(tmp_path: Path) -> None:
    """`bench/redis_engine.py --smoke` (its own redis-server): publish through a node and
    through a broker alone, on both engines, and every fan-out case, all complete."""
    report = scenario_report("redis_engine.py", tmp_path, wait=180)
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    for label in (
        "memory",
        "redis",
        "memory, concurrent",
        "redis, concurrent",
        "memory, 1 node",
        "redis, 2 nodes",
        "redis, --workers 2",
    ):
        (row,) = [line for line in rows if line.startswith(f"| {label} |")]
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert NUMBER.fullmatch(cells[1]), row
        assert NUMBER.fullmatch(cells[2]), row
    assert "incomplete" not in report
    assert len(re.findall(r"Measured: \*\*\d+\.\d+\u00d7\*\*", report)) == 3, report
