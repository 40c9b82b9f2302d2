"""Notices and their deliveries (the notices issue).

The database is the queue: a `Broadcast` row is the notice and its schedule; each occurrence
that goes out is a `BroadcastRun`, whose recipients are resolved once, at send time, into
`BroadcastChunk` rows of at most 500 LINE user ids, each with its X-Line-Retry-Key, all in one
transaction before the first call. A chunk's final recipient list (minus residents who left since)
is frozen with its first attempt, so every retry sends the same request under the same key and
LINE answers a repeat with 409 instead of delivering twice. `BroadcastDelivery` rows (resident id
per delivered chunk) let unfollows be attributed to the notice that preceded them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow

# Broadcast.status (HELD: nothing more is scheduled and an occurrence waits for an admin)
SCHEDULED, SENDING, SENT, CANCELLED, PAUSED = "scheduled", "sending", "sent", "cancelled", "paused"
HELD = "held"
# Not yet approved (broadcast.approval): drafted by a department and waiting for PR, or returned to it.
# The dispatcher starts only SCHEDULED notices, and only approved ones (approved_at set).
AWAITING_APPROVAL, RETURNED = "awaiting", "returned"
STATUS_LABELS = {
    AWAITING_APPROVAL: "承認待ち",
    RETURNED: "差し戻し",
    SCHEDULED: "予約済み",
    SENDING: "配信中",
    SENT: "配信済み",
    CANCELLED: "取り消し",
    PAUSED: "一時停止",
    HELD: "保留中",
}
# BroadcastRun.status: SENDING, SENT, CANCELLED, HELD (below the privacy floor when its recipients
# were resolved: no chunks, nothing sent, until an admin releases it; `note` says why).
# BroadcastChunk.status: PENDING (not tried), SENDING (recipients frozen, call made or about to be),
# SENT (LINE accepted it, 409 included), FAILED (gave up), SKIPPED (nobody left), CANCELLED.
PENDING, FAILED, SKIPPED = "pending", "failed", "skipped"
UNFINISHED_CHUNK = (PENDING, SENDING)


class Broadcast(Base):
    """A notice: what it says, who it is for, and when it goes out."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_status_next_run_at", "status", "next_run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=SCHEDULED)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)  # broadcast.messages.NoticeContent
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # what LINE receives
    is_emergency: Mapped[bool] = mapped_column(default=False)
    # Target: a saved segment (its current rule is used at send time), an ad hoc rule, or
    # neither (everyone who accepts notices). `rule` also keeps the saved segment's rule as it
    # was when scheduled, used if the segment is deleted before sending.
    segment_name: Mapped[str | None] = mapped_column(String(64))
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON)  # broadcast.schedule.Schedule
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Approval (broadcast.approval): the drafting department (None: PR's own), who approved and
    # when (None: not approved, never sent), and the last approval comment or reason for returning.
    department: Mapped[str | None] = mapped_column(String(64), index=True)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    review_note: Mapped[str | None] = mapped_column(String(500))


class BroadcastRun(Base):
    """One occurrence of a notice going out (a one-off notice has one)."""

    __tablename__ = "broadcast_runs"
    # One run per occurrence, whoever tries to start it.
    __table_args__ = (UniqueConstraint("broadcast_id", "occurrence_at", name="uq_broadcast_runs_occurrence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), index=True)
    occurrence_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=SENDING)
    recipient_count: Mapped[int] = mapped_column(default=0)
    chunk_count: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Unfollows attributed to this run, frozen once the attribution window has closed and
    # before the per-resident delivery rows are purged (None: still computed live).
    block_count: Mapped[int | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(String(200))
    # The LINE statistics unit its multicasts carry (broadcast.insights; None: not counted).
    aggregation_unit: Mapped[str | None] = mapped_column(String(30))


class BroadcastChunk(Base):
    """At most 500 recipients sent in one multicast call, with the retry key stored before the call."""

    __tablename__ = "broadcast_chunks"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_broadcast_chunks_run_seq"),
        Index("ix_broadcast_chunks_run_id_status", "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("broadcast_runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column()
    recipients: Mapped[list[str]] = mapped_column(JSON)  # LINE user ids as resolved
    recipient_count: Mapped[int] = mapped_column()
    retry_key: Mapped[str] = mapped_column(String(36), unique=True)
    # Which version the chunk sends (broadcast.languages.messages_for): None = the Japanese text; a
    # language with a BroadcastVersion = that version; another resident language = the Japanese
    # text with a one-line note in that language. Every chunk holds residents of one such group.
    language: Mapped[str | None] = mapped_column(String(8))
    # Frozen at the first attempt: the resolved list minus residents who left since.
    sent_to: Mapped[list[str] | None] = mapped_column(JSON)
    skipped_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    prepared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Unfollows from sent_at until this moment (24 h later) count against the notice.
    block_window_ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    request_id: Mapped[str | None] = mapped_column(String(64))
    is_already_accepted: Mapped[bool] = mapped_column(default=False)  # LINE answered 409 to a retry
    last_error: Mapped[str | None] = mapped_column(String(300))


class BroadcastVersion(Base):
    """A notice's text in another language (the Japanese text is the notice's own `content`)."""

    __tablename__ = "broadcast_versions"
    __table_args__ = (UniqueConstraint("broadcast_id", "language", name="uq_broadcast_versions_broadcast_language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(8))  # bot language codes other than "ja"
    content: Mapped[dict[str, Any]] = mapped_column(JSON)  # broadcast.messages.NoticeContent
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # what LINE receives


class BroadcastDelivery(Base):
    """A resident in a chunk's frozen recipient list (pseudonymous: the resident row id)."""

    __tablename__ = "broadcast_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    chunk_id: Mapped[int] = mapped_column(ForeignKey("broadcast_chunks.id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[int] = mapped_column(index=True)
