"""Residents: a LINE user id plus only what the resident declared, with consent time."""

from __future__ import annotations

import datetime as dt

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow


class Resident(Base):
    """A LINE user who follows (or followed) the city's account."""

    __tablename__ = "residents"
    __table_args__ = (Index("ix_residents_eligible", "is_following", "is_notices_enabled", "consented_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    line_user_id: Mapped[str] = mapped_column(String(64), unique=True)
    is_following: Mapped[bool] = mapped_column(default=True, index=True)
    followed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    unfollowed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Declared attributes: all empty until the resident consents and chooses.
    consented_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    age_band: Mapped[str | None] = mapped_column(String(16))
    gender: Mapped[str | None] = mapped_column(String(16))
    area: Mapped[str | None] = mapped_column(String(64))
    # One bit per interest (segments.vocab.INTERESTS): segment rules filter with bitwise AND in SQL.
    interests_mask: Mapped[int] = mapped_column(default=0)
    is_notices_enabled: Mapped[bool] = mapped_column(default=True)
    # The language the resident chose for the bot's messages (bot.i18n codes: "en", "ja-easy", ...);
    # None = not chosen = Japanese. Declared with consent and removed like the other attributes.
    language: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Segment(Base):
    """A named segment rule PR staff can target (the rule is segments.rules.SegmentRule as JSON)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
