"""The privacy floor at send time: every occurrence of a notice to a segment is checked on the list
it would be sent to; below the floor (an empty segment included) it is held, staff see why, and
only an admin with a reason (or the operator at the CLI) releases it, which is audit-logged and
sent exactly once. Notices to everyone and emergencies are not subject to the floor."""

from __future__ import annotations

import datetime as dt
import re
import shlex
from collections import Counter
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from bot import auth
from bot.auth import create_user
from bot.db import get_db
from bot.models import AuditLog
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast import service
from broadcast.models import Broadcast
from broadcast.schedule import JST
from segments.models import Resident
from segments.rules import FloorOverride, SegmentRule, save_segment
from segments.service import record_unfollow
from tests.conftest import ROOT, Chat
from tests.test_admin import PASSWORD, csrf_token, login, make_user
from tests.test_broadcast import (
    add_residents,
    deliveries_per_user,
    multicast_requests,
    report,
    run_dispatcher,
    schedule_notice,
    user_id,
)

HELD = "対象者がプライバシー保護の下限（10人）未満のため、この回の配信を保留しました"
NOTICE = "50代の方へ：特定健診のご案内"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


def staff(app: Flask, role: str) -> FlaskClient:
    """A browser signed in as a staff member with this role."""
    client = app.test_client()
    make_user(app, f"staff-{role}", role)
    assert login(client, f"staff-{role}", PASSWORD).status_code == 302
    return client


def post(client: FlaskClient, path: str, page: str, **fields: Any) -> Any:
    """Submit a form found on `page`, with its CSRF token."""
    return client.post(path, data={"csrf_token": csrf_token(client, page), **fields})


def overrides(app: Flask) -> list[AuditLog]:
    with get_db(app).session() as session:
        rows = list(session.scalars(select(AuditLog).where(AuditLog.action == "segment_privacy_override").order_by(AuditLog.id)))
        session.expunge_all()
        return rows


def register_as(chat: Chat, age: str) -> None:
    """Follow, consent, and choose an age band in the chat (the other questions left unanswered)."""
    _greeting, notice = chat.follows(expect=2)
    (question,) = chat.taps(notice["quickReply"]["items"][0]["action"]["data"])  # 同意して登録する
    action = next(i["action"] for i in question["quickReply"]["items"] if i["action"]["label"] == age)
    chat.taps(action["data"])


def test_a_resident_who_joins_an_empty_segment_does_not_get_a_notice_alone(
    app: Flask, runner: Any, chat: Any, fake_line: FakeLinePlatform
) -> None:
    # The probe: an empty segment, a notice to it scheduled by PR, then one resident registers as 50代.
    # (Only a recurring notice may be scheduled to nobody: here daily, from this minute until today.)
    saved = runner.invoke(args=["segments", "save", "floor-test", "--age", "50代"])
    assert saved.exit_code == 0 and "配信対象: 0 人" in saved.output and "下限（10 人）未満" in saved.output
    pr = staff(app, "pr")
    start = dt.datetime.now(JST)
    created = post(pr, "/admin/notices/new", "/admin/notices/new", step="schedule", kind="text", text=NOTICE,
                   target="segment", segment="floor-test", timing="daily", at=f"{start:%Y-%m-%dT%H:%M}", until=f"{start:%Y-%m-%d}")
    assert created.status_code == 302
    detail_url = created.headers["Location"]
    scheduled = pr.get(detail_url).get_data(as_text=True)
    assert "予約しました" in scheduled and "10人未満" in scheduled and "保留され" in scheduled  # said before anything is sent
    with get_db(app).session() as session:
        notice_id = session.scalars(select(Broadcast.id)).one()

    resident = chat("U" + "5" * 32)
    register_as(resident, "50代")
    before = list(fake_line.delivered(resident.user_id))

    tick = run_dispatcher(app)

    assert fake_line.delivered(resident.user_id) == before  # nothing sent to them
    assert multicast_requests(fake_line) == [] and deliveries_per_user(fake_line) == Counter()
    assert tick.started_runs == [] and len(tick.held_runs) == 1 and "保留 1 件" in tick.summary()
    shown = report(app, notice_id)
    assert shown["status"] == "held" and [(r["status"], r["note"]) for r in shown["runs"]] == [("held", HELD)]

    # Staff see why on the notice page; PR cannot let it go.
    page = pr.get(detail_url).get_data(as_text=True)
    assert HELD in page and "保留中" in page and "release-button" not in page and "現在の対象は" not in page
    assert "保留中" in pr.get("/admin/notices").get_data(as_text=True)
    run_id = shown["runs"][0]["id"]
    release_url = f"/admin/notices/{notice_id}/runs/{run_id}/release"
    assert post(pr, release_url, detail_url, reason="急ぎなので").status_code == 403
    run_dispatcher(app)
    assert fake_line.delivered(resident.user_id) == before and overrides(app) == []

    # An admin sees how many it would reach now, and must give a reason.
    admin = staff(app, "admin")
    page = admin.get(detail_url).get_data(as_text=True)
    assert HELD in page and f'id="release-button-{run_id}"' in page and "現在の対象は 1 人" in page
    refused = post(admin, release_url, detail_url, reason="  ")
    assert refused.status_code == 302 and "理由を入力してください" in admin.get(detail_url).get_data(as_text=True)
    assert report(app, notice_id)["runs"][0]["status"] == "held" and overrides(app) == []

    released = post(admin, release_url, detail_url, reason="健診の対象者本人への個別の案内のため")
    assert released.status_code == 302
    assert "配信を許可しました" in admin.get(detail_url).get_data(as_text=True)
    run_dispatcher(app)
    run_dispatcher(app)
    again = post(admin, release_url, detail_url, reason="もう一度")  # a second click changes nothing
    assert "保留中ではありません" in admin.get(again.headers["Location"]).get_data(as_text=True)
    run_dispatcher(app)

    assert deliveries_per_user(fake_line) == Counter({resident.user_id: 1})
    assert fake_line.delivered(resident.user_id)[len(before):] == [{"type": "text", "text": NOTICE}]
    shown = report(app, notice_id)
    assert shown["status"] == "sent" and shown["counts"]["delivered"] == 1
    assert shown["runs"][0]["status"] == "sent" and "staff-admin が理由を記録して配信を許可しました" in shown["runs"][0]["note"]
    (logged,) = overrides(app)
    assert logged.username == "staff-admin" and logged.target == f"お知らせ #{notice_id} 配信回 #{run_id}"
    assert logged.detail["reason"] == "健診の対象者本人への個別の案内のため"
    assert logged.detail["count"] == 1 and logged.detail["floor"] == 10
    assert logged.detail["rule"] == {"age_bands": {"include": ["50代"], "exclude": []}}


def test_a_recurring_notice_is_checked_at_each_occurrence(app: Flask, fake_line: FakeLinePlatform) -> None:
    ten = add_residents(app, 10, age_band="30代")
    add_residents(app, 20, start=100, age_band="70代")
    with get_db(app).session() as session:
        save_segment(session, "30代", SegmentRule.from_dict({"age_bands": {"include": ["30代"]}}), app.config["MUNICIPALITY"])
    start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=JST)
    days = [start + dt.timedelta(days=n) for n in range(4)]
    notice = schedule_notice(app, "子育て広場のお知らせ", at=start, every="daily", until=days[-1].date(),
                             segment="30代", now=start - dt.timedelta(hours=1))

    def occurrence(n: int) -> dict[str, Any]:
        run_dispatcher(app, now=days[n] + dt.timedelta(seconds=5))
        return report(app, notice)

    assert occurrence(0)["runs"][-1]["status"] == "sent"  # ten: at the floor
    with get_db(app).session() as session:
        record_unfollow(session, ten[0])
    shown = occurrence(1)  # nine
    assert shown["runs"][-1]["status"] == "held" and shown["runs"][-1]["note"] == HELD
    assert shown["status"] == "scheduled" and shown["next_run_at"] == days[2].isoformat()  # the next one still comes
    add_residents(app, 1, start=50, age_band="30代")
    assert occurrence(2)["runs"][-1]["status"] == "sent"  # ten again
    with get_db(app).session() as session:  # nobody left: the last occurrence is held too, and nothing follows
        session.execute(update(Resident).where(Resident.age_band == "30代").values(is_notices_enabled=False))
    shown = occurrence(3)
    assert [r["status"] for r in shown["runs"]] == ["sent", "held", "sent", "held"]
    assert shown["status"] == "held" and shown["next_run_at"] is None

    got = deliveries_per_user(fake_line)
    assert got == Counter({**dict.fromkeys(ten[1:], 2), ten[0]: 1, user_id(50): 1})
    assert len(multicast_requests(fake_line)) == 2

    # A PR user cannot release an occurrence even through the service; cancelling drops what is held.
    with get_db(app).session() as session:
        pr = create_user(session, "koho", PASSWORD, "pr")
        with pytest.raises(service.NoticeError, match="管理者だけ"):
            service.release_held_run(session, notice, FloorOverride(pr, "急ぎ"), privacy_floor=10, run_id=shown["runs"][1]["id"])
        with pytest.raises(service.NoticeError, match="2回あります"):
            service.release_held_run(session, notice, FloorOverride(None, "運用判断"), privacy_floor=10)
    with get_db(app).session() as session:
        service.cancel_broadcast(session, notice)
    shown = report(app, notice)
    assert shown["status"] == "cancelled" and [r["status"] for r in shown["runs"]] == ["sent", "cancelled", "sent", "cancelled"]


def test_a_held_occurrence_released_while_the_notice_is_paused_goes_out_once_resumed(app: Flask, fake_line: FakeLinePlatform) -> None:
    few = add_residents(app, 3, age_band="80代以上")
    start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=JST)
    notice = schedule_notice(app, "寒波のお知らせ", at=start, every="daily", now=start - dt.timedelta(hours=1),
                             rule=SegmentRule.from_dict({"age_bands": {"include": ["80代以上"]}}))
    run_dispatcher(app, now=start + dt.timedelta(seconds=5))
    assert report(app, notice)["status"] == "scheduled" and report(app, notice)["runs"][0]["status"] == "held"
    with get_db(app).session() as session:
        service.pause_broadcast(session, notice)
    with get_db(app).session() as session:
        released = service.release_held_run(session, notice, FloorOverride(None, "避難の呼びかけ"), privacy_floor=10)
        assert released.recipient_count == 3 and released.broadcast.status == "paused"
    run_dispatcher(app, now=start + dt.timedelta(minutes=1))
    assert multicast_requests(fake_line) == []  # paused: the released chunks wait
    with get_db(app).session() as session:
        assert service.resume_broadcast(session, notice).status == "sending"
    run_dispatcher(app, now=start + dt.timedelta(minutes=2))
    run_dispatcher(app, now=start + dt.timedelta(minutes=3))
    assert deliveries_per_user(fake_line) == Counter(dict.fromkeys(few, 1))
    shown = report(app, notice)
    assert shown["status"] == "scheduled" and [r["status"] for r in shown["runs"]] == ["sent"]


def test_notices_to_everyone_and_emergencies_are_not_subject_to_the_floor(app: Flask, fake_line: FakeLinePlatform) -> None:
    two = add_residents(app, 2)
    everyone = schedule_notice(app, "窓口の時間が変わります")
    emergency = schedule_notice(app, "避難所を開設しました", emergency=True)
    tick = run_dispatcher(app)
    assert tick.held_runs == [] and len(tick.finished_runs) == 2
    assert deliveries_per_user(fake_line) == Counter(dict.fromkeys(two, 2))
    assert report(app, everyone)["status"] == report(app, emergency)["status"] == "sent"


def test_the_operator_releases_a_held_occurrence_at_the_cli(app: Flask, fake_line: FakeLinePlatform) -> None:
    few = add_residents(app, 3, age_band="80代以上")
    add_residents(app, 20, start=100)

    def cli(*args: str, ok: bool = True) -> Any:
        result = app.test_cli_runner().invoke(args=["broadcast", *args])
        assert (result.exit_code == 0) is ok, result.output
        return result

    # Scheduling for a small segment needed the operator's override; sending it needs its own.
    created = cli("create", "--text", "敬老会のご案内", "--age", "80代以上", "--allow-small-segment")
    notice = int(created.stdout)
    assert "保留され" in created.stderr
    run_dispatcher(app)
    assert multicast_requests(fake_line) == []
    shown = cli("show", str(notice)).output
    assert "保留中" in shown and HELD in shown
    assert "--reason" in cli("release", str(notice), ok=False).output
    released = cli("release", str(notice), "--reason", "自治会からの依頼。対象者の了承済み")
    assert "配信を許可しました（対象 3 人" in released.output
    assert "保留中の配信回はありません" in cli("release", str(notice), "--reason", "再実行", ok=False).output
    run_dispatcher(app)
    run_dispatcher(app)
    assert deliveries_per_user(fake_line) == Counter(dict.fromkeys(few, 1))
    logged = overrides(app)
    assert [(a.username, a.target) for a in logged] == [
        ("(CLI)", f"お知らせ #{notice}"), ("(CLI)", f"お知らせ #{notice} 配信回 #{report(app, notice)['runs'][0]['id']}"),
    ]
    assert logged[1].detail["reason"] == "自治会からの依頼。対象者の了承済み" and logged[1].detail["count"] == 3


def test_the_guide_shows_the_commands_that_release_a_held_occurrence(app: Flask, fake_line: FakeLinePlatform) -> None:
    """docs/staff-guide-notices.md: `show` and `release` as shown there, for a notice that is held."""
    guide = (ROOT / "docs" / "staff-guide-notices.md").read_text(encoding="utf-8")
    commands = re.findall(r"^bin/flask (broadcast (?:show|release) .*)$", guide, flags=re.M)
    assert [c.split()[1] for c in commands] == ["show", "release"]
    few = add_residents(app, 3, age_band="80代以上")
    notice = schedule_notice(app, "敬老会のご案内", rule=SegmentRule.from_dict({"age_bands": {"include": ["80代以上"]}}))
    run_dispatcher(app)
    outputs = []
    for command in commands:
        args = [str(notice) if arg == "12" else arg for arg in shlex.split(command)]
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 0, f"{command}\n{result.output}"
        outputs.append(result.output)
    assert HELD in outputs[0] and "配信を許可しました" in outputs[1]
    run_dispatcher(app)
    assert deliveries_per_user(fake_line) == Counter(dict.fromkeys(few, 1))
