"""Usage events: one row per use of the LINE account, never with message bodies."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow


class UsageEvent(Base):
    """One countable use (follow, message, decision, vote, notice...)."""

    __tablename__ = "usage_events"
    __table_args__ = (Index("ix_usage_events_kind_at", "kind", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Pseudonymous: the resident row id, not the LINE user id.
    resident_id: Mapped[int | None] = mapped_column(index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
