"""The category menu on a 360-px-wide phone, measured in the simulator: each page's quick-reply row
is at most two screen widths, so one swipe shows 「その他のカテゴリ」, and the page never widens."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from faq import service
from faq.store import load_repo_kb
from handlers.faq_replies import MORE_CATEGORIES
from tests.browser.conftest import page_wait
from tests.conftest import webhook_served

pytestmark = pytest.mark.browser
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

PHONE_WIDTH = 360
SCREENSHOT = Path(os.environ.get("SIMULATOR_SCREENSHOT", "/tmp/simulator.png")).with_name("chat-menu-360px.png")


@pytest.fixture
def simulator(make_app: Callable[..., Flask], fake_line_server: Any,
              fake_line: FakeLinePlatform) -> Iterator[tuple[str, list[str]]]:
    """The simulator of 常総市 (its knowledge base loaded) over HTTP, the fake platform posting to it;
    and the labels of its category menu in order."""
    _fake, served = fake_line_server
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, FAKE_LINE_URL=served.url, MUNICIPALITY="joso")
    with get_db(app).session() as session:
        load_repo_kb(session, "joso")
    with get_db(app).session() as session:
        labels = [label for _, label in service.categories(session, "joso")]
    with webhook_served(app, fake_line) as url:
        yield url + "/simulator", labels


def _row(browser: Any) -> dict[str, Any]:
    return browser.execute_script(
        "var row = document.getElementById('quick-replies');"
        "return {labels: Array.from(row.querySelectorAll('.quick-reply')).map(function (b) { return b.textContent; }),"
        "        width: row.clientWidth, scroll: row.scrollWidth, page: document.documentElement.scrollWidth};"
    )


def test_each_page_of_the_category_menu_fits_a_360_px_phone(browser: Any, simulator: tuple[str, list[str]]) -> None:
    simulator_url, menu_labels = simulator
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": PHONE_WIDTH, "height": 740, "deviceScaleFactor": 1, "mobile": True})
    browser.get(simulator_url)
    wait = page_wait(browser, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#resident-list .resident"))
    box = browser.find_element(By.ID, "message")
    box.send_keys("プロ野球の優勝チームの予想を教えて")
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: MORE_CATEGORIES in _row(d)["labels"])
    browser.save_screenshot(str(SCREENSHOT))

    seen: list[str] = []
    while True:
        row = _row(browser)
        assert row["page"] <= PHONE_WIDTH, row  # the page itself never scrolls sideways
        assert row["width"] == PHONE_WIDTH
        assert row["scroll"] <= 2 * row["width"], row  # one swipe reaches the last button
        assert row["labels"][-1] == MORE_CATEGORIES
        if row["labels"][0] in seen:
            break  # back at the first page
        seen += row["labels"][:-1]
        browser.find_element(By.XPATH, f"//button[contains(@class,'quick-reply') and normalize-space()='{MORE_CATEGORIES}']").click()
        wait.until(lambda d, before=row["labels"]: _row(d)["labels"] not in ([], before))
    assert seen == menu_labels  # every category, once
