"""examples/game in Chromium: one page's keys move its player on the other page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from websockets.exceptions import ConnectionClosed

from tests.examples.harness import WAIT_MS, AppProcess, PageErrors, running, session
from tests.support.server import TIMEOUT

pytestmark = pytest.mark.browser

WIDTH = 960  # the arena's, in game.py
DISTANCE = 80  # how far the steered player must go, in arena units


@pytest.fixture(scope="module")
def game() -> Iterator[AppProcess]:
    with running("game") as app:
        yield app


def play(errors: PageErrors, browser: Browser, app: AppProcess, name: str) -> Page:
    page = errors.open(browser, app.url + "/")
    page.locator("#join-name").fill(name)
    page.locator("#join-name").press("Enter")
    expect(page.locator("#status")).to_have_text(f"playing as {name}", timeout=WAIT_MS)
    return page


def position(page: Page, player: str) -> tuple[float, float]:
    x, y = page.evaluate("id => [game.players[id].x, game.players[id].y]", player)
    return x, y


def test_keys_on_one_page_move_the_player_on_the_other(browser: Browser, game: AppProcess) -> None:
    errors = PageErrors()
    alice, bob = play(errors, browser, game, "alice"), play(errors, browser, game, "bob")
    alice_id, bob_id = alice.evaluate("game.me"), bob.evaluate("game.me")
    for page in (alice, bob):  # both players on both screens
        expect(page.locator("#scores li")).to_have_count(2, timeout=WAIT_MS)
        page.wait_for_function(
            "ids => ids.every(id => id in game.players)", arg=[alice_id, bob_id], timeout=WAIT_MS
        )
    expect(alice.locator("#scores li.me .name")).to_have_text("alice (you)")

    start_x, start_y = position(bob, alice_id)
    bob_before = position(alice, bob_id)
    key, sign = ("ArrowRight", 1) if start_x < WIDTH / 2 else ("ArrowLeft", -1)
    alice.keyboard.down(key)  # only alice's page gets the key
    bob.wait_for_function(
        "([id, target, sign]) => (game.players[id].x - target) * sign >= 0",
        arg=[alice_id, start_x + sign * DISTANCE, sign],
        timeout=WAIT_MS,
    )
    alice.keyboard.up(key)
    assert position(bob, alice_id)[1] == start_y  # steered along x only
    assert position(alice, bob_id) == bob_before  # bob pressed nothing: he stayed put
    # Stopped: once the server has her release, she stays where she is.
    tick = bob.evaluate("game.tick")
    bob.wait_for_function("t => game.tick > t + 5", arg=tick, timeout=WAIT_MS)
    stopped = position(bob, alice_id)
    bob.wait_for_function("t => game.tick > t + 5", arg=bob.evaluate("game.tick"), timeout=WAIT_MS)
    assert position(bob, alice_id) == stopped

    alice.keyboard.press("Space")  # a dash, by RPC: her cooldown shows, bob sees it happen
    expect(alice.locator("#dash-label")).to_have_text(
        re.compile(r"^dash ready in \d\.\d s$"), timeout=WAIT_MS
    )
    bob.wait_for_function("id => game.dashes[id] === 1", arg=alice_id, timeout=WAIT_MS)

    alice.context.close()  # she leaves: gone from bob's screen
    expect(bob.locator("#scores li")).to_have_count(1, timeout=WAIT_MS)
    bob.context.close()
    assert errors.errors == []


def test_what_the_page_never_sends_is_refused(game: AppProcess) -> None:
    """No name: a terminal disconnect (4501); an unknown RPC: an error reply."""
    with session(game) as raw:
        raw.ws.send(json.dumps({"id": 1, "connect": {"data": {"name": " "}}}))
        with pytest.raises(ConnectionClosed) as closed:
            raw.ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4501
    with session(game) as raw:
        connected = raw.call(connect={"data": {"name": "mallory"}})["connect"]
        assert connected["data"] == {"width": 960, "height": 600, "tick_rate": 20.0}
        assert connected["subs"]["game:arena"] is not None  # subscribed by the server
        assert raw.call(rpc={"method": "teleport", "data": {}})["error"]["code"] == 4004
        assert raw.call(rpc={"method": "dash", "data": {}})["rpc"]["data"]["cooldown"] > 0
        refused = raw.call(publish={"channel": "game:arena", "data": {"players": []}})
        assert refused["error"]["code"] == 103  # only the server publishes the game
