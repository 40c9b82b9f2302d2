"""Usage events: one row per use of the LINE account, never with message bodies; the usage rate's
denominator as an administrator set it on the KPI screen."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String
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


class KpiDenominator(Base):
    """What the LINE usage rate is divided by, as an administrator set it on the KPI screen.

    Every setting is kept; the latest of the city applies (over the one in the KPI settings file).
    """

    __tablename__ = "kpi_denominators"
    __table_args__ = (Index("ix_kpi_denominators_municipality_id", "municipality", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column()
    basis: Mapped[str] = mapped_column(String(16))  # 人口 or 世帯数
    as_of: Mapped[dt.date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(64), default="")
