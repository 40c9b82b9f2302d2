"""The FAQ workbench in headless Chromium: a resident's unanswerable questions, sent through the
simulator, become a cluster that a `faq` staff member attaches to an entry; asked again in the
simulator, the question gets that entry's answer. A `viewer` cannot open the workbench."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bot import auth
from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from faq.models import FaqEntry, FaqRevision
from faq.store import load_repo_kb
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait
from tests.conftest import webhook_served

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SCREENSHOT_DIR = Path(os.environ.get("ADMIN_SCREENSHOT_DIR", "/tmp"))
WAIT = 30.0
CITY = "joso"
FAQ_PASSWORD = "yamada-password-1234"
VIEWER_PASSWORD = "tanaka-password-5678"
QUESTIONS = ("ドローンを飛ばす許可は必要ですか", "ドローンの飛行許可について教えて")
TARGET = "facility-reservation"  # 公共施設・公民館の予約: flying a drone in a park starts there


@pytest.fixture
def site(make_app: Callable[..., Flask], fake_line_server: Any, fake_line: FakeLinePlatform) -> Iterator[tuple[Flask, str]]:
    """A development app (simulator on) for 常総市 over HTTP, with its knowledge base and two staff users."""
    _fake, served = fake_line_server
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, FAKE_LINE_URL=served.url, MUNICIPALITY=CITY,
                   FAQ_WHATIF_RECENT=50)
    with get_db(app).session() as session:
        load_repo_kb(session, CITY)
        auth.create_user(session, "yamada", FAQ_PASSWORD, "faq")
        auth.create_user(session, "tanaka", VIEWER_PASSWORD, "viewer")
    with webhook_served(app, fake_line) as url:
        yield app, url


def _wait(browser: Any) -> WebDriverWait:
    return page_wait(browser, WAIT)


def _bot_texts(browser: Any) -> list[str]:
    """The bot's bubbles as shown (with the account's avatar label and the time)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#transcript .row.bot')).map(function (r) { return r.innerText; });"
    )


def _open_simulator(browser: Any, base: str) -> None:
    browser.get(base + "/simulator")
    browser.execute_script("window.localStorage.clear()")
    browser.get(base + "/simulator")
    _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#resident-list .resident"))


def _say(browser: Any, text: str) -> str:
    """Type a question as the resident and return the bot's (first) reply."""
    before = len(_bot_texts(browser))
    box = browser.find_element(By.ID, "message")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    _wait(browser).until(lambda d: len(_bot_texts(d)) > before)
    return _bot_texts(browser)[before]


def _say_unanswerable(browser: Any, text: str) -> None:
    """Ask something the bot cannot answer; after 「もしかして」 tap 「どれでもない」."""
    reply = _say(browser, text)
    if "もしかして" in reply:
        before = len(_bot_texts(browser))
        browser.find_element(By.XPATH, "//button[contains(@class,'quick-reply') and normalize-space()='どれでもない']").click()
        _wait(browser).until(lambda d: len(_bot_texts(d)) > before)
        reply = _bot_texts(browser)[before]
    assert "お答えできません" in reply, reply


def _log_in(browser: Any, base: str, username: str, password: str) -> None:
    log_in(browser, base + "/admin/login", username, password, "ダッシュボード", WAIT)


def _nav_labels(browser: Any) -> list[str]:
    return [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav.main-nav a")]


@pytest.mark.browser
def test_faq_staff_turn_an_unanswered_cluster_into_an_answer(browser: Any, site: tuple[Flask, str]) -> None:
    app, base = site
    wait = _wait(browser)
    with get_db(app).session() as session:
        target = session.scalar(select(FaqEntry).where(FaqEntry.municipality == CITY, FaqEntry.entry_id == TARGET))
        assert target is not None
        answer, title = target.answer, target.title

    # A resident asks twice in different words; the bot does not know.
    _open_simulator(browser, base)
    for question in QUESTIONS:
        _say_unanswerable(browser, question)

    # FAQ staff find the cluster in the review page.
    _log_in(browser, base, "yamada", FAQ_PASSWORD)
    assert "FAQ管理" in _nav_labels(browser)
    browser.find_element(By.LINK_TEXT, "FAQ管理").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "FAQ管理"))
    browser.find_element(By.LINK_TEXT, "未回答の確認").click()
    wait.until(EC.presence_of_element_located((By.ID, "cluster-list")))
    (card,) = browser.find_elements(By.CSS_SELECTOR, "#cluster-list .cluster")
    assert "2 件" in card.text and any(q in card.text for q in QUESTIONS)
    browser.save_screenshot(str(SCREENSHOT_DIR / "faq-review.png"))
    card.find_element(By.LINK_TEXT, "対応する").click()
    wait.until(EC.presence_of_element_located((By.ID, "attach-form")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#phrasing-table tbody tr")
    assert {r.find_element(By.CSS_SELECTOR, "label").text for r in rows} == set(QUESTIONS)
    assert all(box.is_selected() for box in browser.find_elements(By.NAME, "texts"))
    assert browser.find_elements(By.CSS_SELECTOR, "#suggestions tbody tr"), "likely entries are suggested"

    # Attach it to an entry: first see the effect, then save.
    Select(browser.find_element(By.ID, "entry-select")).select_by_value(TARGET)
    browser.find_element(By.ID, "attach-preview").click()
    wait.until(EC.presence_of_element_located((By.ID, "whatif")))
    assert int(browser.find_element(By.ID, "whatif-gained").text) >= len(QUESTIONS)
    assert Select(browser.find_element(By.ID, "entry-select")).first_selected_option.get_attribute("value") == TARGET
    browser.save_screenshot(str(SCREENSHOT_DIR / "faq-whatif.png"))
    browser.find_element(By.ID, "attach-submit").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), f"「{title}」に言い換えを 2 件追加しました"))
    assert "未対応の質問はありません" in browser.find_element(By.ID, "review-empty").text

    # The entry's history shows who added what.
    browser.get(f"{base}/admin/faq/entries/{TARGET}")
    history = wait.until(EC.presence_of_element_located((By.ID, "history-table"))).text
    assert "yamada" in history and "言い換えを追加" in history and QUESTIONS[0] in history
    with get_db(app).session() as session:
        assert session.scalar(select(FaqRevision.action).where(FaqRevision.entry_id == TARGET)) == "attach"

    # The resident asks the same question again and now gets the answer.
    _open_simulator(browser, base)
    reply = _say(browser, QUESTIONS[0])
    assert answer.splitlines()[0] in reply
    assert "お答えできません" not in reply
    browser.save_screenshot(str(SCREENSHOT_DIR / "faq-answered.png"))


@pytest.mark.browser
def test_a_viewer_cannot_open_or_use_the_workbench(browser: Any, site: tuple[Flask, str]) -> None:
    app, base = site
    wait = _wait(browser)
    _log_in(browser, base, "tanaka", VIEWER_PASSWORD)
    assert "FAQ管理" not in _nav_labels(browser)
    for path in ("/admin/faq", "/admin/faq/review", f"/admin/faq/entries/{TARGET}", "/admin/faq/import"):
        browser.get(base + path)
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "アクセス権限がありません"))
        assert not browser.find_elements(By.CSS_SELECTOR, "form#entry-form, form#attach-form, form#import-form")
    # A write sent from the viewer's own session (with a valid CSRF token) is refused too.
    browser.get(base + "/admin/password")
    status = browser.execute_script(
        "var token = document.querySelector('input[name=csrf_token]').value;"
        "var xhr = new XMLHttpRequest();"
        f"xhr.open('POST', '/admin/faq/entries/{TARGET}/publish', false);"
        "xhr.setRequestHeader('Content-Type', 'application/x-www-form-urlencoded');"
        "xhr.send('published=0&csrf_token=' + encodeURIComponent(token));"
        "return xhr.status;"
    )
    assert status == 403
    with get_db(app).session() as session:
        assert session.scalar(select(FaqEntry.is_published).where(FaqEntry.entry_id == TARGET)) is True
    browser.save_screenshot(str(SCREENSHOT_DIR / "faq-viewer-403.png"))
