"""Staff work for residents of other languages in headless Chromium: compose a notice with a
Portuguese version (the count per language, the preview of each version, each resident gets their
version), and edit a translation beside the Japanese entry, which is flagged 「翻訳が古い」 once the
Japanese answer is edited after it. Screenshots go to .ci/artifacts/ (not committed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select

from bot import auth
from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast.scheduler import run_once
from faq.models import FaqEntry, FaqTranslation
from faq.store import load_repo_kb
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait
from tests.conftest import ROOT, LiveServer
from tests.test_broadcast import add_residents

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402

ARTIFACTS = ROOT / ".ci" / "artifacts"
WAIT = 20.0
PASSWORD = "gengo-password-1357"
JA = "12月29日から1月3日まで、市役所は休みです。"
PT = "A prefeitura fica fechada de 29 de dezembro a 3 de janeiro."
ENTRY = "konbini-certificates"


def shot(browser: Any, name: str, element: Any = None) -> None:
    """Save a screenshot (scrolled so that `element` is in the middle)."""
    if element is not None:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def no_script_errors(browser: Any) -> None:
    logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", "")]
    assert logs == [], logs


@pytest.mark.browser
def test_compose_a_notice_with_a_portuguese_version(
    app: Flask, live_server: LiveServer, browser: Any, fake_line: FakeLinePlatform, tmp_path: Path
) -> None:
    app.config["BROADCAST_LOCK_FILE"] = str(tmp_path / "dispatcher.lock")
    with get_db(app).session() as session:
        auth.create_user(session, "koho", PASSWORD, "pr")
    japanese = add_residents(app, 12)
    portuguese = add_residents(app, 11, start=100, language="pt")
    wait = page_wait(browser, WAIT)
    log_in(browser, live_server.url + "/admin/notices", "koho", PASSWORD, "お知らせ配信", WAIT)
    browser.find_element(By.ID, "new-notice").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "お知らせを作成"))

    browser.find_element(By.ID, "text").send_keys(JA)
    wait.until(EC.text_to_be_present_in_element((By.ID, "recipient-count"), "23 人"))
    # Nobody has a version yet: the Portuguese readers get the Japanese text with a note.
    wait.until(EC.text_to_be_present_in_element((By.ID, "recipient-languages"), "ポルトガル語（Português）：日本語の本文＋案内: 11 人"))
    version = browser.find_element(By.ID, "version-pt")
    version.find_element(By.TAG_NAME, "summary").click()
    browser.find_element(By.ID, "text_pt").send_keys(PT)
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, '#recipient-languages li[data-language="pt"]'),
                                                "ポルトガル語（Português）: 11 人"))
    languages = browser.find_element(By.ID, "recipient-languages")
    assert languages.find_element(By.CSS_SELECTOR, 'li[data-language="ja"]').text == "日本語: 12 人"
    shot(browser, "languages-notice-compose", languages)
    browser.find_element(By.ID, "confirm-button").click()

    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "お知らせの確認"))
    rows = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#confirm-languages li")]
    assert rows == ["日本語: 12 人", "ポルトガル語（Português）: 11 人"]
    assert browser.find_element(By.ID, "preview-title-pt").text == "プレビュー（ポルトガル語（Português））"
    assert browser.find_element(By.CSS_SELECTOR, "#preview-pt .line-text").text == PT
    shot(browser, "languages-notice-confirm", browser.find_element(By.ID, "preview-pt"))
    browser.find_element(By.ID, "schedule-button").click()

    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), "今すぐ送信を受け付けました"))
    report = run_once(app)
    assert report is not None and len(report.finished_runs) == 1
    got: dict[str, list[str]] = {}
    for delivery in fake_line.deliveries:
        for user in delivery.to:
            got.setdefault(user, []).append(delivery.messages[0]["text"])
    assert all(got[user] == [JA] for user in japanese)
    assert all(got[user] == [PT] for user in portuguese)
    browser.refresh()
    table = wait.until(EC.visibility_of_element_located((By.ID, "language-table")))
    assert table.find_element(By.CSS_SELECTOR, 'tr[data-language="pt"] [data-count="delivered"]').text == "11"
    shot(browser, "languages-notice-detail", table)
    no_script_errors(browser)


@pytest.mark.browser
def test_edit_a_translation_beside_the_japanese_entry(app: Flask, live_server: LiveServer, browser: Any) -> None:
    with get_db(app).session() as session:
        load_repo_kb(session, app.config["MUNICIPALITY"])
        auth.create_user(session, "faqtan", PASSWORD, "faq")
        # The repo ships a Chinese translation of this entry: take it away, so staff write one.
        entry_pk = session.scalar(select(FaqEntry.id).where(
            FaqEntry.municipality == app.config["MUNICIPALITY"], FaqEntry.entry_id == ENTRY))
        session.execute(delete(FaqTranslation).where(FaqTranslation.entry_id == entry_pk, FaqTranslation.language == "zh"))
    wait = page_wait(browser, WAIT)
    log_in(browser, live_server.url + f"/admin/faq/entries/{ENTRY}", "faqtan", PASSWORD, "項目の編集", WAIT)
    row = browser.find_element(By.CSS_SELECTOR, '#translation-table tr[data-language="zh"]')
    assert "なし" in row.text
    row.find_element(By.LINK_TEXT, "翻訳を書く").click()

    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "翻訳の編集：中国語（簡体字）（中文）"))
    japanese, form = browser.find_element(By.ID, "japanese"), browser.find_element(By.ID, "translation-form")
    assert japanese.is_displayed() and form.is_displayed()
    # Side by side: the Japanese entry on the left of the form, at the same height.
    assert japanese.location["x"] < form.location["x"] and abs(japanese.location["y"] - form.location["y"]) < 5
    form.find_element(By.ID, "title").send_keys("在便利店开证明")
    form.find_element(By.ID, "question").send_keys("可以在便利店开证明吗？")
    form.find_element(By.ID, "answer").send_keys("有个人编号卡的话，可以在便利店开证明。")
    form.find_element(By.ID, "alternates").send_keys("便利店 证明\n便利店 住民票")
    shot(browser, "languages-translation-edit", form)
    form.find_element(By.ID, "save-translation").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), "中国語（簡体字）（中文）訳を保存しました"))
    assert browser.find_elements(By.ID, "stale-warning") == []

    # The Japanese answer is edited afterwards: the translation is now older than it.
    browser.find_element(By.PARTIAL_LINK_TEXT, "の編集に戻る").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "項目の編集"))
    row = browser.find_element(By.CSS_SELECTOR, '#translation-table tr[data-language="zh"]')
    assert "最新" in row.text and "職員が編集" in row.text
    browser.find_element(By.ID, "answer").send_keys("\n窓口でも取れます。")
    browser.find_element(By.ID, "save-button").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), "保存しました"))
    row = browser.find_element(By.CSS_SELECTOR, '#translation-table tr[data-language="zh"]')
    assert "翻訳が古い" in row.text
    shot(browser, "languages-translation-stale", row)
    browser.get(live_server.url + f"/admin/faq?q={ENTRY}")
    flag = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".stale-translation")))
    assert "中国語（簡体字）（中文）" in flag.text

    # Updated beside the new Japanese answer, it is current again.
    browser.get(live_server.url + f"/admin/faq/entries/{ENTRY}/translations/zh")
    warning = wait.until(EC.visibility_of_element_located((By.ID, "stale-warning")))
    assert "翻訳が古い" in warning.text and "窓口でも取れます。" in browser.find_element(By.ID, "ja-answer").text
    browser.find_element(By.ID, "answer").send_keys("也可以在窗口办理。")
    browser.find_element(By.ID, "save-translation").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash-success"), "訳を保存しました"))
    assert browser.find_elements(By.ID, "stale-warning") == []
    no_script_errors(browser)
