"""Per-notice statistics from LINE: each run's multicasts carry the notice's aggregation unit (spent
sparingly), the dispatcher's maintenance fetches the fake platform's figures once a day, and the
notice page, `flask broadcast show --json` and the KPI show them, 「20未満」 where LINE hides a value."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from bot import auth
from bot.db import get_db, utcnow
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast import insights
from broadcast.models import BroadcastRun
from tests.test_admin import PASSWORD, login, make_user
from tests.test_broadcast import FAST, add_residents, multicast_requests, report, run_dispatcher, schedule_notice

LINKS = "詳しくは https://www.city.example.jp/gomi.html と https://www.city.example.jp/calendar.html をご覧ください。"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


@pytest.fixture
def iapp(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(**FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"))


def pr_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    make_user(app, "staff-pr", "pr")
    assert login(client, "staff-pr", PASSWORD).status_code == 302
    return client


def units_sent(fake: FakeLinePlatform) -> list[list[str] | None]:
    return [r.body.get("customAggregationUnits") for r in multicast_requests(fake)]


def stat_cells(html: str) -> dict[str, list[str]]:
    cells: dict[str, list[str]] = {}
    for name, value in re.findall(r'data-stat="(\w+)">([^<]*)<', html):
        cells.setdefault(name, []).append(value.strip())
    return cells


def test_the_fakes_figures_flow_to_the_notice_page(iapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(iapp, 100)
    notice = schedule_notice(iapp, "【ごみ】収集日が変わります。" + LINKS)
    client = pr_client(iapp)

    page = client.get(f"/admin/notices/{notice}").get_data(as_text=True)
    assert 'data-state="none"' in page  # not sent yet: no statistics

    run_dispatcher(iapp)
    unit = f"notice_{notice}"
    assert units_sent(fake_line) == [[unit]]
    page = client.get(f"/admin/notices/{notice}").get_data(as_text=True)
    assert 'data-state="waiting"' in page  # sent, LINE not asked yet

    collected = insights.collect_statistics(iapp)
    assert collected.fetched == 1 and collected.failed == 0

    # 100 delivered: 60 opened (60 %), 25 clicked the first link, 12 the second (hidden by LINE).
    page = client.get(f"/admin/notices/{notice}").get_data(as_text=True)
    assert 'data-state="ready"' in page
    cells = stat_cells(page)
    assert cells["delivered"] == ["100"]
    assert cells["opens"] == ["60"] and cells["open_rate"] == ["60.0%"]
    assert cells["clicks"] == ["25"] and cells["click_rate"] == ["25.0%"]
    assert cells["link_clicks"] == ["25", "20未満"]
    assert "https://www.city.example.jp/gomi.html" in page and "https://www.city.example.jp/calendar.html" in page

    shown = report(iapp, notice)["statistics"]
    assert shown["opens"] == 60 and shown["clicks"] == 25
    assert [link["unique_clicks"] for link in shown["links"]] == [25, None]


def test_values_under_20_are_shown_as_hidden_and_small_runs_spend_no_unit(iapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(iapp, 25)
    notice = schedule_notice(iapp, "防災訓練のお知らせ " + LINKS)
    run_dispatcher(iapp)
    insights.collect_statistics(iapp)
    client = pr_client(iapp)
    cells = stat_cells(client.get(f"/admin/notices/{notice}").get_data(as_text=True))
    # 25 delivered: 15 opened and 6 clicked, both under 20, so LINE answers null.
    assert cells["delivered"] == ["25"]
    assert cells["opens"] == ["20未満"] and cells["open_rate"] == ["-"]
    assert cells["clicks"] == ["20未満"]

    # A segment-sized notice of fewer than INSIGHT_MIN_RECIPIENTS gets no unit at all.
    fake_line.reset()
    with get_db(iapp).write_connection() as conn:
        conn.exec_driver_sql("UPDATE residents SET is_notices_enabled = false WHERE id > 10")
    small = schedule_notice(iapp, "少人数のお知らせ")
    run_dispatcher(iapp)
    assert units_sent(fake_line) == [None]
    assert 'data-state="none"' in client.get(f"/admin/notices/{small}").get_data(as_text=True)


def test_unit_names_are_reused_by_a_recurring_notice_and_capped_per_month(
    make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path
) -> None:
    app = make_app(**FAST, BROADCAST_LOCK_FILE=str(tmp_path / "lock"), INSIGHT_MONTHLY_UNITS=1)
    add_residents(app, 30)
    now = utcnow()
    daily = schedule_notice(app, "毎日のお知らせ", every="daily", at=now, now=now)
    run_dispatcher(app, now)
    run_dispatcher(app, now + dt.timedelta(days=1))
    # Both occurrences carry the notice's one name; it counts once this month.
    assert units_sent(fake_line) == [[f"notice_{daily}"], [f"notice_{daily}"]]

    # The month's names are used up: the next notice goes out without one, and says so.
    fake_line.reset()
    other = schedule_notice(app, "別のお知らせ", now=now + dt.timedelta(days=1))
    run_dispatcher(app, now + dt.timedelta(days=1))
    assert units_sent(fake_line) == [None]
    with get_db(app).session() as session:
        units = session.scalars(select(BroadcastRun.aggregation_unit).order_by(BroadcastRun.id)).all()
        assert units == [f"notice_{daily}", f"notice_{daily}", None]
        assert insights.statistics_of(session, other) is None


def test_each_notice_is_asked_about_once_a_day_for_14_days_after_sending(iapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(iapp, 40)
    notice = schedule_notice(iapp, "お知らせ " + LINKS)
    run_dispatcher(iapp)
    asked = lambda: [r for r in fake_line.requests if r.path.endswith("/insight/message/event/aggregation")]  # noqa: E731
    now = utcnow()
    with get_db(iapp).session() as session:
        assert insights.collect(session, iapp.extensions["line"], iapp.config, now).fetched == 1
        assert insights.collect(session, iapp.extensions["line"], iapp.config, now + dt.timedelta(minutes=30)).fetched == 0
        assert insights.collect(session, iapp.extensions["line"], iapp.config, now + dt.timedelta(days=1)).fetched == 1
        # The last day's figures are fetched once more after the 14 days, then never again.
        assert insights.collect(session, iapp.extensions["line"], iapp.config, now + dt.timedelta(days=14, hours=12)).fetched == 1
        assert insights.collect(session, iapp.extensions["line"], iapp.config, now + dt.timedelta(days=16)).fetched == 0
        session.commit()
    assert len(asked()) == 3
    with get_db(iapp).session() as session:
        row = insights.statistics_of(session, notice)
        assert row is not None and row.unit == f"notice_{notice}"
        # The period asked runs from the day it was sent to the 14th day after.
        assert row.period_from == insights.jst_day(now)
        assert row.period_to == insights.jst_day(now + dt.timedelta(days=14))


def test_a_line_failure_is_kept_and_the_page_still_opens(iapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(iapp, 30)
    notice = schedule_notice(iapp, "お知らせ")
    run_dispatcher(iapp)
    fake_line.fail("insight", 500, times=2)
    collected = insights.collect_statistics(iapp)
    assert collected.fetched == 0 and collected.failed == 1
    client = pr_client(iapp)
    response = client.get(f"/admin/notices/{notice}")
    assert response.status_code == 200
    assert "前回はLINEから取得できませんでした" in response.get_data(as_text=True)
    # The next hour's run asks again (nothing was stored today).
    assert insights.collect_statistics(iapp).fetched == 1


def test_the_kpi_shows_notice_figures_and_the_block_rate(iapp: Flask, fake_line: FakeLinePlatform) -> None:
    ids = add_residents(iapp, 40)
    schedule_notice(iapp, "KPIに出るお知らせ " + LINKS)
    run_dispatcher(iapp)
    for user in ids[:4]:
        fake_line.unfollow_event(user)  # LINE counts these four as blocking
    insights.collect_statistics(iapp)
    with get_db(iapp).session() as session:
        start = utcnow() - dt.timedelta(days=40)
        end = utcnow() + dt.timedelta(days=1)
        rows = insights.notice_rows(session, "nasushiobara", start, end, 10)
        assert rows and rows[0][1:6] == (40, "24", "60.0%", "20未満", "-")
        followers = insights.follower_rows(session, "nasushiobara", start, end, 10)
        assert followers and followers[0][1:] == (40, 4, "10.0%")
    make_user(iapp, "staff-viewer", "viewer")
    client = iapp.test_client()
    assert login(client, "staff-viewer", PASSWORD).status_code == 302
    page = client.get("/admin/kpi").get_data(as_text=True)
    assert insights.NOTICE_TITLE in page and "KPIに出るお知らせ" in page
    assert insights.FOLLOWER_TITLE in page and "10.0%" in page


def test_the_cli_fetches_now_and_again(iapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(iapp, 30)
    notice = schedule_notice(iapp, "お知らせ")
    run_dispatcher(iapp)
    runner = iapp.test_cli_runner()
    result = runner.invoke(args=["broadcast", "statistics"])
    assert result.exit_code == 0 and "取得したお知らせ: 1 件" in result.output
    assert "取得したお知らせ: 0 件" in runner.invoke(args=["broadcast", "statistics"]).output  # once a day
    assert "取得したお知らせ: 1 件" in runner.invoke(args=["broadcast", "statistics", "--again"]).output
    fake_line.fail("insight", 500, times=1)
    failed = runner.invoke(args=["broadcast", "statistics", "--again"])
    assert failed.exit_code == 1 and "取得できなかったお知らせ: 1 件" in failed.output
    # 30 delivered: 18 opened, under 20, so hidden; the failed attempt keeps the last figures and says so.
    shown = report(iapp, notice)["statistics"]
    assert shown["state"] == "ready" and shown["opens"] is None and shown["opens_shown"] == "20未満" and shown["error"]
