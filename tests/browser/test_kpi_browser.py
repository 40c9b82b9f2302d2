"""The KPI dashboard in headless Chromium: a viewer sees Japanese labels and charts with data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bot import auth
from bot.db import get_db
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait
from tests.conftest import LiveServer
from tests.test_kpi import add_events

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

SCREENSHOT_DIR = Path(os.environ.get("ADMIN_SCREENSHOT_DIR", "/tmp"))
WAIT = 15.0
PASSWORD = "kacho-password-2468"


def _log_in(browser: Any, base: str, username: str, password: str, next_path: str) -> None:
    """Open a KPI page, get sent to the login form, sign in and land back on the page."""
    log_in(browser, base + next_path, username, password, "利用状況（KPI）", WAIT)


def _drawn(chart: Any) -> list[Any]:
    """The data marks of a chart (lines, points, bars) that the browser laid out with a size."""
    marks = chart.find_elements(By.CSS_SELECTOR, "polyline.kpi-line, circle.kpi-point, rect.kpi-bar")
    return [m for m in marks if m.size["width"] > 0 and m.size["height"] > 0]


def _save_full_page(browser: Any, name: str) -> None:
    """A screenshot of the whole page for people reviewing the layout (the window is restored)."""
    size = browser.get_window_size()
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size["width"], min(int(height) + 100, 16000))
    browser.save_screenshot(str(SCREENSHOT_DIR / name))
    browser.set_window_size(size["width"], size["height"])


@pytest.mark.browser
def test_viewer_sees_the_dashboard_with_japanese_labels_and_charts(app: Flask, live_server: LiveServer, browser: Any) -> None:
    add_events(app)
    with get_db(app).session() as session:
        auth.create_user(session, "kacho", PASSWORD, "viewer")
    base = live_server.url
    wait = page_wait(browser, WAIT)

    _log_in(browser, base, "kacho", PASSWORD, "/admin/kpi?month=2026-10")
    assert browser.current_url.endswith("/admin/kpi?month=2026-10")
    body = browser.find_element(By.TAG_NAME, "body").text
    for label in ("利用状況（KPI）", "2026年10月", "友だち数（月末）", "新規友だち", "ブロック", "アクティブ利用者",
                  "LINE利用率", "未設定", "目標", "80.0%（令和10年度）", "那須烏山市DX推進計画", "直接回答",
                  "「もしかして」提示", "回答できず", "直接回答の正答率（評価）", "時間帯別の質問数", "分類別の質問数",
                  "お知らせごとの配信とブロック", "防災訓練のお知らせ", "CSVダウンロード"):
        assert label in body, label
    new_friends = browser.find_element(By.CSS_SELECTOR, "[data-kpi='new_friends'] .kpi-value")
    assert new_friends.text == "4人"

    charts = browser.find_elements(By.CSS_SELECTOR, "svg.kpi-chart")
    assert len(charts) >= 8
    for chart in charts:
        assert chart.size["width"] > 300 and chart.size["height"] > 100
    by_id = {chart.get_attribute("id"): chart for chart in charts}
    for chart_id in ("chart-friends", "chart-friends-flow", "chart-questions", "chart-quality", "chart-hours",
                     "chart-categories", "chart-top-questions", "chart-notices"):
        assert _drawn(by_id[chart_id]), f"{chart_id} shows no data"
    rate = by_id["chart-line-usage-rate"]
    assert rate.find_elements(By.CSS_SELECTOR, "line.kpi-reference")  # the target line, though no denominator
    assert "分母" in rate.text
    _save_full_page(browser, "kpi-dashboard.png")

    # Nothing was refused by the Content-Security-Policy (no inline styles or scripts).
    refused = [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]
    assert refused == []

    # The month picker: choose September; last month's late-night follow is not in it.
    picker = browser.find_element(By.ID, "month")
    browser.execute_script("arguments[0].value = '2026-09'", picker)
    browser.find_element(By.ID, "month-submit").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "2026年9月"))
    assert browser.find_element(By.CSS_SELECTOR, "[data-kpi='new_friends'] .kpi-value").text == "3人"

    browser.find_element(By.ID, "printable-report").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "月次報告"))
    assert "2026年9月" in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.CSS_SELECTOR, "svg.kpi-chart")
    _save_full_page(browser, "kpi-report.png")
