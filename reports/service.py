"""Reports as a plain service: the draft a resident fills in the chat, submission, staff status
changes with their pushes, retention and deletion. Callers pass the session and the settings;
nothing here builds a chat message except the plain-text status push.

Privacy: descriptions, places and photos are never logged; staff see a report number, never the
resident's LINE id. When a resident unfollows or deletes their data, their draft is deleted and
their submitted reports lose the link to them (the city keeps the report itself until
REPORT_RETENTION_DAYS, as it is a record of a problem in town, not of the person).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from bot.dates import JST
from bot.i18n import city_languages
from bot.db import get_db, utcnow
from bot.line import LineError, LineGateway, LineRejected, new_retry_key
from reports import photos
from reports.models import (
    DONE, DRAFT, IN_PROGRESS, PHOTO_ATTACHED, PHOTO_FAILED, PHOTO_NONE, PHOTO_SKIPPED, RECEIVED, REJECTED,
    STATUS_LABELS, SUBMITTED_STATUSES, Report, ReportNotice,
)
from reports.texts import status_message
from segments.models import Resident

log = logging.getLogger(__name__)
MAX_DESCRIPTION = 500
MAX_PLACE_TEXT = 300
MAX_NOTE = 4000
MAX_REASON = 500
ROAD = "道路"
# Staff may move a report forward only; 完了 and 対象外 are final.
TRANSITIONS = {RECEIVED: (IN_PROGRESS, DONE, REJECTED), IN_PROGRESS: (DONE, REJECTED), DONE: (), REJECTED: ()}
PUSHED_STATUSES = (IN_PROGRESS, DONE, REJECTED)


class ReportError(ValueError):
    """A staff action refused; the message is Japanese for staff."""


def categories(config: Any) -> list[str]:
    """The city's categories (REPORT_CATEGORIES, comma-separated), in order."""
    seen: list[str] = []
    for raw in str(config.get("REPORT_CATEGORIES") or "").split(","):
        name = unicodedata.normalize("NFKC", raw).strip()[:32]
        if name and name not in seen:
            seen.append(name)
    return seen


def report_number(report: Report) -> str:
    """R-2026-000123: the year (Japan time) it was sent and its id."""
    at = report.submitted_at or report.created_at or utcnow()
    return f"R-{at.astimezone(JST).year}-{report.id:06d}"


# --- the draft, step by step ---------------------------------------------------------------------


def current_draft(session: Session, resident_id: int | None, now: dt.datetime | None = None) -> Report | None:
    """The resident's report in progress (not expired), if any."""
    if resident_id is None:
        return None
    now = now or utcnow()
    return session.scalars(
        select(Report).where(Report.resident_id == resident_id, Report.status == DRAFT, Report.expires_at > now)
        .order_by(Report.id.desc()).limit(1)
    ).first()


def _start_of_jst_day(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(JST)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def sent_today(session: Session, resident_id: int, now: dt.datetime | None = None) -> int:
    """Reports the resident sent since midnight, Japan time."""
    start = _start_of_jst_day(now or utcnow())
    return int(session.scalar(select(func.count(Report.id)).where(
        Report.resident_id == resident_id, Report.status.in_(SUBMITTED_STATUSES), Report.submitted_at >= start)) or 0)


def over_daily_limit(session: Session, config: Any, resident_id: int, now: dt.datetime | None = None) -> bool:
    """True when the resident already sent REPORT_DAILY_LIMIT reports today (0: no limit)."""
    limit = int(config["REPORT_DAILY_LIMIT"])
    return limit > 0 and sent_today(session, resident_id, now) >= limit


def _touch(config: Any, draft: Report, step: str, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    draft.step = step
    draft.revision += 1
    draft.expires_at = now + dt.timedelta(minutes=int(config["REPORT_DRAFT_MINUTES"]))


def _drop_photo(config: Any, draft: Report) -> None:
    photos.delete(config, draft.photo_file)
    draft.photo_file = draft.photo_type = None
    draft.photo_status = PHOTO_NONE


def start_draft(session: Session, config: Any, resident_id: int, now: dt.datetime | None = None) -> Report:
    """A fresh draft at the category step; an earlier draft of the resident (expired or not) is deleted."""
    for old in session.scalars(select(Report).where(Report.resident_id == resident_id, Report.status == DRAFT)):
        photos.delete(config, old.photo_file)
        session.delete(old)
    # A random first revision: an id SQLite reuses after a deletion never revives an old draft's buttons.
    draft = Report(municipality=str(config["MUNICIPALITY"]), resident_id=resident_id, status=DRAFT,
                   revision=secrets.randbelow(2**30),
                   photo_status=PHOTO_NONE)
    _touch(config, draft, "category", now)
    session.add(draft)
    session.flush()
    return draft


def restart(config: Any, draft: Report) -> None:
    """「やり直す」: everything answered is forgotten, back to the category."""
    _drop_photo(config, draft)
    draft.category = draft.latitude = draft.longitude = draft.address = draft.place_text = draft.description = None
    _touch(config, draft, "category")


def cancel(session: Session, config: Any, draft: Report) -> None:
    """「やめる」: the draft and its photo are deleted."""
    photos.delete(config, draft.photo_file)
    session.delete(draft)
    session.flush()


def choose_category(config: Any, draft: Report, category: str) -> bool:
    """Set the category (one of the city's); False for anything else."""
    if category not in categories(config):
        return False
    draft.category = category
    _touch(config, draft, "photo")
    return True


def attach_photo(config: Any, draft: Report, stored: photos.StoredPhoto | None) -> None:
    """The photo step done: a stored photo, or None when fetching or checking it failed."""
    _drop_photo(config, draft)
    if stored is None:
        draft.photo_status = PHOTO_FAILED
    else:
        draft.photo_file, draft.photo_type, draft.photo_status = stored.file_name, stored.content_type, PHOTO_ATTACHED
    _touch(config, draft, "place")


def skip_photo(config: Any, draft: Report) -> None:
    """「スキップ」: no photo."""
    _drop_photo(config, draft)
    draft.photo_status = PHOTO_SKIPPED
    _touch(config, draft, "place")


def set_location(config: Any, draft: Report, latitude: float, longitude: float, address: str | None) -> None:
    """The place as LINE's location message gave it."""
    draft.latitude, draft.longitude = round(latitude, 6), round(longitude, 6)
    draft.address = (address or "").strip()[:300] or None
    draft.place_text = None
    _touch(config, draft, "description")


def set_place_text(config: Any, draft: Report, text: str) -> bool:
    """The place typed by the resident (trimmed); False for empty text."""
    place = " ".join(unicodedata.normalize("NFKC", text).split())[:MAX_PLACE_TEXT]
    if not place:
        return False
    draft.place_text = place
    draft.latitude = draft.longitude = draft.address = None
    _touch(config, draft, "description")
    return True


def set_description(config: Any, draft: Report, text: str | None) -> bool:
    """The short description (None: none given); False when longer than MAX_DESCRIPTION characters."""
    value = (text or "").strip()
    if len(value) > MAX_DESCRIPTION:
        return False
    draft.description = value or None
    _touch(config, draft, "confirm")
    return True


def has_place(report: Report) -> bool:
    """Whether the report says where (a location or a typed place)."""
    return (report.latitude is not None and report.longitude is not None) or bool(report.place_text)


def submit(session: Session, config: Any, draft: Report, now: dt.datetime | None = None) -> str | None:
    """Send the draft to the city: its number, or None when it lacks a category or a place."""
    if not draft.category or draft.category not in categories(config) or not has_place(draft):
        return None
    now = now or utcnow()
    draft.status, draft.submitted_at, draft.status_changed_at, draft.expires_at = RECEIVED, now, now, None
    draft.step = "sent"
    draft.revision += 1
    draft.number = report_number(draft)
    session.flush()
    log.info("report submitted: report=%s category_index=%s", draft.id, categories(config).index(draft.category))
    return draft.number


def place_label(report: Report) -> str:
    """The place as text: the typed place, else LINE's address, else the coordinates."""
    if report.place_text:
        return report.place_text
    if report.address:
        return report.address
    if report.latitude is not None and report.longitude is not None:
        return f"緯度 {report.latitude:.6f}、経度 {report.longitude:.6f}"
    return ""


def map_url(report: Report) -> str | None:
    """A Google Maps search link for the location (None for a typed place)."""
    if report.latitude is None or report.longitude is None:
        return None
    return f"https://www.google.com/maps/search/?api=1&query={report.latitude:.6f},{report.longitude:.6f}"


# --- staff ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFilter:
    """The inbox's filters (all optional); dates are Japan-time days, inclusive."""

    category: str | None = None
    status: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None


def _jst_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=JST).astimezone(dt.UTC)


def list_reports(session: Session, municipality: str, filters: ReportFilter, limit: int = 200,
                 offset: int = 0) -> tuple[list[Report], int]:
    """Submitted reports, newest first, and how many match in all."""
    query = select(Report).where(Report.municipality == municipality, Report.status.in_(SUBMITTED_STATUSES))
    if filters.category:
        query = query.where(Report.category == filters.category)
    if filters.status:
        query = query.where(Report.status == filters.status)
    if filters.date_from:
        query = query.where(Report.submitted_at >= _jst_midnight(filters.date_from))
    if filters.date_to:
        query = query.where(Report.submitted_at < _jst_midnight(filters.date_to + dt.timedelta(days=1)))
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = list(session.scalars(query.order_by(Report.submitted_at.desc(), Report.id.desc()).limit(limit).offset(offset)))
    return rows, total


def get_by_number(session: Session, municipality: str, number: str) -> Report | None:
    """A submitted report by its number."""
    return session.scalars(select(Report).where(
        Report.municipality == municipality, Report.number == number, Report.status.in_(SUBMITTED_STATUSES))).first()


def change_status(session: Session, report: Report, status: str, reason: str | None = None,
                  now: dt.datetime | None = None) -> ReportNotice | None:
    """Move a report on (受付 → 対応中 → 完了, or 対象外 with a reason) and queue its push to the
    resident: the retry key is stored with the change, before anything is sent. Returns the
    queued notice (None when the resident is no longer linked)."""
    if status not in TRANSITIONS.get(report.status, ()):
        raise ReportError(f"「{STATUS_LABELS.get(report.status, report.status)}」から「{STATUS_LABELS.get(status, status)}」には変更できません。")
    reason = (reason or "").strip()
    if status == REJECTED:
        if not reason:
            raise ReportError("対象外にする理由を入力してください（住民にお知らせします）。")
        if len(reason) > MAX_REASON:
            raise ReportError(f"理由は{MAX_REASON}文字以内で入力してください。")
        report.reject_reason = reason
    report.status = status
    report.status_changed_at = now or utcnow()
    if report.resident_id is None:
        session.flush()
        return None
    notice = ReportNotice(report_id=report.id, status=status, retry_key=new_retry_key(), attempts=0, is_dropped=False)
    session.add(notice)
    session.flush()
    return notice


def set_note(report: Report, note: str) -> None:
    """The internal note (never sent to the resident)."""
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ReportError(f"メモは{MAX_NOTE}文字以内で入力してください。")
    report.staff_note = note or None


def notices_of(session: Session, report: Report) -> list[ReportNotice]:
    """The status pushes of a report, oldest first."""
    return list(session.scalars(select(ReportNotice).where(ReportNotice.report_id == report.id).order_by(ReportNotice.id)))


# --- status pushes -------------------------------------------------------------------------------


def _line_user(session: Session, resident_id: int | None) -> tuple[str, str | None] | None:
    """(LINE user id, language) of a resident who still follows the account."""
    if resident_id is None:
        return None
    row = session.execute(select(Resident.line_user_id, Resident.language, Resident.is_following)
                          .where(Resident.id == resident_id)).first()
    if row is None or not row.is_following:
        return None
    return row.line_user_id, row.language


def send_notice(app: Flask, notice_id: int, max_attempts: int = 10) -> bool:
    """Push one queued status notice with its stored retry key; True when LINE has it (now or before).

    A 409 for the key means LINE already accepted it: counted as sent, never sent twice. A
    refusal (4xx) drops it; a 5xx, 429 or timeout leaves it for the next try (the hourly job).
    """
    from kpi.service import record_usage

    gateway: LineGateway = app.extensions["line"]
    db = get_db(app)
    with db.session() as session:
        notice = session.get(ReportNotice, notice_id)
        if notice is None or notice.sent_at is not None or notice.is_dropped:
            return False
        report = session.get(Report, notice.report_id)
        target = _line_user(session, report.resident_id if report else None)
        if report is None or target is None:
            notice.is_dropped, notice.last_error = True, "resident not linked or not following"
            return False
        notice.attempts += 1
        language = target[1] if target[1] in city_languages(app.config) else None  # as the chat (handlers.context)
        message = {"type": "text", "text": status_message(report, notice.status, language, categories(app.config),
                                                          session, str(app.config["MUNICIPALITY"]))}
        user_id, retry_key, resident_id, status = target[0], notice.retry_key, report.resident_id, notice.status
        category = report.category
    error: str | None = None
    dropped = False
    try:
        gateway.push(user_id, [message], retry_key=retry_key)
    except LineRejected as exc:
        error, dropped = str(exc)[:300], True
    except LineError as exc:
        error = str(exc)[:300]
    with db.session() as session:
        notice = session.get(ReportNotice, notice_id)
        if notice is None:
            return False
        if error is None:
            notice.sent_at, notice.last_error = utcnow(), None
            record_usage(session, "report_status_push", resident_id, status=status, category=category)
            return True
        notice.last_error = error
        notice.is_dropped = dropped or notice.attempts >= max_attempts
        log.warning("report status push failed: notice=%s attempt=%d %s", notice_id, notice.attempts, error)
        return False


def send_pending_notices(app: Flask) -> int:
    """The hourly job: push every queued status notice not yet sent; returns how many went out."""
    with get_db(app).read_session() as session:
        ids = list(session.scalars(select(ReportNotice.id).where(
            ReportNotice.sent_at.is_(None), ReportNotice.is_dropped.is_(False)).order_by(ReportNotice.id)))
    return sum(1 for notice_id in ids if send_notice(app, notice_id))


# --- privacy and retention -----------------------------------------------------------------------


def forget_resident(session: Session, config: Any, resident_id: int | None) -> None:
    """Unfollow or 「登録情報を削除」: the draft goes, sent reports lose their link to the resident,
    unsent status pushes are dropped."""
    if resident_id is None:
        return
    for draft in session.scalars(select(Report).where(Report.resident_id == resident_id, Report.status == DRAFT)):
        photos.delete(config, draft.photo_file)
        session.delete(draft)
    linked = select(Report.id).where(Report.resident_id == resident_id).scalar_subquery()
    session.execute(update(ReportNotice).where(ReportNotice.report_id.in_(linked), ReportNotice.sent_at.is_(None))
                    .values(is_dropped=True, last_error="resident forgotten"))
    session.execute(update(Report).where(Report.resident_id == resident_id).values(resident_id=None))
    session.flush()


def purge_reports(app: Flask, now: dt.datetime | None = None) -> int:
    """Delete reports sent more than REPORT_RETENTION_DAYS ago and drafts past their end, with their
    photos; returns how many reports were deleted. 0 days keeps sent reports (drafts still go)."""
    now = now or utcnow()
    days = int(app.config["REPORT_RETENTION_DAYS"])
    with get_db(app).session() as session:
        old = (Report.status == DRAFT) & (Report.expires_at < now)
        if days > 0:
            old = old | (Report.status.in_(SUBMITTED_STATUSES) & (Report.submitted_at < now - dt.timedelta(days=days)))
        rows = session.execute(select(Report.id, Report.photo_file).where(old)).all()
        for row in rows:
            photos.delete(app.config, row.photo_file)
        ids = [row.id for row in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            session.execute(delete(ReportNotice).where(ReportNotice.report_id.in_(chunk)))
            session.execute(delete(Report).where(Report.id.in_(chunk)))
    if ids:
        log.info("report retention: %d report(s) deleted", len(ids))
    return len(ids)


# --- KPI and CSV -----------------------------------------------------------------------------------


def kpi_by_category(session: Session, municipality: str, start: dt.datetime, end: dt.datetime,
                    limit: int) -> Sequence[Sequence[Any]]:
    """Reports sent in the month by category: all, and how many are now 受付, 対応中, 完了, 対象外;
    and the status pushes sent in the month."""
    counts = session.execute(
        select(Report.category, Report.status, func.count(Report.id))
        .where(Report.municipality == municipality, Report.status.in_(SUBMITTED_STATUSES),
               Report.submitted_at >= start, Report.submitted_at < end)
        .group_by(Report.category, Report.status)
    ).all()
    pushes = dict(session.execute(
        select(Report.category, func.count(ReportNotice.id)).join(Report, Report.id == ReportNotice.report_id)
        .where(Report.municipality == municipality, ReportNotice.sent_at >= start, ReportNotice.sent_at < end)
        .group_by(Report.category)
    ).all())
    table: dict[str, dict[str, int]] = {}
    for category, status, count in counts:
        table.setdefault(category or "（なし）", {})[status] = int(count)
    for category in pushes:
        table.setdefault(category or "（なし）", {})
    rows = []
    for category, by_status in table.items():
        total = sum(by_status.values())
        rows.append((category, total, *(by_status.get(s, 0) for s in SUBMITTED_STATUSES), int(pushes.get(category, 0))))
    rows.sort(key=lambda r: (-r[1], r[0]))
    return rows[:limit]


CSV_COLUMNS = ("通報番号", "受付日時", "分類", "状況", "状況の更新日時", "場所", "緯度", "経度", "地図", "写真", "説明",
               "対象外の理由", "メモ（内部）")


def csv_row(report: Report) -> list[Any]:
    """One report as a CSV row (never the resident's id)."""
    from bot.dates import jst_datetime

    photo = {PHOTO_ATTACHED: "あり", PHOTO_FAILED: "取得できず", PHOTO_SKIPPED: "なし", PHOTO_NONE: "なし"}
    return [report.number, jst_datetime(report.submitted_at), report.category, STATUS_LABELS.get(report.status, report.status),
            jst_datetime(report.status_changed_at), place_label(report),
            "" if report.latitude is None else f"{report.latitude:.6f}",
            "" if report.longitude is None else f"{report.longitude:.6f}", map_url(report) or "",
            photo.get(report.photo_status, ""), report.description or "", report.reject_reason or "", report.staff_note or ""]
