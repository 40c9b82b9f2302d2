"""KPI: every figure from a known month of usage events, the dashboard, CSV, the report CLI, retention."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from bot import auth
from bot.db import UTCDateTime, get_db
from bot.models import AuditLog
from faq.models import QuestionLog
from faq.retention import purge_log_command, purge_question_log, run_question_log_retention
from kpi import charts
from kpi.cities import KpiConfigError, load_city_config
from kpi.definitions import KPIS
from kpi.hooks import hooks, register_section, register_topic_catalog
from kpi.metrics import Month, month_detail
from kpi.models import UsageEvent
from kpi.report import build_report
from kpi.service import record_friends_count
from segments.models import Resident
from tests.conftest import wait_until

JST = dt.timezone(dt.timedelta(hours=9))
PASSWORD = "kpi-password-1234"
OCTOBER = Month(2026, 10)
CATALOG = {
    "juminhyo": ("住民票の写し", "証明書"),
    "gomi": ("ごみの出し方", "ごみ・環境"),
    "mynumber": ("マイナンバーカードの申請", "マイナンバーカード"),
}


def jst(month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """A moment of 2026 given in Japan time."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=JST)


# The known traffic. Residents are pseudonymous ids (usage events carry no LINE ids).
# September: 1, 2, 3 follow; 3 blocks.                        -> 2 friends at the end of September
# October:   4 follows at 00:00 JST on the 1st (still September in UTC), 5 follows, 3 follows
#            again, 6 follows at 23:30 JST on the 31st; 2 blocks; 8 (a friend from before the bot
#            recorded anything) blocks within a day of notice 1.  -> 5 friends at the end of October
# November:  7 follows at 00:00 JST on the 1st (still October in UTC); 5 blocks within a day of notice 2.
EVENTS: list[tuple[dt.datetime, str, int | None, dict[str, Any]]] = [
    (jst(9, 10, 10), "follow", 1, {}),
    (jst(9, 15), "follow", 2, {}),
    (jst(9, 20, 9), "follow", 3, {}),
    (jst(9, 25), "unfollow", 3, {}),
    (jst(10, 1, 0, 0), "follow", 4, {}),
    (jst(10, 5), "follow", 5, {}),
    (jst(10, 10), "follow", 3, {}),
    (jst(10, 20), "unfollow", 2, {}),
    (jst(10, 31, 23, 30), "follow", 6, {}),
    (jst(11, 1, 0, 0), "follow", 7, {}),
    # Activity: messages and button taps.
    (jst(9, 30, 23, 50), "message", 6, {"message_type": "text"}),
    (jst(10, 2, 9, 15), "message", 1, {"message_type": "text"}),
    (jst(10, 3, 9, 40), "message", 1, {"message_type": "text"}),
    (jst(10, 4, 13), "message", 4, {"message_type": "text"}),
    (jst(10, 4, 13, 5), "message", None, {"message_type": "text"}),  # a group chat: no resident
    (jst(10, 7, 20), "postback", 5, {"action": "pick"}),
    (jst(11, 1, 0, 10), "message", 9, {"message_type": "sticker"}),
    # Questions. q8 is asked in September (23:59 JST on the 30th) and voted on in October.
    (jst(9, 30, 23, 59), "decision", 1, {"decision": "answer", "topic": "juminhyo"}),       # q8
    (jst(10, 1, 0, 5), "feedback", 1, {"helpful": False}),                                 # on q8
    (jst(10, 2, 9, 15), "decision", 1, {"decision": "answer", "topic": "juminhyo"}),       # q1
    (jst(10, 2, 9, 16), "feedback", 1, {"helpful": True}),
    (jst(10, 3, 9, 40), "decision", 1, {"decision": "answer", "topic": "juminhyo"}),       # q2
    (jst(10, 3, 9, 41), "feedback", 1, {"helpful": False}),
    (jst(10, 3, 9, 42), "feedback", 1, {"helpful": True}),                                 # last vote wins
    (jst(10, 4, 13), "decision", 4, {"decision": "answer", "topic": "gomi"}),              # q3
    (jst(10, 4, 13, 1), "feedback", 4, {"helpful": False}),
    (jst(10, 6, 13, 20), "decision", 4, {"decision": "clarify", "topic": None}),           # q4
    (jst(10, 6, 13, 21), "clarify_choice", 4, {"topic": "mynumber"}),
    (jst(10, 6, 13, 22), "feedback", 4, {"helpful": True}),
    (jst(10, 7, 20), "decision", 5, {"decision": "clarify", "topic": None}),               # q5
    (jst(10, 7, 20, 1), "clarify_choice", 5, {"topic": None}),                             # 「どれでもない」
    (jst(10, 8, 20, 30), "decision", 5, {"decision": "unknown", "topic": None}),           # q6
    (jst(10, 8, 21), "decision", 5, {"decision": "answer", "topic": "gomi"}),              # q10, no vote
    (jst(10, 9, 8), "decision", 1, {"decision": "smalltalk", "topic": None}),
    (jst(10, 31, 23, 30), "decision", 1, {"decision": "unknown", "topic": None}),          # q7, last day late
    (jst(11, 1, 0, 0), "decision", 4, {"decision": "answer", "topic": "gomi"}),            # q9, November
    # Notices: 1 reaches 4 (delivered in two chunks), 2 reaches 2 late on the 31st.
    (jst(10, 15, 10), "notice_sent", None, {"broadcast_id": 1, "recipients": 4, "title": "防災訓練のお知らせ"}),
    (jst(10, 15, 10, 1), "notice_delivered", None, {"broadcast_id": 1, "count": 3}),
    (jst(10, 15, 10, 2), "notice_delivered", None, {"broadcast_id": 1, "count": 1}),
    (jst(10, 15, 18), "unfollow", 8, {}),
    (jst(10, 31, 22), "notice_sent", None, {"broadcast_id": 2, "recipients": 2}),
    (jst(10, 31, 22, 1), "notice_delivered", None, {"broadcast_id": 2, "count": 2}),
    (jst(11, 1, 9), "unfollow", 5, {}),
]


def add_events(app: Flask, events: list[tuple[dt.datetime, str, int | None, dict[str, Any]]] = EVENTS) -> None:
    """Store usage events as the handlers would have."""
    with get_db(app).session() as session:
        for at, kind, resident_id, detail in events:
            session.add(UsageEvent(kind=kind, occurred_at=at, resident_id=resident_id, detail=detail))


@pytest.fixture
def kpi_app(app: Flask) -> Flask:
    """The test app (那須烏山市) holding the known traffic."""
    add_events(app)
    return app


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap password hashes: these tests log in often."""
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


def make_user(app: Flask, username: str, role: str) -> None:
    with get_db(app).session() as session:
        auth.create_user(session, username, PASSWORD, role)


def log_in(client: FlaskClient, username: str) -> None:
    """Log in through the form, with its CSRF token, as a browser would."""
    html = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    response = client.post("/admin/login", data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)})
    assert response.status_code == 302


@pytest.fixture
def viewer(kpi_app: Flask) -> FlaskClient:
    """A client logged in as a viewer."""
    make_user(kpi_app, "etsuran", "viewer")
    client = kpi_app.test_client()
    log_in(client, "etsuran")
    return client


def figures_of(app: Flask, month: Month = OCTOBER, catalog: dict[str, tuple[str, str]] | None = None) -> Any:
    with get_db(app).session() as session:
        return month_detail(session, month, load_city_config("nasukarasuyama"), catalog)


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


# --- months in Japan time ---------------------------------------------------------------------------


def test_months_are_japan_time() -> None:
    assert OCTOBER.start == dt.datetime(2026, 9, 30, 15, tzinfo=dt.UTC)
    assert OCTOBER.end == dt.datetime(2026, 10, 31, 15, tzinfo=dt.UTC)
    assert Month.of(jst(10, 31, 23, 30)) == OCTOBER  # 14:30 UTC on the 31st
    assert Month.of(jst(11, 1, 0, 0)) == Month(2026, 11)  # still the 31st in UTC
    assert Month.parse("2026-10") == OCTOBER and OCTOBER.key == "2026-10" and OCTOBER.label == "2026年10月"
    assert Month(2026, 1).shift(-1) == Month(2025, 12) and Month(2026, 12).shift(1) == Month(2027, 1)
    for bad in ("2026-13", "2026/10", "26-10", "2026-1", ""):
        with pytest.raises(ValueError):
            Month.parse(bad)


# --- every KPI from the known month ------------------------------------------------------------------


def test_friends_new_blocked_and_active_residents(kpi_app: Flask) -> None:
    detail = figures_of(kpi_app)
    f = detail.figures
    assert f.friends == 5  # 1, 3, 4, 5, 6 (2 blocked; 8 never followed while recorded)
    assert f.new_friends == 4  # 4, 5, 3 again, and 6 at 23:30 JST on the 31st
    assert f.blocked == 2  # 2 and 8
    assert f.active_residents == 3  # 1, 4 (messages) and 5 (button); not the group chat
    september = figures_of(kpi_app, Month(2026, 9)).figures
    assert (september.friends, september.new_friends, september.blocked, september.active_residents) == (2, 3, 1, 1)
    november = figures_of(kpi_app, Month(2026, 11)).figures
    assert (november.friends, november.new_friends, november.blocked) == (5, 1, 1)


def test_questions_answered_clarified_unknown_and_precision_from_votes(kpi_app: Flask) -> None:
    f = figures_of(kpi_app).figures
    assert (f.questions, f.answered, f.clarified, f.unknown, f.smalltalk) == (8, 4, 2, 2, 1)
    assert f.answer_rate == 50.0
    # q1 yes, q2 no-then-yes (yes), q3 no; q10 not voted; q8's vote belongs to September's question.
    assert (f.direct_votes, f.direct_helpful) == (3, 2)
    assert f.precision == pytest.approx(200 / 3)
    assert (f.clarified_votes, f.clarified_helpful) == (1, 1)
    september = figures_of(kpi_app, Month(2026, 9)).figures
    assert (september.questions, september.direct_votes, september.direct_helpful) == (1, 1, 0)


def test_top_questions_categories_and_hours(kpi_app: Flask) -> None:
    detail = figures_of(kpi_app, catalog=CATALOG)
    assert detail.top_topics == [("gomi", 2, 2, 0), ("juminhyo", 2, 2, 0), ("mynumber", 1, 0, 1)]  # ties by id
    assert dict(detail.by_category) == {
        "証明書": 2, "ごみ・環境": 2, "マイナンバーカード": 1, "回答できず": 2, "「もしかして」該当なし": 1,
    }
    counts = [count for _, count in detail.by_category]
    assert counts == sorted(counts, reverse=True)
    expected_hours = [0] * 24
    for hour, count in {9: 2, 13: 2, 20: 2, 21: 1, 23: 1}.items():
        expected_hours[hour] = count
    assert detail.by_hour == expected_hours
    without_catalog = figures_of(kpi_app)
    assert dict(without_catalog.by_category)["分類不明"] == 5


def test_notices_sent_delivered_and_block_rate_per_notice(kpi_app: Flask) -> None:
    detail = figures_of(kpi_app)
    first, second = detail.notices
    assert (first.broadcast_id, first.title, first.recipients, first.delivered, first.blocks) == ("1", "防災訓練のお知らせ", 4, 4, 1)
    assert first.block_rate == 25.0
    # Resident 5 blocked at 09:00 on November 1st: within 24 h of notice 2, so it counts for it.
    assert (second.broadcast_id, second.recipients, second.delivered, second.blocks, second.block_rate) == ("2", 2, 2, 1, 50.0)
    f = detail.figures
    assert (f.notices_sent, f.notice_recipients, f.notices_delivered, f.notice_blocks) == (2, 6, 6, 2)
    assert f.notice_block_rate == pytest.approx(100 / 3)


def test_blocks_come_from_the_notices_attribution_when_it_is_recorded(app: Flask) -> None:
    # A recurring notice sent twice (runs 100 and 101); run 100 finishes after run 101 started.
    add_events(app, [
        (jst(10, 5, 10), "notice_sent", None, {"broadcast_id": 10, "run_id": 100, "recipients": 3}),
        (jst(10, 5, 12), "unfollow", 1, {}),
        (jst(10, 5, 12), "notice_block", 1, {"broadcast_id": 10, "run_id": 100}),
        (jst(10, 5, 13), "unfollow", 2, {}),  # not a recipient: not the notice's doing
        (jst(10, 6, 10), "notice_sent", None, {"broadcast_id": 10, "run_id": 101, "recipients": 3}),
        (jst(10, 6, 10, 5), "notice_delivered", None, {"broadcast_id": 10, "run_id": 101, "count": 3}),
        (jst(10, 6, 10, 6), "notice_delivered", None, {"broadcast_id": 10, "run_id": 100, "count": 2}),
        (jst(10, 6, 11), "unfollow", 3, {}),
        (jst(10, 6, 11), "notice_block", 3, {"broadcast_id": 10, "run_id": 101}),
    ])
    detail = figures_of(app)
    assert [(n.broadcast_id, n.delivered, n.blocks, n.block_rate) for n in detail.notices] == [
        ("10", 2, 1, 50.0), ("10", 3, 1, pytest.approx(100 / 3)),
    ]
    f = detail.figures
    assert (f.notices_sent, f.notice_recipients, f.notices_delivered, f.notice_blocks, f.blocked) == (2, 6, 5, 2, 3)


def test_usage_rate_needs_a_denominator_and_prefers_lines_own_count(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    override = tmp_path / "kpi.yaml"
    override.write_text(
        "nasukarasuyama:\n  denominator: {value: 50, basis: 住民基本台帳人口, as_of: 2026-10-01, source: テスト用の値}\n",
        encoding="utf-8",
    )
    app = make_app(KPI_CONFIG_FILE=str(override))
    add_events(app)
    city = app.extensions["kpi_city"]
    assert city.denominator.value == 50 and city.denominator.as_of == "2026-10-01"
    assert city.plan_for("line_usage_rate").target.value == 80.0  # the repo's figures stay
    with get_db(app).session() as session:
        assert month_detail(session, OCTOBER, city).figures.line_usage_rate == 10.0  # 5 / 50
        record_friends_count(session, 30, dt.date(2026, 10, 31), "LINE Official Account Manager")
    with get_db(app).session() as session:
        f = month_detail(session, OCTOBER, city).figures
    assert (f.friends, f.friends_reported, f.friends_reported_on, f.line_usage_rate) == (5, 30, "2026-10-31", 60.0)
    # Without a denominator the rate is not guessed.
    assert figures_of(app).figures.line_usage_rate is None


def test_settled_months_are_cached_and_lines_count_still_applies(kpi_app: Flask) -> None:
    city, november = kpi_app.extensions["kpi_city"], Month(2026, 11)
    cache: dict[Month, Any] = {}
    with get_db(kpi_app).session() as session:
        early = build_report(session, city, november, cache=cache, now=jst(11, 5))
        assert cache == {} or max(cache) < OCTOBER  # October's votes and blocks may still come in
        cached = build_report(session, city, november, cache=cache, now=jst(11, 21))
        assert OCTOBER in cache and november not in cache
        again = build_report(session, city, november, cache=cache, now=jst(11, 21))
        fresh = build_report(session, city, november, now=jst(11, 21))
        assert early.table("trend").rows == cached.table("trend").rows == again.table("trend").rows == fresh.table("trend").rows
        record_friends_count(session, 30, dt.date(2026, 10, 31), "LINE Official Account Manager")
    with get_db(kpi_app).session() as session:
        later = build_report(session, city, november, cache=cache, now=jst(11, 21))
    assert later.history[-2].figures.friends_reported == 30 and later.history[-2].figures.friends == 5


# --- configuration ---------------------------------------------------------------------------------------


def test_city_settings_quote_only_the_seeds() -> None:
    karasuyama = load_city_config("nasukarasuyama")
    rate = karasuyama.plan_for("line_usage_rate")
    assert (rate.plan_label, rate.baseline.value, rate.target.value) == ("市公式SNS（LINE）利用率", 59.29, 80.0)
    assert (rate.baseline.period, rate.target.period) == ("令和5年度", "令和10年度")
    assert rate.source == "seeds/000_350d113b5dec9d1f.txt:657-658"
    seed = (Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_350d113b5dec9d1f.txt")
    if seed.exists():
        lines = seed.read_text(encoding="utf-8").splitlines()
        assert "市公式SNS（LINE）利用率" in lines[656] and "59.29%" in lines[657] and "80.0%" in lines[657]
    for city in ("nasukarasuyama", "nasushiobara", "joso", "ohtawara"):
        config = load_city_config(city)
        assert config.denominator is None  # no plan states one
        for kpi_id, plan in config.kpis.items():
            assert plan.source, f"{city} {kpi_id} has a figure without a source"
    assert load_city_config("joso").plan_for("friends").baseline.text == "1万7千人超"
    assert load_city_config("nasushiobara").plan_for("friends").target is None


def test_bad_city_settings_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("joso:\n  denominator: {value: 60000}\n", encoding="utf-8")
    with pytest.raises(KpiConfigError, match="basis, as_of, source"):
        load_city_config("joso", bad)
    bad.write_text("joso:\n  kpis:\n    likes: {target: {value: 1}, source: x}\n", encoding="utf-8")
    with pytest.raises(KpiConfigError, match="unknown KPI id"):
        load_city_config("joso", bad)
    bad.write_text("joso:\n  kpis:\n    friends: {target: {value: 20000}}\n", encoding="utf-8")
    with pytest.raises(KpiConfigError, match="source"):
        load_city_config("joso", bad)
    with pytest.raises(KpiConfigError, match="no such file"):
        load_city_config("joso", tmp_path / "missing.yaml")


# --- the dashboard -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "pr", "faq", "admin"])
def test_every_staff_role_opens_the_dashboard(kpi_app: Flask, role: str) -> None:
    make_user(kpi_app, f"staff-{role}", role)
    client = kpi_app.test_client()
    log_in(client, f"staff-{role}")
    for path in ("/admin/kpi?month=2026-10", "/admin/kpi/report?month=2026-10", "/admin/kpi/csv?month=2026-10&table=summary"):
        assert client.get(path).status_code == 200, (role, path)


def test_anonymous_is_sent_to_the_login_page(kpi_app: Flask) -> None:
    client = kpi_app.test_client()
    for path in ("/admin/kpi", "/admin/kpi/report", "/admin/kpi/csv?table=all"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"], path


def test_dashboard_shows_each_kpi_with_target_source_and_charts(viewer: FlaskClient) -> None:
    response = viewer.get("/admin/kpi?month=2026-10")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "2026年10月" in html and 'value="2026-10"' in html
    for kpi in KPIS:
        assert f'data-kpi="{kpi.id}"' in html and kpi.name in html
    card = re.search(r'data-kpi="line_usage_rate">(.*?)</section>', html, re.DOTALL)
    assert card
    assert "未設定" in card.group(1) and "80.0%（令和10年度）" in card.group(1) and "59.29%（令和5年度）" in card.group(1)
    assert "那須烏山市 DX推進計画" in card.group(1) and "657〜658行" in card.group(1)
    assert "現状（R5年度）：59.29% 目標（R10年度）：80.0%" in card.group(1)  # the plan's line, on hover
    assert "seeds/" not in html and ".txt" not in html and "KPI_CONFIG_FILE" not in html
    new_friends = re.search(r'data-kpi="new_friends">.*?class="kpi-value">([^<]*)<', html, re.DOTALL)
    assert new_friends and new_friends.group(1) == "4人"
    precision = re.search(r'data-kpi="precision">.*?class="kpi-value">([^<]*)<', html, re.DOTALL)
    assert precision and precision.group(1) == "66.7%"
    # Charts: inline SVG with data drawn, and the usage-rate chart's target line.
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="kpi-chart"') >= 8
    assert 'class="kpi-reference"' in html and "目標 80.0%（令和10年度）" in html
    assert re.search(r'<polyline class="kpi-line" points="[^"]+"', html)
    assert "style=" not in html and "<script" not in html  # the CSP allows neither
    # Navigation between months; a CSV link for every table.
    assert "?month=2026-09" in html and "?month=2026-11" in html
    for key in ("summary", "trend", "questions", "votes", "top_questions", "categories", "hours", "notices", "usage_events"):
        assert f"/admin/kpi/csv?month=2026-10&amp;table={key}" in html


def test_month_picker_counts_late_night_events_in_their_japanese_month(viewer: FlaskClient) -> None:
    def value(kpi_id: str, month: str) -> str:
        html = viewer.get(f"/admin/kpi?month={month}").get_data(as_text=True)
        found = re.search(rf'data-kpi="{kpi_id}">.*?class="kpi-value">([^<]*)<', html, re.DOTALL)
        assert found
        return found.group(1)

    assert value("new_friends", "2026-10") == "4人"  # includes 23:30 JST on October 31st
    assert value("new_friends", "2026-11") == "1人"  # 00:00 JST on November 1st
    assert value("unknown", "2026-10") == "2件"


def test_a_malformed_month_is_refused(viewer: FlaskClient) -> None:
    assert viewer.get("/admin/kpi?month=2026-13").status_code == 400
    assert viewer.get("/admin/kpi?month=yesterday").status_code == 400
    assert viewer.get("/admin/kpi").status_code == 200  # this month by default


def test_csv_downloads_hold_the_figures(viewer: FlaskClient, kpi_app: Flask) -> None:
    response = viewer.get("/admin/kpi/csv?month=2026-10&table=summary")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="kpi_nasukarasuyama_2026-10_summary.csv"'
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")  # Excel reads UTF-8 only with the BOM
    rows = read_csv(text)
    header, body = rows[0], {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert header[:4] == ["指標ID", "指標", "当月", "前月"]
    assert body["friends"]["当月"] == "5" and body["friends"]["前月"] == "2"
    assert body["new_friends"]["当月"] == "4" and body["blocked"]["当月"] == "2"
    assert body["active_residents"]["当月"] == "3" and body["questions"]["当月"] == "8"
    assert (body["answered"]["当月"], body["clarified"]["当月"], body["unknown"]["当月"]) == ("4", "2", "2")
    assert body["precision"]["当月"] == "66.67" and body["answer_rate"]["当月"] == "50.00"
    assert body["notice_block_rate"]["当月"] == "33.33" and body["notices_delivered"]["当月"] == "6"
    rate = body["line_usage_rate"]
    assert rate["当月"] == "" and rate["目標"] == "80.0%" and rate["目標の時期"] == "令和10年度"
    assert rate["計画の現状値"] == "59.29%" and rate["出典"] == "那須烏山市 DX推進計画 657〜658行"
    assert "分母" in rate["備考"] and body["friends"]["目標"] == "未設定"

    notices = read_csv(viewer.get("/admin/kpi/csv?month=2026-10&table=notices").get_data(as_text=True))
    assert notices[1:] == [
        ["2026-10-15 10:00", "1", "防災訓練のお知らせ", "4", "4", "1", "25.00"],
        ["2026-10-31 22:00", "2", "", "2", "2", "1", "50.00"],
    ]
    trend = read_csv(viewer.get("/admin/kpi/csv?month=2026-10&table=trend").get_data(as_text=True))
    assert len(trend) == 13 and trend[-1][:6] == ["2026-10", "5", "", "4", "2", "3"] and trend[-2][0] == "2026-09"
    hours = read_csv(viewer.get("/admin/kpi/csv?month=2026-10&table=hours").get_data(as_text=True))
    assert hours[10] == ["9時台", "2"] and hours[24] == ["23時台", "1"]
    everything = viewer.get("/admin/kpi/csv?month=2026-10&table=all").get_data(as_text=True)
    for title in ("■ KPI一覧", "■ 月別推移", "■ 質問への応答", "■ お知らせごとの配信とブロック", "■ 時間帯別の質問数"):
        assert title in everything
    assert viewer.get("/admin/kpi/csv?month=2026-10&table=nothing").status_code == 404
    with get_db(kpi_app).session() as session:
        exports = session.scalars(select(AuditLog.target).where(AuditLog.action == "kpi_export")).all()
    assert "2026-10/summary" in exports


def test_faq_plugs_in_titles_categories_and_unanswered_clusters(kpi_app: Flask) -> None:
    register_topic_catalog(kpi_app, lambda session, municipality: CATALOG)
    seen: list[tuple[Any, ...]] = []

    def clusters(session: Any, municipality: str, start: dt.datetime, end: dt.datetime, limit: int) -> list[tuple[Any, ...]]:
        seen.append((municipality, start, end, limit))
        return [("粗大ごみの<予約>", 3, "2026-10-30"), ("犬の登録", 1, "2026-10-02"), ("=HYPERLINK(\"x\")", 1, "2026-10-03")]

    register_section(kpi_app, "unanswered_clusters", "回答できなかった質問のまとまり（上位）",
                     ("代表的な質問", "件数", "最後に聞かれた日"), clusters, chart_column=1)
    make_user(kpi_app, "etsuran", "viewer")
    client = kpi_app.test_client()
    log_in(client, "etsuran")
    html = client.get("/admin/kpi?month=2026-10").get_data(as_text=True)
    assert seen[-1] == ("nasukarasuyama", OCTOBER.start, OCTOBER.end, 10)
    assert "住民票の写し" in html and "証明書" in html
    assert "粗大ごみの&lt;予約&gt;" in html and "粗大ごみの<予約>" not in html  # residents' words are escaped
    assert 'id="chart-unanswered_clusters"' in html and "FAQ側の集計が接続されていません" not in html
    rows = read_csv(client.get("/admin/kpi/csv?month=2026-10&table=unanswered_clusters").get_data(as_text=True))
    assert rows == [["順位", "代表的な質問", "件数", "最後に聞かれた日"], ["1", "粗大ごみの<予約>", "3", "2026-10-30"],
                    ["2", "犬の登録", "1", "2026-10-02"], ["3", "'=HYPERLINK(\"x\")", "1", "2026-10-03"]]  # no formula
    top = read_csv(client.get("/admin/kpi/csv?month=2026-10&table=top_questions").get_data(as_text=True))
    assert top[1:] == [["1", "gomi", "ごみの出し方", "ごみ・環境", "2", "2", "0"],
                       ["2", "juminhyo", "住民票の写し", "証明書", "2", "2", "0"],
                       ["3", "mynumber", "マイナンバーカードの申請", "マイナンバーカード", "1", "0", "1"]]


def test_a_failing_provider_costs_only_its_table(kpi_app: Flask) -> None:
    def broken(*_args: Any) -> list[Any]:
        raise RuntimeError("faq is down")

    register_section(kpi_app, "unanswered_clusters", "回答できなかった質問のまとまり（上位）", ("代表的な質問", "件数"), broken)
    register_topic_catalog(kpi_app, broken)
    with kpi_app.app_context(), get_db(kpi_app).session() as session:
        report = build_report(session, kpi_app.extensions["kpi_city"], OCTOBER, hooks(kpi_app))
    assert report.table("unanswered_clusters").note == "集計を取得できませんでした。"
    assert report.figures.questions == 8


def test_without_faq_plugged_in_the_dashboard_says_so(kpi_app: Flask, viewer: FlaskClient) -> None:
    from kpi.hooks import KpiHooks

    kpi_app.extensions["kpi_hooks"] = KpiHooks()  # an app without bot.app's faq wiring
    html = viewer.get("/admin/kpi?month=2026-10").get_data(as_text=True)
    assert "FAQ側の集計が接続されていません（この月の「回答できず」は 2件）" in html


# --- the report CLI ---------------------------------------------------------------------------------


def test_report_cli_writes_csv_and_html(kpi_app: Flask, tmp_path: Path) -> None:
    runner = kpi_app.test_cli_runner()
    result = runner.invoke(args=["kpi", "report", "--month", "2026-10", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "■ KPI一覧" in result.output and not result.output.startswith("\ufeff")
    rows = read_csv(result.output)
    summary = {row[0]: row for row in rows if row and row[0] in {k.id for k in KPIS}}
    assert summary["new_friends"][2] == "4" and summary["precision"][2] == "66.67"

    one = runner.invoke(args=["kpi", "report", "--month", "2026-10", "--table", "notices"])
    assert one.exit_code == 0 and read_csv(one.output)[1][:3] == ["2026-10-15 10:00", "1", "防災訓練のお知らせ"]

    result = runner.invoke(args=["kpi", "report", "--month", "2026-10", "--format", "html"])
    assert result.exit_code == 0, result.output
    html = result.output
    assert html.startswith("<!doctype html>") and "那須烏山市 市公式LINE 利用状況 月次報告" in html
    assert "2026年10月" in html and "<style>" in html and "/static/" not in html  # stands alone
    assert html.count('class="kpi-chart"') >= 8 and "CSVダウンロード" not in html
    assert "那須烏山市 DX推進計画 <span" in html and "657〜658行" in html and "目標 80.0%（令和10年度）" in html
    assert "seeds/" not in html and "KPI_CONFIG_FILE" not in html
    assert "振り返り（PDCA）" in html

    target = tmp_path / "report.csv"
    result = runner.invoke(args=["kpi", "report", "--month", "2026-10", "-o", str(target)])
    assert result.exit_code == 0 and target.read_bytes().startswith(b"\xef\xbb\xbf")

    bad = runner.invoke(args=["kpi", "report", "--month", "2026-13"])
    assert bad.exit_code != 0 and "YYYY-MM" in bad.output
    assert runner.invoke(args=["kpi", "report", "--table", "nothing"]).exit_code != 0


def test_cli_records_lines_friends_count_and_shows_settings(kpi_app: Flask) -> None:
    runner = kpi_app.test_cli_runner()
    result = runner.invoke(args=["kpi", "record-friends", "1234", "--date", "2026-10-31"])
    assert result.exit_code == 0, result.output
    assert figures_of(kpi_app).figures.friends_reported == 1234
    shown = runner.invoke(args=["kpi", "show-config"])
    assert "LINE利用率の分母: 未設定" in shown.output and "目標 80.0%（令和10年度）" in shown.output


# --- usage events: complete, and never the message body --------------------------------------------------


def test_usage_events_record_a_conversation_without_its_words(make_app: Callable[..., Flask], fake_line: Any) -> None:
    from faq.store import load_repo_kb
    from tests.conftest import Chat

    app = make_app(MUNICIPALITY="joso")
    with get_db(app).session() as session:
        load_repo_kb(session, "joso")
    resident = Chat(app.test_client(), fake_line, "U" + "7" * 32)
    resident.follows()
    question = "戸籍謄本をコンビニで取りたいのですが"
    _, ask = resident.says(question, expect=2)
    yes = ask["quickReply"]["items"][0]["action"]
    resident.taps(yes["data"])
    resident.unfollows()

    def kinds() -> list[str]:
        with get_db(app).session() as session:
            return list(session.scalars(select(UsageEvent.kind).order_by(UsageEvent.id)))

    wait_until(lambda: "unfollow" in kinds(), message="the unfollow to be recorded")
    assert kinds() == ["follow", "message", "decision", "postback", "feedback", "unfollow"]
    with get_db(app).session() as session:
        details = [e.detail for e in session.scalars(select(UsageEvent))]
    dumped = json.dumps(details, ensure_ascii=False)
    assert question not in dumped and "戸籍" not in dumped and "U777" not in dumped
    with get_db(app).session() as session:
        f = month_detail(session, Month.of(dt.datetime.now(dt.UTC)), load_city_config("joso")).figures
    assert (f.new_friends, f.blocked, f.active_residents, f.questions, f.answered, f.direct_helpful) == (1, 1, 1, 1, 1, 1)


# --- retention ------------------------------------------------------------------------------------------


def _log_questions(app: Flask, ages_in_days: list[int], now: dt.datetime) -> None:
    with get_db(app).session() as session:
        for age in ages_in_days:
            session.add(QuestionLog(asked_at=now - dt.timedelta(days=age), municipality="nasukarasuyama",
                                    masked_text=f"{age}日前の質問", decision="unknown"))


def _remaining(app: Flask) -> list[str]:
    with get_db(app).session() as session:
        return sorted(session.scalars(select(QuestionLog.masked_text)))


def test_the_question_log_is_purged_after_the_retention_period(make_app: Callable[..., Flask]) -> None:
    app = make_app(QUESTION_LOG_RETENTION_DAYS=30)
    now = dt.datetime(2026, 11, 21, 3, tzinfo=dt.UTC)
    _log_questions(app, [1, 29, 31, 400], now)
    assert run_question_log_retention(app, now=now) == 2
    assert _remaining(app) == ["1日前の質問", "29日前の質問"]
    with get_db(app).session() as session:
        (entry,) = session.scalars(select(AuditLog).where(AuditLog.action == "question_log_purge")).all()
    assert entry.detail == {"removed": 2, "days": 30} and entry.username == "(CLI)"
    with get_db(app).session() as session:
        assert purge_question_log(session, now - dt.timedelta(days=1)) == 1
    assert _remaining(app) == ["1日前の質問"]

    off = make_app(QUESTION_LOG_RETENTION_DAYS=0)
    _log_questions(off, [1000], now)
    assert run_question_log_retention(off, now=now) == 0 and _remaining(off) == ["1000日前の質問"]


def test_purge_log_command(make_app: Callable[..., Flask]) -> None:
    app = make_app(QUESTION_LOG_RETENTION_DAYS=90)
    now = dt.datetime.now(dt.UTC)
    _log_questions(app, [10, 60, 100], now)
    runner = app.test_cli_runner()
    dry = runner.invoke(purge_log_command, ["--dry-run"])
    assert dry.exit_code == 0 and "1件 が削除対象" in dry.output and len(_remaining(app)) == 3
    result = runner.invoke(purge_log_command, ["--days", "30"])
    assert result.exit_code == 0 and "2件 を削除しました" in result.output
    assert _remaining(app) == ["10日前の質問"]


# Resident columns that are not something the resident declared.
LIFECYCLE_COLUMNS = {"id", "line_user_id", "is_following", "followed_at", "unfollowed_at", "updated_at", "is_notices_enabled"}


def _declared_value(column: Any) -> Any:
    """A non-empty value for a declared-attribute column, whatever its type."""
    if isinstance(column.type, UTCDateTime):
        return dt.datetime.now(dt.UTC)
    python_type = column.type.python_type
    if python_type is int:
        return 5
    if python_type is list:
        return ["防災"]
    return "x"


def test_residents_who_leave_lose_their_attributes(app: Flask, chat: Callable[[str], Any]) -> None:
    declared = [c for c in Resident.__table__.columns if c.name not in LIFECYCLE_COLUMNS and c.type.python_type is not bool]
    assert {"consented_at", "age_band", "gender", "area"} <= {c.name for c in declared}
    resident = chat("U" + "8" * 32)
    resident.follows()
    with get_db(app).session() as session:
        row = session.scalars(select(Resident).where(Resident.line_user_id == resident.user_id)).one()
        for column in declared:
            setattr(row, column.key, _declared_value(column))
    resident.unfollows()

    def gone() -> Resident | None:
        with get_db(app).session() as session:
            row = session.scalars(select(Resident).where(Resident.line_user_id == resident.user_id)).one()
            return row if not row.is_following else None

    row = wait_until(gone, message="the unfollow to be processed")
    assert {c.name: getattr(row, c.key) for c in declared if getattr(row, c.key)} == {}
    assert row.unfollowed_at is not None
    with get_db(app).session() as session:
        assert session.scalars(select(UsageEvent.kind).where(UsageEvent.resident_id == row.id)).all() == ["follow", "unfollow"]


# --- charts ------------------------------------------------------------------------------------------------


def test_charts_draw_data_and_escape_labels() -> None:
    line = charts.line_chart("c1", "推移", ["2026/09", "2026/10"], [charts.Series("友だち", [2, 5])],
                             unit="人", references=[charts.Reference(80.0, "目標 80%")])
    assert '<polyline class="kpi-line"' in line and line.count('class="kpi-point"') == 2 and "目標 80%" in line
    gaps = charts.line_chart("c2", "利用率", ["a", "b"], [charts.Series("率", [None, None])], empty_note="分母が未設定")
    assert "kpi-line" not in gaps and "分母が未設定" in gaps
    bars = charts.bar_chart("c3", "<script>", ["x"], [charts.Series("件数", [3])])
    assert "<script>" not in bars and "&lt;script&gt;" in bars
    heights = [float(h) for h in re.findall(r'class="kpi-bar"[^>]* height="([0-9.]+)"', bars)]
    assert heights and heights[0] > 0
    ranking = charts.hbar_chart("c4", "順位", ['"><svg onload=alert(1)>', "b"], [2, 1])
    assert "<svg onload" not in ranking
    assert charts.nice_max(0, True) == 5 and charts.nice_max(7, True) == 10 and charts.nice_max(80, False) == 100
