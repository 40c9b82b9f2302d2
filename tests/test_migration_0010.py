"""Migration 0010: stored FAQ text in the form the edit form sends back; false 職員が編集 marks removed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import command

from bot.cli import alembic_config, upgrade_database
from tests.test_migrations import empty_database_url  # noqa: F401 - fixture

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
CITY = "joso"
ENTRIES = sa.table(
    "faq_entries", *(sa.column(c) for c in ("municipality", "entry_id", "category", "title", "question", "answer",
                                            "source", "origin", "is_published", "is_staff_edited", "updated_at")),
    sa.column("alternates", sa.JSON), sa.column("keywords", sa.JSON),
)
REVISIONS = sa.table(
    "faq_revisions", *(sa.column(c) for c in ("municipality", "entry_id", "action", "at", "username", "note")),
    sa.column("before", sa.JSON), sa.column("after", sa.JSON),
)
DECISIONS = sa.table(
    "faq_review_decisions", *(sa.column(c) for c in ("municipality", "kind", "cluster_key", "representative",
                                                     "question_count", "reason", "is_active", "decided_at", "username")),
    sa.column("member_texts", sa.JSON), sa.column("examples", sa.JSON),
)


def entry(entry_id: str, *, origin: str = "repo", edited: bool = False, **values: Any) -> dict[str, Any]:
    return {"municipality": CITY, "entry_id": entry_id, "category": "c", "title": "題", "question": "質問",
            "answer": "一行目\n二行目", "source": "", "origin": origin, "is_published": True,
            "is_staff_edited": edited, "updated_at": NOW, "alternates": [], "keywords": [], **values}


def revision(entry_id: str, before: dict[str, Any], after: dict[str, Any], action: str = "edit") -> dict[str, Any]:
    return {"municipality": CITY, "entry_id": entry_id, "action": action, "at": NOW, "username": "yamada",
            "note": "", "before": before, "after": after}


def test_0010_normalises_stored_text_and_unmarks_line_break_only_edits(empty_database_url: str) -> None:  # noqa: F811
    upgrade_database(empty_database_url, "0006")
    engine = sa.create_engine(empty_database_url)
    crlf = "一行目\r\n二行目"
    try:
        with engine.begin() as conn:
            conn.execute(ENTRIES.insert(), [
                # Saved untouched: CRLF stored, an edit revision that changed only line breaks, marked.
                entry("untouched", answer=crlf, edited=True),
                # A real edit (and CRLF): the mark stays.
                entry("edited", answer="新しい回答\r\nです", edited=True),
                # Written by staff: the mark of its creation stays.
                entry("staff-1", origin="staff", answer=crlf, edited=True),
                # Imported with CR line breaks, a title of two lines and untidy lists.
                entry("imported", origin="import", answer="a\rb\r", question=" 質問\r\n ", title="二行の\r\nタイトル",
                      source="出典A\n出典B", alternates=["言い換え|別の言い方", " 前後に空白 ", "言い換え", ""],
                      keywords=["キーワード\nもう一つ"]),
            ])
            conn.execute(REVISIONS.insert(), [
                revision("untouched", {"answer": "一行目\n二行目", "is_published": True}, {"answer": crlf, "is_published": True}),
                revision("untouched", {"answer": crlf, "is_published": True}, {"answer": crlf, "is_published": False}, "unpublish"),
                revision("edited", {"answer": crlf}, {"answer": crlf}),
                revision("edited", {"answer": "一行目\n二行目"}, {"answer": "新しい回答\r\nです"}),
                revision("staff-1", {"answer": "一行目\n二行目"}, {"answer": crlf}),
            ])
            conn.execute(DECISIONS.insert(), [{
                "municipality": CITY, "kind": "out_of_scope", "cluster_key": "k", "representative": "r",
                "question_count": 1, "reason": "市の業務ではない\r\n雑談\r\n", "is_active": True, "decided_at": NOW,
                "username": "yamada", "member_texts": [], "examples": [],
            }])
        command.upgrade(alembic_config(empty_database_url), "0010")
        with engine.connect() as conn:
            rows = {r.entry_id: r for r in conn.execute(sa.select(ENTRIES)).all()}
            revisions = conn.execute(sa.select(sa.func.count()).select_from(REVISIONS)).scalar_one()
            reason = conn.execute(sa.select(DECISIONS.c.reason)).scalar_one()
        assert (rows["untouched"].answer, rows["untouched"].is_staff_edited) == ("一行目\n二行目", False)
        assert (rows["edited"].answer, rows["edited"].is_staff_edited) == ("新しい回答\nです", True)
        assert (rows["staff-1"].answer, rows["staff-1"].is_staff_edited) == ("一行目\n二行目", True)
        imported = rows["imported"]
        assert (imported.answer, imported.question, imported.title, imported.source) == ("a\nb", "質問", "二行の タイトル", "出典A 出典B")
        assert imported.alternates == ["言い換え", "別の言い方", "前後に空白"] and imported.keywords == ["キーワード", "もう一つ"]
        assert revisions == 5  # history is kept as it was
        assert reason == "市の業務ではない\n雑談"
        command.downgrade(alembic_config(empty_database_url), "0006")  # changes nothing, and works
        upgrade_database(empty_database_url)
    finally:
        engine.dispose()
