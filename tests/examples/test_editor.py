"""examples/editor in Chromium: concurrent typing converges, offline edits merge, and a
late joiner loads the snapshot and recovers only what came after it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.examples.harness import EXAMPLES, WAIT_MS, AppProcess, PageErrors, running, session
from tests.support.server import timeout

pytestmark = pytest.mark.browser

DOC = "converge"


@pytest.fixture(scope="module")
def editor() -> Iterator[AppProcess]:
    # The page's bundle, built as `make example NAME=editor` builds it.
    build = subprocess.run(
        ["npm", "run", "build", "--prefix", str(EXAMPLES / "editor")],
        capture_output=True,
        text=True,
        timeout=timeout(120),
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    with running("editor") as app:
        yield app


def open_doc(
    errors: PageErrors,
    browser: Browser,
    app: AppProcess,
    name: str,
    *,
    before_join: Callable[[Route], None] | None = None,
) -> Page:
    page = errors.open(browser, f"{app.url}/#{DOC}")
    if before_join is not None:  # what to do with the page's request for the snapshot
        page.route(f"**/docs/{DOC}", before_join)
    page.locator("#join-name").fill(name)
    page.locator("#join-name").press("Enter")
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    expect(page.locator(f'#writers li[data-user="{name}"]')).to_be_visible(timeout=WAIT_MS)
    return page


def text(page: Page) -> str:
    result: str = page.evaluate("editor.ytext.toString()")
    return result


def server_text(page: Page, app: AppProcess) -> str:
    return page.request.get(f"{app.url}/docs/{DOC}/text").text()


def wait_for_text(page: Page, length: int) -> None:
    page.wait_for_function(
        "n => editor.ytext.toString().length === n && !editor.state.pending",
        arg=length,
        timeout=WAIT_MS,
    )


def test_two_writers_converge_and_a_late_joiner_catches_up(
    browser: Browser, editor: AppProcess
) -> None:
    errors = PageErrors()
    alice = open_doc(errors, browser, editor, "alice")
    bob = open_doc(errors, browser, editor, "bob")
    for page in (alice, bob):
        page.locator(".cm-content").click()

    # Both type at once, into the same spot of an empty document.
    typed = ""
    for round_ in range(3):
        for page, who in ((alice, "a"), (bob, "b")):
            page.keyboard.type(f"{who}{round_}-")
            typed += f"{who}{round_}-"
    for page in (alice, bob):
        wait_for_text(page, len(typed))
    assert text(alice) == text(bob)
    assert sorted(text(alice)) == sorted(typed)  # every keystroke, once
    expect(alice.locator(".cm-ySelectionInfo", has_text="bob")).to_be_visible()  # his cursor

    # Bob goes offline; both edit; back online, the edits merge.
    bob.locator("#offline").click()
    expect(bob.locator("#status")).to_have_attribute("data-state", "disconnected")
    alice.keyboard.press("Control+End")
    alice.keyboard.type(" [alice, online]")
    bob.keyboard.press("Control+Home")
    bob.keyboard.type("[bob, offline] ")
    typed += " [alice, online]" + "[bob, offline] "
    wait_for_text(alice, len(typed) - len("[bob, offline] "))
    assert "[alice, online]" not in text(bob)  # the edits were concurrent
    bob.locator("#offline").click()
    for page in (alice, bob):
        wait_for_text(page, len(typed))
    assert text(alice) == text(bob)
    assert text(alice).startswith("[bob, offline] ")
    assert text(alice).endswith(" [alice, online]")
    assert server_text(alice, editor) == text(alice)  # the server's copy too

    # Carol comes late. While her snapshot is on its way, alice types more: carol must
    # recover exactly that from the channel, after the snapshot's offset.
    def hold_snapshot(route: Route) -> None:
        response = route.fetch()
        alice.keyboard.type(" late")
        alice.wait_for_function(
            "() => !editor.state.pending && editor.ytext.toString().endsWith(' late')",
            timeout=WAIT_MS,
        )
        route.fulfill(response=response)

    carol = open_doc(errors, browser, editor, "carol", before_join=hold_snapshot)
    wait_for_text(carol, len(typed) + len(" late"))
    assert text(carol) == text(alice)
    state = carol.evaluate("editor.state")
    snapshot, received = state["snapshotOffset"], state["received"]
    assert snapshot > 0
    assert received, "nothing recovered after the snapshot"
    assert received == list(range(snapshot + 1, snapshot + 1 + len(received)))
    assert state["recoveries"] == [{"recovered": True}]
    for page in (alice, bob, carol):
        expect(page.locator("#writers li")).to_have_count(3, timeout=WAIT_MS)

    carol.locator(".cm-content").click()  # and she is live: her typing reaches the others
    carol.keyboard.press("Control+End")
    carol.keyboard.type("!")
    for page in (alice, bob):
        wait_for_text(page, len(text(carol)))
        assert text(page) == text(carol)

    bob.context.close()  # bob leaves: his name and his cursor go
    for page in (alice, carol):
        expect(page.locator("#writers li")).to_have_count(2, timeout=WAIT_MS)
    expect(alice.locator(".cm-ySelectionInfo", has_text="bob")).to_have_count(0)

    for page in (alice, carol):
        page.context.close()
    assert errors.errors == []


def test_what_the_page_never_sends_is_refused(editor: AppProcess) -> None:
    """Bytes that are not a Yjs update never reach the channel or the server's copy."""
    with session(editor) as raw:
        assert raw.call(connect={"data": {"name": "mallory"}})["connect"]["client"]
        assert "error" not in raw.call(subscribe={"channel": "doc:refusals"})
        for data in ({"update": "not base64!"}, {"update": "AAEC/w=="}, {"text": "hi"}, []):
            reply = raw.call(publish={"channel": "doc:refusals", "data": data})
            assert reply["error"]["code"] == 4000, reply
    assert httpx.get(f"{editor.url}/docs/refusals").json()["offset"] == 0  # none published
    assert httpx.get(f"{editor.url}/docs/refusals/text").text == ""
    assert httpx.get(f"{editor.url}/docs/Not%20A%20Name").status_code == 404
