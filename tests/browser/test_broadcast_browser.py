"""Notices in headless Chromium: compose with the live preview and count, schedule a minute ahead,
the dispatcher sends it when it is due, the list shows it sent with the right count."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bot import auth
from bot.db import get_db, utcnow
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast.schedule import JST
from broadcast.scheduler import run_once
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait
from tests.conftest import LiveServer
from tests.test_broadcast import add_residents, deliveries_per_user

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

SCREENSHOT_DIR = Path(os.environ.get("ADMIN_SCREENSHOT_DIR", "/tmp"))
WAIT = 15.0
PASSWORD = "koho-password-2468"
TEXT = "12月20日（日）は市民課の臨時窓口を開きます。\n受付は9時から12時までです。"


@pytest.mark.browser
def test_compose_schedule_a_minute_ahead_and_see_it_sent(
    app: Flask, live_server: LiveServer, browser: Any, fake_line: FakeLinePlatform, tmp_path: Path
) -> None:
    app.config["BROADCAST_LOCK_FILE"] = str(tmp_path / "dispatcher.lock")
    with get_db(app).session() as session:
        auth.create_user(session, "koho", PASSWORD, "pr")
    residents = add_residents(app, 3)
    add_residents(app, 2, start=100, is_notices_enabled=False)  # they turned notices off
    base = live_server.url
    wait = page_wait(browser, WAIT)

    log_in(browser, base + "/admin/notices", "koho", PASSWORD, "お知らせ配信", WAIT)
    browser.find_element(By.ID, "new-notice").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "お知らせを作成"))

    # Compose: the LINE bubble preview follows the text, the count shows who accepts notices.
    browser.find_element(By.ID, "title").send_keys("臨時窓口")
    browser.find_element(By.ID, "text").send_keys(TEXT)
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#live-preview .line-text"), "臨時窓口を開きます"))
    wait.until(EC.text_to_be_present_in_element((By.ID, "recipient-count"), "3 人"))
    # The fields of other kinds and timings stay out of the way until chosen.
    assert not browser.find_element(By.ID, "button_url").is_displayed()
    assert not browser.find_element(By.ID, "at").is_displayed()

    # Schedule a minute ahead (datetime-local has minute precision: the next minute but one).
    due = (utcnow() + dt.timedelta(minutes=2)).astimezone(JST).replace(second=0, microsecond=0)
    browser.find_element(By.ID, "timing-at").click()
    at = browser.find_element(By.ID, "at")
    assert at.is_displayed()
    browser.execute_script("arguments[0].value = arguments[1]", at, f"{due:%Y-%m-%dT%H:%M}")
    browser.save_screenshot(str(SCREENSHOT_DIR / "broadcast-compose.png"))
    browser.find_element(By.ID, "confirm-button").click()

    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "お知らせの確認"))
    assert browser.find_element(By.ID, "confirm-count").text == "3 人"
    assert f"{due:%Y-%m-%d}" in browser.find_element(By.ID, "confirm-first").text
    assert "臨時窓口を開きます" in browser.find_element(By.CSS_SELECTOR, ".line-preview").text
    browser.save_screenshot(str(SCREENSHOT_DIR / "broadcast-confirm.png"))
    browser.find_element(By.ID, "schedule-button").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), "予約しました"))
    assert browser.find_element(By.ID, "notice-status").text == "予約済み"

    # The dispatcher now: not yet due, nothing is sent.
    assert run_once(app) is not None
    assert fake_line.deliveries == []
    # The dispatcher once the minute has come (its clock moved past the time instead of waiting).
    report = run_once(app, now=due.astimezone(dt.UTC) + dt.timedelta(seconds=1))
    assert report is not None and len(report.finished_runs) == 1
    got = deliveries_per_user(fake_line)
    assert set(got) == set(residents) and set(got.values()) == {1}
    assert fake_line.delivered(residents[0]) == [{"type": "text", "text": TEXT}]

    browser.find_element(By.LINK_TEXT, "← お知らせ一覧").click()
    wait.until(EC.visibility_of_element_located((By.ID, "notice-table")))
    row = browser.find_element(By.CSS_SELECTOR, "#notice-table tbody tr")
    assert row.get_attribute("data-status") == "sent"
    assert "配信済み" in row.find_element(By.CSS_SELECTOR, ".badge").text
    assert row.find_element(By.CSS_SELECTOR, "[data-count='delivered']").text == "3"
    assert row.find_element(By.CSS_SELECTOR, "[data-count='recipients']").text == "3"
    assert "臨時窓口" in row.text
    browser.save_screenshot(str(SCREENSHOT_DIR / "broadcast-list.png"))
    # No script errors or CSP violations (the admin CSP forbids inline scripts and styles).
    logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", "")]
    assert logs == [], logs
