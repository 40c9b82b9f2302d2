"""Reports: one row per report (a draft while the resident is still answering), and its status pushes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow

# Status of a report. A draft is still being answered in the chat; the others are what staff set.
DRAFT = "draft"
RECEIVED = "received"
IN_PROGRESS = "in_progress"
DONE = "done"
REJECTED = "rejected"
STATUS_LABELS = {DRAFT: "入力中", RECEIVED: "受付", IN_PROGRESS: "対応中", DONE: "完了", REJECTED: "対象外"}
SUBMITTED_STATUSES = (RECEIVED, IN_PROGRESS, DONE, REJECTED)
# The steps a draft goes through in the chat.
STEPS = ("category", "photo", "place", "description", "confirm")
# What happened to the photo step.
PHOTO_NONE, PHOTO_ATTACHED, PHOTO_SKIPPED, PHOTO_FAILED = "none", "attached", "skipped", "failed"


class Report(Base):
    """A resident's report; `resident_id` is the only link to the resident (never shown to staff)."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_resident_status", "resident_id", "status"),
        Index("ix_reports_status_submitted", "status", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    # R-2026-000123: shown to staff and to the resident instead of anything that names the resident.
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    # segments' residents.id; None once the resident unfollowed or deleted their data (no FK: the
    # reports branch of the migrations starts from the foundation schema).
    resident_id: Mapped[int | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    step: Mapped[str] = mapped_column(String(16), default="category")
    # Raised at every step change: buttons carry it, so a button of an earlier step is stale.
    revision: Mapped[int] = mapped_column(default=0)
    category: Mapped[str | None] = mapped_column(String(32))
    photo_status: Mapped[str] = mapped_column(String(16), default=PHOTO_NONE)
    photo_file: Mapped[str | None] = mapped_column(String(80))  # a file name under REPORT_PHOTO_DIR
    photo_type: Mapped[str | None] = mapped_column(String(16))  # image/jpeg | image/png
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(300))  # LINE's address of a sent location
    place_text: Mapped[str | None] = mapped_column(String(300))  # the place typed by the resident
    description: Mapped[str | None] = mapped_column(Text)
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    staff_note: Mapped[str | None] = mapped_column(Text)  # internal, never sent
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # a draft's end
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReportNotice(Base):
    """A status push to the resident: one per report and status, its retry key stored before sending."""

    __tablename__ = "report_notices"
    __table_args__ = (UniqueConstraint("report_id", "status", name="uq_report_notices_report_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    retry_key: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    # True when it will not be sent (the resident unfollowed or deleted their data, or LINE refused it).
    is_dropped: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
