"""In headless Chromium: 保存する on an FAQ entry without editing it records nothing, and 影響を確認
shows no change (the browser sends the answer's line breaks as CRLF)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bot import auth
from bot.db import get_db
from faq.models import FaqEntry, FaqRevision
from faq.store import load_repo_kb
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

CITY = "joso"
ENTRY = "mynumber-pin"  # its answer has several lines
PASSWORD = "yamada-password-1234"
WAIT = 30.0


@pytest.fixture
def site(make_app: Any) -> Iterator[tuple[Flask, str]]:
    app = make_app(MUNICIPALITY=CITY, FAQ_WHATIF_RECENT=10)
    with get_db(app).session() as session:
        load_repo_kb(session, CITY)
        auth.create_user(session, "yamada", PASSWORD, "faq")
    server = LiveServer(app)
    yield app, server.url
    server.stop()


def _row(app: Flask) -> FaqEntry:
    with get_db(app).session() as s:
        return s.scalars(select(FaqEntry).where(FaqEntry.municipality == CITY, FaqEntry.entry_id == ENTRY)).one()


def test_saving_an_untouched_entry_in_a_browser_changes_nothing(browser: Any, site: tuple[Flask, str]) -> None:
    app, base = site
    before = _row(app)
    assert "\n" in before.answer
    log_in(browser, base + "/admin/login", "yamada", PASSWORD, "ダッシュボード", WAIT)
    wait = page_wait(browser, WAIT)

    browser.get(f"{base}/admin/faq/entries/{ENTRY}")
    browser.find_element(By.ID, "preview-button").click()
    wait.until(EC.presence_of_element_located((By.ID, "pending-changes")))
    assert "変更はありません。" in browser.find_element(By.ID, "pending-changes").text

    browser.find_element(By.ID, "save-button").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "変更はありませんでした"))
    after = _row(app)
    assert (after.answer, after.is_staff_edited) == (before.answer, False)
    with get_db(app).session() as s:
        assert s.scalars(select(FaqRevision).where(FaqRevision.entry_id == ENTRY)).all() == []
