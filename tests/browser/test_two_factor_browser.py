"""Two-factor login in headless Chromium: an admin who must use it sets it up from the QR page,
keeps the recovery codes, and logs in again with a code from the app."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask

from bot import auth
from bot.db import get_db
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, page_wait
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

SCREENSHOT_DIR = Path(os.environ.get("ADMIN_SCREENSHOT_DIR", "/tmp"))
WAIT = 15.0
PASSWORD = "boss-password-1234"


@pytest.fixture
def required_app(make_app: Any) -> Flask:
    return make_app(ADMIN_REQUIRE_2FA=True)


@pytest.mark.browser
def test_an_admin_sets_up_two_factor_and_logs_in_with_a_code(required_app: Flask, browser: Any) -> None:
    with get_db(required_app).session() as session:
        auth.create_user(session, "boss", PASSWORD, "admin")
    server = LiveServer(required_app)
    try:
        base = server.url
        wait = page_wait(browser, WAIT)

        def type_password() -> None:
            wait.until(EC.visibility_of_element_located((By.ID, "username")))
            browser.find_element(By.ID, "username").send_keys("boss")
            browser.find_element(By.ID, "password").send_keys(PASSWORD)
            browser.find_element(By.ID, "login-submit").click()

        browser.get(base + "/admin/users")
        type_password()
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "二段階認証の設定"))
        assert browser.current_url == base + "/admin/2fa/setup"  # nothing else opens first
        qr = browser.find_element(By.CSS_SELECTOR, ".qr svg")
        assert qr.size["width"] >= 150 and qr.size["height"] >= 150
        browser.save_screenshot(str(SCREENSHOT_DIR / "admin-2fa-setup.png"))
        secret = browser.find_element(By.ID, "totp-secret").text.replace(" ", "")
        totp = pyotp.TOTP(secret)
        browser.find_element(By.ID, "code").send_keys(totp.now())
        browser.find_element(By.ID, "setup-submit").click()
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "復旧コード"))
        codes = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#recovery-codes li")]
        assert len(codes) == 10
        browser.save_screenshot(str(SCREENSHOT_DIR / "admin-2fa-codes.png"))

        browser.find_element(By.ID, "codes-done").click()
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "ダッシュボード"))
        browser.find_element(By.ID, "logout").click()
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), "ログアウトしました。"))

        type_password()
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "確認コードの入力"))
        browser.save_screenshot(str(SCREENSHOT_DIR / "admin-2fa-login.png"))
        # The next 30-second step's code (a code is accepted once; one step of clock drift is allowed).
        browser.find_element(By.ID, "code").send_keys(totp.at(time.time() + 30))
        browser.find_element(By.ID, "code-submit").click()
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "ダッシュボード"))
        browser.find_element(By.LINK_TEXT, "二段階認証").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "two-factor-state"), "有効"))
        assert browser.find_element(By.ID, "codes-left").text == "10"
        browser.save_screenshot(str(SCREENSHOT_DIR / "admin-2fa-status.png"))
    finally:
        server.stop()
