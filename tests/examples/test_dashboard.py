"""examples/dashboard in Chromium: live charts, and recovery without gaps after the page
lost its network."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.examples.harness import WAIT_MS, AppProcess, PageErrors, running, session

pytestmark = pytest.mark.browser

MISSED = 10  # publications per channel the offline page must recover, at least
CAUGHT_UP = re.compile(r"^caught up after the last drop: \d+ missed publications recovered$")


@pytest.fixture(scope="module")
def dashboard() -> Iterator[AppProcess]:
    with running("dashboard") as app:
        yield app


def state(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        "() => JSON.parse(JSON.stringify({streams: dashboard.streams,"
        " recoveries: dashboard.recoveries, price: dashboard.charts.price.data,"
        " cpu: dashboard.charts.cpu.data}))"
    )
    return result


def wait_until(page: Page, condition: str, arg: object = None) -> None:
    page.wait_for_function(condition, arg=arg, timeout=WAIT_MS)


def assert_no_gap(page: Page) -> dict[str, Any]:
    """Every publication of both channels arrived once, in order, from the first on."""
    now = state(page)
    for stream in now["streams"].values():
        assert stream["gaps"] == [], stream
        assert stream["resets"] == 0, stream
        assert stream["count"] == stream["last"] - stream["first"] + 1, stream
    for chart in ("price", "cpu"):
        times = now[chart][0]
        assert times == sorted(set(times)), f"{chart}: points out of order or twice"
    return now


def test_live_charts_and_recovery_after_a_network_loss(
    browser: Browser, dashboard: AppProcess
) -> None:
    errors = PageErrors()
    page = errors.open(browser, dashboard.url + "/")
    watcher = errors.open(browser, dashboard.url + "/")  # stays online throughout
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)

    # The charts move: points are added, and the price changes.
    wait_until(page, "() => dashboard.charts.price.data[0].length >= 10")
    first = state(page)["price"]
    wait_until(
        page,
        "([n, mid]) => { const d = dashboard.charts.price.data;"
        " return d[0].length > n && d[2][d[2].length - 1] !== mid; }",
        [len(first[0]), first[2][-1]],
    )
    assert len(set(state(page)["price"][2])) > 1
    expect(page.locator("#bids tr")).to_have_count(8)
    expect(page.locator("#cpu-value")).to_have_text(re.compile(r"^\d+\.\d %$"))

    # The network goes away: the page's connection drops while publications go on.
    page.context.set_offline(True)
    expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")
    before = state(page)["streams"]
    wait_until(
        watcher,
        "([system, book]) => dashboard.streams.system.last >= system"
        " && dashboard.streams.orderbook.last >= book",
        [before["system"]["last"] + MISSED, before["orderbook"]["last"] + MISSED],
    )
    page.context.set_offline(False)
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    wait_until(page, "() => dashboard.recoveries.length === 2")
    wait_until(
        page,
        "([system, book]) => dashboard.streams.system.last >= system"
        " && dashboard.streams.orderbook.last >= book",
        [before["system"]["last"] + MISSED, before["orderbook"]["last"] + MISSED],
    )
    after = assert_no_gap(page)
    assert all(recovery["recovered"] for recovery in after["recoveries"]), after["recoveries"]
    assert {recovery["channel"] for recovery in after["recoveries"]} == {
        "metrics:system",
        "metrics:orderbook",
    }

    # The page's own button: offline for 3 s, then it says what it caught up on.
    page.locator("#drop").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(page.locator("#catch-up")).to_have_text(CAUGHT_UP, timeout=WAIT_MS)
    wait_until(page, "() => dashboard.recoveries.length === 4")
    final = assert_no_gap(page)
    assert all(recovery["recovered"] for recovery in final["recoveries"])
    assert sum(recovery["caughtUp"] for recovery in final["recoveries"][2:]) >= 2 * MISSED
    expect(page.locator("#gaps")).to_have_text("0")
    assert_no_gap(watcher)

    for opened in (page, watcher):
        opened.context.close()
    # Reconnect attempts while offline fail, and Chromium logs each: nothing else may.
    offline = "WebSocket connection to"
    assert [error for error in errors.errors if offline not in error] == []


def test_pages_may_watch_but_not_publish(dashboard: AppProcess) -> None:
    with session(dashboard) as raw:
        assert raw.call(connect={})["connect"]["client"]  # anonymous
        subscribed = raw.call(subscribe={"channel": "metrics:system"})["subscribe"]
        assert subscribed["recoverable"] is True
        refused = raw.call(publish={"channel": "metrics:system", "data": {"seq": 0}})
        assert refused["error"]["code"] == 103
