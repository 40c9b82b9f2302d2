"""The homepage channel's pages: the widget script (small, cached, nothing third-party), the chat
page, the public FAQ pages (valid HTML, FAQPage JSON-LD, only the city's published entries), the
channel in the review queue and the KPI per channel."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from bot import auth
from bot.db import get_db, utcnow
from faq.models import FaqEntry, QuestionLog
from faq.store import load_repo_kb
from kpi.cities import load_city_config
from kpi.hooks import hooks
from kpi.metrics import Month
from kpi.report import build_report
from tests.conftest import Chat
from webchat.views import WIDGET_MAX_BYTES

CITY = "https://www.city.example.jp"
SESSION = "p" * 22
PASSWORD = "correct-horse-battery-staple-42"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture
def kb_app(make_app):
    def factory(**overrides: Any) -> Flask:
        app = make_app(MUNICIPALITY="joso", **overrides)
        with get_db(app).session() as s:
            load_repo_kb(s, "joso")
        return app
    return factory


class StrictHTML(HTMLParser):
    """html.parser plus the checks a validator would make of our pages: a doctype, lang, every
    non-void element closed in order, unique ids, labels that point at a field, alt on images."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.label_for: list[str] = []
        self.doctype = ""
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if len(a) != len(attrs):
            self.errors.append(f"duplicate attribute in <{tag}>")
        if "id" in a:
            self.ids.append(str(a["id"]))
        if tag == "label" and a.get("for"):
            self.label_for.append(str(a["for"]))
        if tag == "img" and "alt" not in a:
            self.errors.append("img without alt")
        if tag == "script":
            self._script, self._text = a, []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.errors.append(f"<{tag}/> is not a void element")
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.errors.append(f"</{tag}> closes a void element")
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close {self.stack[-1:] or 'anything'}")
            return
        self.stack.pop()
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)


def valid_page(html: str) -> StrictHTML:
    page = StrictHTML()
    page.feed(html)
    page.close()
    assert page.doctype.lower() == "doctype html"
    assert page.tags[0] == ("html", {"lang": "ja"})
    assert not page.errors, page.errors
    assert page.stack == [], page.stack
    assert len(page.ids) == len(set(page.ids)), "ids are not unique"
    assert set(page.label_for) <= set(page.ids), "a label points at nothing"
    assert sum(1 for tag, _ in page.tags if tag == "h1") == 1
    assert any(tag == "meta" and a.get("name") == "viewport" for tag, a in page.tags)
    # Nothing from another server: styles, scripts, images, frames come from this one.
    for tag, a in page.tags:
        for attr in ("src",) if tag != "link" else ("href",):
            value = a.get(attr) or ""
            if tag in ("script", "img", "iframe", "link") and value and a.get("rel") != "canonical":
                assert value.startswith("/") and not value.startswith("//"), f"<{tag} {attr}={value}>"
    return page


# --- the widget script -------------------------------------------------------------------------------------


def test_the_widget_is_small_cached_and_names_the_allowed_origins(kb_app) -> None:
    client = kb_app(WEBCHAT_ALLOWED_ORIGINS=CITY).test_client()
    response = client.get("/chat/widget.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert len(response.data) <= WIDGET_MAX_BYTES == 30 * 1024
    assert "public" in response.headers["Cache-Control"] and "max-age=" in response.headers["Cache-Control"]
    etag = response.headers["ETag"]
    assert client.get("/chat/widget.js", headers={"If-None-Match": etag}).status_code == 304
    script = response.get_data(as_text=True)
    assert json.dumps(CITY) in script and "__WEBCHAT_SETTINGS__" not in script
    # No request of its own to anywhere: the frame is built from the script's own address.
    assert not re.search(r"https?://", re.sub(r"/\*.*?\*/", "", script, flags=re.S).replace(json.dumps(CITY), ""))
    other = kb_app().test_client().get("/chat/widget.js")
    assert other.headers["ETag"] != etag  # another setting: another script, not a stale cached one


def test_the_chat_pages_assets_are_cached_and_unknown_ones_are_not_found(kb_app) -> None:
    client = kb_app().test_client()
    html = client.get("/chat").get_data(as_text=True)
    for src in re.findall(r'(?:src|href)="(/chat/assets/[^"]+)"', html):
        asset = client.get(src)
        assert asset.status_code == 200 and asset.headers["ETag"] and "max-age" in asset.headers["Cache-Control"]
        assert not re.search(r"(?:src|url|fetch)\(?\s*[\"']?https?://", asset.get_data(as_text=True))
    for name in ("nothing.js", "..%2Fviews.py", "widget.js", "chat.html"):
        assert client.get(f"/chat/assets/{name}").status_code == 404


def test_the_chat_page_is_valid_accessible_html(kb_app) -> None:
    html = kb_app().test_client().get("/chat").get_data(as_text=True)
    page = valid_page(html)
    attrs = {a.get("id"): a for _, a in page.tags if a.get("id")}
    assert attrs["chat-log"]["role"] == "log" and attrs["chat-log"]["aria-live"] == "polite"
    assert attrs["chat-status"]["role"] == "status"
    assert "chat-input" in page.label_for and attrs["chat-close"]["aria-label"] == "チャットを閉じる"
    assert "常総市のチャット" in html


# --- the public FAQ -----------------------------------------------------------------------------------


def test_the_faq_lists_the_citys_published_entries_by_category(kb_app) -> None:
    app = kb_app()
    with get_db(app).session() as s:
        s.execute(update(FaqEntry).where(FaqEntry.entry_id == "garbage").values(is_published=False))
        load_repo_kb(s, "ohtawara")
        published = set(s.scalars(select(FaqEntry.entry_id).where(FaqEntry.municipality == "joso", FaqEntry.is_published.is_(True))))
        others = set(s.scalars(select(FaqEntry.entry_id).where(FaqEntry.municipality == "ohtawara"))) - published
    client = app.test_client()
    response = client.get("/faq")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = valid_page(html)
    linked = {href.removeprefix("/faq/") for href in re.findall(r'href="(/faq/[^"#]+)"', html)}
    assert linked == published
    assert not linked & others and "garbage" not in linked
    assert '<h2 id="cat-certificates-title">証明書</h2>' in html and "マイナンバーカード" in html
    assert any(tag == "form" and a.get("role") == "search" for tag, a in page.tags)
    assert client.get("/faq/garbage").status_code == 404
    assert client.get(f"/faq/{sorted(others)[0]}").status_code == 404
    assert client.get("/faq/no-such-entry").status_code == 404


def test_the_faq_search_uses_the_bots_matcher(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    found = client.get("/faq", query_string={"q": "戸籍謄本をコンビニで取りたいのですが"})
    html = found.get_data(as_text=True)
    valid_page(html)
    assert 'id="best-answer"' in html and 'href="/faq/konbini-koseki"' in html.split('id="best-answer"')[1][:300]
    unsure = client.get("/faq", query_string={"q": "マイナンバー"}).get_data(as_text=True)
    assert "もしかして" in unsure and 'id="search-others"' in unsure
    none = client.get("/faq", query_string={"q": "宇宙人について教えて"}).get_data(as_text=True)
    assert 'id="search-none"' in none and "常総市役所" in none
    long = client.get("/faq", query_string={"q": "あ" * 201})
    assert long.status_code == 400 and "200文字以内" in long.get_data(as_text=True)
    with get_db(app).session() as s:
        assert s.scalars(select(QuestionLog)).all() == []  # searches are not residents' questions to staff


def test_an_entry_page_has_faqpage_json_ld_the_review_date_and_print_styles(kb_app) -> None:
    app = kb_app()
    with get_db(app).session() as s:
        row = s.scalars(select(FaqEntry).where(FaqEntry.municipality == "joso", FaqEntry.entry_id == "konbini-koseki")).one()
        row.reviewed_at = dt.date(2026, 4, 1)
        question = row.question
    client = app.test_client()
    response = client.get("/faq/konbini-koseki")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = valid_page(html)
    (ld,) = [json.loads(text) for a, text in page.scripts if a.get("type") == "application/ld+json"]
    assert ld["@context"] == "https://schema.org" and ld["@type"] == "FAQPage"
    (item,) = ld["mainEntity"]
    assert item["@type"] == "Question" and item["name"] == question
    assert item["acceptedAnswer"]["@type"] == "Answer"
    answer = item["acceptedAnswer"]["text"]
    assert "コンビニ" in answer and "お問い合わせ" in answer  # as residents get it on LINE, with the contact line
    assert ld["url"] == "http://localhost/faq/konbini-koseki"
    assert "最終確認日：<time datetime=\"2026-04-01\">2026年4月1日</time>" in html
    assert "<h1 id=\"entry-title\">戸籍証明書をコンビニで取る</h1>" in html
    css = client.get(re.search(r'href="(/chat/assets/faq\.css[^"]*)"', html).group(1)).get_data(as_text=True)
    assert "@media print" in css
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]


def test_json_ld_cannot_be_broken_out_of_by_an_answer(kb_app) -> None:
    app = kb_app()
    with get_db(app).session() as s:
        row = s.scalars(select(FaqEntry).where(FaqEntry.municipality == "joso", FaqEntry.entry_id == "garbage")).one()
        row.answer = "分別は</script><script>alert(1)</script> & 「市の手引き」をご覧ください。"
    html = app.test_client().get("/faq/garbage").get_data(as_text=True)
    page = valid_page(html)
    (ld,) = [json.loads(text) for a, text in page.scripts if a.get("type") == "application/ld+json"]
    assert "</script><script>alert(1)</script>" in ld["mainEntity"][0]["acceptedAnswer"]["text"]
    assert html.count("<script") == 1


def test_the_landing_page_links_the_public_faq(kb_app) -> None:
    client = kb_app().test_client()
    html = client.get("/").get_data(as_text=True)
    assert 'id="faq-link" href="/faq"' in html and client.get("/faq").status_code == 200


# --- staff: the channel in the review queue and the KPI ------------------------------------------------------------


def staff_client(app: Flask, monkeypatch: pytest.MonkeyPatch, role: str = "admin") -> Any:
    from werkzeug.security import generate_password_hash

    monkeypatch.setattr(auth, "hash_password", lambda p: generate_password_hash(p, "pbkdf2:sha256:1000"))
    with get_db(app).session() as s:
        auth.create_user(s, "shokuin", PASSWORD, role)
    client = app.test_client()
    html = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post("/admin/login", data={"username": "shokuin", "password": PASSWORD, "csrf_token": token}).status_code == 302
    return client


def test_web_questions_join_the_review_queue_marked_as_homepage(kb_app, fake_line, monkeypatch) -> None:
    app = kb_app()
    client = app.test_client()
    client.post("/chat/api/ask", json={"text": "宇宙人について教えて", "session": SESSION})
    Chat(client, fake_line, "U" + "8" * 32).says("宇宙人について教えて")
    staff = staff_client(app, monkeypatch, "faq")
    html = staff.get("/admin/faq/review").get_data(as_text=True)
    assert "宇宙人について教えて" in html
    assert 'class="badge channel-line" title="質問された場所">LINE 1<' in html
    assert 'class="badge channel-web" title="質問された場所">ホームページ 1<' in html


def test_the_kpi_shows_questions_decisions_and_votes_per_channel(kb_app, fake_line, monkeypatch) -> None:
    app = kb_app()
    client = app.test_client()
    line = Chat(client, fake_line, "U" + "9" * 32)
    line.says("戸籍謄本をコンビニで取りたいのですが", expect=2)
    line.says("宇宙人について教えて")
    for text in ("戸籍謄本をコンビニで取りたいのですが", "マイナンバー", "宇宙人について教えて"):
        body = client.post("/chat/api/ask", json={"text": text, "session": SESSION}).get_json()
        if body["decision"] == "answer":
            client.post("/chat/api/feedback", json={"session": SESSION, "log_id": body["log_id"], "helpful": False})
    month = Month.of(utcnow())
    with get_db(app).session() as s:
        report = build_report(s, load_city_config("joso"), month, hooks(app))
    table = report.table("channels")
    assert table.columns == ("チャネル", "質問数", "回答", "「もしかして」", "お答えできなかった", "役に立った", "役に立たなかった")
    assert table.rows == [("LINE", 2, 1, 0, 1, 0, 0), ("ホームページ", 3, 1, 1, 1, 0, 1)]
    staff = staff_client(app, monkeypatch, "viewer")
    dashboard = staff.get(f"/admin/kpi?month={month.key}").get_data(as_text=True)
    assert "チャネル別の質問・回答・評価（LINE／ホームページ）" in dashboard and "ホームページ" in dashboard
    csv_text = staff.get(f"/admin/kpi/csv?month={month.key}&table=channels").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].lstrip("\ufeff") == "チャネル,質問数,回答,「もしかして」,お答えできなかった,役に立った,役に立たなかった"
    assert lines[1:] == ["LINE,2,1,0,1,0,0", "ホームページ,3,1,1,1,0,1"]
