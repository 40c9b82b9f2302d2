"""Recording usage events."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from kpi.models import UsageEvent


def record_usage(session: Session, kind: str, resident_id: int | None = None, **detail: Any) -> None:
    """Add a usage event (no message bodies or attributes in `detail`)."""
    session.add(UsageEvent(kind=kind, resident_id=resident_id, detail=detail))
