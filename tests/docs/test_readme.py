"""Every code block of the README works as written.

Python and Node.js blocks run against a real `wirehub serve` on the development config
(the README's own `make serve` setup), the browser block runs in Chromium, fragments are
checked to be excerpts of runnable example files (tested in tests/docs/test_examples.py),
and every shell command is either run here or named with the reason it is not.
"""

from __future__ import annotations

import builtins
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from playwright.sync_api import sync_playwright

import wirehub
from tests.docs.readme import README, ROOT, Block, blocks, on_port
from tests.support.server import TIMEOUT, ServerProcess, timeout

pytestmark = pytest.mark.interop

BLOCKS = blocks()
JS_DIR = ROOT / "tests/interop/js"  # has centrifuge and ws installed
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # A page fulfilled by Playwright's router counts as a public page, which Chromium's
    # local-network checks forbid to reach 127.0.0.1; a page served by 127.0.0.1 may.
    "--disable-features=LocalNetworkAccessChecks",
]


def _of(lang: str, *, fragments: bool | None = None, marker: str | None = None) -> list[Block]:
    found = [block for block in BLOCKS if block.lang == lang]
    if fragments is not None:
        found = [block for block in found if (block.fragment_of is not None) == fragments]
    if marker is not None:
        found = [block for block in found if block.marker == marker]
    return found


def _ids(value: object) -> str:
    return value.id if isinstance(value, Block) else str(value)


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`make serve`'s server: config/development.toml, on a free port."""
    server = ServerProcess(ROOT / "config/development.toml", cwd=tmp_path_factory.mktemp("cwd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_readme_has_the_blocks_these_tests_expect() -> None:
    """A block whose language nobody checks would go untested."""
    assert {block.lang for block in BLOCKS} <= {"python", "js", "sh", "toml"}
    assert _of("python", fragments=False), "no runnable Python block found"
    assert _of("js", marker="browser")
    assert _of("js", marker="")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.fragment_of is not None], ids=_ids)
def test_fragment_is_an_excerpt_of_its_file(block: Block) -> None:
    path = block.fragment_of
    assert path is not None
    assert path.is_file(), f"README line {block.line}: {path} missing"
    assert block.code in path.read_text(encoding="utf-8"), (
        f"README line {block.line}: the block is not an excerpt of {path}; update one of them"
    )


@pytest.mark.parametrize("block", _of("python", fragments=False), ids=_ids)
def test_python_block_runs(block: Block, dev_server: ServerProcess) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", on_port(block.code, dev_server.port)],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        check=False,
    )
    assert proc.returncode == 0, f"README line {block.line}:\n{proc.stdout}\n{proc.stderr}"
    assert "received" in proc.stdout


@pytest.mark.parametrize("block", _of("js", marker=""), ids=_ids)
def test_node_block_runs(block: Block, dev_server: ServerProcess) -> None:
    # In the folder whose node_modules hold centrifuge and ws, so the imports resolve.
    script = JS_DIR / f".readme-{block.id}.mjs"
    script.write_text(on_port(block.code, dev_server.port), encoding="utf-8")
    try:
        proc = subprocess.run(
            ["node", str(script)],
            capture_output=True,
            text=True,
            timeout=timeout(60),
            check=False,
        )
    finally:
        script.unlink()
    assert proc.returncode == 0, f"README line {block.line}:\n{proc.stdout}\n{proc.stderr}"
    assert "received" in proc.stdout


@pytest.mark.browser
@pytest.mark.parametrize("block", _of("js", marker="browser"), ids=_ids)
def test_browser_block_runs(block: Block, dev_server: ServerProcess) -> None:
    """The block as a page's module script, `centrifuge` resolved by an import map to the
    SDK's ES module build; the page is served from the server's origin (same-origin)."""
    sdk = (ROOT / "demo/node_modules/centrifuge/build/index.mjs").read_bytes()
    page_html = (
        '<!doctype html><script type="importmap">{"imports": {"centrifuge": "./sdk.mjs"}}'
        f'</script><script type="module">{on_port(block.code, dev_server.port)}</script>'
    )
    base = dev_server.http_url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.route(
                f"{base}/readme.html",
                lambda route: route.fulfill(body=page_html, content_type="text/html"),
            )
            page.route(
                f"{base}/sdk.mjs",
                lambda route: route.fulfill(body=sdk, content_type="text/javascript"),
            )
            with page.expect_console_message(
                lambda message: message.text.startswith("received"), timeout=TIMEOUT * 1000
            ) as received:
                page.goto(f"{base}/readme.html")
            assert "hello" in received.value.text
        finally:
            browser.close()


def _wirehub() -> str:
    return str(Path(sys.executable).with_name("wirehub"))


def _run_token_command(line: str) -> None:
    args = line.split()[1:]
    proc = subprocess.run(
        [_wirehub(), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout(30),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    claims = jwt.decode(proc.stdout.strip(), options={"verify_signature": False})
    assert claims["sub"] == "42"


def _check_make_target(line: str) -> None:
    """``make -n`` with the line's target and variables: make knows what to do."""
    proc = subprocess.run(
        ["make", "-n", *line.split()[1:]], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr


# Every command the README shows, and how this test suite covers it. A new command fails
# test_every_shell_command_is_covered until it is added here.
_COMMANDS: list[tuple[str, str]] = [
    (r"^make (serve|test)\b", "make target exists (CI runs `make test` itself)"),
    (r"^\.venv/bin/wirehub token ", "run here"),
    (
        r"^make example NAME=(chat|dashboard|game|editor|notifications|proxy)$",
        "make target exists; tests/examples/ runs each app as its Makefile recipe does",
    ),
    (
        r"^\.venv/bin/wirehub serve --config config/development\.toml --app examples/handlers\.py:create_node$",
        "run by tests/docs/test_examples.py::test_handlers_example",
    ),
    (
        r"^wirehub serve --config wirehub\.toml --workers \d+$",
        "run by tests/test_workers.py::test_two_workers_behave_as_one_server (2 workers)",
    ),
    (
        r"^WIREHUB_ENGINE__REDIS__ADDRESS=\S+ +uvicorn examples\.fastapi_redis:app --workers \d+",
        "run by tests/test_workers.py::test_the_fastapi_example_under_uvicorn_workers",
    ),
    (r"^\.venv/bin/wirehub publish .* --config config/development\.toml$", "run here"),
]


def _shell_lines() -> list[tuple[Block, str]]:
    """Each command of the shell blocks, continuation lines joined, comments dropped."""
    found = []
    for block in _of("sh"):
        text = re.sub(r"\\\n\s*", "", block.code)
        for line in text.splitlines():
            if line.strip() and not line.startswith("#"):
                found.append((block, line.split("  #")[0].strip()))
    return found


def _run_api_command(line: str, server: ServerProcess) -> None:
    """An API verb of the README against the development server (its key, its port)."""
    args = shlex.split(line)[1:]
    api_url = f"{server.http_url}/api"
    proc = subprocess.run(
        [_wirehub(), *args, "--api-url", api_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout(30),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("{"), proc.stdout


@pytest.mark.parametrize(("block", "line"), _shell_lines(), ids=_ids)
def test_every_shell_command_is_covered(
    block: Block, line: str, request: pytest.FixtureRequest
) -> None:
    covered = [how for pattern, how in _COMMANDS if re.search(pattern, line)]
    assert covered, f"README line {block.line}: `{line}` is not covered; add it to _COMMANDS"
    if line.startswith("make "):
        _check_make_target(line)
    elif "wirehub token" in line:
        _run_token_command(line)
    elif "wirehub publish" in line:
        _run_api_command(line, request.getfixturevalue("dev_server"))


def test_every_wirehub_name_in_the_readme_is_exported() -> None:
    """Names the README imports from wirehub, or mentions as handler types, import."""
    text = README.read_text(encoding="utf-8")
    names: set[str] = set()
    for match in re.finditer(r"from wirehub import \(?([\w\s,]+)\)?", text):
        names.update(name.strip() for name in match[1].split(",") if name.strip())
    names.update(
        re.findall(r"`(\w+(?:Event|Reply|Handler|Credentials|Subscription|Error|Info))`", text)
    )
    names.update(re.findall(r"\b(\w+(?:Event|Reply))\b", text))
    assert names, "found no names"
    missing = sorted(
        name for name in names if not hasattr(wirehub, name) and not hasattr(builtins, name)
    )
    assert missing == []


@pytest.mark.parametrize("block", _of("toml"), ids=_ids)
def test_toml_block_is_a_valid_configuration(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "wirehub.toml"
    path.write_text(block.code, encoding="utf-8")
    wirehub.load_config(path, environ=False)
