"""The notice pages: only pr and admin compose; confirm shows the count; schedule, pause, resume and
cancel are audit-logged; the privacy floor needs an admin."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from bot import auth
from bot.db import get_db, utcnow
from bot.models import AuditLog
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast.models import Broadcast
from broadcast.schedule import JST
from segments.rules import SegmentRule, save_segment
from segments.vocab import interests_to_mask
from tests.test_admin import PASSWORD, csrf_token, login, make_user
from tests.test_broadcast import (
    add_residents,
    deliveries_per_user,
    report,
    run_dispatcher,
)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


def signed_in(app: Flask, client: FlaskClient, role: str) -> FlaskClient:
    make_user(app, f"staff-{role}", role)
    assert login(client, f"staff-{role}", PASSWORD).status_code == 302
    return client


def compose(client: FlaskClient, step: str = "confirm", **fields: Any) -> Any:
    data: dict[str, Any] = {"kind": "text", "text": "燃えるごみの収集日が変わります", "target": "all", "timing": "now"}
    data.update(fields)
    data["step"] = step
    data["csrf_token"] = csrf_token(client, "/admin/notices/new")
    return client.post("/admin/notices/new", data=data)


def audit_actions(app: Flask) -> list[tuple[str, str]]:
    with get_db(app).session() as session:
        return [(a.action, a.target) for a in session.scalars(select(AuditLog).where(AuditLog.action.like("notice_%")).order_by(AuditLog.id))]


@pytest.mark.parametrize(("role", "allowed"), [("pr", True), ("admin", True), ("faq", False), ("viewer", False)])
def test_only_pr_and_admin_may_open_or_use_the_notice_pages(app: Flask, client: FlaskClient, role: str, allowed: bool) -> None:
    signed_in(app, client, role)
    add_residents(app, 1)  # a notice that reaches nobody is refused whoever posts it
    expected = 200 if allowed else 403
    for path in ("/admin/notices", "/admin/notices/new", "/admin/notices/count?target=all"):
        assert client.get(path).status_code == expected, path
    # Posting is refused as well (a valid CSRF token from a page every staff member can open).
    token = csrf_token(client, "/admin/password")
    response = client.post("/admin/notices/new", data={"csrf_token": token, "step": "schedule", "text": "x", "target": "all", "timing": "now"})
    assert response.status_code == (302 if allowed else 403)
    with get_db(app).session() as session:
        assert (session.scalar(select(Broadcast.id)) is not None) == allowed


def test_signed_out_staff_are_sent_to_login(client: FlaskClient) -> None:
    response = client.get("/admin/notices/new")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_confirm_shows_the_count_and_preview_then_schedule_creates_and_audits(app: Flask, client: FlaskClient) -> None:
    add_residents(app, 12)
    add_residents(app, 3, start=100, consented_at=None)  # not accepting notices
    signed_in(app, client, "pr")
    at = (utcnow() + dt.timedelta(hours=2)).astimezone(JST)
    fields = {"timing": "at", "at": f"{at:%Y-%m-%dT%H:%M}", "title": "収集日変更"}
    page = compose(client, **fields).get_data(as_text=True)
    assert 'data-count="12"' in page and "12 人" in page
    assert "燃えるごみの収集日が変わります" in page and "line-bubble" in page  # the LINE-style preview
    with get_db(app).session() as session:
        assert session.scalar(select(Broadcast.id)) is None  # confirming creates nothing

    response = compose(client, step="schedule", **fields)
    assert response.status_code == 302
    with get_db(app).session() as session:
        notice = session.scalars(select(Broadcast)).one()
        assert notice.title == "収集日変更" and notice.status == "scheduled"
        assert notice.next_run_at == at.replace(second=0, microsecond=0)
    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "予約しました" in detail and "予約済み" in detail
    assert audit_actions(app) == [("notice_create", f"#{notice.id}")]


def test_a_card_with_a_link_button_and_an_ad_hoc_segment(app: Flask, client: FlaskClient, fake_line: FakeLinePlatform) -> None:
    parents = add_residents(app, 10, interests_mask=interests_to_mask(["子育て"]), area=None)
    add_residents(app, 10, start=100)
    signed_in(app, client, "pr")
    fields = {
        "kind": "card", "card_title": "乳幼児健診", "text": "12月の健診日程です。", "button_label": "日程を見る",
        "button_url": "https://www.city.example.jp/kenshin", "image_url": "https://www.city.example.jp/k.png",
        "target": "custom", "interests": ["子育て"],
    }
    confirm = compose(client, **fields).get_data(as_text=True)
    assert 'data-count="10"' in confirm and "日程を見る" in confirm and "乳幼児健診" in confirm
    assert compose(client, step="schedule", **fields).status_code == 302
    run_dispatcher(app)
    assert set(deliveries_per_user(fake_line)) == set(parents)
    message = fake_line.delivered(parents[0])[0]
    assert message["type"] == "flex" and message["altText"] == "乳幼児健診"
    button = message["contents"]["footer"]["contents"][0]["action"]
    assert button == {"type": "uri", "label": "日程を見る", "uri": "https://www.city.example.jp/kenshin"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": "  "}, "本文を入力してください"),
        ({"kind": "image", "image_url": "http://insecure.example.jp/a.png"}, "https://"),
        ({"timing": "at", "at": "2020-01-01T09:00"}, "過去です"),
        ({"timing": "weekly", "at": "2030-01-01T09:00"}, "曜日を1つ以上"),
        ({"target": "segment", "segment": "ない"}, "セグメント「ない」はありません"),
        ({"target": "custom"}, "条件を1つ以上"),
        ({"target": "custom", "areas": ["火星"]}, "地域に選べない値"),
    ],
)
def test_mistakes_are_explained_in_japanese_and_keep_the_form(app: Flask, client: FlaskClient, fields: dict[str, Any], message: str) -> None:
    signed_in(app, client, "pr")
    response = compose(client, **{"text": "本文はそのまま残る", **fields})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and message in page
    if fields.get("text") is None:
        assert "本文はそのまま残る" in page


def test_small_segments_need_an_admin_and_the_override_is_audited(app: Flask, client: FlaskClient) -> None:
    add_residents(app, 3, area=None, interests_mask=interests_to_mask(["防災"]))
    add_residents(app, 30, start=100)
    with get_db(app).session() as session:
        save_segment(session, "防災3人", SegmentRule.from_dict({"interests": {"include": ["防災"]}}), app.config["MUNICIPALITY"])
    signed_in(app, client, "pr")
    page = compose(client, target="segment", segment="防災3人").get_data(as_text=True)
    assert 'id="privacy-warning"' in page and re.search(r'id="schedule-button"\s+disabled', page)
    assert "10人未満" in page and 'data-count="3"' not in page  # a small group is not counted exactly for pr
    assert "少人数でも配信する" not in client.get("/admin/notices/new").get_data(as_text=True)
    refused = compose(client, step="schedule", target="segment", segment="防災3人", allow_small="1")  # pr cannot override
    assert refused.status_code == 400 and "管理者だけ" in refused.get_data(as_text=True)
    refused = compose(client, step="schedule", target="segment", segment="防災3人")
    assert refused.status_code == 400 and "10人未満" in refused.get_data(as_text=True)

    admin_client = app.test_client()
    signed_in(app, admin_client, "admin")
    assert "少人数でも配信する" in admin_client.get("/admin/notices/new").get_data(as_text=True)
    confirm = compose(admin_client, target="segment", segment="防災3人", allow_small="1").get_data(as_text=True)
    assert 'data-count="3"' in confirm and 'id="schedule-button"' in confirm
    assert compose(admin_client, step="schedule", target="segment", segment="防災3人", allow_small="1").status_code == 302
    with get_db(app).session() as session:
        notice_id = session.scalar(select(Broadcast.id))
        override = session.scalars(select(AuditLog).where(AuditLog.action == "segment_privacy_override")).one()
        assert override.username == "staff-admin" and override.target == f"お知らせ #{notice_id}" and override.detail["count"] == 3
    assert [a for a, _ in audit_actions(app)] == ["notice_create"]


def test_live_count_endpoint(app: Flask, client: FlaskClient) -> None:
    add_residents(app, 4, age_band="30代")
    add_residents(app, 12, start=100, age_band="70代")
    add_residents(app, 2, start=200, consented_at=None)
    signed_in(app, client, "pr")
    assert client.get("/admin/notices/count?target=all").get_json()["count"] == 16
    data = client.get("/admin/notices/count?target=custom&age_bands=30代").get_json()
    assert data["count"] is None and data["shown"] == "10人未満" and data["below_floor"] is True and "30代" in data["description"]
    assert client.get("/admin/notices/count?target=custom&age_bands=70代").get_json()["shown"] == "12 人"
    assert client.get("/admin/notices/count?is_emergency=1").get_json()["count"] == 18
    bad = client.get("/admin/notices/count?target=custom&age_bands=100代")
    assert bad.status_code == 400 and "年代に選べない値" in bad.get_json()["error"]


def test_pause_resume_and_cancel_from_the_list_are_audited(app: Flask, client: FlaskClient) -> None:
    add_residents(app, 5)
    signed_in(app, client, "pr")
    at = (utcnow() + dt.timedelta(days=1)).astimezone(JST)
    assert compose(client, step="schedule", timing="daily", at=f"{at:%Y-%m-%dT%H:%M}").status_code == 302
    with get_db(app).session() as session:
        notice_id = session.scalar(select(Broadcast.id))
    listing = client.get("/admin/notices").get_data(as_text=True)
    assert f'data-notice-id="{notice_id}"' in listing and "毎日" in listing

    def act(action: str) -> str:
        token = csrf_token(client, "/admin/notices")
        response = client.post(f"/admin/notices/{notice_id}/{action}", data={"csrf_token": token, "next": "list"})
        assert response.status_code == 302 and response.headers["Location"].endswith("/admin/notices")
        return client.get("/admin/notices").get_data(as_text=True)

    assert "一時停止しました" in act("pause") and report(app, notice_id)["status"] == "paused"
    assert "再開しました" in act("resume") and report(app, notice_id)["status"] == "scheduled"
    assert "取り消しました" in act("cancel") and report(app, notice_id)["status"] == "cancelled"
    after = act("cancel")
    assert "取り消せません" in after
    assert audit_actions(app) == [(f"notice_{a}", f"#{notice_id}") for a in ("create", "pause", "resume", "cancel")]


def test_list_and_detail_show_delivery_counts_after_sending(app: Flask, client: FlaskClient, fake_line: FakeLinePlatform) -> None:
    add_residents(app, 7)
    signed_in(app, client, "pr")
    assert compose(client, step="schedule", text="本日の窓口は17時までです").status_code == 302
    run_dispatcher(app)
    listing = client.get("/admin/notices?status=sent").get_data(as_text=True)
    row = re.search(r'<tr data-notice-id="\d+" data-status="sent">(.*?)</tr>', listing, re.S)
    assert row is not None
    assert re.search(r'data-count="delivered">7<', row.group(1)) and re.search(r'data-count="recipients">7<', row.group(1))
    with get_db(app).session() as session:
        notice_id = session.scalar(select(Broadcast.id))
    detail = client.get(f"/admin/notices/{notice_id}").get_data(as_text=True)
    assert "配信済み" in detail and 'data-count="delivered">7<' in detail and 'data-run-id=' in detail
    assert client.get("/admin/notices/999999").status_code == 404
    assert "配信済み" not in client.get("/admin/notices?status=scheduled").get_data(as_text=True).split("<tbody>")[1]
