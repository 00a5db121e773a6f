"""The demo page finds its browser client wherever the server runs and wherever it is
mounted, and says exactly what to do when the client is missing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from wirehub import Node, create_app, load_config
from wirehub.demo import assets

pytestmark = pytest.mark.anyio

CHECKOUT_SCRIPT = Path(__file__).parents[1] / "demo/node_modules/centrifuge/dist/centrifuge.js"


def demo_node(**demo: object) -> Node:
    return Node(load_config(None, {"demo": {"enabled": True, **demo}}, environ=False))


async def get(app: object, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path)


async def test_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CHECKOUT_SCRIPT.is_file(), "run `npm ci --prefix demo`"
    monkeypatch.chdir(tmp_path)
    app = create_app(demo_node())
    page = await get(app, "/")
    assert page.status_code == 200
    assert '<script src="demo/centrifuge.js">' in page.text
    script = await get(app, "/demo/centrifuge.js")
    assert script.status_code == 200
    assert script.content == CHECKOUT_SCRIPT.read_bytes()


async def test_found_under_a_mount_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    host = FastAPI()
    host.mount("/rt", create_app(demo_node()))
    assert (await get(host, "/rt/")).status_code == 200
    script = await get(host, "/rt/demo/centrifuge.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")


async def test_configured_folder_comes_first(tmp_path: Path) -> None:
    (tmp_path / "centrifuge.js").write_text("// mine\n", encoding="utf-8")
    script = await get(create_app(demo_node(assets_dir=str(tmp_path))), "/demo/centrifuge.js")
    assert script.text == "// mine\n"


async def test_missing_script_says_where_it_looked_and_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout" / "demo"
    checkout.mkdir(parents=True)
    (checkout / "package.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(assets, "_CHECKOUT_DEMO", checkout)
    configured = tmp_path / "empty"
    script = await get(create_app(demo_node(assets_dir=str(configured))), "/demo/centrifuge.js")
    assert script.status_code == 404
    assert str(configured) in script.text
    assert str(checkout / "node_modules/centrifuge/dist") in script.text
    assert f"npm ci --prefix {checkout}" in script.text


async def test_missing_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed from a wheel there is no checkout: the advice says to install and point."""
    monkeypatch.setattr(assets, "_CHECKOUT_DEMO", tmp_path / "no-checkout")
    script = await get(create_app(demo_node()), "/demo/centrifuge.js")
    assert script.status_code == 404
    assert "npm install centrifuge" in script.text
    assert "demo.assets_dir" in script.text
