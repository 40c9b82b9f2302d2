"""Staff screens in headless Chromium (issue 15 item 4), walked as a city office would:
「FAQ を編集してカテゴリを選ぶ」 and 「KPI の分母を設定する」, then the audit log in sentences, and the
simulator's clock in Japan time in a browser set to New York. Screenshots go to .ci/artifacts/."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from bot import auth
from bot.dates import jst_clock
from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from faq.store import load_repo_kb
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait, screenshot
from tests.conftest import webhook_served
from tests.test_kpi import add_events

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WAIT = 30.0
CITY = "nasukarasuyama"
ENTRY = "konbini-certificates"  # 出典: seed 000:190,494,505,534; general national fact (…)
FAQ_PASSWORD = "yamada-password-1357"
ADMIN_PASSWORD = "kanri-password-2468"


@pytest.fixture
def site(make_app: Callable[..., Flask], fake_line_server: Any, fake_line: FakeLinePlatform) -> Iterator[tuple[Flask, str]]:
    """那須烏山市 in development (simulator on) over HTTP: its knowledge base, KPI traffic, two staff users."""
    _fake, served = fake_line_server
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, FAKE_LINE_URL=served.url, MUNICIPALITY=CITY)
    add_events(app)
    with get_db(app).session() as session:
        load_repo_kb(session, CITY)
        auth.create_user(session, "yamada", FAQ_PASSWORD, "faq")
        auth.create_user(session, "kanri", ADMIN_PASSWORD, "admin")
    with webhook_served(app, fake_line) as url:
        yield app, url


def _wait(browser: Any) -> WebDriverWait:
    return page_wait(browser, WAIT)


def _flash(browser: Any) -> str:
    return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".flash"))


@pytest.mark.browser
def test_faq_staff_edit_an_entry_and_choose_its_category(browser: Any, site: tuple[Flask, str]) -> None:
    """「FAQ を編集してカテゴリを選ぶ」."""
    app, base = site
    wait = _wait(browser)
    log_in(browser, base + f"/admin/faq/entries/{ENTRY}", "yamada", FAQ_PASSWORD, "項目の編集", WAIT)

    # The category is a list of Japanese names; the entry's own is chosen.
    category = Select(browser.find_element(By.ID, "category"))
    assert category.first_selected_option.text == "証明書"
    names = [option.text for option in category.options]
    assert "マイナンバーカード" in names and "ごみ・環境" in names and names[-1] == "＋ 新しいカテゴリを追加…"
    assert not browser.find_element(By.ID, "new-category").is_displayed()  # only with 「＋ 新しいカテゴリを追加」
    # 出典 in words; the plan's line shows on hover (the title).
    source = browser.find_element(By.ID, "source-view")
    assert "那須烏山市 DX推進計画 190行、494行、505行、534行" in source.text
    assert "全国共通の制度・事実（カードと4桁の暗証番号が必要、3回の誤りでロック）" in source.text
    line = source.find_element(By.XPATH, ".//span[@class='plan-line' and normalize-space()='190行']")
    assert "証明書コンビニ交付サービス導入" in line.get_attribute("title")
    assert "seed" not in source.text and "general" not in source.text

    category.select_by_visible_text("マイナンバーカード")
    screenshot(browser, "faq-category-1-choose")
    browser.find_element(By.ID, "save-button").click()
    wait.until(lambda d: "保存しました" in _flash(d))
    assert Select(browser.find_element(By.ID, "category")).first_selected_option.text == "マイナンバーカード"
    history = browser.find_element(By.ID, "history-table").text
    assert "証明書 → マイナンバーカード" in history.replace("\n", " ")

    # A category of the city's own: its name is checked, then it is offered like the others.
    category = Select(browser.find_element(By.ID, "category"))
    category.select_by_visible_text("＋ 新しいカテゴリを追加…")
    field = browser.find_element(By.ID, "new-category")
    wait.until(lambda d: field.is_displayed())
    field.send_keys("ペット 動物")
    browser.find_element(By.ID, "save-button").click()
    wait.until(EC.presence_of_element_located((By.ID, "form-errors")))
    assert "新しいカテゴリの名前に空白は使えません。" in browser.find_element(By.ID, "form-errors").text
    field = browser.find_element(By.ID, "new-category")
    assert field.is_displayed() and field.get_attribute("value") == "ペット 動物"
    field.clear()
    field.send_keys("ペット・動物")
    screenshot(browser, "faq-category-2-new")
    browser.find_element(By.ID, "save-button").click()
    wait.until(lambda d: "保存しました" in _flash(d))
    assert Select(browser.find_element(By.ID, "category")).first_selected_option.text == "ペット・動物"
    screenshot(browser, "faq-category-3-saved")


@pytest.mark.browser
def test_an_admin_sets_the_kpi_denominator(browser: Any, site: tuple[Flask, str]) -> None:
    """「KPI の分母を設定する」, then the month picker and the audit log."""
    _app, base = site
    wait = _wait(browser)
    log_in(browser, base + "/admin/kpi?month=2026-10", "kanri", ADMIN_PASSWORD, "利用状況（KPI）", WAIT)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "KPI_CONFIG_FILE" not in body and "seeds/" not in body and ".txt" not in body
    rate = browser.find_element(By.CSS_SELECTOR, "[data-kpi='line_usage_rate']")
    assert rate.find_element(By.CSS_SELECTOR, ".kpi-value").text == "未設定"
    assert "那須烏山市 DX推進計画 657〜658行" in rate.text
    # The month picker: months in Japanese, rendered by the server.
    picker = Select(browser.find_element(By.ID, "month"))
    assert picker.first_selected_option.text == "2026年10月"
    assert "2026年9月" in [option.text for option in picker.options]

    form = browser.find_element(By.ID, "denominator-form")
    form.find_element(By.XPATH, ".//label[normalize-space()='人口']/input").click()
    form.find_element(By.ID, "denominator-value").send_keys("約2万")
    form.find_element(By.ID, "denominator-as-of").send_keys("2026年10月1日")
    form.find_element(By.ID, "denominator-source").send_keys("市ホームページ「人口と世帯数」")
    form.find_element(By.ID, "denominator-submit").click()
    wait.until(EC.presence_of_element_located((By.ID, "denominator-errors")))
    assert "人数または世帯数は数字だけで入力してください（例: 24,512）。" in browser.find_element(By.ID, "denominator-errors").text
    screenshot(browser, "kpi-denominator-1-error")

    value = browser.find_element(By.ID, "denominator-value")
    assert value.get_attribute("value") == "約2万"  # what was typed stays, to be corrected
    value.clear()
    value.send_keys("24,512")
    browser.find_element(By.ID, "denominator-submit").click()
    wait.until(lambda d: "分母を" in _flash(d))
    now = browser.find_element(By.ID, "denominator-now").text
    assert "人口 24,512（2026年10月1日時点、出典: 市ホームページ「人口と世帯数」）" in now
    assert browser.find_element(By.CSS_SELECTOR, "[data-kpi='line_usage_rate'] .kpi-value").text == "0.02%"
    screenshot(browser, "kpi-denominator-2-set")

    Select(browser.find_element(By.ID, "month")).select_by_visible_text("2026年9月")
    browser.find_element(By.ID, "month-submit").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "2026年9月"))

    browser.get(base + "/admin/audit")
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "監査ログ"))
    table = browser.find_element(By.ID, "audit-table").text
    assert "LINE利用率の分母を「人口 24,512（2026年10月1日時点、出典: 市ホームページ「人口と世帯数」）」に設定（変更前: 未設定）" in table
    assert "ログイン" in table and "=" not in table
    screenshot(browser, "audit-log-sentences")


@pytest.mark.browser
def test_the_simulator_shows_japan_time_whatever_the_browsers_zone(browser: Any, site: tuple[Flask, str]) -> None:
    _app, base = site
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    browser.get(base + "/simulator")
    browser.execute_script("window.localStorage.clear()")
    browser.get(base + "/simulator")
    wait = _wait(browser)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#resident-list .resident"))
    assert browser.execute_script("return new Date().getTimezoneOffset()") in (240, 300)  # the browser is in New York
    before = jst_clock(dt.datetime.now(dt.UTC))
    box = browser.find_element(By.ID, "message")
    box.send_keys("こんにちは")
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#transcript .row.bot .time"))
    after = jst_clock(dt.datetime.now(dt.UTC))
    shown = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "#transcript .time") if e.text}
    assert shown and shown <= {before, after}, (shown, before, after)
    screenshot(browser, "simulator-clock-japan-time")
