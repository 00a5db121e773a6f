"""The live chat demo in a real browser: Debian's chromium driven by Playwright.

Needs the browser client installed by npm: ``npm ci --prefix demo`` (``make serve`` runs it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.support.server import TIMEOUT, ServerProcess

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parents[2]
ASSETS = ROOT / "demo/node_modules/centrifuge/dist"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = TIMEOUT * 1000


def demo_config() -> str:
    """config/development.toml as `make serve` uses it: assets found with no assets_dir."""
    return (ROOT / "config/development.toml").read_text(encoding="utf-8")


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_two_pages_chat_through_the_demo(
    server_factory: Callable[..., ServerProcess], browser: Browser, tmp_path: Path
) -> None:
    if not (ASSETS / "centrifuge.js").is_file():
        pytest.fail(f"{ASSETS / 'centrifuge.js'} is missing: run `npm ci --prefix demo`")
    # Started away from the repository root: the page's script is found all the same.
    server = server_factory(demo_config(), cwd=tmp_path)
    errors: list[str] = []

    def open_demo() -> Page:
        page = browser.new_context().new_page()
        page.set_default_timeout(WAIT_MS)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(f"console: {message.text} ({message.location})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.goto(f"{server.http_url}/")
        return page

    alice, bob = open_demo(), open_demo()
    for page in (alice, bob):
        expect(page.locator("#status")).to_have_text(re.compile(r"^connected"), timeout=WAIT_MS)
        # Enabled once subscribed to chat:lobby: bob must be subscribed before alice sends.
        expect(page.locator("#send")).to_be_enabled(timeout=WAIT_MS)
    assert alice.locator("#name").input_value().startswith("guest-")

    alice.locator("#name").fill("alice")
    text = "hello <b>bob</b> & friends"
    alice.locator("#message").fill(text)
    alice.locator("#send").click()
    for page in (alice, bob):
        message = page.locator("#messages .message")
        expect(message).to_have_count(1, timeout=WAIT_MS)
        expect(message.locator(".who")).to_have_text("alice")
        expect(message.locator(".text")).to_have_text(text)  # shown as text, not markup
        expect(page.locator("#messages b")).to_have_count(0)
    expect(alice.locator("#message")).to_have_value("")

    bob.locator("#message").fill("hi alice")
    bob.locator("#message").press("Enter")
    for page in (alice, bob):
        messages = page.locator("#messages .message")
        expect(messages).to_have_count(2, timeout=WAIT_MS)
        expect(messages.nth(1).locator(".who")).to_have_text(re.compile(r"^guest-\d+$"))
        expect(messages.nth(1).locator(".text")).to_have_text("hi alice")

    for page in (alice, bob):
        page.context.close()
    assert errors == []
