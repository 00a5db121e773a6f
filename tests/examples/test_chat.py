"""examples/chat in Chromium: login, history on join, presence, typing, rooms."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.examples.harness import WAIT_MS, AppProcess, PageErrors, running, session

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chat() -> Iterator[AppProcess]:
    with running("chat") as app:
        yield app


def join(errors: PageErrors, browser: Browser, app: AppProcess, name: str) -> Page:
    page = errors.open(browser, app.url + "/")
    page.locator("#login-name").fill(name)
    page.locator("#login-name").press("Enter")
    expect(page.locator("#status")).to_have_text("connected", timeout=WAIT_MS)
    expect(page.locator("#send")).to_be_enabled(timeout=WAIT_MS)  # subscribed to the room
    expect(page.locator("#me")).to_have_text(f"signed in as {name}")
    return page


def expect_online(page: Page, *users: str) -> None:
    expect(page.locator("#online li")).to_have_count(len(users), timeout=WAIT_MS)
    for user in users:
        expect(page.locator(f'#online li[data-user="{user}"]')).to_be_visible()


def say(page: Page, text: str) -> None:
    page.locator("#message").fill(text)
    page.locator("#message").press("Enter")
    expect(page.locator("#message")).to_have_value("", timeout=WAIT_MS)  # once published


def expect_messages(page: Page, *expected: tuple[str, str]) -> None:
    messages = page.locator("#messages .message")
    expect(messages).to_have_count(len(expected), timeout=WAIT_MS)
    for index, (who, text) in enumerate(expected):
        expect(messages.nth(index).locator(".who")).to_have_text(who)
        expect(messages.nth(index).locator(".text")).to_have_text(text)


def test_two_users_then_a_late_joiner(browser: Browser, chat: AppProcess) -> None:
    errors = PageErrors()
    alice = join(errors, browser, chat, "alice")
    expect_online(alice, "alice")
    bob = join(errors, browser, chat, "bob")
    for page in (alice, bob):
        expect_online(page, "alice", "bob")

    alice.locator("#message").press_sequentially("hel")  # typing notice to the others
    expect(bob.locator("#typing")).to_have_text("alice is typing…", timeout=WAIT_MS)
    expect(alice.locator("#typing")).to_have_text("")
    say(alice, "hello <b>bob</b>")
    expect(bob.locator("#typing")).to_have_text("", timeout=WAIT_MS)  # her message ended it
    say(bob, "hi alice")
    conversation = (("alice", "hello <b>bob</b>"), ("bob", "hi alice"))
    for page in (alice, bob):
        expect_messages(page, *conversation)
        expect(page.locator("#messages b")).to_have_count(0)  # text, not markup
    expect(alice.locator("#messages .message.mine .text")).to_have_text("hello <b>bob</b>")

    carol = join(errors, browser, chat, "carol")  # late: the room's history is shown
    expect_messages(carol, *conversation)
    for page in (alice, bob, carol):
        expect_online(page, "alice", "bob", "carol")

    bob.context.close()  # bob leaves: the others' lists drop him
    for page in (alice, carol):
        expect_online(page, "alice", "carol")

    carol.locator("#rooms button[data-room=random]").click()  # another room, empty
    expect(carol.locator("#room-title")).to_have_text("#random")
    expect(carol.locator("#send")).to_be_enabled(timeout=WAIT_MS)
    expect_online(carol, "carol")
    expect(carol.locator("#messages .message")).to_have_count(0)
    expect_online(alice, "alice")  # carol left the lobby
    say(carol, "anyone here?")
    expect_messages(carol, ("carol", "anyone here?"))
    say(alice, "still in the lobby")
    expect_messages(alice, *conversation, ("alice", "still in the lobby"))
    expect_messages(carol, ("carol", "anyone here?"))

    for page in (alice, carol):
        page.context.close()
    assert errors.errors == []


def test_what_the_page_never_sends_is_refused(chat: AppProcess) -> None:
    """A blank name gets no token; a message that is not ``{"text": ...}`` an error reply."""
    assert httpx.post(f"{chat.url}/login", json={"name": "  "}).status_code == 422
    assert httpx.post(f"{chat.url}/login", json={"name": "<b>"}).status_code == 422
    token = httpx.post(f"{chat.url}/login", json={"name": "mallory"}).json()["token"]
    with session(chat) as raw:
        assert raw.call(connect={"token": token})["connect"]["client"]
        assert "error" not in raw.call(subscribe={"channel": "chat:refusals"})
        for data in ({"text": ""}, {"text": 42}, ["text"], {"text": "x" * 2001}):
            reply = raw.call(publish={"channel": "chat:refusals", "data": data})
            assert reply["error"]["code"] == 4000, reply
        reply = raw.call(publish={"channel": "chat:refusals", "data": {"text": " hi "}})
        assert "error" not in reply
        history = raw.call(history={"channel": "chat:refusals", "limit": -1})["history"]
        (message,) = history["publications"]
        assert message["data"]["name"] == "mallory"  # stamped by the server
        assert message["data"]["text"] == "hi"
