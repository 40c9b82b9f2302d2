"""Translations in the FAQ workbench: staff edit an entry's translation beside the Japanese entry,
saving marks it staff-edited and following the Japanese entry's review; a translation older than
its Japanese answer is flagged 「翻訳が古い」 on the entry list and the entry page; unanswered
questions show the language they were asked in; the KPI counts residents and questions by language."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, insert, select, update

from bot.db import get_db, utcnow
from bot.models import AuditLog
from faq import kpi_feed, workbench
from faq.models import FaqEntry, FaqTranslation, QuestionLog
from faq.store import load_repo_kb
from segments.models import Resident
from segments.service import residents_by_language
from tests.test_admin import csrf_token
from tests.test_faq_workbench import fast_hashing, staff  # noqa: F401 - fast_hashing is an autouse fixture

CITY = "nasukarasuyama"
ENTRY = "konbini-certificates"
PT_TITLE = "Certidões na loja de conveniência"
PT_QUESTION = "Posso tirar certidões numa loja de conveniência?"
PT_ANSWER = "Com o cartão My Number, você pode tirar certidões nas lojas de conveniência."


@pytest.fixture
def kb_app(make_app: Callable[..., Flask]) -> Flask:
    """那須烏山市 with the shipped knowledge base (and its shipped translations)."""
    app = make_app(MUNICIPALITY=CITY)
    with get_db(app).session() as s:
        load_repo_kb(s, CITY)
    return app


def entry_row(app: Flask, entry_id: str = ENTRY) -> FaqEntry:
    with get_db(app).session() as session:
        row = session.scalars(select(FaqEntry).where(FaqEntry.municipality == CITY, FaqEntry.entry_id == entry_id)).one()
        session.expunge(row)
        return row


def translation(app: Flask, language: str, entry_id: str = ENTRY) -> FaqTranslation | None:
    with get_db(app).session() as session:
        row = session.scalars(
            select(FaqTranslation).join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id)
            .where(FaqEntry.municipality == CITY, FaqEntry.entry_id == entry_id, FaqTranslation.language == language)
        ).first()
        if row is not None:
            session.expunge(row)
        return row


def save_translation(client: FlaskClient, language: str, **fields: str) -> object:
    url = f"/admin/faq/entries/{ENTRY}/translations/{language}"
    data = {"title": PT_TITLE, "question": PT_QUESTION, "answer": PT_ANSWER,
            "alternates": "certidão konbini\ncertidão de residência na loja\nkonbini certidão", **fields}
    data["csrf_token"] = csrf_token(client, url)
    return client.post(url, data=data)


def edit_japanese_answer(client: FlaskClient, app: Flask, answer_suffix: str = "（窓口の時間も確認してください）") -> None:
    """Staff edit the Japanese entry through its page (as the workbench tests do)."""
    page = client.get(f"/admin/faq/entries/{ENTRY}").get_data(as_text=True)
    row = entry_row(app)
    version = re.search(r'name="version" value="([^"]*)"', page)
    assert version
    data = {
        "csrf_token": csrf_token(client, f"/admin/faq/entries/{ENTRY}"), "version": version.group(1), "intent": "save",
        "title": row.title, "category": row.category, "question": row.question, "alternates": "\n".join(row.alternates),
        "keywords": "\n".join(row.keywords), "answer": row.answer + answer_suffix, "source": row.source, "is_published": "1",
    }
    response = client.post(f"/admin/faq/entries/{ENTRY}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)


def test_the_translation_page_shows_the_japanese_entry_beside_the_form(kb_app: Flask) -> None:
    faq = staff(kb_app, "faq1", "faq")
    row = entry_row(kb_app)
    page = faq.get(f"/admin/faq/entries/{ENTRY}/translations/vi").get_data(as_text=True)
    assert 'id="side-by-side"' in page and "ベトナム語（Tiếng Việt）" in page
    japanese = page[page.index('id="japanese"'):page.index('id="translation-form"')]
    assert row.title in japanese and row.question in japanese
    assert 'lang="vi"' in page
    # Each of the city's languages is a tab; Japanese is not one.
    assert re.findall(r'translations/([a-z-]+)"', page) == ["ja-easy", "en", "pt", "vi", "zh", "fil", "vi"]


def test_saving_marks_the_translation_staff_edited_and_following_the_japanese_review(kb_app: Flask) -> None:
    faq = staff(kb_app, "faq1", "faq")
    shipped = translation(kb_app, "zh")  # start from none: this one is written by staff
    if shipped is not None:
        with get_db(kb_app).session() as session:
            session.execute(delete(FaqTranslation).where(FaqTranslation.id == shipped.id))
    assert translation(kb_app, "zh") is None
    response = save_translation(faq, "zh", title="在便利店开证明", question="可以在便利店开证明吗？",
                                answer="有个人编号卡的话，可以在便利店开证明。")
    assert response.status_code == 302
    saved = translation(kb_app, "zh")
    assert saved is not None and saved.is_staff_edited
    assert saved.follows == entry_row(kb_app).reviewed_at
    assert saved.title == "在便利店开证明" and saved.alternates[:1] == ["certidão konbini"]
    with get_db(kb_app).session() as session:
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "faq_translation_edit")).one()
        assert audit.target == ENTRY and audit.detail == {"language": "zh", "created": True}
    # Saving the same again changes nothing.
    again = save_translation(faq, "zh", title="在便利店开证明", question="可以在便利店开证明吗？",
                             answer="有个人编号卡的话，可以在便利店开证明。")
    assert "変更はありませんでした" in faq.get(again.headers["Location"]).get_data(as_text=True)  # type: ignore[attr-defined]
    # Kept by `faq load` like a staff-edited entry.
    with get_db(kb_app).session() as s:
        load_repo_kb(s, CITY)
    assert translation(kb_app, "zh").title == "在便利店开证明"  # type: ignore[union-attr]


def test_the_stale_flag_appears_when_the_japanese_answer_is_edited_after_the_translation(kb_app: Flask) -> None:
    faq = staff(kb_app, "faq1", "faq")
    # A translation that follows an older review of the Japanese entry than its current one.
    with get_db(kb_app).session() as session:
        session.execute(update(FaqEntry).where(FaqEntry.municipality == CITY, FaqEntry.entry_id == ENTRY)
                        .values(reviewed_at=dt.date(2026, 11, 1)))
    assert save_translation(faq, "pt").status_code == 302
    assert translation(kb_app, "pt").follows == dt.date(2026, 11, 1)  # type: ignore[union-attr]
    listing = faq.get(f"/admin/faq?q={ENTRY}").get_data(as_text=True)
    assert not re.search(r"翻訳が古い（[^<]*ポルトガル語", listing)

    edit_japanese_answer(faq, kb_app)

    assert entry_row(kb_app).reviewed_at == utcnow().date()
    listing = faq.get(f"/admin/faq?q={ENTRY}").get_data(as_text=True)
    assert re.search(r"翻訳が古い（[^<]*ポルトガル語（Português）", listing)
    page = faq.get(f"/admin/faq/entries/{ENTRY}").get_data(as_text=True)
    row = re.search(r'<tr data-language="pt">.*?</tr>', page, re.S)
    assert row and "翻訳が古い" in row.group(0) and "2026-11-01" in row.group(0)
    editor = faq.get(f"/admin/faq/entries/{ENTRY}/translations/pt").get_data(as_text=True)
    assert 'id="stale-warning"' in editor

    # Saving it again (checked against the new Japanese) makes it follow the current review.
    assert save_translation(faq, "pt").status_code == 302
    assert translation(kb_app, "pt").follows == entry_row(kb_app).reviewed_at  # type: ignore[union-attr]
    listing = faq.get(f"/admin/faq?q={ENTRY}").get_data(as_text=True)
    assert not re.search(r"翻訳が古い（[^<]*ポルトガル語", listing)
    page = faq.get(f"/admin/faq/entries/{ENTRY}").get_data(as_text=True)
    assert "翻訳が古い" not in re.search(r'<tr data-language="pt">.*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]


def test_stale_languages_compares_follows_with_the_japanese_review(kb_app: Flask) -> None:
    with get_db(kb_app).session() as session:
        entry = session.scalars(select(FaqEntry).where(FaqEntry.municipality == CITY, FaqEntry.entry_id == ENTRY)).one()
        entry.reviewed_at = dt.date(2026, 12, 1)
        session.query(FaqTranslation).filter(FaqTranslation.entry_id == entry.id).delete()
        for language, follows in (("en", dt.date(2026, 11, 21)), ("pt", dt.date(2026, 12, 1)), ("vi", None)):
            session.add(FaqTranslation(entry_id=entry.id, language=language, title="t", question="q", answer="a",
                                       alternates=[], follows=follows))
        session.flush()
        assert workbench.stale_languages(session, CITY)[ENTRY] == ["en", "vi"]


def test_bad_translations_are_refused_in_japanese(kb_app: Flask) -> None:
    faq = staff(kb_app, "faq1", "faq")
    for fields, message in (
        ({"title": ""}, "見出しを入力してください。"),
        ({"title": "x" * 41}, "見出しは40文字以内にしてください"),
        ({"question": " "}, "代表的な質問を入力してください。"),
        ({"answer": "Ligue para {phone}"}, "回答に { や } は使えません"),
    ):
        response = save_translation(faq, "en", **fields)
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
    easy = save_translation(faq, "ja-easy", title="コンビニで しょうめいしょを もらう ほうほう")
    assert easy.status_code == 400 and "見出しは20文字以内にしてください" in easy.get_data(as_text=True)
    assert faq.get(f"/admin/faq/entries/{ENTRY}/translations/ja").status_code == 404
    assert faq.get(f"/admin/faq/entries/{ENTRY}/translations/ko").status_code == 404


def test_only_faq_staff_edit_translations(kb_app: Flask) -> None:
    pr = staff(kb_app, "pr1", "pr")
    assert pr.get(f"/admin/faq/entries/{ENTRY}/translations/pt").status_code == 403


def test_a_city_without_a_language_offers_no_translation_of_it(make_app: Callable[..., Flask]) -> None:
    app = make_app(MUNICIPALITY=CITY, LANGUAGES="ja,en")
    with get_db(app).session() as s:
        load_repo_kb(s, CITY)
    faq = staff(app, "faq1", "faq")
    page = faq.get(f"/admin/faq/entries/{ENTRY}").get_data(as_text=True)
    assert re.findall(r'<tr data-language="([a-z-]+)">', page) == ["en"]
    assert faq.get(f"/admin/faq/entries/{ENTRY}/translations/pt").status_code == 404


# --- the review queue and the KPI -----------------------------------------------------------------


def log_questions(app: Flask, rows: list[tuple[str, str, str | None]]) -> None:
    """Logged questions (masked text, decision, detected language) as the FAQ service writes them."""
    now = utcnow()
    with get_db(app).write_connection() as conn:
        conn.execute(insert(QuestionLog), [
            {"municipality": CITY, "masked_text": text, "decision": decision, "score": 0.1, "candidates": [],
             "language": language, "asked_at": now}
            for text, decision, language in rows
        ])


def test_unanswered_questions_show_their_detected_language(kb_app: Flask) -> None:
    log_questions(kb_app, [
        ("Onde posso jogar fora o sofá velho?", "unknown", "pt"),
        ("Onde posso jogar fora o sofá velho?", "unknown", "pt"),
        ("ソファはどこに捨てられますか", "unknown", None),
    ])
    faq = staff(kb_app, "faq1", "faq")
    queue = faq.get("/admin/faq/review").get_data(as_text=True)
    assert re.search(r'<span class="badge language" data-language="pt"[^>]*>ポルトガル語（Português） 2</span>', queue)
    assert 'data-language="ja"' not in queue  # Japanese, the usual, is not labelled
    key = re.search(r'href="/admin/faq/review/([^"?]+)\?[^"]*">Onde posso', queue)
    assert key
    cluster = faq.get(f"/admin/faq/review/{key.group(1)}").get_data(as_text=True)
    assert "ポルトガル語（Português）" in cluster


def test_the_kpi_counts_residents_and_questions_by_language(kb_app: Flask) -> None:
    now = utcnow()
    with get_db(kb_app).write_connection() as conn:
        conn.execute(insert(Resident), [
            {"line_user_id": f"U{n:032x}", "is_following": following, "followed_at": now, "consented_at": now,
             "interests_mask": 0, "is_notices_enabled": True, "updated_at": now, "language": language}
            for n, (language, following) in enumerate(
                [(None, True)] * 3 + [("ja", True), ("pt", True), ("pt", True), ("vi", True), ("pt", False)])
        ])
    log_questions(kb_app, [("q1", "answer", None), ("q2", "unknown", "pt"), ("q3", "answer", "pt"), ("q4", "clarify", "pt")])
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=1)
    with get_db(kb_app).session() as session:
        assert list(residents_by_language(session, CITY, start, end, 10)) == [
            ("日本語", 4), ("ポルトガル語（Português）", 2), ("ベトナム語（Tiếng Việt）", 1),
        ]
        assert list(kpi_feed.questions_by_language(session, CITY, start, end, 10)) == [
            ("日本語", 1, 1, 0, 0), ("ポルトガル語（Português）", 3, 1, 1, 1),
        ]
    manager = staff(kb_app, "viewer1", "viewer")
    month = f"{now:%Y-%m}"
    dashboard = manager.get(f"/admin/kpi?month={month}").get_data(as_text=True)
    assert "言語別の友だち" in dashboard and "言語別の質問" in dashboard and "ポルトガル語（Português）" in dashboard
    csv_text = manager.get(f"/admin/kpi/csv?table=questions_by_language&month={month}").get_data(as_text=True)
    assert "ポルトガル語（Português）" in csv_text and "3" in csv_text
