"""Surveys in headless Chromium: PR builds a survey on /admin/surveys, residents answer it in the chat
(signed webhooks, postbacks), and the results page shows their counts, the chart and the CSV link."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bot import auth
from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from surveys import service
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait, screenshot
from tests.conftest import Chat, LiveServer
from tests.test_broadcast import add_residents

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

SCREENSHOT_DIR = Path(os.environ.get("ADMIN_SCREENSHOT_DIR", "/tmp"))
WAIT = 15.0
PASSWORD = "koho-password-2468"


def tap(chat: Chat, message: dict[str, Any], label: str) -> list[dict[str, Any]]:
    for item in message["quickReply"]["items"]:
        if item["action"]["label"] == label:
            return chat.taps(item["action"]["data"])
    raise AssertionError(f"no quick reply {label!r}")


@pytest.mark.browser
def test_build_a_survey_and_read_the_answers_of_residents(
    app: Flask, live_server: LiveServer, browser: Any, fake_line: FakeLinePlatform
) -> None:
    with get_db(app).session() as session:
        auth.create_user(session, "koho", PASSWORD, "pr")
    residents = add_residents(app, 4)
    base = live_server.url
    wait = page_wait(browser, WAIT)

    log_in(browser, base + "/admin/surveys", "koho", PASSWORD, "アンケート", WAIT)
    browser.find_element(By.ID, "new-survey").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "アンケートの作成"))
    browser.find_element(By.ID, "title").send_keys("窓口の満足度調査")
    browser.find_element(By.ID, "intro").send_keys("市民課の窓口についてお聞きします。")
    Select(browser.find_element(By.ID, "q0_kind")).select_by_visible_text("ひとつ選ぶ")
    browser.find_element(By.ID, "q0_text").send_keys("どの窓口を使いましたか")
    browser.find_element(By.ID, "q0_choices").send_keys("住民票\n税証明\nその他")
    Select(browser.find_element(By.ID, "q1_kind")).select_by_visible_text("5段階（1〜5）")
    browser.find_element(By.ID, "q1_text").send_keys("待ち時間に満足しましたか")
    browser.find_element(By.ID, "save-button").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "窓口の満足度調査"))
    assert browser.find_element(By.ID, "completed-count").text == "0"
    data = browser.find_element(By.ID, "start-data").text
    assert json.loads(data)["a"] == "survey"

    # Four residents answer in the chat.
    web = app.test_client()
    for user, (counter, score) in zip(residents, [("住民票", "5"), ("住民票", "4"), ("税証明", "2"), ("住民票", "5")], strict=True):
        chat = Chat(web, fake_line, user)
        _, first = chat.taps(data, expect=2)
        second = tap(chat, first, counter)[0]
        assert "ご回答ありがとうございました" in tap(chat, second, score)[0]["text"]

    browser.refresh()
    wait.until(EC.text_to_be_present_in_element((By.ID, "completed-count"), "4"))
    cells = {el.get_attribute("data-count"): el.text for el in browser.find_elements(By.CSS_SELECTOR, "td[data-count]")}
    assert cells["住民票"] == "3" and cells["税証明"] == "1" and cells["その他"] == "0"
    assert cells["5"] == "2" and cells["4"] == "1" and cells["2"] == "1"
    assert browser.find_element(By.CSS_SELECTOR, "[data-average]").text == "4.0"
    assert browser.find_elements(By.CSS_SELECTOR, ".survey-result svg")
    assert browser.find_element(By.ID, "csv-link").get_attribute("href").endswith("/results.csv")
    screenshot(browser, "survey-results")
    with get_db(app).session() as session:
        assert [s.title for s in service.list_surveys(session)] == ["窓口の満足度調査"]
