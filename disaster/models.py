"""Disaster mode's state and the city's shelters (designated emergency evacuation sites and shelters)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow
from bot.i18n import N_

# Shelter.kind: 指定緊急避難場所 (flee to now, per hazard) or 指定避難所 (stay until it is safe).
EMERGENCY_SITE, SHELTER = "emergency_site", "shelter"
KIND_LABELS = {EMERGENCY_SITE: N_("指定緊急避難場所"), SHELTER: N_("指定避難所")}


class DisasterState(Base):
    """The city's disaster mode: one row per city, switched by staff; survives restarts.

    `is_menu_applied` is False while LINE has not yet been told the menu of the current state (a
    switch whose LINE calls failed after their retries): the maintenance job tries again.
    """

    __tablename__ = "disaster_state"

    municipality: Mapped[str] = mapped_column(String(32), primary_key=True)
    is_on: Mapped[bool] = mapped_column(default=False)
    # The hazard staff named when switching on (disaster.hazards code), so residents are not asked.
    hazard: Mapped[str | None] = mapped_column(String(16))
    is_menu_applied: Mapped[bool] = mapped_column(default=True)
    # The disaster rich menu on LINE (created once, reused) and the default menu to give back.
    disaster_menu_id: Mapped[str | None] = mapped_column(String(64))
    normal_menu_id: Mapped[str | None] = mapped_column(String(64))
    # The emergency notice sent with the latest switch-on (a broadcasts row), at most one per switch.
    # (No foreign key: the broadcast tables are another feature's migration branch.)
    emergency_broadcast_id: Mapped[int | None] = mapped_column()
    switched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    switched_by: Mapped[str] = mapped_column(String(64), default="")


class Shelter(Base):
    """One designated site or shelter from the city's open data; staff open and close it."""

    __tablename__ = "shelters"
    __table_args__ = (
        UniqueConstraint("municipality", "kind", "source_id", name="uq_shelters_source"),
        Index("ix_shelters_municipality_open", "municipality", "is_open"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[str] = mapped_column(String(64))  # 共通ID / ID of the file
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    # disaster.hazards codes the site is designated for; None when the file has no hazard columns.
    hazards: Mapped[list[str] | None] = mapped_column(JSON)
    capacity: Mapped[int | None] = mapped_column()
    phone: Mapped[str] = mapped_column(String(40), default="")
    is_open: Mapped[bool] = mapped_column(default=False)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def as_dict(self) -> dict[str, Any]:
        """For `flask shelters list --json`."""
        return {"id": self.id, "kind": self.kind, "source_id": self.source_id, "name": self.name,
                "address": self.address, "latitude": self.latitude, "longitude": self.longitude,
                "hazards": self.hazards, "is_open": self.is_open}
