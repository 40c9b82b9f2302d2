"""Tables of the sorting dictionary, the 5374 calendar, residents' garbage area and the reminders."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow

SOURCE_ITEMS = "items"  # flask garbage import-items (the standard ごみ分別 dataset)
SOURCE_5374 = "5374"  # target.csv of flask garbage import-calendar


class GarbageItem(Base):
    """One entry of the sorting dictionary: an item and how it is sorted."""

    __tablename__ = "garbage_items"
    __table_args__ = (Index("ix_garbage_items_municipality", "municipality", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(8), default=SOURCE_ITEMS)
    source_id: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(String(200))
    kana: Mapped[str] = mapped_column(String(200), default="")
    category: Mapped[str] = mapped_column(String(100))
    notes: Mapped[str] = mapped_column(Text, default="")
    remarks: Mapped[str] = mapped_column(Text, default="")
    # The file's other columns, kept as they were (地方公共団体名, 品目名_英字, ...).
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GarbageKind(Base):
    """A kind of collection (a column of area_days.csv), with description.csv's row when given."""

    __tablename__ = "garbage_kinds"
    __table_args__ = (UniqueConstraint("municipality", "label", name="uq_garbage_kinds_label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(default=0)
    label: Mapped[str] = mapped_column(String(100))
    sublabel: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")


class GarbageArea(Base):
    """A row of area_days.csv: an area, its centre and the rule of each kind (the cell as written)."""

    __tablename__ = "garbage_areas"
    __table_args__ = (UniqueConstraint("municipality", "name", name="uq_garbage_areas_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(200))
    center: Mapped[str] = mapped_column(String(100), default="")
    rules: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class GarbageBreak(Base):
    """A row of center.csv: no collection from start to end (both included) for the centre's areas."""

    __tablename__ = "garbage_breaks"

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32), index=True)
    center: Mapped[str] = mapped_column(String(100))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)


class GarbageResident(Base):
    """What a resident declared for garbage: their collection area (with the time they agreed to
    store it) and whether they want the evening-before reminder. Deleted on unfollow and
    「登録情報を削除」."""

    __tablename__ = "garbage_residents"

    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    area: Mapped[str] = mapped_column(String(200))
    consented_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_reminder_enabled: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GarbageReminderRun(Base):
    """The reminder for one area's collection day: created once (the unique key), with its chunks."""

    __tablename__ = "garbage_reminder_runs"
    __table_args__ = (UniqueConstraint("municipality", "collection_date", "area", name="uq_garbage_reminder_runs"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    collection_date: Mapped[dt.date] = mapped_column(Date)
    area: Mapped[str] = mapped_column(String(200))
    kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    recipient_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class GarbageReminderChunk(Base):
    """At most 500 recipients of a run, with the retry key stored before the multicast is sent."""

    __tablename__ = "garbage_reminder_chunks"
    __table_args__ = (Index("ix_garbage_reminder_chunks_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("garbage_reminder_runs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(default=0)
    language: Mapped[str | None] = mapped_column(String(8))
    line_user_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    retry_key: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    request_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
