"""Shared fixtures. In CI (WIREHUB_STRICT=1) a skipped test fails the run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

STRICT = os.environ.get("WIREHUB_STRICT") == "1"
_skipped: list[str] = []


@pytest.fixture
def anyio_backend() -> str:
    # redis.asyncio and uvicorn are asyncio-only.
    return "asyncio"


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers from TOML text; every one is stopped at teardown."""
    started: list[ServerProcess] = []

    def start(
        config: str,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        args: Sequence[str] = (),
        fd_limit: int | None = None,
    ) -> ServerProcess:
        path = tmp_path / f"wirehub-{len(started)}.toml"
        path.write_text(config, encoding="utf-8")
        server = ServerProcess(path, env=env, cwd=cwd, args=args, fd_limit=fd_limit)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # An expected failure is reported as skipped too; it is not a skip.
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if STRICT and _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STRICT and _skipped:
        terminalreporter.write_line(
            f"WIREHUB_STRICT=1: {len(_skipped)} skipped test(s) fail this run: "
            + ", ".join(_skipped),
            red=True,
        )
