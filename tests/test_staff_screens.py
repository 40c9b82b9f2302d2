"""Staff screens a city office can read (issue 15 item 4): categories in Japanese and staff's own
categories in the FAQ editor and the bot's menu, 出典 as plan and line with the plan's words on
hover, no file paths or setting names on the KPI screens, the usage rate's denominator set there by
an administrator, the audit log in sentences, dates and months in Japanese and Japan time."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bot import auth, plans
from bot.admin import jst
from bot.db import get_db
from bot.models import AuditLog
from faq import service
from faq.kb import MUNICIPALITIES, load_kb
from faq.models import FaqEntry
from kpi.models import KpiDenominator
from kpi.service import DenominatorError, DenominatorForm, parse_denominator
from tests.conftest import SHARED
from tests.test_faq_workbench import (  # noqa: F401 - fixtures
    CITY, entry_row, fast_hashing, html_of, kb_app, post, resident, revisions, staff,
)
from tests.test_kpi import add_events

SEEDS = SHARED / "seeds"
ENGLISH_WORD = re.compile(r"\b(?:seed|seeds|general|national|fact|mention|settings|functions|README)\b|\.txt|\.py")


def audit_rows(app: Flask, action: str) -> list[AuditLog]:
    with get_db(app).session() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


# --- 出典: plan and line, the plan's words on hover -------------------------------------------------


def test_a_seed_citation_reads_as_the_plan_and_its_lines() -> None:
    source = "seed 000:190,494,505,534; general national fact (カードと4桁の暗証番号が必要、3回の誤りでロック)"
    assert plans.source_text(source) == (
        "那須烏山市 DX推進計画 190行、494行、505行、534行／全国共通の制度・事実（カードと4桁の暗証番号が必要、3回の誤りでロック）"
    )
    assert plans.source_text("seed 002:6-10 (no mention); 001:177") == (
        "那須塩原市 DX推進戦略アクションプラン 6〜10行（記載なし）／那須塩原市 DX推進戦略 177行"
    )
    assert plans.source_text("seeds/000_350d113b5dec9d1f.txt:657-658") == "那須烏山市 DX推進計画 657〜658行"
    assert plans.source_text("seed 004:4-10; general (this service's settings)") == (
        "大田原市 第4次地域ICT総合推進計画 4〜10行／一般的な情報（このサービスの設定）"
    )
    assert plans.source_text("市ホームページ 2026年4月") == "市ホームページ 2026年4月"  # a city's own words stay
    html = plans.source_html("seed 000:190; <b>x</b>")
    line = re.search(r'<span class="plan-line" title="([^"]*)">190行</span>', html)
    assert line and "証明書コンビニ交付サービス導入" in html_lib.unescape(line.group(1))
    assert "<b>" not in html and "&lt;b&gt;" in html  # what staff typed is escaped


def test_every_shipped_source_reads_in_japanese() -> None:
    for city in MUNICIPALITIES:
        for entry in load_kb(city):
            text = plans.source_text(entry.source)
            assert text and not ENGLISH_WORD.search(text), (city, entry.id, text)


def test_the_shipped_quotes_cover_every_cited_line() -> None:
    quotes = json.loads(plans.QUOTES_FILE.read_text(encoding="utf-8"))
    missing = [ref for ref in plans.cited_in_repo() if not plans.quote(ref)]
    assert missing == [], "python -m bot.plans ../shared/seeds で bot/plan_quotes.json を作り直してください"
    assert set(quotes) <= set(plans.PLANS)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="needs ../shared/seeds")
def test_the_shipped_quotes_are_the_plans_lines() -> None:
    shipped = json.loads(plans.QUOTES_FILE.read_text(encoding="utf-8"))
    assert shipped == plans.build_quotes(SEEDS, plans.cited_in_repo()), (
        "bot/plan_quotes.json is out of date: python -m bot.plans ../shared/seeds"
    )
    # Plan names as the plans' own first lines give them.
    for plan in plans.PLANS.values():
        head = " ".join((SEEDS / f"{plan.file_stem}.txt").read_text(encoding="utf-8").split("\n")[:15]).replace(" ", "")
        assert plan.city in head and plan.name.replace(" ", "") in head.replace(plan.city, ""), plan


# --- the FAQ editor: categories in Japanese, staff's own categories -----------------------------------


def _entry_form(row: FaqEntry, **changes: str) -> dict[str, str]:
    form = {"title": row.title, "category": row.category, "question": row.question,
            "alternates": "\n".join(row.alternates or []), "keywords": "\n".join(row.keywords or []),
            "answer": row.answer, "source": row.source, "is_published": "1", "intent": "save"}
    return {**form, **changes}


def test_the_editor_offers_categories_in_japanese_and_shows_the_source_in_words(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    row = entry_row(kb_app, "konbini-certificates")  # seed 003:417; general national fact (…)
    page = html_of(faq.get("/admin/faq/entries/konbini-certificates"))
    select_html = re.search(r'<select id="category" name="category"[^>]*>(.*?)</select>', page, re.DOTALL)
    assert select_html, "the category is a select list"
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select_html.group(1))
    labels = {value: label for value, _, label in options}
    assert labels["mynumber"] == "マイナンバーカード" and labels["certificates"] == "証明書"
    assert labels["bot"] == "このLINEについて" and len(labels) >= 20
    assert [value for value, selected, _ in options if selected] == [row.category]
    assert labels["__new__"] == "＋ 新しいカテゴリを追加…"
    assert 'list="category-list"' not in page and 'name="new_category"' in page
    # 出典 in words, the plan's line in the title; the raw text stays editable.
    view = re.search(r'<p class="source-view" id="source-view">(.*?)</p>', page, re.DOTALL)
    assert view and "常総市 DX推進計画 <span" in view.group(1) and ">417行</span>" in view.group(1)
    assert "全国共通の制度・事実（カードと4桁の暗証番号が必要、3回の誤りでロック）" in view.group(1)
    title = re.search(r'class="plan-line" title="([^"]+)">417行', view.group(1))
    assert title and "コンビニ" in html_lib.unescape(title.group(1))  # 常総市 DX推進計画 line 417
    assert "seed " not in view.group(1) and "general national fact" not in view.group(1)
    assert row.source.startswith("seed ")


def test_choosing_a_category_saves_its_code_and_the_history_says_it_in_japanese(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    row = entry_row(kb_app, "mynumber-pin")
    page = f"/admin/faq/entries/{row.entry_id}"
    saved = post(faq, page, _entry_form(row, category="certificates"), page)
    assert saved.status_code == 302, html_of(saved)
    assert entry_row(kb_app, row.entry_id).category == "certificates"
    history = html_of(faq.get(page))
    assert re.search(r"<del>マイナンバーカード</del> → <ins>証明書</ins>", history)
    (sentence,) = [r for r in audit_rows(kb_app, "faq_entry_edit")]
    assert sentence.detail == {"fields": ["category"]}


def test_staff_add_a_category_and_the_bots_menu_shows_it(kb_app: Flask, fake_line: Any) -> None:
    faq = staff(kb_app, "yamada", "faq")
    row = entry_row(kb_app, "mynumber-pin")
    page = f"/admin/faq/entries/{row.entry_id}"
    saved = post(faq, page, _entry_form(row, category="__new__", new_category=" ペット・動物 "), page)
    assert saved.status_code == 302, html_of(saved)
    assert entry_row(kb_app, row.entry_id).category == "ペット・動物"
    # Offered in the select from now on, under its name.
    assert '<option value="ペット・動物" selected>ペット・動物</option>' in html_of(faq.get(page))
    with get_db(kb_app).session() as s:
        assert ("ペット・動物", "ペット・動物") in service.categories(s, CITY)
    # The resident's category menu: page through it until the new category shows, then open it.
    chat = resident(kb_app, fake_line)
    labels: list[str] = []
    for page_no in range(10):
        (menu,) = chat.taps(json.dumps({"a": "menu", "p": page_no}, ensure_ascii=False))
        labels += [item["action"]["label"] for item in menu["quickReply"]["items"]]
        if "ペット・動物" in labels:
            break
    assert "ペット・動物" in labels
    (listing,) = chat.taps(json.dumps({"a": "cat", "c": "ペット・動物"}, ensure_ascii=False))
    assert "「ペット・動物」" in listing["text"]
    assert [item["action"]["label"] for item in listing["quickReply"]["items"]] == [row.title]


def test_a_new_category_with_an_existing_name_is_that_category(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    row = entry_row(kb_app, "mynumber-pin")
    page = f"/admin/faq/entries/{row.entry_id}"
    saved = post(faq, page, _entry_form(row, category="__new__", new_category="証明書"), page)
    assert saved.status_code == 302
    assert entry_row(kb_app, row.entry_id).category == "certificates"


@pytest.mark.parametrize(("name", "message"), [
    ("", "新しいカテゴリの名前を入力してください。"),
    ("あ" * 21, "新しいカテゴリの名前は20文字以内にしてください（現在21文字）。"),
    ("ペット 動物", "新しいカテゴリの名前に空白は使えません。"),
    ("・・", "新しいカテゴリの名前には文字か数字を入れてください。"),
])
def test_a_bad_new_category_is_refused_in_japanese(kb_app: Flask, name: str, message: str) -> None:
    faq = staff(kb_app, "yamada", "faq")
    row = entry_row(kb_app, "mynumber-pin")
    page = f"/admin/faq/entries/{row.entry_id}"
    refused = post(faq, page, _entry_form(row, category="__new__", new_category=name), page)
    body = html_of(refused)
    assert refused.status_code == 400 and message in body
    assert '<option value="__new__" selected>' in body and f'value="{html_lib.escape(name)}"' in body  # kept to fix
    assert entry_row(kb_app, row.entry_id).category == row.category and revisions(kb_app, row.entry_id) == []


# --- KPI: no file paths or setting names; the denominator set on the screen ---------------------------


PASSWORD = "kpi-screen-password-1"


def _client(app: Flask, username: str, role: str) -> FlaskClient:
    with get_db(app).session() as session:
        auth.create_user(session, username, PASSWORD, role)
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    assert client.post("/admin/login", data={"username": username, "password": PASSWORD,
                                              "csrf_token": token.group(1)}).status_code == 302
    return client


def _token(client: FlaskClient, path: str = "/admin/kpi?month=2026-10") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found
    return found.group(1)


GOOD = {"basis": "人口", "value": "２４，５１２", "as_of": "2026年10月1日", "source": "市ホームページ「人口と世帯数」"}


def test_kpi_pages_show_no_file_paths_or_setting_names(app: Flask) -> None:
    add_events(app)
    viewer = _client(app, "etsuran", "viewer")
    for path in ("/admin/kpi?month=2026-10", "/admin/kpi/report?month=2026-10"):
        page = viewer.get(path).get_data(as_text=True)
        assert "seeds/" not in page and ".txt" not in page and "KPI_CONFIG_FILE" not in page, path
        assert "<code>" not in page, path
        assert "那須烏山市 DX推進計画" in page and "631行" in page, path  # the plan's note, cited in words
    summary = viewer.get("/admin/kpi/csv?month=2026-10&table=summary").get_data(as_text=True)
    assert "seeds/" not in summary and "那須烏山市 DX推進計画 657〜658行" in summary


def test_the_month_picker_is_rendered_by_the_server_in_japanese(app: Flask) -> None:
    add_events(app)
    viewer = _client(app, "etsuran", "viewer")
    page = viewer.get("/admin/kpi?month=2026-10").get_data(as_text=True)
    assert 'type="month"' not in page
    picker = re.search(r'<select id="month" name="month">(.*?)</select>', page, re.DOTALL)
    assert picker
    options = re.findall(r'<option value="(\d{4}-\d{2})"( selected)?>([^<]*)</option>', picker.group(1))
    assert ("2026-10", " selected", "2026年10月") in options
    assert ("2026-09", "", "2026年9月") in options  # the first recorded use is in September
    keys = [key for key, _, _ in options]
    assert keys == sorted(keys, reverse=True) and len(keys) >= 12
    # The trend table and the notices table say months and times in Japanese too (the CSV keeps 2026-10).
    assert "<td>2026年10月</td>" in page and "<td>2026-10</td>" not in page
    assert "2026年10月15日 10:00" in page and "2026-10-15 10:00" not in page


def test_an_admin_sets_the_denominator_and_the_rate_is_computed(app: Flask) -> None:
    add_events(app)
    admin = _client(app, "kanri", "admin")
    page = admin.get("/admin/kpi?month=2026-10").get_data(as_text=True)
    assert 'id="denominator-form"' in page and "未設定" in page
    saved = admin.post("/admin/kpi/denominator", data={**GOOD, "month": "2026-10", "csrf_token": _token(admin)})
    assert saved.status_code == 302 and saved.headers["Location"].endswith("/admin/kpi?month=2026-10#denominator")
    page = admin.get("/admin/kpi?month=2026-10").get_data(as_text=True)
    assert "人口 24,512（2026年10月1日時点、出典: 市ホームページ「人口と世帯数」）" in page
    rate = re.search(r'data-kpi="line_usage_rate">.*?class="kpi-value">([^<]*)<', page, re.DOTALL)
    assert rate and rate.group(1) == "0.02%"  # 5 friends ÷ 24,512
    with get_db(app).session() as s:
        (row,) = s.scalars(select(KpiDenominator)).all()
        assert (row.value, row.basis, row.as_of, row.username) == (24512, "人口", dt.date(2026, 10, 1), "kanri")
    (entry,) = audit_rows(app, "kpi_denominator_set")
    assert entry.username == "kanri" and entry.detail["value"] == 24512 and entry.detail["before"] == "未設定"
    audit_page = admin.get("/admin/audit").get_data(as_text=True)
    assert "LINE利用率の分母を「人口 24,512（2026年10月1日時点、出典: 市ホームページ「人口と世帯数」）」に設定（変更前: 未設定）" in html_lib.unescape(audit_page)
    # The same again changes nothing and records nothing.
    again = admin.post("/admin/kpi/denominator", data={**GOOD, "value": "24512", "csrf_token": _token(admin)})
    assert again.status_code == 302 and len(audit_rows(app, "kpi_denominator_set")) == 1
    # A change is kept beside the old one; the latest applies.
    changed = admin.post("/admin/kpi/denominator", data={**GOOD, "basis": "世帯数", "value": "10000", "csrf_token": _token(admin)})
    assert changed.status_code == 302
    page = admin.get("/admin/kpi?month=2026-10").get_data(as_text=True)
    assert "世帯数 10,000（2026年10月1日時点" in page
    with get_db(app).session() as s:
        assert s.scalar(select(func.count()).select_from(KpiDenominator)) == 2
    assert audit_rows(app, "kpi_denominator_set")[-1].detail["before"].startswith("人口 24,512")


@pytest.mark.parametrize("role", ["viewer", "faq", "pr"])
def test_only_an_admin_may_set_the_denominator(app: Flask, role: str) -> None:
    client = _client(app, "shokuin", role)
    page = client.get("/admin/kpi").get_data(as_text=True)
    assert 'id="denominator-form"' not in page
    refused = client.post("/admin/kpi/denominator", data={**GOOD, "csrf_token": _token(client, "/admin/kpi")})
    assert refused.status_code == 403
    with get_db(app).session() as s:
        assert s.scalar(select(func.count()).select_from(KpiDenominator)) == 0


@pytest.mark.parametrize(("changes", "message"), [
    ({"value": ""}, "人数または世帯数を入力してください。"),
    ({"value": "約2万"}, "人数または世帯数は数字だけで入力してください（例: 24,512）。"),
    ({"value": "0"}, "人数または世帯数は1以上にしてください。"),
    ({"basis": "利用者"}, "分母の種類（人口または世帯数）を選んでください。"),
    ({"as_of": ""}, "いつの時点の数かを入力してください（例: 2026年10月1日）。"),
    ({"as_of": "10月1日"}, "時点は「2026年10月1日」または「2026-10-01」の形で入力してください。"),
    ({"as_of": "2026-02-30"}, "時点「2026-02-30」という日付はありません。"),
    ({"as_of": "2999-01-01"}, "時点に未来の日付は指定できません。"),
    ({"source": " "}, "出典（どこに載っている数か）を入力してください（例: 市ホームページ「人口と世帯数」）。"),
    ({"source": "あ" * 201}, "出典は200文字以内にしてください（現在201文字）。"),
])
def test_a_bad_denominator_is_refused_in_japanese(app: Flask, changes: dict[str, str], message: str) -> None:
    admin = _client(app, "kanri", "admin")
    refused = admin.post("/admin/kpi/denominator", data={**GOOD, **changes, "csrf_token": _token(admin)})
    body = html_lib.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 400 and message in body and 'id="denominator-errors"' in body
    with get_db(app).session() as s:
        assert s.scalar(select(func.count()).select_from(KpiDenominator)) == 0
    assert audit_rows(app, "kpi_denominator_set") == []


def test_denominator_dates_are_read_in_every_usual_form() -> None:
    today = dt.date(2026, 12, 4)
    for text in ("2026-10-01", "2026/10/1", "2026年10月1日", "２０２６年１０月１日"):
        assert parse_denominator(DenominatorForm("100", "世帯数", text, "x"), today).as_of == "2026-10-01", text
    with pytest.raises(DenominatorError) as caught:
        parse_denominator(DenominatorForm(), today)
    assert len(caught.value.errors) == 4  # every missing field is named at once


# --- the audit log in sentences; dates in Japanese and Japan time ------------------------------------


def test_the_audit_log_reads_as_sentences(app: Flask) -> None:
    runner = app.test_cli_runner()
    with get_db(app).session() as s:
        s.query(AuditLog).delete()
        for user in s.query(auth.StaffUser).all():
            s.delete(user)
    assert runner.invoke(args=["users", "ensure-admin"]).exit_code == 0
    admin = _client(app, "kanri", "admin")
    with get_db(app).session() as s:
        auth.audit(s, "user_role_change", "tanaka", actor=None, old="viewer", new="faq")
        auth.audit(s, "login_failed", "nobody", actor=None, known_user=False)
        auth.audit(s, "segment_save", "高齢者", actor=None, rule={"age_bands": {"include": ["70代"], "exclude": []}},
                   replaced=False)
    page = html_lib.unescape(admin.get("/admin/audit").get_data(as_text=True))
    assert "管理者ユーザー admin を作成（最初の管理者）" in page
    assert "ユーザー tanaka の権限を「閲覧（KPI）」から「FAQ担当」に変更" in page
    assert "ユーザー名「nobody」でログインに失敗（登録のないユーザー名）" in page
    assert "セグメント保存 高齢者（条件: 年代: 含む: 70代、除く: なし、上書き: いいえ）" in page
    assert "コマンド（サーバー上の操作）" in page  # the CLI, not "(CLI)"
    for code in ("first_admin", "role=admin", "known_user", "=True", "age_bands"):
        assert code not in page, code


def test_dates_are_japanese_and_japan_time() -> None:
    assert jst(dt.datetime(2026, 12, 3, 15, 5, tzinfo=dt.UTC)) == "2026年12月4日 00:05"
    assert jst(None) == "—"


def test_admin_pages_show_dates_in_japanese(app: Flask) -> None:
    admin = _client(app, "kanri", "admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", page)
    assert not re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", page)


def test_the_staff_guide_names_no_setting_for_the_denominator() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "staff-guide-kpi.md").read_text(encoding="utf-8")
    assert "LINE利用率の分母" in guide and "KPI_CONFIG_FILE" not in guide
