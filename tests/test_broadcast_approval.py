"""Draft, approve, send: a department drafts, PR approves or returns, only approved notices go out;
departments see only their own notices; staff link their LINE account with a one-time code sent to
the bot and test sends reach only linked staff. Every step is audit-logged."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from bot import auth
from bot.db import get_db
from bot.models import AuditLog, StaffUser
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast import approval
from broadcast.errors import NoticeError
from broadcast.models import AWAITING_APPROVAL, RETURNED, SCHEDULED, Broadcast
from tests.conftest import Chat
from tests.test_admin import PASSWORD, csrf_token, login, make_user
from tests.test_broadcast import FAST, add_residents, deliveries_per_user, run_dispatcher, schedule_notice

TEXT = "子育て支援課から：乳幼児健診の日程が変わります"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


@pytest.fixture
def aapp(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(**FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"))


def staff(app: Flask, username: str, role: str, department: str | None = None) -> FlaskClient:
    user_id = make_user(app, username, role)
    if department:
        with get_db(app).session() as session:
            session.execute(update(StaffUser).where(StaffUser.id == user_id).values(department=department))
            session.commit()
    client = app.test_client()
    assert login(client, username, PASSWORD).status_code == 302
    return client


def draft(client: FlaskClient, text: str = TEXT) -> Any:
    data = {"kind": "text", "text": text, "target": "all", "timing": "now", "step": "schedule",
            "csrf_token": csrf_token(client, "/admin/notices/new")}
    return client.post("/admin/notices/new", data=data)


def post(client: FlaskClient, path: str, **fields: str) -> Any:
    return client.post(path, data={"csrf_token": csrf_token(client, "/admin/notices"), **fields})


def notice(app: Flask, broadcast_id: int) -> Broadcast:
    with get_db(app).session() as session:
        row = session.get(Broadcast, broadcast_id)
        assert row is not None
        session.expunge(row)
        return row


def audit_of(app: Flask, target: str) -> list[tuple[str, str]]:
    with get_db(app).session() as session:
        return [(a.action, a.username) for a in session.scalars(select(AuditLog).where(AuditLog.target == target).order_by(AuditLog.id))]


def latest_id(app: Flask) -> int:
    with get_db(app).session() as session:
        return int(session.scalar(select(Broadcast.id).order_by(Broadcast.id.desc()).limit(1)) or 0)


def test_a_department_draft_is_sent_only_after_pr_approves_it(aapp: Flask, fake_line: FakeLinePlatform) -> None:
    residents = add_residents(aapp, 30)
    dept = staff(aapp, "kosodate", "dept", "子育て支援課")
    response = draft(dept)
    assert response.status_code == 302
    notice_id = latest_id(aapp)
    row = notice(aapp, notice_id)
    assert (row.status, row.department, row.approved_at) == (AWAITING_APPROVAL, "子育て支援課", None)
    page = dept.get(f"/admin/notices/{notice_id}").get_data(as_text=True)
    assert "広報の承認待ち" in page and 'id="approve-button"' not in page

    # Not approved: the dispatcher sends nothing, and the department cannot approve or send it.
    run_dispatcher(aapp)
    assert not deliveries_per_user(fake_line)
    assert post(dept, f"/admin/notices/{notice_id}/approve").status_code == 403
    assert post(dept, f"/admin/notices/{notice_id}/resume").status_code == 403
    assert notice(aapp, notice_id).status == AWAITING_APPROVAL

    # PR approves with a comment: it goes out once, to the residents.
    pr = staff(aapp, "koho", "pr")
    assert 'id="approve-button"' in pr.get(f"/admin/notices/{notice_id}").get_data(as_text=True)
    assert post(pr, f"/admin/notices/{notice_id}/approve", comment="日程を確認しました").status_code == 302
    row = notice(aapp, notice_id)
    assert row.status == SCHEDULED and row.approved_at is not None and row.review_note == "日程を確認しました"
    run_dispatcher(aapp)
    got = deliveries_per_user(fake_line, TEXT)
    assert sorted(got) == sorted(residents) and set(got.values()) == {1}
    assert "日程を確認しました" in dept.get(f"/admin/notices/{notice_id}").get_data(as_text=True)
    assert audit_of(aapp, f"#{notice_id}") == [("notice_create", "kosodate"), ("notice_approve", "koho")]


def test_a_returned_draft_is_never_sent_and_needs_a_reason(aapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(aapp, 15)
    dept = staff(aapp, "bosai", "dept", "危機管理課")
    draft(dept, "訓練のお知らせ")
    notice_id = latest_id(aapp)
    pr = staff(aapp, "koho", "pr")
    response = post(pr, f"/admin/notices/{notice_id}/return", reason="")
    assert response.status_code == 302
    assert "差し戻す理由を入力してください" in pr.get(f"/admin/notices/{notice_id}").get_data(as_text=True)
    assert notice(aapp, notice_id).status == AWAITING_APPROVAL
    post(pr, f"/admin/notices/{notice_id}/return", reason="日時が未定です")
    row = notice(aapp, notice_id)
    assert (row.status, row.review_note, row.next_run_at) == (RETURNED, "日時が未定です", None)
    # Approving it afterwards is refused; nothing is ever sent.
    post(pr, f"/admin/notices/{notice_id}/approve")
    assert notice(aapp, notice_id).status == RETURNED
    run_dispatcher(aapp)
    assert not deliveries_per_user(fake_line)
    assert "日時が未定です" in dept.get(f"/admin/notices/{notice_id}").get_data(as_text=True)
    assert ("notice_return", "koho") in audit_of(aapp, f"#{notice_id}")


def test_departments_see_only_their_own_notices(aapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(aapp, 12)
    kosodate = staff(aapp, "kosodate", "dept", "子育て支援課")
    draft(kosodate, "子育ての集い")
    own = latest_id(aapp)
    kankyo = staff(aapp, "kankyo", "dept", "環境課")
    draft(kankyo, "ごみ減量のお願い")
    other = latest_id(aapp)
    pr_notice = schedule_notice(aapp, "広報からのお知らせ")

    listing = kosodate.get("/admin/notices").get_data(as_text=True)
    assert "子育ての集い" in listing and "ごみ減量のお願い" not in listing and "広報からのお知らせ" not in listing
    assert kosodate.get(f"/admin/notices/{own}").status_code == 200
    assert kosodate.get(f"/admin/notices/{other}").status_code == 404
    assert kosodate.get(f"/admin/notices/{pr_notice}").status_code == 404
    # A department user without a department cannot draft.
    nobody = staff(aapp, "mitei", "dept")
    response = draft(nobody)
    assert response.status_code == 400 and "部署が設定されていない" in response.get_data(as_text=True)
    # PR sees all.
    listing = staff(aapp, "koho", "pr").get("/admin/notices").get_data(as_text=True)
    assert all(title in listing for title in ("子育ての集い", "ごみ減量のお願い", "広報からのお知らせ"))


def test_the_service_and_the_dispatcher_enforce_approval(aapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(aapp, 12)
    staff(aapp, "kosodate", "dept", "子育て支援課")
    draft(staff(aapp, "kosodate2", "dept", "子育て支援課"))
    notice_id = latest_id(aapp)
    with get_db(aapp).session() as session:
        dept_user = session.scalar(select(StaffUser).where(StaffUser.username == "kosodate"))
        with pytest.raises(NoticeError, match="広報担当または管理者"):
            approval.approve(session, notice_id, dept_user)
        with pytest.raises(NoticeError):
            approval.approve(session, notice_id, None)
        session.rollback()
        # Forced into the schedule behind the service's back: still never sent without approval.
        session.execute(update(Broadcast).where(Broadcast.id == notice_id).values(status=SCHEDULED))
        session.commit()
    run_dispatcher(aapp)
    assert not deliveries_per_user(fake_line)


def test_staff_link_their_line_account_and_test_sends_reach_only_linked_staff(
    aapp: Flask, fake_line: FakeLinePlatform
) -> None:
    residents = add_residents(aapp, 20)
    pr = staff(aapp, "koho", "pr")
    page = pr.post("/admin/line-link", data={"csrf_token": csrf_token(pr, "/admin/line-link"), "action": "code"})
    code = re.search(r'id="link-message">職員連携 (\d{6})<', page.get_data(as_text=True))
    assert code is not None
    phone = "U" + "5" * 32
    chat = Chat(aapp.test_client(), fake_line, phone)
    wrong = "000000" if code.group(1) != "000000" else "111111"
    assert "使えません" in chat.says(f"職員連携 {wrong}")[0]["text"]
    reply = chat.says(f"職員連携 {code.group(1)}")
    assert "連携しました" in reply[0]["text"]
    assert "使えません" in chat.says(f"職員連携 {code.group(1)}")[0]["text"]  # a code works once
    assert 'data-linked="1"' in pr.get("/admin/line-link").get_data(as_text=True)

    dept = staff(aapp, "kosodate", "dept", "子育て支援課")
    draft(dept)
    notice_id = latest_id(aapp)
    before = len(fake_line.delivered(phone))
    assert post(dept, f"/admin/notices/{notice_id}/test-send").status_code == 302
    got = fake_line.delivered(phone)[before:]
    assert [m["text"] for m in got] == [approval.TEST_HEADER, TEXT]
    assert not any(fake_line.delivered(user) for user in residents)
    assert [d.kind for d in fake_line.deliveries if phone in d.to and d.kind != "reply"] == ["push"]
    assert ("notice_test_send", "kosodate") in audit_of(aapp, f"#{notice_id}")
    assert notice(aapp, notice_id).status == AWAITING_APPROVAL  # a test send approves nothing


def test_a_department_sees_no_pause_or_cancel_buttons(aapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(aapp, 12)
    dept = staff(aapp, "kosodate", "dept", "子育て支援課")
    draft(dept)
    notice_id = latest_id(aapp)
    post(staff(aapp, "koho", "pr"), f"/admin/notices/{notice_id}/approve")
    page = dept.get(f"/admin/notices/{notice_id}").get_data(as_text=True)
    assert 'id="pause-button"' not in page and 'id="cancel-button"' not in page
    assert "承認済み" in page


def test_codes_cannot_be_found_by_trying_them_all(aapp: Flask, fake_line: FakeLinePlatform) -> None:
    from bot import staff_link

    pr = staff(aapp, "koho", "pr")
    page = pr.post("/admin/line-link", data={"csrf_token": csrf_token(pr, "/admin/line-link"), "action": "code"})
    code = re.search(r'id="link-message">職員連携 (\d{6})<', page.get_data(as_text=True))
    assert code is not None
    wrong = [f"{n:06d}" for n in range(100) if f"{n:06d}" != code.group(1)][: staff_link.MAX_FAILURES]
    with get_db(aapp).session() as session:
        for guess in wrong:
            assert "使えません" in (staff_link.link_from_message(session, "U" + "6" * 32, f"職員連携 {guess}") or "")
        # Even the right code is refused now, until the window has passed.
        assert "しばらく" in (staff_link.link_from_message(session, "U" + "6" * 32, f"職員連携 {code.group(1)}") or "")
        session.commit()
    with get_db(aapp).session() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.username == "koho"))
        assert user is not None and user.line_user_id is None
