"""Residents' reports: the chat flow through the fake LINE platform (photo fetched from its content
endpoint, location, typed place, cancel, stale buttons, fetch failures, the daily limit), the
staff inbox (roles, status pushes sent exactly once, note, CSV), privacy (unfollow, retention)."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from bot.db import get_db, utcnow
from bot.sandbox.fake_line import FakeLinePlatform
from kpi.models import UsageEvent
from reports import photos, service
from reports.models import DONE, DRAFT, IN_PROGRESS, RECEIVED, REJECTED, Report, ReportNotice
from segments.models import Resident
from tests.conftest import Chat
from tests.test_admin import csrf_token, fast_hashing, login, make_user  # noqa: F401 - fast_hashing is a fixture

USER = "U" + "r" * 32
GPS_TAG = 0x8825


def jpeg_with_gps() -> bytes:
    """A small JPEG whose EXIF holds a GPS position and a camera model, as a phone writes it."""
    image = Image.new("RGB", (64, 48), (200, 120, 40))
    exif = Image.Exif()
    exif[0x0110] = "PhoneCam 12"  # Model
    exif[GPS_TAG] = {1: "N", 2: (36.0, 39.0, 30.0), 3: "E", 4: (140.0, 9.0, 10.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as check:  # the fixture really carries the position
        assert check.getexif().get_ifd(GPS_TAG)
    return data


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
def app(make_app: Callable[..., Flask], photo_dir: Path) -> Flask:
    return make_app(REPORT_PHOTO_DIR=str(photo_dir))


class Resident_(Chat):
    """A resident in the chat who can also send images and locations."""

    def sends_image(self, data: bytes, expect: int = 1) -> list[dict[str, Any]]:
        return self._send(self.fake.image_event(self.user_id, data), expect)

    def sends_location(self, lat: float, lon: float, address: str | None = None, expect: int = 1) -> list[dict[str, Any]]:
        event = self.fake.text_event(self.user_id, "x")
        event["message"] = {"id": event["message"]["id"], "type": "location", "latitude": lat, "longitude": lon}
        if address:
            event["message"]["address"] = address
        return self._send(event, expect)


@pytest.fixture
def resident(client: FlaskClient, fake_line: FakeLinePlatform) -> Resident_:
    return Resident_(client, fake_line, USER)


def items(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [i["action"] for i in (message.get("quickReply") or {}).get("items", [])]


def button(message: dict[str, Any], label: str) -> str:
    """The postback data of the quick-reply button with this label."""
    for action in items(message):
        if action.get("label") == label and action["type"] == "postback":
            return str(action["data"])
    raise AssertionError(f"no button {label!r} in {items(message)}")


def reports_of(app: Flask) -> list[Report]:
    with get_db(app).session() as session:
        rows = list(session.scalars(select(Report).order_by(Report.id)))
        session.expunge_all()
        return rows


def content_requests(fake: FakeLinePlatform) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/content") and r.method == "GET"]


# --- the chat -------------------------------------------------------------------------------------


def test_a_pothole_with_a_photo_and_a_location_is_received_with_a_number(
        app: Flask, resident: Resident_, fake_line: FakeLinePlatform, photo_dir: Path) -> None:
    (ask,) = resident.says("通報")
    assert "分類" in ask["text"]
    assert [a["label"] for a in items(ask)] == ["道路", "公園", "街灯", "ごみの不法投棄", "動物の死骸", "その他", "やめる"]

    (photo_step,) = resident.taps(button(ask, "道路"))
    assert "#9910" in photo_step["text"] and "道路緊急ダイヤル" in photo_step["text"]
    assert [a["type"] for a in items(photo_step)][:2] == ["camera", "cameraRoll"]

    (place_step,) = resident.sends_image(jpeg_with_gps())
    assert "写真を受け取りました" in place_step["text"]
    assert items(place_step)[0]["type"] == "location"
    (request,) = content_requests(fake_line)
    assert request.headers.get("Authorization", "").startswith("Bearer ")

    (description_step,) = resident.sends_location(36.6585, 140.1528, "栃木県那須烏山市中央1丁目")
    assert "場所を受け取りました" in description_step["text"]
    (summary,) = resident.says("歩道の横に深さ10cmほどの穴があります")
    assert "分類：道路" in summary["text"] and "写真：あり" in summary["text"] and "中央1丁目" in summary["text"]

    (done,) = resident.taps(button(summary, "送信"))
    (report,) = reports_of(app)
    assert report.status == RECEIVED and report.number and report.number in done["text"]
    assert report.number == f"R-{dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=9))).year}-{report.id:06d}"
    assert (report.latitude, report.longitude) == (36.6585, 140.1528)
    stored = photo_dir / str(report.photo_file)
    with Image.open(stored) as image:  # kept as a JPEG, without EXIF (no GPS, no camera)
        assert image.format == "JPEG" and image.size == (64, 48)
        assert not image.getexif() and not image.getexif().get_ifd(GPS_TAG)
    assert b"PhoneCam" not in stored.read_bytes()

    # A button of a step already answered is refused politely, and changes nothing.
    (stale,) = resident.taps(button(summary, "やり直す"))
    assert "使えなくなっています" in stale["text"]
    assert reports_of(app)[0].status == RECEIVED


def test_typed_place_skip_photo_and_no_description(app: Flask, resident: Resident_) -> None:
    (ask,) = resident.says("通報")
    (photo_step,) = resident.taps(button(ask, "公園"))
    assert "#9910" not in photo_step["text"]
    (place_step,) = resident.taps(button(photo_step, "スキップ"))
    (description_step,) = resident.says("中央公園の北側のベンチ")
    (summary,) = resident.taps(button(description_step, "説明なし"))
    assert "場所：中央公園の北側のベンチ" in summary["text"] and "写真：なし" in summary["text"]
    resident.taps(button(summary, "送信"))
    (report,) = reports_of(app)
    assert (report.status, report.category, report.place_text, report.description) == (
        RECEIVED, "公園", "中央公園の北側のベンチ", None)


def test_cancel_deletes_the_draft_and_its_photo_and_old_buttons_are_stale(
        app: Flask, resident: Resident_, photo_dir: Path) -> None:
    (ask,) = resident.says("通報")
    (photo_step,) = resident.taps(button(ask, "街灯"))
    (place_step,) = resident.sends_image(jpeg_with_gps())
    assert len(list(photo_dir.iterdir())) == 1
    (bye,) = resident.taps(button(place_step, "やめる"))
    assert "やめました" in bye["text"]
    assert reports_of(app) == [] and list(photo_dir.iterdir()) == []
    (stale,) = resident.taps(button(photo_step, "スキップ"))
    assert "使えなくなっています" in stale["text"]
    # Typed やめる works too; after it, text is a question for the FAQ again.
    (ask,) = resident.says("通報")
    (bye,) = resident.says("やめる")
    assert "やめました" in bye["text"] and reports_of(app) == []
    # A button of an older report is refused once a new one started.
    (new_ask,) = resident.says("通報")
    (stale,) = resident.taps(button(ask, "道路"))
    assert "使えなくなっています" in stale["text"]
    (photo_step,) = resident.taps(button(new_ask, "道路"))
    assert "写真" in photo_step["text"]


def test_a_location_or_image_at_another_step_re_asks_the_step(app: Flask, resident: Resident_) -> None:
    resident.says("通報")
    (again,) = resident.sends_location(36.6, 140.1)
    assert "いまは位置情報を受け付けていません" in again["text"] and "分類" in again["text"]
    (again,) = resident.sends_image(jpeg_with_gps())
    assert "いまは写真を受け付けていません" in again["text"]
    assert reports_of(app)[0].step == "category"


def test_a_fetch_that_fails_is_retried_and_then_the_report_goes_on_without_the_photo(
        app: Flask, resident: Resident_, fake_line: FakeLinePlatform, photo_dir: Path) -> None:
    (ask,) = resident.says("通報")
    (photo_step,) = resident.taps(button(ask, "道路"))
    fake_line.fail("content", 500, times=2)  # two failures, then LINE answers: the retry gets the photo
    (place_step,) = resident.sends_image(jpeg_with_gps())
    assert "写真を受け取りました" in place_step["text"]
    assert [r.status for r in content_requests(fake_line)] == [500, 500, 200]

    resident.says("やめる")
    (ask,) = resident.says("通報")
    (photo_step,) = resident.taps(button(ask, "道路"))
    fake_line.fail("content", 503, times=-1)
    before = len(content_requests(fake_line))
    (place_step,) = resident.sends_image(jpeg_with_gps())
    fake_line.clear_faults()
    assert "受け取れませんでした" in place_step["text"] and "写真なしで続けます" in place_step["text"]
    assert len(content_requests(fake_line)) - before == 3  # tried three times
    (description_step,) = resident.says("駅前の交差点")
    (summary,) = resident.taps(button(description_step, "説明なし"))
    assert "写真：なし（受け取れませんでした）" in summary["text"]
    resident.taps(button(summary, "送信"))
    report = reports_of(app)[-1]
    assert report.status == RECEIVED and report.photo_file is None and report.photo_status == "failed"
    assert list(photo_dir.iterdir()) == []


def test_content_the_platform_does_not_have_and_files_that_are_not_photos_are_refused(
        app: Flask, resident: Resident_, fake_line: FakeLinePlatform) -> None:
    (ask,) = resident.says("通報")
    resident.taps(button(ask, "その他"))
    (place_step,) = resident.sends_image(b"GIF89a not a photo we keep")
    assert "受け付けられませんでした" in place_step["text"]
    assert reports_of(app)[0].step == "place"
    # The fake answers 404 for a message id it never sent.
    assert fake_line.__call__ is not None
    gateway = app.extensions["line"]
    with pytest.raises(Exception) as excinfo:
        gateway.get_message_content("1234", attempts=1)
    assert getattr(excinfo.value, "status", None) == 404


def test_a_description_longer_than_500_characters_is_asked_again(app: Flask, resident: Resident_) -> None:
    (ask,) = resident.says("通報")
    (photo_step,) = resident.taps(button(ask, "道路"))
    resident.taps(button(photo_step, "スキップ"))
    resident.says("市役所前")
    (again,) = resident.says("あ" * 501)
    assert "500文字まで" in again["text"] and "501文字" in again["text"]
    assert reports_of(app)[0].step == "description"


def test_the_daily_limit(make_app: Callable[..., Flask], photo_dir: Path, fake_line: FakeLinePlatform) -> None:
    app = make_app(REPORT_PHOTO_DIR=str(photo_dir), REPORT_DAILY_LIMIT=1)
    resident = Resident_(app.test_client(), fake_line, USER)
    (ask,) = resident.says("通報")
    (photo_step,) = resident.taps(button(ask, "道路"))
    resident.taps(button(photo_step, "スキップ"))
    resident.says("市役所前")
    (summary,) = resident.says("穴")
    resident.taps(button(summary, "送信"))
    (refused,) = resident.says("通報")
    assert "1日1件まで" in refused["text"]
    assert [r.status for r in reports_of(app)] == [RECEIVED]


def test_the_rich_menu_button_starts_a_report(app: Flask, resident: Resident_) -> None:
    (ask,) = resident.taps(json.dumps({"a": "rep", "k": "start"}))
    assert "分類" in ask["text"]
    assert reports_of(app)[0].status == DRAFT


def test_a_report_without_a_place_is_not_accepted(app: Flask) -> None:
    with get_db(app).session() as session:
        draft = service.start_draft(session, app.config, resident_id=1)
        service.choose_category(app.config, draft, "道路")
        assert service.submit(session, app.config, draft) is None
        draft.category = None
        service.set_place_text(app.config, draft, "駅前")
        assert service.submit(session, app.config, draft) is None
        assert draft.status == DRAFT


def test_unfollow_deletes_the_draft_and_unlinks_sent_reports(
        app: Flask, resident: Resident_, photo_dir: Path) -> None:
    submitted = _sent_report(app, resident_id=_resident_id(app, resident))
    (ask,) = resident.says("通報")
    (photo_step,) = resident.taps(button(ask, "道路"))
    resident.sends_image(jpeg_with_gps())
    assert len(list(photo_dir.iterdir())) == 1
    resident.unfollows()
    from tests.conftest import wait_until

    wait_until(lambda: all(r.resident_id is None for r in reports_of(app)) and len(reports_of(app)) == 1, 10, "unlinked")
    (left,) = reports_of(app)
    assert left.id == submitted and list(photo_dir.iterdir()) == []


# --- the staff inbox -------------------------------------------------------------------------------


def _resident_id(app: Flask, resident: Chat) -> int:
    resident.says("こんにちは")
    with get_db(app).session() as session:
        return int(session.scalar(select(Resident.id).where(Resident.line_user_id == resident.user_id)))


def _sent_report(app: Flask, resident_id: int | None, category: str = "道路", photo: bytes | None = None,
                 description: str | None = "穴があります", at: dt.datetime | None = None) -> int:
    with get_db(app).session() as session:
        draft = service.start_draft(session, app.config, resident_id or 0)
        draft.resident_id = resident_id
        service.choose_category(app.config, draft, category)
        if photo:
            service.attach_photo(app.config, draft, photos.store(app.config, photo))
        service.set_location(app.config, draft, 36.6585, 140.1528, "中央1丁目")
        service.set_description(app.config, draft, description)
        assert service.submit(session, app.config, draft, now=at)
        return draft.id


def _number(app: Flask, report_id: int) -> str:
    with get_db(app).session() as session:
        return str(session.get(Report, report_id).number)


def _staff(app: Flask, client: FlaskClient, role: str = "reports") -> None:
    make_user(app, f"staff-{role}", role)
    assert login(client, f"staff-{role}").status_code == 302


def _post(client: FlaskClient, path: str, data: dict[str, str], page: str) -> Any:
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)})


@pytest.mark.parametrize("role, allowed", [("reports", True), ("admin", True), ("viewer", False), ("pr", False), ("faq", False)])
def test_only_the_reports_role_and_admin_open_the_inbox(app: Flask, client: FlaskClient, role: str, allowed: bool) -> None:
    number = _number(app, _sent_report(app, None))
    _staff(app, client, role)
    for path in ("/admin/reports", f"/admin/reports/{number}", "/admin/reports/csv"):
        assert client.get(path).status_code == (200 if allowed else 403), path


def test_the_inbox_is_for_staff_only(client: FlaskClient) -> None:
    response = client.get("/admin/reports")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_list_filters_detail_photo_and_csv_never_show_the_line_id(
        app: Flask, client: FlaskClient, resident: Resident_) -> None:
    rid = _resident_id(app, resident)
    road = _sent_report(app, rid, "道路", photo=jpeg_with_gps(), description="=HYPERLINK(\"http://x\")")
    park = _sent_report(app, rid, "公園", at=utcnow() - dt.timedelta(days=3))
    _staff(app, client)
    listed = client.get("/admin/reports").get_data(as_text=True)
    assert _number(app, road) in listed and _number(app, park) in listed and USER not in listed
    only_parks = client.get("/admin/reports?category=公園").get_data(as_text=True)
    assert _number(app, park) in only_parks and _number(app, road) not in only_parks
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=9))).date()
    recent = client.get(f"/admin/reports?from={today.isoformat()}").get_data(as_text=True)
    assert _number(app, road) in recent and _number(app, park) not in recent
    bad = client.get("/admin/reports?from=昨日&status=nope")
    assert bad.status_code == 400 and "2026-12-01 の形" in bad.get_data(as_text=True)

    page = client.get(f"/admin/reports/{_number(app, road)}").get_data(as_text=True)
    assert "https://www.google.com/maps/search/?api=1&amp;query=36.658500,140.152800" in page
    assert "中央1丁目" in page and USER not in page
    picture = client.get(f"/admin/reports/{_number(app, road)}/photo")
    assert picture.status_code == 200 and picture.mimetype == "image/jpeg" and picture.data.startswith(b"\xff\xd8")
    assert "no-store" in picture.headers["Cache-Control"]
    assert client.get(f"/admin/reports/{_number(app, park)}/photo").status_code == 404
    assert client.get("/admin/reports/R-2026-999999").status_code == 404

    csv_text = client.get("/admin/reports/csv?category=道路").get_data(as_text=True)
    lines = csv_text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("通報番号,受付日時,分類,状況") and len(lines) == 2
    assert "'=HYPERLINK" in lines[1] and USER not in csv_text


def test_each_status_change_is_pushed_once_with_a_retry_key(
        app: Flask, client: FlaskClient, resident: Resident_, fake_line: FakeLinePlatform) -> None:
    rid = _resident_id(app, resident)
    number = _number(app, _sent_report(app, rid, "道路"))
    _staff(app, client)
    page = f"/admin/reports/{number}"
    before = len(fake_line.delivered(USER))

    response = _post(client, f"{page}/status", {"status": IN_PROGRESS}, page)
    assert response.status_code == 302
    assert "住民にお知らせしました" in client.get(page).get_data(as_text=True)
    pushes = [d for d in fake_line.deliveries if d.kind == "push" and d.to == [USER]]
    assert len(pushes) == 1 and pushes[0].retry_key
    assert number in pushes[0].messages[0]["text"] and "対応を始めました" in pushes[0].messages[0]["text"]

    # The same change again is refused (対応中 → 対応中), nothing more is sent.
    _post(client, f"{page}/status", {"status": IN_PROGRESS}, page)
    assert len([d for d in fake_line.deliveries if d.kind == "push"]) == 1

    # LINE fails: the change stands, the push waits with its key and the hourly job sends it once.
    fake_line.fail("push", 500, times=1)
    _post(client, f"{page}/status", {"status": DONE}, page)
    assert "まだ送れていません" in client.get(page).get_data(as_text=True)
    assert service.send_pending_notices(app) == 1
    assert service.send_pending_notices(app) == 0
    texts = [m["text"] for m in fake_line.delivered(USER)[before:]]
    assert len(texts) == 2 and "対応が終わりました" in texts[1]
    with get_db(app).session() as session:
        notices = list(session.scalars(select(ReportNotice).order_by(ReportNotice.id)))
        assert [(n.status, n.sent_at is not None) for n in notices] == [(IN_PROGRESS, True), (DONE, True)]
        assert session.scalar(select(func.count()).select_from(UsageEvent).where(UsageEvent.kind == "report_status_push")) == 2
    # A repeat with the stored key is what LINE dedupes: sending the same notice again is a no-op.
    assert service.send_notice(app, notices[1].id) is False


def test_a_rejected_road_report_tells_the_reason_and_the_national_line(
        app: Flask, client: FlaskClient, resident: Resident_, fake_line: FakeLinePlatform) -> None:
    rid = _resident_id(app, resident)
    number = _number(app, _sent_report(app, rid, "道路"))
    _staff(app, client, "admin")
    page = f"/admin/reports/{number}"
    _post(client, f"{page}/status", {"status": REJECTED}, page)
    assert "理由を入力してください" in client.get(page).get_data(as_text=True)
    _post(client, f"{page}/status", {"status": REJECTED, "reason": "県道のため、県の土木事務所が管理しています"}, page)
    (push,) = [d for d in fake_line.deliveries if d.kind == "push"]
    assert "県道のため" in push.messages[0]["text"] and "#9910" in push.messages[0]["text"]


def test_the_note_is_saved_never_sent_and_changes_are_audited(
        app: Flask, client: FlaskClient, resident: Resident_, fake_line: FakeLinePlatform) -> None:
    rid = _resident_id(app, resident)
    number = _number(app, _sent_report(app, rid))
    _staff(app, client)
    page = f"/admin/reports/{number}"
    sent_before = len(fake_line.deliveries)
    _post(client, f"{page}/note", {"note": "12/8 現地確認予定（道路維持係）"}, page)
    assert "現地確認予定" in client.get(page).get_data(as_text=True)
    assert len(fake_line.deliveries) == sent_before
    _post(client, f"{page}/status", {"status": IN_PROGRESS}, page)
    from bot.models import AuditLog

    with get_db(app).session() as session:
        rows = list(session.scalars(select(AuditLog).where(AuditLog.action.like("report_%")).order_by(AuditLog.id)))
        assert [(r.action, r.target) for r in rows] == [("report_note", number), ("report_status", number)]
        assert all("現地確認" not in json.dumps(r.detail, ensure_ascii=False) for r in rows)


def test_the_kpi_counts_reports_by_category_and_status(app: Flask, client: FlaskClient) -> None:
    for category in ("道路", "道路", "公園"):
        _sent_report(app, None, category)
    with get_db(app).session() as session:
        first = session.scalars(select(Report).order_by(Report.id)).first()
        service.change_status(session, first, DONE)
        now = utcnow()
        rows = service.kpi_by_category(session, app.config["MUNICIPALITY"], now - dt.timedelta(days=1),
                                       now + dt.timedelta(days=1), 10)
    assert rows[0] == ("道路", 2, 1, 0, 1, 0, 0) and rows[1] == ("公園", 1, 1, 0, 0, 0, 0)
    _staff(app, client, "viewer")
    month = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=9))).strftime("%Y-%m")
    dashboard = client.get(f"/admin/kpi?month={month}").get_data(as_text=True)
    assert "住民からの通報（分類・状況別）" in dashboard


# --- retention --------------------------------------------------------------------------------------


def test_retention_deletes_old_reports_with_their_photos_and_expired_drafts(app: Flask, photo_dir: Path) -> None:
    old = _sent_report(app, None, photo=jpeg_with_gps(), at=utcnow() - dt.timedelta(days=400))
    recent = _sent_report(app, None, photo=jpeg_with_gps())
    with get_db(app).session() as session:
        draft = service.start_draft(session, app.config, resident_id=7)
        service.choose_category(app.config, draft, "公園")
        service.attach_photo(app.config, draft, photos.store(app.config, jpeg_with_gps()))
        draft.expires_at = utcnow() - dt.timedelta(minutes=1)
        with_notice = session.get(Report, old)
        session.add(ReportNotice(report_id=with_notice.id, status=DONE, retry_key="k", attempts=0, is_dropped=False))
    assert len(list(photo_dir.iterdir())) == 3
    assert "purge_reports" in [job.__name__ for job in app.extensions["maintenance_jobs"]]
    assert service.purge_reports(app) == 2
    left = reports_of(app)
    assert [r.id for r in left] == [recent]
    assert [p.name for p in photo_dir.iterdir()] == [left[0].photo_file]
    with get_db(app).session() as session:
        assert session.scalar(select(func.count()).select_from(ReportNotice)) == 0
