"""The webhook inbox: every accepted event is stored here before LINE gets its 200."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow

PENDING, PROCESSING, DONE, FAILED = "pending", "processing", "done", "failed"


class InboxEvent(Base):
    """One webhook event, from receipt to processed (or failed)."""

    __tablename__ = "inbox_events"
    __table_args__ = (Index("ix_inbox_events_status_lease", "status", "lease_until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # LINE's webhookEventId (or a content hash when absent): the redelivery dedupe key.
    webhook_event_id: Mapped[str] = mapped_column(String(128), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    event_timestamp_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    # Who holds the claim (handlers.owner): a process that starts takes back its dead neighbours' claims.
    claim_owner: Mapped[str | None] = mapped_column(String(200))
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Set once the handler's database work is committed; `outgoing` then holds what to send,
    # so a crash after that point re-sends (idempotently) instead of re-running the handler.
    is_handled: Mapped[bool] = mapped_column(default=False)
    outgoing: Mapped[list[Any] | None] = mapped_column(JSON)
    # True once a reply call's outcome was unknown (timeout): never fall back to push then.
    is_reply_uncertain: Mapped[bool] = mapped_column(default=False)
    # Exception class and LINE status/request id only: never the resident's text.
    last_error: Mapped[str | None] = mapped_column(Text)
