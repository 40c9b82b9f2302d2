"""The notice form as PR staff use it without a developer: 「今すぐ送信」 reads as such from the
form to the list, a notice nobody would receive cannot be confirmed (nor one below the privacy
floor, except by an admin's override), exclusions narrow the target with the live count, and the
preview shows the city's account name and icon."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bot.config import ConfigError, load_config
from bot.db import get_db, utcnow
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast.models import Broadcast
from broadcast.schedule import JST, Schedule
from segments.rules import SegmentRule, save_segment
from segments.vocab import areas_for, interests_to_mask
from tests.test_admin import csrf_token
from tests.test_broadcast import add_residents, deliveries_per_user, report, run_dispatcher
from tests.test_broadcast_floor import fast_hashing, staff  # noqa: F401 - fast_hashing is an autouse fixture

NOBODY = "対象が0人のため確定できません"
BELOW = "対象が10人未満のため確定できません"


def compose(client: FlaskClient, step: str = "confirm", **fields: Any) -> Any:
    data: dict[str, Any] = {"kind": "text", "text": "本日の窓口は17時までです", "target": "all", "timing": "now"}
    data.update(fields)
    data["step"] = step
    data["csrf_token"] = csrf_token(client, "/admin/notices/new")
    return client.post("/admin/notices/new", data=data)


def notices(app: Flask) -> int:
    with get_db(app).session() as session:
        return int(session.scalar(select(func.count(Broadcast.id))) or 0)


def button(page: str) -> re.Match[str]:
    """The confirm page's submit button: its attributes and its label."""
    found = re.search(r'<button type="submit" name="step" value="schedule"[^>]*id="schedule-button"([^>]*)>([^<]*)</button>', page)
    assert found, page
    return found


# --- 「今すぐ送信」 -------------------------------------------------------------------------------


def test_send_now_reads_as_now_from_the_form_to_the_list(app: Flask, fake_line: FakeLinePlatform) -> None:
    residents = add_residents(app, 3)
    pr = staff(app, "pr")
    assert re.search(r'id="timing-now" checked> 今すぐ送信</label>', pr.get("/admin/notices/new").get_data(as_text=True))

    page = compose(pr, title="窓口時間").get_data(as_text=True)
    assert "今すぐ送信します" in page and "に1回" not in page and "この内容で予約する" not in page
    shown = button(page)
    assert shown.group(2) == "今すぐ送信する" and "disabled" not in shown.group(1)

    before = utcnow()
    created = compose(pr, step="schedule", title="窓口時間")
    assert created.status_code == 302
    detail = pr.get(created.headers["Location"]).get_data(as_text=True)
    assert "今すぐ送信を受け付けました" in detail and "予約しました" not in detail
    with get_db(app).session() as session:
        notice = session.scalars(select(Broadcast)).one()
        schedule = Schedule.from_dict(notice.schedule)
        notice_id = notice.id
    assert schedule.immediate and notice.schedule["immediate"] is True
    assert before - dt.timedelta(seconds=1) <= notice.next_run_at <= utcnow()
    confirmed = f"{schedule.start:%Y-%m-%d}"
    assert re.search(r"今すぐ送信（\d{4}-\d\d-\d\d\(.\) \d\d:\d\d に確定）", detail) and confirmed in detail
    assert "に1回" not in detail

    run_dispatcher(app)
    assert set(deliveries_per_user(fake_line)) == set(residents)
    listing = pr.get("/admin/notices").get_data(as_text=True)
    row = re.search(rf'<tr data-notice-id="{notice_id}" data-status="sent">(.*?)</tr>', listing, re.S)
    assert row and "今すぐ送信（" in row.group(1) and "に1回" not in row.group(1)
    assert report(app, notice_id)["schedule"]["description"].startswith("今すぐ送信（")


def test_a_notice_at_a_chosen_time_still_reads_as_scheduled(app: Flask) -> None:
    add_residents(app, 3)
    pr = staff(app, "pr")
    at = (utcnow() + dt.timedelta(hours=3)).astimezone(JST)
    fields = {"timing": "at", "at": f"{at:%Y-%m-%dT%H:%M}"}
    page = compose(pr, **fields).get_data(as_text=True)
    assert button(page).group(2) == "この内容で予約する" and "今すぐ送信します" not in page and "に1回" in page
    detail = pr.get(compose(pr, step="schedule", **fields).headers["Location"]).get_data(as_text=True)
    assert "予約しました" in detail and "に1回" in detail and "今すぐ送信（" not in detail


def test_the_cli_says_now_too(app: Flask, runner: Any) -> None:
    add_residents(app, 2)
    created = runner.invoke(args=["broadcast", "create", "--text", "窓口のお知らせ"])
    assert created.exit_code == 0 and "今すぐ送信（" in created.stderr
    later = runner.invoke(args=["broadcast", "create", "--text", "説明会", "--at", "2030-01-01T10:00"])
    assert later.exit_code == 0 and "2030-01-01(火) 10:00 に1回" in later.stderr
    daily = runner.invoke(args=["broadcast", "create", "--text", "毎日の案内", "--every", "daily"])
    assert daily.exit_code == 0 and "今すぐ送信" not in daily.stderr and "毎日" in daily.stderr


def test_immediate_is_only_for_a_one_off() -> None:
    start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=JST)
    assert Schedule.from_dict(Schedule.once(start, immediate=True).to_dict()).immediate
    assert "immediate" not in Schedule.once(start).to_dict()
    with pytest.raises(Exception, match="1回だけの配信"):
        Schedule("daily", start, immediate=True).validate()


# --- nobody, and below the privacy floor -------------------------------------------------------


@pytest.mark.parametrize("role", ["pr", "admin"])
def test_a_notice_to_nobody_cannot_be_confirmed_by_anyone(app: Flask, role: str) -> None:
    add_residents(app, 2, consented_at=None)  # following, but not accepting notices
    client = staff(app, role)
    page = compose(client).get_data(as_text=True)
    assert NOBODY in page and 'id="confirm-blocked"' in page and 'data-count="0"' in page
    assert "disabled" in button(page).group(1)
    # The button is only the visible half: the POST itself is refused, in Japanese, and nothing is created.
    refused = compose(client, step="schedule")
    assert refused.status_code == 400 and NOBODY in refused.get_data(as_text=True)
    at = (utcnow() + dt.timedelta(hours=1)).astimezone(JST)
    refused = compose(client, step="schedule", timing="at", at=f"{at:%Y-%m-%dT%H:%M}")
    assert refused.status_code == 400 and NOBODY in refused.get_data(as_text=True)
    assert notices(app) == 0


def test_an_admin_cannot_override_nobody(app: Flask) -> None:
    add_residents(app, 20, age_band="30代")
    admin = staff(app, "admin")
    fields = {"target": "custom", "age_bands": ["80代以上"], "allow_small": "1"}
    page = compose(admin, **fields).get_data(as_text=True)
    assert NOBODY in page and "disabled" in button(page).group(1)
    refused = compose(admin, step="schedule", **fields)
    assert refused.status_code == 400 and NOBODY in refused.get_data(as_text=True)
    assert notices(app) == 0


def test_pr_is_not_told_that_a_small_group_is_empty(app: Flask) -> None:
    add_residents(app, 20, age_band="30代")
    pr = staff(app, "pr")
    fields = {"target": "custom", "age_bands": ["80代以上"]}
    page = compose(pr, **fields).get_data(as_text=True)
    assert BELOW in page and NOBODY not in page and 'data-count="0"' not in page and "disabled" in button(page).group(1)
    refused = compose(pr, step="schedule", **fields)
    assert refused.status_code == 400 and BELOW in refused.get_data(as_text=True) and NOBODY not in refused.get_data(as_text=True)
    assert notices(app) == 0


def test_a_recurring_notice_may_start_with_nobody(app: Flask) -> None:
    """Its group may grow; each occurrence is checked (and held below the floor) when it is sent."""
    pr = staff(app, "pr")
    at = (utcnow() + dt.timedelta(days=1)).astimezone(JST)
    fields = {"timing": "weekly", "weekdays": ["mon"], "at": f"{at:%Y-%m-%dT%H:%M}"}
    page = compose(pr, **fields).get_data(as_text=True)
    assert 'id="nobody-note"' in page and 'id="confirm-blocked"' not in page
    assert "disabled" not in button(page).group(1)
    assert compose(pr, step="schedule", **fields).status_code == 302
    assert notices(app) == 1


def test_below_the_floor_blocks_pr_and_admin_until_the_override_is_chosen(app: Flask) -> None:
    add_residents(app, 3, area=None, interests_mask=interests_to_mask(["防災"]))
    add_residents(app, 30, start=100)
    fields = {"target": "custom", "interests": ["防災"]}
    pr = staff(app, "pr")
    page = compose(pr, **fields).get_data(as_text=True)
    assert BELOW in page and "disabled" in button(page).group(1)
    assert compose(pr, step="schedule", **fields).status_code == 400

    admin = staff(app, "admin")
    page = compose(admin, **fields).get_data(as_text=True)
    assert "「少人数でも配信する」を選んでください" in page and "disabled" in button(page).group(1)
    assert compose(admin, step="schedule", **fields).status_code == 400
    page = compose(admin, allow_small="1", **fields).get_data(as_text=True)
    assert 'id="confirm-blocked"' not in page and "disabled" not in button(page).group(1) and 'data-count="3"' in page
    assert compose(admin, step="schedule", allow_small="1", **fields).status_code == 302
    assert notices(app) == 1


# --- exclusions ----------------------------------------------------------------------------------


def test_exclusions_narrow_the_target_the_live_count_and_what_is_sent(app: Flask, fake_line: FakeLinePlatform) -> None:
    east, west = areas_for(app.config["MUNICIPALITY"])[:2]
    kept = add_residents(app, 12, area=west)
    add_residents(app, 12, start=100, area=east)
    undeclared = add_residents(app, 3, start=200, area=None)  # no area: not in the excluded group
    pr = staff(app, "pr")
    form = pr.get("/admin/notices/new").get_data(as_text=True)
    for name in ("exclude_age_bands", "exclude_genders", "exclude_areas", "exclude_interests"):
        assert f'name="{name}"' in form, name
    assert f'name="exclude_areas" value="{east}"' in form

    live = pr.get("/admin/notices/count", query_string={"target": "custom", "exclude_areas": east}).get_json()
    assert live["count"] == 15 and f"地域（除く）: {east}" in live["description"]
    both = pr.get("/admin/notices/count", query_string={"target": "custom", "areas": east, "exclude_areas": east})
    assert both.status_code == 400 and "両方に指定" in both.get_json()["error"]

    fields = {"target": "custom", "exclude_areas": [east]}
    page = compose(pr, **fields).get_data(as_text=True)
    assert 'data-count="15"' in page and f"地域（除く）: {east}" in page
    assert f'<input type="hidden" name="exclude_areas" value="{east}">' in page  # carried to the final POST
    edit = compose(pr, step="edit", **fields).get_data(as_text=True)
    assert re.search(rf'name="exclude_areas" value="{east}" checked', edit) and '<details class="exclusions" id="exclusions" open>' in edit

    assert compose(pr, step="schedule", **fields).status_code == 302
    with get_db(app).session() as session:
        rule = session.scalars(select(Broadcast.rule)).one()
    assert rule == {"areas": {"include": [], "exclude": [east]}}
    run_dispatcher(app)
    assert set(deliveries_per_user(fake_line)) == set(kept + undeclared)


def test_an_exclusion_combines_with_an_inclusion(app: Flask) -> None:
    add_residents(app, 11, age_band="30代", interests_mask=interests_to_mask(["防災"]))
    add_residents(app, 11, start=100, age_band="30代", interests_mask=interests_to_mask(["防災", "子育て"]))
    pr = staff(app, "pr")
    query = {"target": "custom", "age_bands": "30代", "exclude_interests": "子育て"}
    assert pr.get("/admin/notices/count", query_string=query).get_json()["count"] == 11
    with get_db(app).session() as session:
        save_segment(session, "30代", SegmentRule.from_dict({"age_bands": {"include": ["30代"]}}), app.config["MUNICIPALITY"])
    # A saved segment is used as saved: exclusions belong to 条件を指定 only.
    assert pr.get("/admin/notices/count", query_string={"target": "segment", "segment": "30代"}).get_json()["count"] == 22


# --- the preview's account ---------------------------------------------------------------------


def test_the_preview_shows_the_citys_account_name_and_a_neutral_icon(app: Flask) -> None:
    add_residents(app, 3)
    pr = staff(app, "pr")
    placeholder = 'src="/static/account-icon.svg"'
    pages = {"compose": pr.get("/admin/notices/new").get_data(as_text=True), "confirm": compose(pr).get_data(as_text=True)}
    pages["detail"] = pr.get(compose(pr, step="schedule").headers["Location"]).get_data(as_text=True)
    for name, page in pages.items():
        header = re.search(r'<div class="line-preview-header">(.*?)</div>', page, re.S)
        assert header, name
        assert '<span class="line-account-name">那須烏山市公式LINE</span>' in header.group(1), name
        assert placeholder in header.group(1), name
    assert 'data-icon-url="/static/account-icon.svg"' in pages["compose"]
    assert re.search(r'<img class="line-avatar" src="/static/account-icon\.svg"', pages["detail"])
    icon = pr.get("/static/account-icon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
    # Same-origin icon: the admin pages' policy is left as it is.
    assert pr.get("/admin/notices/new").headers["Content-Security-Policy"] == pr.get("/admin/password").headers["Content-Security-Policy"]


def test_another_city_gets_its_own_name(make_app: Any) -> None:
    app = make_app(MUNICIPALITY="joso")
    pr = staff(app, "pr")
    assert '<span class="line-account-name">常総市公式LINE</span>' in pr.get("/admin/notices/new").get_data(as_text=True)


def test_the_account_name_and_icon_can_be_set(make_app: Any) -> None:
    icon = "https://www.city.example.lg.jp/line/icon.png"
    app = make_app(LINE_ACCOUNT_NAME="那須烏山市（公式）", LINE_ACCOUNT_ICON_URL=icon)
    pr = staff(app, "pr")
    response = pr.get("/admin/notices/new")
    page = response.get_data(as_text=True)
    assert '<span class="line-account-name">那須烏山市（公式）</span>' in page and f'src="{icon}"' in page
    assert 'src="/static/account-icon.svg"' not in page and 'data-fallback="/static/account-icon.svg"' in page  # if it cannot load
    # The admin CSP loads images from this server only; the notice pages also allow the icon's origin, nothing more.
    base = pr.get("/admin/password").headers["Content-Security-Policy"]
    assert response.headers["Content-Security-Policy"] == f"{base}; img-src 'self' https://www.city.example.lg.jp"
    assert pr.get("/admin/notices").headers["Content-Security-Policy"].endswith("img-src 'self' https://www.city.example.lg.jp")


@pytest.mark.parametrize("value", ["http://www.city.example.lg.jp/icon.png", "icon.png", "//evil.example/icon.png", "javascript:alert(1)"])
def test_an_icon_setting_that_is_not_https_or_a_local_path_stops_start_up(value: str) -> None:
    with pytest.raises(ConfigError, match="LINE_ACCOUNT_ICON_URL"):
        load_config({"LINE_ACCOUNT_ICON_URL": value})
    assert load_config({"LINE_ACCOUNT_ICON_URL": "/static/city-icon.png"})["LINE_ACCOUNT_ICON_URL"] == "/static/city-icon.png"
