"""examples/proxy as its README says: ``app.py`` runs the FastAPI backend and, beside it,
``wirehub serve`` on the example's wirehub.toml with the proxies pointed at the backend;
the README's SDK walk-through and its curl requests work against it, as written (ports
moved to free ones); stopping the app stops both.

The contract itself (each event, each outcome, both SDKs, both backends) is tested in
``test_proxy_backend.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.docs.readme import blocks
from tests.examples.harness import EXAMPLES, AppProcess, running
from tests.support.server import timeout

pytestmark = pytest.mark.interop

README = EXAMPLES / "proxy" / "README.md"
_WIREHUB = re.compile(r"started wirehub serve \(pid \d+\): clients at ws://127\.0\.0\.1:(\d+)/")


@pytest.fixture(scope="module")
def proxy_app() -> Iterator[AppProcess]:
    # wirehub on a free port too (the README's is 8001).
    with running("proxy", env={"PROXY_EXAMPLE_WIREHUB_PORT": "0"}) as app:
        assert list(app.children.values()) == ["wirehub serve"]
        yield app


def _on_ports(code: str, app: AppProcess) -> str:
    wirehub_port = app.wait_for(_WIREHUB).group(1)
    return code.replace("127.0.0.1:8010", app.url.removeprefix("http://")).replace(
        "127.0.0.1:8001", f"127.0.0.1:{wirehub_port}"
    )


def test_the_readmes_sdk_walk_through(proxy_app: AppProcess) -> None:
    (block,) = [block for block in blocks(README) if block.lang == "python"]
    proc = subprocess.run(
        [sys.executable, "-c", _on_ports(block.code, proxy_app)],
        capture_output=True,
        text=True,
        timeout=timeout(30),
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{proxy_app.log}"
    lines = proc.stdout.splitlines()
    assert lines[0] == "whoami: {'user': 'ada', 'name': 'Ada Lovelace'}"
    assert re.fullmatch(r"roll: \{'sides': 20, 'value': \d+\}", lines[1])
    assert lines[2] == "received {'text': 'hello lobby', 'from': 'Ada Lovelace'} from ada"


def test_the_readmes_curl_requests(proxy_app: AppProcess) -> None:
    (block,) = [b for b in blocks(README) if b.lang == "bash" and "curl" in b.code]
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _on_ports(block.code, proxy_app)],
        capture_output=True,
        text=True,
        timeout=timeout(30),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    connect, subscribe, publish, rpc = proc.stdout.replace("}{", "}\n{").splitlines()
    assert connect.startswith('{"result":{"user":"ada","expire_at":')
    assert subscribe == '{"error":{"code":403,"message":"permission denied"}}'
    assert publish == '{"result":{"data":{"text":"hi all","from":"Ada Lovelace"}}}'
    assert rpc.startswith('{"result":{"data":{"sides":20,"value":')


def test_the_index_says_what_the_app_is(proxy_app: AppProcess) -> None:
    page = httpx.get(proxy_app.url + "/")
    assert page.status_code == 200
    assert "make example NAME=proxy" in page.text
    # Nothing is recorded unless asked (PROXY_EXAMPLE_RECORD=1): headers hold cookies.
    assert httpx.get(proxy_app.url + "/debug/calls").status_code == 404
