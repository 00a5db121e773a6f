"""When a page has no WebSocket: the chat demo in Chromium falls back to HTTP-streaming
(or SSE), and says so; a plain ``EventSource`` page, no SDK, reads a channel over
``uni_sse``.

Needs the browser client installed by npm: ``npm ci --prefix demo`` (``make serve`` runs it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect

from tests.browser.test_demo import ASSETS, WAIT_MS, browser, demo_config
from tests.support.server import ServerProcess
from tests.transports.rawhttp import request

__all__ = ["browser"]  # the fixture, used by name

pytestmark = pytest.mark.browser

NO_WEBSOCKET = "Object.defineProperty(window, 'WebSocket', { value: undefined });"
NO_STREAMS = "Object.defineProperty(window, 'ReadableStream', { value: undefined });"


def test_demo_chat_works_without_websocket(
    server_factory: Callable[..., ServerProcess], browser: Browser, tmp_path: Path
) -> None:
    if not (ASSETS / "centrifuge.js").is_file():
        pytest.fail(f"{ASSETS / 'centrifuge.js'} is missing: run `npm ci --prefix demo`")
    server = server_factory(demo_config(), cwd=tmp_path)
    errors: list[str] = []

    def open_demo(*scripts: str) -> Page:
        context = browser.new_context()
        for script in scripts:
            context.add_init_script(script)  # before the page's own scripts, the SDK's too
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(f"console: {message.text} ({message.location})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.goto(f"{server.http_url}/")
        return page

    # No WebSocket: HTTP-streaming. No WebSocket and no readable streams: SSE.
    alice = open_demo(NO_WEBSOCKET)
    bob = open_demo(NO_WEBSOCKET, NO_STREAMS)
    for page, shown in ((alice, "via http-stream"), (bob, "via sse")):
        expect(page.locator("#status")).to_have_text(re.compile(r"^connected"), timeout=WAIT_MS)
        expect(page.locator("#transport")).to_have_text(shown, timeout=WAIT_MS)
        expect(page.locator("#send")).to_be_enabled(timeout=WAIT_MS)
        assert page.evaluate("typeof window.WebSocket") == "undefined"

    alice.locator("#name").fill("alice")
    alice.locator("#message").fill("over a stream")
    alice.locator("#send").click()
    bob.locator("#name").fill("bob")
    for page in (alice, bob):
        message = page.locator("#messages .message")
        expect(message).to_have_count(1, timeout=WAIT_MS)
        expect(message.locator(".who")).to_have_text("alice")
        expect(message.locator(".text")).to_have_text("over a stream")
    bob.locator("#message").fill("and back")
    bob.locator("#message").press("Enter")
    for page in (alice, bob):
        messages = page.locator("#messages .message")
        expect(messages).to_have_count(2, timeout=WAIT_MS)
        expect(messages.nth(1).locator(".who")).to_have_text("bob")
        expect(messages.nth(1).locator(".text")).to_have_text("and back")

    for page in (alice, bob):
        page.context.close()
    assert errors == []


EVENTSOURCE_PAGE = """<!doctype html>
<meta charset="utf-8">
<ul id="events"></ul>
<script>
  const url = new URL("/connection/uni_sse", "{server}");
  url.searchParams.set("cf_connect", JSON.stringify({{ subs: {{ "chat:lobby": {{}} }} }}));
  const source = new EventSource(url);
  source.onmessage = (event) => {{
    const item = document.createElement("li");
    item.textContent = event.data;
    document.getElementById("events").append(item);
  }};
  source.onerror = () => document.body.dataset.error = "yes";
</script>
"""


def test_plain_eventsource_page_reads_a_channel_over_uni_sse(
    server_factory: Callable[..., ServerProcess], browser: Browser, tmp_path: Path
) -> None:
    server = server_factory(demo_config(), cwd=tmp_path)
    # The page is served (by the browser's router) from the server's own origin:
    # Chromium refuses a page it did not load from a loopback address access to one
    # (Local Network Access), so a cross-origin page can't be tried here; the CORS
    # answers are tested with raw HTTP (tests/transports/test_emulation_bad_input.py).
    page_url = f"{server.http_url}/eventsource.html"
    html = EVENTSOURCE_PAGE.format(server=server.http_url)
    page = browser.new_context().new_page()
    page.set_default_timeout(WAIT_MS)

    def serve_page(route: Route) -> None:
        route.fulfill(body=html, content_type="text/html; charset=utf-8")

    page.route(page_url, serve_page)
    page.goto(page_url)
    events = page.locator("#events li")
    expect(events).to_have_count(1, timeout=WAIT_MS)
    connect = json.loads(events.nth(0).inner_text())
    assert set(connect) == {"connect"}
    assert "chat:lobby" in connect["connect"]["subs"]

    headers = {"X-API-Key": "development-api-key-change-me", "Content-Type": "application/json"}
    body = json.dumps({"channel": "chat:lobby", "data": {"text": "to a plain page"}}).encode()
    assert request(server.port, "POST", "/api/publish", headers=headers, body=body).status == 200
    publication = page.locator("#events li", has_text="to a plain page")
    expect(publication).to_have_count(1, timeout=WAIT_MS)
    assert json.loads(publication.inner_text()) == {
        "channel": "chat:lobby",
        "pub": {"data": {"text": "to a plain page"}},
    }
    assert page.evaluate("document.body.dataset.error") is None
    page.context.close()
