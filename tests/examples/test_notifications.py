"""examples/notifications in Chromium: each user's notifications reach that user only, as
toasts and a badge; those sent while their page was closed arrive when it opens again.

The app is two processes, as its README says: the FastAPI backend (``app.py``) and the
``wirehub serve`` it starts; the backend publishes with ``cent`` through wirehub's server
API. The harness checks that stopping the app stops both.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cent import Client as Cent, HistoryRequest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from websockets.exceptions import ConnectionClosed

from tests.examples.harness import EXAMPLES, WAIT_MS, AppProcess, PageErrors, running, session
from tests.support.server import TIMEOUT

pytestmark = pytest.mark.browser

ADA, GRACE = "42", "7"


@pytest.fixture(scope="module")
def notifications() -> Iterator[AppProcess]:
    with running("notifications") as app:
        assert list(app.children.values()) == ["wirehub serve"]
        yield app


def sign_in(
    errors: PageErrors, where: Browser | BrowserContext, app: AppProcess, user: str
) -> Page:
    page = errors.open(where, app.url + "/")
    page.locator(f'#accounts button[data-user="{user}"]').click()
    return live(page)


def live(page: Page) -> Page:
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    return page


def notify(app: AppProcess, to: str, title: str, **fields: Any) -> list[dict[str, Any]]:
    """What the admin page's form posts: the backend publishes it through wirehub."""
    response = httpx.post(f"{app.url}/notify", json={"to": to, "title": title, **fields})
    response.raise_for_status()
    sent: list[dict[str, Any]] = response.json()["sent"]
    return sent


def expect_badge(page: Page, count: int) -> None:
    if count:
        expect(page.locator("#badge")).to_have_text(str(count), timeout=WAIT_MS)
        expect(page.locator("#badge")).to_be_visible()
    else:
        expect(page.locator("#badge")).to_be_hidden(timeout=WAIT_MS)


def toast(page: Page, title: str) -> Any:
    return page.locator("#toasts .toast .title", has_text=title)


def listed(page: Page) -> list[str]:
    titles: list[str] = page.locator("#list .item .title").evaluate_all(
        "items => items.map(item => item.firstChild.textContent)"
    )
    return titles


def test_each_user_gets_their_own_and_what_came_while_away(
    browser: Browser, notifications: AppProcess
) -> None:
    errors = PageErrors()
    ada = sign_in(errors, browser, notifications, ADA)
    grace = sign_in(errors, browser, notifications, GRACE)
    expect(ada.locator("#channel")).to_have_text("notifications:#42")
    expect_badge(ada, 0)

    # The admin page's form: a notification for Ada.
    admin = errors.open(browser, notifications.url + "/admin")
    admin.locator("#to").select_option(ADA)
    admin.locator("input[name=kind][value=success]").check()
    admin.locator("#title").fill("Build #512 passed")
    admin.locator("#body").fill("main · 214 tests")
    admin.locator("#send").click()
    expect(admin.locator("#result")).to_have_text("Sent to Ada.", timeout=WAIT_MS)
    expect(toast(ada, "Build #512 passed")).to_be_visible(timeout=WAIT_MS)
    expect_badge(ada, 1)

    # One for Grace: it reaches her, and Ada's never did.
    notify(notifications, GRACE, "For Grace only")
    expect(toast(grace, "For Grace only")).to_be_visible(timeout=WAIT_MS)
    expect_badge(grace, 1)
    assert listed(grace) == ["For Grace only"]
    expect(toast(grace, "Build #512 passed")).to_have_count(0)

    # The badge counts; opening the bell reads them all.
    notify(notifications, ADA, "Grace mentioned you", kind="mention")
    expect_badge(ada, 2)
    ada.locator("#bell").click()
    expect_badge(ada, 0)
    assert listed(ada) == ["Grace mentioned you", "Build #512 passed"]
    expect(ada.locator("#list .item.unread")).to_have_count(2)  # shown as new while open
    ada.keyboard.press("Escape")
    expect(ada.locator("#list .item.unread")).to_have_count(0)

    # Ada closes her page; three are sent meanwhile (one to everyone); she comes back.
    context = ada.context
    ada.close()
    notify(notifications, ADA, "Payment received")
    notify(notifications, ADA, "Storage almost full", kind="warning")
    notify(notifications, "*", "Maintenance tonight")
    ada = live(errors.open(context, notifications.url + "/"))  # still signed in
    expect_badge(ada, 3)
    for title in ("Payment received", "Storage almost full", "Maintenance tonight"):
        expect(toast(ada, title)).to_be_visible(timeout=WAIT_MS)
    expect(ada.locator("#away")).to_have_text(
        "3 notifications were sent while you were away: they arrived as you came back."
    )
    assert listed(ada) == [
        "Maintenance tonight",
        "Storage almost full",
        "Payment received",
        "Grace mentioned you",
        "Build #512 passed",
    ]
    expect_badge(grace, 2)  # she got the one to everyone, live
    assert listed(grace) == ["Maintenance tonight", "For Grace only"]

    # A browser new to Ada shows her latest from history, unread there.
    elsewhere = sign_in(errors, browser, notifications, ADA)
    expect_badge(elsewhere, 5)
    assert listed(elsewhere) == listed(ada)

    for page in (ada, grace, admin, elsewhere):
        page.context.close()
    assert errors.errors == []


def test_a_user_cannot_read_another_users_channel(notifications: AppProcess) -> None:
    """Grace's token opens her channel only; nobody publishes but the backend."""
    login = httpx.post(f"{notifications.url}/login", json={"user": GRACE}).json()
    url = f"ws://127.0.0.1:{login['websocket_port']}/connection/websocket"
    with session(notifications, url) as raw:
        assert raw.call(connect={"token": login["token"]})["connect"]["client"]
        for channel in ("notifications:#42", "notifications:#", "notifications:all"):
            reply = raw.call(subscribe={"channel": channel})
            assert reply["error"]["code"] == 103, (channel, reply)
        assert "error" not in raw.call(subscribe={"channel": "notifications:#7"})
        reply = raw.call(publish={"channel": "notifications:#7", "data": {"title": "fake"}})
        assert reply["error"]["code"] == 103
    with session(notifications, url) as raw, pytest.raises(ConnectionClosed) as closed:
        raw.call(connect={})  # no token: no connection
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 3501
    assert httpx.post(f"{notifications.url}/login", json={"user": "1"}).status_code == 404
    refused = httpx.post(f"{notifications.url}/notify", json={"to": ADA, "title": ""})
    assert refused.status_code == 422


def test_random_activity_publishes_through_the_server_api(notifications: AppProcess) -> None:
    """The admin page's switch: the backend's made-up events land in users' channels
    (read back through the same server API, with the app's key)."""
    api_url = re.search(r"server API at (http://\S+/api)", notifications.log)
    assert api_url is not None
    key = tomllib.loads((EXAMPLES / "notifications/wirehub.toml").read_text())["http_api"]["key"]
    cent = Cent(api_url.group(1), key)
    channels = [f"notifications:#{user}" for user in ("42", "7", "19")]

    def published() -> int:
        return sum(cent.history(HistoryRequest(channel=c, limit=0)).offset for c in channels)

    before = published()
    activity = f"{notifications.url}/activity"
    assert httpx.post(activity, json={"running": True}).json() == {"running": True}
    try:
        deadline = time.monotonic() + TIMEOUT
        while published() == before:  # the first event comes at once
            assert time.monotonic() < deadline, "no event was published"
            time.sleep(0.05)
    finally:
        assert httpx.post(activity, json={"running": False}).json() == {"running": False}
    assert httpx.get(activity).json() == {"running": False}
    cent.close()
