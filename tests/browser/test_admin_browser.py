"""The staff admin shell in headless Chromium: an admin creates a viewer, who sees only KPI."""

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

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

SCREENSHOT_DIR = Path(os.environ.get("ADMIN_SCREENSHOT_DIR", "/tmp"))
WAIT = 15.0
ADMIN_PASSWORD = "boss-password-1234"
VIEWER_PASSWORD = "tanaka-password-5678"


def _log_in(browser: Any, base: str, username: str, password: str) -> None:
    """Sign in from the admin's front page and land on the dashboard."""
    log_in(browser, base + "/admin/", username, password, "ダッシュボード", WAIT)


def _nav_labels(browser: Any) -> list[str]:
    return [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav.main-nav a")]


@pytest.mark.browser
def test_admin_creates_a_viewer_who_sees_only_kpi(app: Flask, live_server: LiveServer, browser: Any) -> None:
    with get_db(app).session() as session:
        auth.create_user(session, "boss", ADMIN_PASSWORD, "admin")
    base = live_server.url
    wait = page_wait(browser, WAIT)

    _log_in(browser, base, "boss", ADMIN_PASSWORD)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "ログインしました。" in body
    assert "ようこそ、boss さん" in body and "管理者" in body
    # The admin sees every section; these keep their order among those other packages add.
    core = ["お知らせ配信", "FAQ管理", "利用状況（KPI）", "連絡先（課の一覧）", "ユーザー管理", "監査ログ"]
    assert [label for label in _nav_labels(browser) if label in core] == core
    browser.save_screenshot(str(SCREENSHOT_DIR / "admin-dashboard.png"))

    browser.find_element(By.LINK_TEXT, "ユーザー管理").click()
    wait.until(EC.visibility_of_element_located((By.ID, "create-user")))
    browser.find_element(By.ID, "new-username").send_keys("tanaka")
    browser.find_element(By.ID, "new-password").send_keys(VIEWER_PASSWORD)
    browser.find_element(By.ID, "new-password-confirm").send_keys(VIEWER_PASSWORD)
    Select(browser.find_element(By.ID, "new-role")).select_by_value("viewer")
    browser.find_element(By.ID, "create-user-submit").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), "ユーザー「tanaka」を作成しました"))
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-username='tanaka']")
    assert "有効" in row.text
    assert Select(row.find_element(By.NAME, "role")).first_selected_option.text == "閲覧（KPI）"
    browser.save_screenshot(str(SCREENSHOT_DIR / "admin-users.png"))

    browser.find_element(By.ID, "logout").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), "ログアウトしました。"))
    assert browser.current_url == base + "/admin/login"

    _log_in(browser, base, "tanaka", VIEWER_PASSWORD)
    assert "閲覧（KPI）" in browser.find_element(By.TAG_NAME, "body").text
    assert _nav_labels(browser) == ["利用状況（KPI）"]

    browser.get(base + "/admin/users")
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "アクセス権限がありません"))
    assert _nav_labels(browser) == ["利用状況（KPI）"]
    browser.save_screenshot(str(SCREENSHOT_DIR / "admin-403.png"))

    browser.find_element(By.LINK_TEXT, "利用状況（KPI）").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "利用状況（KPI）"))
    assert "LINE利用率" in browser.find_element(By.TAG_NAME, "body").text
