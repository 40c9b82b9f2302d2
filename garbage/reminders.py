"""The evening-before reminder, sent by the dispatcher's clock (`send_reminders`, every minute).

For each collection day whose reminder time (GARBAGE_REMINDER_TIME the evening before, Japan time)
has come and not passed by more than GARBAGE_REMINDER_LATE_MINUTES, one run per area with a kind
collected that day (a day in its centre's break has none) and residents to tell is created once: the unique key
(city, day, area) makes a second creation fail, so a restarted or doubled job cannot send twice.
Its recipients (residents following, with that area and the reminder on) are split into chunks of
at most 500 per language, each with a retry key stored with it before any multicast. A chunk LINE
did not confirm is sent again with the same key (LINE answers 409 if it had accepted it); after the
window it is marked failed, never sent late.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db import get_db, utcnow
from bot.i18n import city_languages, translate
from bot.line import MAX_MULTICAST_RECIPIENTS, LineError, LineRejected, new_retry_key
from garbage import service, texts
from garbage.models import GarbageArea, GarbageReminderChunk, GarbageReminderRun, GarbageResident
from segments.models import Resident

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
PENDING, SENT, FAILED = "pending", "sent", "failed"


@dataclass
class ReminderReport:
    """What one call of the job did."""

    runs: int = 0
    sent_chunks: int = 0
    failed_chunks: int = 0
    recipients: int = 0


def reminder_time(config: dict[str, Any]) -> dt.time:
    """GARBAGE_REMINDER_TIME as a time ("19:00")."""
    hours, _, minutes = str(config["GARBAGE_REMINDER_TIME"]).partition(":")
    return dt.time(int(hours), int(minutes or 0))


def due_dates(now: dt.datetime, at: dt.time, late_minutes: int) -> list[dt.date]:
    """The collection days whose reminder is due at `now`: sent at `at` the evening before, and
    still within `late_minutes` after it (a dispatcher that was down sends late only that long)."""
    local = now.astimezone(service.JST)
    window = dt.timedelta(minutes=max(0, late_minutes))
    found = []
    for collection in (local.date() + dt.timedelta(days=1), local.date()):
        send_at = dt.datetime.combine(collection - dt.timedelta(days=1), at, service.JST)
        if send_at <= local <= send_at + window:
            found.append(collection)
    return found


def create_runs(session: Session, municipality: str, day: dt.date) -> int:
    """Create the runs (with chunks and retry keys) for the areas collected on `day`; returns how
    many were created now (an existing one is left as it is)."""
    created = 0
    for area in session.scalars(select(GarbageArea.name).where(GarbageArea.municipality == municipality)
                                .order_by(GarbageArea.position)).all():
        exists = session.scalar(select(GarbageReminderRun.id).where(
            GarbageReminderRun.municipality == municipality, GarbageReminderRun.collection_date == day,
            GarbageReminderRun.area == area))
        if exists is not None:
            continue
        area_calendar = service.area_calendar(session, municipality, area)
        kinds = [k for d, ks in area_calendar.days(day, 1) for k in ks] if area_calendar else []
        if not kinds:
            continue
        recipients = session.execute(
            select(Resident.line_user_id, Resident.language).join(GarbageResident, GarbageResident.resident_id == Resident.id)
            .where(GarbageResident.municipality == municipality, GarbageResident.area == area,
                   GarbageResident.is_reminder_enabled.is_(True), Resident.is_following.is_(True))
            .order_by(Resident.id)).all()
        if not recipients:  # nobody asked (yet: a resident opting in within the window is still reached)
            continue
        by_language: dict[str | None, list[str]] = {}
        for user_id, language in recipients:
            by_language.setdefault(language, []).append(user_id)
        try:
            with session.begin_nested():
                run = GarbageReminderRun(municipality=municipality, collection_date=day, area=area, kinds=kinds,
                                         recipient_count=len(recipients))
                session.add(run)
                session.flush()
                seq = 0
                for language, user_ids in by_language.items():
                    for start in range(0, len(user_ids), MAX_MULTICAST_RECIPIENTS):
                        session.add(GarbageReminderChunk(run_id=run.id, seq=seq, language=language,
                                                         line_user_ids=user_ids[start:start + MAX_MULTICAST_RECIPIENTS],
                                                         retry_key=new_retry_key(), status=PENDING))
                        seq += 1
        except IntegrityError:  # another job created it first: that one sends it
            continue
        created += 1
    return created


def reminder_message(run: GarbageReminderRun, language: str | None, session: Session | None = None) -> dict[str, Any]:
    """The reminder as a LINE text message in the chunk's language (its recipients' stored language);
    the kinds are the city's Japanese words, so a resident of another language gets the note on top
    (with the city's contact when a session is given)."""
    body = translate(texts.REMINDER, language, date=texts.date_label(run.collection_date, language), area=run.area,
                     kinds="、".join(run.kinds))
    if session is not None:
        from bot import japanese_note

        body = japanese_note.with_note(body, session, run.municipality, language,
                                       japanese_note.untranslated(run.kinds, language))
    return {"type": "text", "text": body}


def _send_chunk(app: Flask, chunk_id: int, report: ReminderReport) -> None:
    db = get_db(app)
    with db.read_session() as session:
        chunk = session.get(GarbageReminderChunk, chunk_id)
        if chunk is None or chunk.status != PENDING:
            return
        run = session.get(GarbageReminderRun, chunk.run_id)
        assert run is not None
        # The chat's rule: a language the city no longer offers is Japanese (handlers.context).
        language = chunk.language if chunk.language in city_languages(app.config) else None
        to, key, message = list(chunk.line_user_ids), chunk.retry_key, reminder_message(run, language, session)
    try:
        result = app.extensions["line"].multicast(to, [message], retry_key=key)
    except LineError as exc:
        final = isinstance(exc, LineRejected)
        with db.session() as session:
            chunk = session.get(GarbageReminderChunk, chunk_id)
            assert chunk is not None
            chunk.attempts += 1
            chunk.last_error = str(exc)[:500]
            if final or chunk.attempts >= MAX_ATTEMPTS:
                chunk.status = FAILED
                report.failed_chunks += 1
        log.warning("garbage reminder chunk %s not sent: %s", chunk_id, exc)
        return
    with db.session() as session:
        chunk = session.get(GarbageReminderChunk, chunk_id)
        assert chunk is not None
        chunk.attempts += 1
        chunk.status, chunk.request_id, chunk.sent_at = SENT, result.request_id, utcnow()
    report.sent_chunks += 1
    report.recipients += len(to)


def send_reminders(app: Flask, now: dt.datetime | None = None) -> ReminderReport:
    """The clock's job: create the due runs, send their pending chunks, fail those past the window."""
    now = now or utcnow()
    config = app.config
    municipality = str(config["MUNICIPALITY"])
    days = due_dates(now, reminder_time(config), int(config["GARBAGE_REMINDER_LATE_MINUTES"]))
    report = ReminderReport()
    db = get_db(app)
    if days:
        with db.session() as session:
            if not service.has_calendar(session, municipality):
                return report
            for day in days:
                report.runs += create_runs(session, municipality, day)
    with db.session() as session:
        # Pending chunks of days no longer due: their evening has passed; never sent late.
        stale = select(GarbageReminderRun.id).where(GarbageReminderRun.municipality == municipality,
                                                    GarbageReminderRun.collection_date.not_in(days or [dt.date.min]))
        report.failed_chunks += session.execute(
            update(GarbageReminderChunk).where(GarbageReminderChunk.status == PENDING,
                                               GarbageReminderChunk.run_id.in_(stale))
            .values(status=FAILED, last_error="the reminder's time window passed")).rowcount or 0
        pending = list(session.scalars(
            select(GarbageReminderChunk.id).join(GarbageReminderRun, GarbageReminderRun.id == GarbageReminderChunk.run_id)
            .where(GarbageReminderChunk.status == PENDING, GarbageReminderRun.municipality == municipality)
            .order_by(GarbageReminderChunk.id)))
    for chunk_id in pending:
        _send_chunk(app, chunk_id, report)
    if report.runs or report.sent_chunks or report.failed_chunks:
        log.info("garbage reminders: %d run(s) created, %d chunk(s) sent to %d resident(s), %d failed",
                 report.runs, report.sent_chunks, report.recipients, report.failed_chunks)
    return report


def purge(app: Flask, now: dt.datetime | None = None) -> int:
    """The hourly job: reminder runs and their recipient lists past GARBAGE_REMINDER_RETENTION_DAYS."""
    with get_db(app).session() as session:
        return service.purge_reminder_runs(session, int(app.config["GARBAGE_REMINDER_RETENTION_DAYS"]), now)
