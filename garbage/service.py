"""Garbage services over a session: the lookup index, the calendar of an area, residents' area and
reminder choice, and what unfollow / 「登録情報を削除」 / retention remove."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.db import utcnow
from garbage import calendar, lookup, text
from garbage.models import (
    GarbageArea,
    GarbageBreak,
    GarbageItem,
    GarbageKind,
    GarbageReminderChunk,
    GarbageReminderRun,
    GarbageResident,
)

JST = dt.timezone(dt.timedelta(hours=9), "JST")
LIST_DAYS = 14  # 「次のごみの日」 lists the collection days of the coming two weeks

# Called with (session, municipality, question, resident_id) for an item the dictionary lacks:
# bot.app wires it to the FAQ's question log, so it joins the staff's review queue.
UnknownItemHook = Callable[[Session, str, str, "int | None"], None]
_hooks: dict[str, UnknownItemHook | None] = {"unknown_item": None}


def set_unknown_item_hook(hook: UnknownItemHook | None) -> None:
    """Where unknown items go (bot.app: the FAQ's unanswered questions)."""
    _hooks["unknown_item"] = hook


def report_unknown_item(session: Session, municipality: str, question: str, resident_id: int | None) -> None:
    """Send an item the dictionary lacks to the review queue (through the wired hook)."""
    hook = _hooks["unknown_item"]
    if hook is not None:
        hook(session, municipality, question, resident_id)


def today_jst(now: dt.datetime | None = None) -> dt.date:
    """Today in Japan."""
    return (now or utcnow()).astimezone(JST).date()


# --- the lookup index -------------------------------------------------------------------------------

_cache: dict[str, tuple[tuple[object, ...], lookup.ItemIndex]] = {}
_cache_lock = threading.Lock()


def _stamp(session: Session, municipality: str) -> tuple[object, ...]:
    count, latest, top = session.execute(
        select(func.count(GarbageItem.id), func.max(GarbageItem.updated_at), func.max(GarbageItem.id))
        .where(GarbageItem.municipality == municipality)).one()
    return (count, str(latest), top)


def item_index(session: Session, municipality: str) -> lookup.ItemIndex:
    """The city's items ready for lookup (rebuilt when an import or an edit changed them)."""
    stamp = _stamp(session, municipality)
    cached = _cache.get(municipality)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    rows = session.execute(select(GarbageItem.id, GarbageItem.name, GarbageItem.kana, GarbageItem.category,
                                  GarbageItem.notes, GarbageItem.remarks)
                           .where(GarbageItem.municipality == municipality).order_by(GarbageItem.id)).all()
    index = lookup.ItemIndex([lookup.ItemRecord(*row) for row in rows])
    with _cache_lock:
        _cache[municipality] = (stamp, index)
    return index


def item_by_id(session: Session, municipality: str, item_id: int) -> GarbageItem | None:
    """One item of the city's dictionary."""
    row = session.get(GarbageItem, item_id)
    return row if row is not None and row.municipality == municipality else None


# --- the calendar -----------------------------------------------------------------------------------


def area_names(session: Session, municipality: str) -> list[str]:
    """The areas of the imported calendar, in the file's order."""
    return list(session.scalars(select(GarbageArea.name).where(GarbageArea.municipality == municipality)
                                .order_by(GarbageArea.position)))


def has_calendar(session: Session, municipality: str) -> bool:
    """Whether a calendar was imported."""
    return session.scalar(select(GarbageArea.id).where(GarbageArea.municipality == municipality).limit(1)) is not None


@dataclass(frozen=True)
class AreaCalendar:
    """One area's rules and breaks."""

    name: str
    rules: tuple[tuple[str, calendar.Rule], ...]
    breaks: tuple[calendar.Break, ...]

    def days(self, start: dt.date, days: int = LIST_DAYS) -> list[tuple[dt.date, list[str]]]:
        """Collection days from start (included) with their kinds."""
        return calendar.collection_days(self.rules, start, days, self.breaks)

    def next_of(self, kind: str, start: dt.date) -> dt.date | None:
        """The next day the kind is collected, from start (included)."""
        rule = dict(self.rules).get(kind)
        return calendar.next_day(rule, start, self.breaks) if rule is not None else None


def area_calendar(session: Session, municipality: str, area: str) -> AreaCalendar | None:
    """The calendar of an area (None when the area is not in the imported calendar)."""
    row = session.scalar(select(GarbageArea).where(GarbageArea.municipality == municipality, GarbageArea.name == area))
    if row is None:
        return None
    kinds = list(session.scalars(select(GarbageKind.label).where(GarbageKind.municipality == municipality)
                                 .order_by(GarbageKind.position)))
    rules = tuple((kind, calendar.parse_rule(row.rules.get(kind, ""))) for kind in kinds)
    breaks = tuple((b.start_date, b.end_date) for b in session.scalars(
        select(GarbageBreak).where(GarbageBreak.municipality == municipality, GarbageBreak.center == row.center)))
    return AreaCalendar(row.name, rules, breaks if row.center else ())


def _kind_key(value: str) -> str:
    value = re.sub(r"[（(][^）)]*[）)]", "", text.normalize(value))
    return re.sub(r"(ごみ|の日|類|物|\s)", "", value)


def kind_for_category(category: str, kinds: list[str]) -> str | None:
    """The calendar's kind an item's 分別区分 is collected as: the same name, or the same once
    brackets, 「ごみ」 and 「の日」 are left out (「資源ごみ（かん）」 -> 「資源ごみ」), else one containing the other."""
    if category in kinds:
        return category
    key = _kind_key(category)
    if not key:
        return None
    for kind in kinds:
        if _kind_key(kind) == key:
            return kind
    for kind in kinds:
        other = _kind_key(kind)
        if other and (other in key or key in other):
            return kind
    return None


# --- residents ----------------------------------------------------------------------------------------


def resident_settings(session: Session, resident_id: int | None) -> GarbageResident | None:
    """The resident's garbage area and reminder choice, if they gave one."""
    return session.get(GarbageResident, resident_id) if resident_id is not None else None


def set_area(session: Session, resident_id: int, municipality: str, area: str) -> GarbageResident:
    """Store the area the resident chose (the choice is the consent: its time is kept)."""
    row = session.get(GarbageResident, resident_id)
    if row is None:
        row = GarbageResident(resident_id=resident_id, municipality=municipality, area=area, consented_at=utcnow())
        session.add(row)
    else:
        row.area, row.municipality, row.consented_at = area, municipality, utcnow()
    session.flush()
    return row


def set_reminder(session: Session, resident_id: int, enabled: bool) -> bool:
    """Turn the evening-before reminder on or off; False when the resident has no area stored."""
    row = session.get(GarbageResident, resident_id)
    if row is None:
        return False
    row.is_reminder_enabled = enabled
    session.flush()
    return True


def forget_resident(session: Session, resident_id: int | None) -> None:
    """Unfollow or 「登録情報を削除」: the area and the reminder choice are deleted."""
    if resident_id is not None:
        session.execute(delete(GarbageResident).where(GarbageResident.resident_id == resident_id))


def purge_reminder_runs(session: Session, days: int, now: dt.datetime | None = None) -> int:
    """Delete reminder runs (and their recipient lists) older than `days`; returns how many."""
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    ids = list(session.scalars(select(GarbageReminderRun.id).where(GarbageReminderRun.created_at < cutoff)))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        session.execute(delete(GarbageReminderChunk).where(GarbageReminderChunk.run_id.in_(chunk)))
        session.execute(delete(GarbageReminderRun).where(GarbageReminderRun.id.in_(chunk)))
    return len(ids)
