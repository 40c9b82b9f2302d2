"""Notices in headless Chromium, as PR staff use them: お知らせを作成して今すぐ送信する (the city's
account in the preview, an exclusion with the live count, 「今すぐ送信します」, sent and listed as
今すぐ送信), and 0人の条件では確定できない (the warning, the disabled button, the server's refusal).
Screenshots go to .ci/artifacts/ (not committed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bot import auth
from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast.scheduler import run_once
from segments.vocab import areas_for
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait
from tests.conftest import ROOT, LiveServer
from tests.test_broadcast import add_residents, deliveries_per_user

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTIFACTS = ROOT / ".ci" / "artifacts"
WAIT = 15.0
PASSWORD = "koho-password-2468"
TEXT = "本日は強風のため、市民プールを臨時休館します。"


def shot(browser: Any, name: str, element: Any = None) -> None:
    """Save a screenshot (scrolled so that `element` is in the middle)."""
    if element is not None:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def no_script_errors(browser: Any, *expected: str) -> None:
    """No script errors or CSP violations (the admin CSP forbids inline scripts and foreign images);
    `expected`: parts of the messages of refusals the test provoked (a 400 is logged as an error)."""
    logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"
            and not any(part in e.get("message", "") for part in ("favicon.ico", *expected))]
    assert logs == [], logs


def icon_loaded(browser: Any, css: str) -> bool:
    return bool(browser.execute_script(
        "var i = document.querySelector(arguments[0]); return !!i && i.complete && i.naturalWidth > 0;", css))


def open_compose(browser: Any, base: str, username: str) -> WebDriverWait:
    wait = page_wait(browser, WAIT)
    log_in(browser, base + "/admin/notices", username, PASSWORD, "お知らせ配信", WAIT)
    browser.find_element(By.ID, "new-notice").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "お知らせを作成"))
    return wait


@pytest.mark.browser
def test_compose_a_notice_and_send_it_now(
    app: Flask, live_server: LiveServer, browser: Any, fake_line: FakeLinePlatform, tmp_path: Path
) -> None:
    app.config["BROADCAST_LOCK_FILE"] = str(tmp_path / "dispatcher.lock")
    with get_db(app).session() as session:
        auth.create_user(session, "koho", PASSWORD, "pr")
    east, west = areas_for(app.config["MUNICIPALITY"])[:2]
    kept = add_residents(app, 12, area=west)
    add_residents(app, 4, start=100, area=east)
    wait = open_compose(browser, live_server.url, "koho")

    # The preview is headed by the city's account, with the neutral icon (loaded under the CSP).
    header = browser.find_element(By.CSS_SELECTOR, "#live-preview .line-preview-header")
    assert header.text == "那須烏山市公式LINE"
    assert icon_loaded(browser, "#live-preview .line-preview-icon")
    browser.find_element(By.ID, "text").send_keys(TEXT)
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#live-preview .line-text"), "臨時休館"))
    assert icon_loaded(browser, "#live-preview .line-avatar")
    wait.until(EC.text_to_be_present_in_element((By.ID, "recipient-count"), "16 人"))

    # 条件を指定 with an exclusion only: everyone but one district; the live count follows.
    browser.find_element(By.ID, "target-custom").click()
    # No condition yet: the live count says what is missing (the count address answers 400).
    wait.until(EC.text_to_be_present_in_element((By.ID, "recipient-count"), "条件を1つ以上選んでください"))
    exclusions = browser.find_element(By.ID, "exclusions")
    assert exclusions.is_displayed() and exclusions.get_attribute("open") is None
    exclusions.find_element(By.TAG_NAME, "summary").click()
    browser.find_element(By.CSS_SELECTOR, f'input[name="exclude_areas"][value="{east}"]').click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "recipient-count"), "12 人"))
    assert f"地域（除く）: {east}" in browser.find_element(By.ID, "recipient-count").text
    assert browser.find_element(By.ID, "timing-now").is_selected()
    assert browser.find_element(By.XPATH, "//input[@id='timing-now']/..").text.strip() == "今すぐ送信"
    shot(browser, "broadcast-now-compose", browser.find_element(By.ID, "recipient-count"))
    browser.find_element(By.ID, "confirm-button").click()

    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "お知らせの確認"))
    assert browser.find_element(By.ID, "confirm-schedule").text == "今すぐ送信します"
    assert browser.find_element(By.ID, "confirm-count").text == "12 人"
    send = browser.find_element(By.ID, "schedule-button")
    assert send.text == "今すぐ送信する" and send.is_enabled()
    assert "この内容で予約する" not in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, ".line-preview-header").text == "那須烏山市公式LINE"
    assert icon_loaded(browser, ".line-preview .line-avatar")
    shot(browser, "broadcast-now-confirm")
    send.click()

    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), "今すぐ送信を受け付けました"))
    report = run_once(app)
    assert report is not None and len(report.finished_runs) == 1
    assert set(deliveries_per_user(fake_line)) == set(kept)

    browser.find_element(By.LINK_TEXT, "← お知らせ一覧").click()
    wait.until(EC.visibility_of_element_located((By.ID, "notice-table")))
    row = browser.find_element(By.CSS_SELECTOR, "#notice-table tbody tr")
    assert row.get_attribute("data-status") == "sent"
    assert "今すぐ送信（" in row.text and "に1回" not in row.text
    assert row.find_element(By.CSS_SELECTOR, "[data-count='delivered']").text == "12"
    shot(browser, "broadcast-now-list")
    no_script_errors(browser, "/admin/notices/count?target=custom&segment=&versions=- - Failed to load resource: the server responded with a status of 400")


@pytest.mark.browser
def test_a_condition_with_nobody_cannot_be_confirmed(app: Flask, live_server: LiveServer, browser: Any) -> None:
    with get_db(app).session() as session:
        auth.create_user(session, "kanri", PASSWORD, "admin")  # an admin sees exact small counts, and still cannot
    add_residents(app, 15, age_band="30代")
    wait = open_compose(browser, live_server.url, "kanri")
    browser.find_element(By.ID, "text").send_keys(TEXT)
    browser.find_element(By.ID, "target-custom").click()
    browser.find_element(By.CSS_SELECTOR, 'input[name="age_bands"][value="80代以上"]').click()
    browser.find_element(By.ID, "allow_small").click()  # the floor override does not make 0 sendable
    wait.until(EC.text_to_be_present_in_element((By.ID, "recipient-count"), "0 人"))
    count = browser.find_element(By.ID, "recipient-count")
    assert "確定できません" in count.text and "warn" in count.get_attribute("class")
    shot(browser, "broadcast-nobody-compose", count)
    browser.find_element(By.ID, "confirm-button").click()

    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "お知らせの確認"))
    assert "対象が0人のため確定できません" in browser.find_element(By.ID, "confirm-blocked").text
    send = browser.find_element(By.ID, "schedule-button")
    assert send.text == "今すぐ送信する" and not send.is_enabled()
    shot(browser, "broadcast-nobody-confirm")
    send.click()  # a disabled button does nothing
    assert browser.find_element(By.TAG_NAME, "h1").text == "お知らせの確認"

    # Forced through (the attribute removed by hand): the server refuses in Japanese, nothing is created.
    browser.execute_script("arguments[0].disabled = false;", send)
    send.click()
    wait.until(EC.visibility_of_element_located((By.ID, "compose-error")))
    assert "対象が0人のため確定できません" in browser.find_element(By.ID, "compose-error").text
    assert browser.find_element(By.TAG_NAME, "h1").text == "お知らせを作成"
    shot(browser, "broadcast-nobody-refused")
    browser.get(live_server.url + "/admin/notices")
    assert "お知らせはまだありません" in browser.find_element(By.ID, "notice-table").text
    no_script_errors(browser, "/admin/notices/count?target=custom&segment=&versions=- - Failed", "/admin/notices/new - Failed")


@pytest.mark.browser
def test_an_icon_the_browser_cannot_load_is_replaced_by_the_placeholder(make_app: Any, browser: Any) -> None:
    app = make_app(LINE_ACCOUNT_NAME="那須烏山市", LINE_ACCOUNT_ICON_URL="https://127.0.0.1:9/line-icon.png")  # nothing listens there
    with get_db(app).session() as session:
        auth.create_user(session, "koho", PASSWORD, "pr")
    server = LiveServer(app)
    try:
        wait = open_compose(browser, server.url, "koho")
        assert browser.find_element(By.CSS_SELECTOR, "#live-preview .line-preview-header").text == "那須烏山市"
        browser.find_element(By.ID, "text").send_keys(TEXT)
        for css in ("#live-preview .line-preview-icon", "#live-preview .line-avatar"):
            wait.until(lambda b, css=css: icon_loaded(b, css))
            assert browser.find_element(By.CSS_SELECTOR, css).get_attribute("src").endswith("/static/account-icon.svg")
        shot(browser, "broadcast-icon-fallback", browser.find_element(By.ID, "live-preview"))
    finally:
        server.stop()
