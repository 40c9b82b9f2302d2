"""Recording usage events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from kpi.models import UsageEvent

JST = dt.timezone(dt.timedelta(hours=9), "JST")


def record_usage(session: Session, kind: str, resident_id: int | None = None, **detail: Any) -> None:
    """Add a usage event (no message bodies or attributes in `detail`)."""
    session.add(UsageEvent(kind=kind, resident_id=resident_id, detail=detail))


def record_friends_count(session: Session, followers: int, on: dt.date, source: str) -> UsageEvent:
    """Record LINE's own friends count for a day (LINE Official Account Manager or the insight API).

    Stored as a `friends_snapshot` usage event at the last second of that day in Japan time, so
    it belongs to that day's month; the usage rate of the month then uses it.
    """
    if followers < 0:
        raise ValueError("友だち数は0以上で指定してください。")
    at = dt.datetime.combine(on, dt.time(23, 59, 59), tzinfo=JST).astimezone(dt.UTC)
    event = UsageEvent(kind="friends_snapshot", occurred_at=at, resident_id=None,
                       detail={"followers": followers, "date": on.isoformat(), "source": source[:200]})
    session.add(event)
    return event
