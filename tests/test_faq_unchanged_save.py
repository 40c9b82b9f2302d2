"""Saving an FAQ entry changes only what staff changed (issue 14, item 2).

Browsers send a textarea's line breaks as CRLF and drop line breaks from one-line inputs; the form
is submitted here the way a browser would, from the page's own HTML.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bot.db import get_db
from bot.text import multi_line, single_line
from faq import workbench
from faq.kb import MUNICIPALITIES, load_kb
from faq.models import FaqEntry
from faq.workbench import EntryDraft
from tests.conftest import SHARED
from tests.test_faq_workbench import (  # noqa: F401 - fixtures
    CITY, audit_actions, entry_row, fast_hashing, html_of, kb_app, post, received, resident, revisions, staff,
)


class _FormReader(HTMLParser):
    """The fields of the entry form (id="entry-form" or the first form with a textarea) as a browser submits them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._form: dict[str, Any] | None = None
        self._textarea: str | None = None
        self._text: list[str] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = {"__action": a.get("action", ""), "fields": {}}
            self.forms.append(self._form)
        elif self._form is not None and tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind == "checkbox":
                if "checked" in a:
                    self._form["fields"][a["name"]] = a.get("value", "on")
            elif kind not in ("submit", "button"):
                # The value sanitization of a one-line input strips CR and LF.
                self._form["fields"][a["name"]] = a.get("value", "").replace("\r", "").replace("\n", "")
        elif self._form is not None and tag == "textarea":
            self._textarea, self._text = a.get("name", ""), []
        elif self._form is not None and tag == "select" and a.get("name"):
            self._select = a["name"]
        elif self._form is not None and tag == "option" and self._select is not None:
            # A select sends its selected option, or its first one when none is marked.
            if "selected" in a or self._select not in self._form["fields"]:
                self._form["fields"][self._select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._form is not None and self._textarea:
            value = "".join(self._text)
            value = value[1:] if value.startswith("\n") else value  # the parser drops one leading newline
            # Form submission normalises every line break to CRLF.
            self._form["fields"][self._textarea] = re.sub(r"\r\n|\r|\n", "\r\n", value)
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._form = None


def browser_form(page: str) -> dict[str, str]:
    """The edit form of an entry page, untouched, as the browser would post it."""
    reader = _FormReader()
    reader.feed(page)
    (form,) = [f for f in reader.forms if "answer" in f["fields"]]
    return dict(form["fields"])


def as_browser_sends(draft: EntryDraft) -> EntryDraft:
    """A draft after a round trip through the edit form (textareas CRLF, inputs without line breaks)."""
    crlf = lambda text: re.sub(r"\r\n|\r|\n", "\r\n", text)  # noqa: E731
    one_line = lambda text: text.replace("\r", "").replace("\n", "")  # noqa: E731
    return EntryDraft(
        entry_id=draft.entry_id, category=one_line(draft.category), title=one_line(draft.title),
        question=crlf(draft.question), alternates=workbench.split_lines(crlf("\n".join(draft.alternates))),
        keywords=workbench.split_lines(crlf("\n".join(draft.keywords))), answer=crlf(draft.answer),
        source=one_line(draft.source), is_published=draft.is_published,
    )


def test_the_functions_staff_text_goes_through() -> None:
    assert multi_line("一行目\r\n二行目\r三行目\n") == "一行目\n二行目\n三行目"
    assert multi_line(None) == "" and multi_line("  ") == ""
    assert single_line(" 子育て\r\n支援 ") == "子育て 支援" and single_line("出典A\n\n出典B") == "出典A 出典B"


@pytest.mark.parametrize("city", MUNICIPALITIES)
def test_every_shipped_entry_survives_the_form_unchanged(city: str) -> None:
    for entry in load_kb(city):
        draft = EntryDraft(entry_id=entry.id, category=entry.category, title=entry.title, question=entry.question,
                           alternates=entry.alternates, keywords=entry.keywords, answer=entry.answer, source=entry.source)
        assert as_browser_sends(draft).normalized().snapshot() == draft.snapshot(), entry.id


def test_an_untouched_form_saves_nothing(kb_app: Flask, fake_line: Any) -> None:
    faq = staff(kb_app, "yamada", "faq")
    row = entry_row(kb_app, "mynumber-pin")
    assert "\n" in row.answer  # an answer of several lines: the browser sends them back as CRLF
    page = f"/admin/faq/entries/{row.entry_id}"
    form = browser_form(html_of(faq.get(page)))
    assert "\r\n" in form["answer"]
    saved = post(faq, page, {**form, "intent": "save"}, page)
    assert saved.status_code == 302
    assert "変更はありませんでした" in html_of(faq.get(saved.location))
    after = entry_row(kb_app, row.entry_id)
    assert after.answer == row.answer and "\r" not in after.answer
    assert not after.is_staff_edited and revisions(kb_app, row.entry_id) == []
    assert "faq_entry_edit" not in audit_actions(kb_app)
    assert 'data-entry-id="mynumber-pin"' not in html_of(faq.get("/admin/faq?status=edited"))  # 職員が編集
    # Residents still get the answer as it was, without CR.
    reply = resident(kb_app, fake_line).says("マイナンバーカードの暗証番号を忘れた")[0]["text"]
    assert reply == received(row) and "\r" not in reply
    # And `faq load` still owns the entry.
    with get_db(kb_app).session() as s:
        s.get(FaqEntry, after.id).answer = "古い版"
        s.commit()
    assert kb_app.test_cli_runner().invoke(args=["faq", "load"]).exit_code == 0
    assert entry_row(kb_app, row.entry_id).answer == row.answer


def test_what_if_of_an_untouched_form_shows_no_change(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    page = "/admin/faq/entries/mynumber-pin"
    form = browser_form(html_of(faq.get(page)))
    shown = html_of(post(faq, page, {**form, "intent": "preview", "replay_form": "1", "replay_recent": "10",
                                      "replay_eval": "1"}, page))
    changes = shown.split('id="pending-changes"', 1)[1].split("</section>", 1)[0]
    assert "変更はありません。" in changes and "<li>" not in changes
    for kind in ("gained", "lost", "changed"):
        found = re.search(rf'id="whatif-{kind}">(\d+)<', shown)
        assert found is None or found.group(1) == "0", kind


def test_a_real_edit_typed_with_crlf_is_stored_with_lf(kb_app: Flask, fake_line: Any) -> None:
    faq = staff(kb_app, "yamada", "faq")
    page = "/admin/faq/entries/mynumber-pin"
    form = browser_form(html_of(faq.get(page)))
    new_answer = "暗証番号の再設定は市民課で受け付けます。\r\n本人確認書類をお持ちください。\r\n"
    assert post(faq, page, {**form, "answer": new_answer, "intent": "save"}, page).status_code == 302
    row = entry_row(kb_app, "mynumber-pin")
    assert row.answer == "暗証番号の再設定は市民課で受け付けます。\n本人確認書類をお持ちください。"
    assert row.is_staff_edited
    (rev,) = revisions(kb_app, "mynumber-pin")
    assert [c.name for c in workbench.diff(rev.before, rev.after)] == ["answer"]
    assert "\r" not in resident(kb_app, fake_line).says("マイナンバーカードの暗証番号を忘れた")[0]["text"]
    # Saving the page again as it now is changes nothing more.
    again = browser_form(html_of(faq.get(page)))
    post(faq, page, {**again, "intent": "save"}, page)
    assert len(revisions(kb_app, "mynumber-pin")) == 1


def test_unpublishing_through_the_form_is_no_content_edit(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    page = "/admin/faq/entries/mynumber-pin"
    form = browser_form(html_of(faq.get(page)))
    form.pop("is_published")
    post(faq, page, {**form, "intent": "save"}, page)
    row = entry_row(kb_app, "mynumber-pin")
    assert not row.is_published and not row.is_staff_edited
    (rev,) = revisions(kb_app, "mynumber-pin")
    assert [c.name for c in workbench.diff(rev.before, rev.after)] == ["is_published"]


def test_a_resident_question_of_several_lines_becomes_one_alternate(kb_app: Flask) -> None:
    with kb_app.app_context(), get_db(kb_app).session() as s:
        row = workbench.get_entry_row(s, CITY, "mynumber-pin")
        added = workbench.add_alternates(s, row, ["暗証番号を\r\n忘れました", "ロック|解除したい"], None)
        s.commit()
    assert added == ["暗証番号を 忘れました", "ロック 解除したい"]
    faq = staff(kb_app, "yamada", "faq")
    page = "/admin/faq/entries/mynumber-pin"
    before = len(revisions(kb_app, "mynumber-pin"))
    post(faq, page, {**browser_form(html_of(faq.get(page))), "intent": "save"}, page)
    assert len(revisions(kb_app, "mynumber-pin")) == before


def test_the_out_of_scope_reason_is_stored_with_lf(kb_app: Flask) -> None:
    from faq import review
    from tests.test_faq_workbench import log_question, queue

    log_question(kb_app, "宇宙人っているの？")
    cluster = queue(kb_app).clusters[0]
    with kb_app.app_context(), get_db(kb_app).session() as s:
        decision = review.mark_out_of_scope(s, CITY, cluster, "市の業務ではない\r\n（雑談）\r\n", None)
        assert decision.reason == "市の業務ではない\n（雑談）"


def test_imported_entries_survive_the_form_unchanged(kb_app: Flask, tmp_path: Any) -> None:
    """The 子育て sample, imported, then every entry through the edit form: nothing changes."""
    sample = tmp_path / "kosodate-faq.csv"
    sample.write_bytes((SHARED / "samples" / "kosodate-faq.csv").read_bytes().replace(b"\n", b"\r\n"))
    result = kb_app.test_cli_runner().invoke(args=["faq", "import", str(sample)])
    assert result.exit_code == 0, result.output
    with get_db(kb_app).session() as s:
        rows = s.scalars(select(FaqEntry).where(FaqEntry.municipality == CITY)).all()
        assert len(rows) == 63 + 661 and not any("\r" in r.answer or "\r" in r.question for r in rows)
        for row in rows:
            draft = EntryDraft.from_row(row)
            assert as_browser_sends(draft).normalized().snapshot() == draft.snapshot(), row.entry_id
