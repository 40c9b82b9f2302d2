"""The staff inbox of residents' reports in headless Chromium: list, filter, open, change the status
(the resident is told once), write the note, download the CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bot import auth
from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from reports import service
from segments.service import record_follow
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait, screenshot
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

WAIT = 15.0
PASSWORD = "tsuho-password-2468"
USER = "U" + "b" * 32


@pytest.fixture
def app(make_app: Any, tmp_path: Path) -> Flask:
    return make_app(REPORT_PHOTO_DIR=str(tmp_path / "photos"))


def _report(app: Flask, resident_id: int | None, category: str, place: str) -> str:
    with get_db(app).session() as session:
        draft = service.start_draft(session, app.config, resident_id or 0)
        draft.resident_id = resident_id
        service.choose_category(app.config, draft, category)
        service.set_place_text(app.config, draft, place)
        service.set_description(app.config, draft, "穴があいています")
        return str(service.submit(session, app.config, draft))


@pytest.mark.browser
def test_staff_follow_a_report_through_the_inbox(app: Flask, live_server: LiveServer, browser: Any,
                                                 fake_line: FakeLinePlatform) -> None:
    with get_db(app).session() as session:
        auth.create_user(session, "doboku", PASSWORD, "reports")
        resident_id = record_follow(session, USER).id
    road = _report(app, resident_id, "道路", "市役所前の交差点")
    park = _report(app, None, "公園", "中央公園")
    base = live_server.url
    wait = page_wait(browser, WAIT)

    log_in(browser, base + "/admin/reports", "doboku", PASSWORD, "住民からの通報", WAIT)
    table = browser.find_element(By.ID, "report-table").text
    assert road in table and park in table and USER not in browser.page_source

    Select(browser.find_element(By.ID, "filter-category")).select_by_visible_text("道路")
    browser.find_element(By.ID, "filter-submit").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "report-count"), "1 件"))
    assert park not in browser.find_element(By.ID, "report-table").text
    csv_href = browser.find_element(By.ID, "csv-link").get_attribute("href")
    assert "category=" in csv_href
    screenshot(browser, "reports-1-list")

    browser.find_element(By.LINK_TEXT, road).click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), road))
    assert "市役所前の交差点" in browser.find_element(By.ID, "report-place").text

    Select(browser.find_element(By.ID, "status-select")).select_by_visible_text("対応中")
    browser.find_element(By.ID, "status-submit").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "report-status"), "対応中"))
    assert "住民にお知らせしました" in browser.find_element(By.TAG_NAME, "body").text

    browser.find_element(By.ID, "note-text").send_keys("12/8 現地確認")
    browser.find_element(By.ID, "note-submit").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "メモを保存しました"))

    Select(browser.find_element(By.ID, "status-select")).select_by_visible_text("完了")
    browser.find_element(By.ID, "status-submit").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "report-status"), "完了"))
    screenshot(browser, "reports-2-detail")
    refused = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert refused == []

    pushes = [d.messages[0]["text"] for d in fake_line.deliveries if d.kind == "push" and d.to == [USER]]
    assert len(pushes) == 2 and "対応を始めました" in pushes[0] and "対応が終わりました" in pushes[1]
    assert all("現地確認" not in text for text in pushes)

    # The CSV with the session's cookie, as the browser would download it.
    import requests

    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    csv_text = requests.get(csv_href, cookies=cookies, timeout=10).content.decode("utf-8-sig")
    lines = csv_text.splitlines()
    assert lines[0].startswith("通報番号") and len(lines) == 2 and road in lines[1] and "完了" in lines[1]
    assert "12/8 現地確認" in lines[1] and USER not in csv_text
    with get_db(app).session() as session:
        from reports.models import Report

        assert session.scalar(select(Report.status).where(Report.number == road)) == "done"
