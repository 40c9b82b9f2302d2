"""Residents: a LINE user id plus only what the resident declared, with consent time."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow


class Resident(Base):
    """A LINE user who follows (or followed) the city's account."""

    __tablename__ = "residents"

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
    interests: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_notices_enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
