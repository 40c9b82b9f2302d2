"""When a notice goes out: once, or daily / weekly / monthly in Asia/Tokyo, with an end date and exclusions.

A pure module: no database, no clock of its own. The dispatcher stores the next occurrence
(UTC) on the notice and asks `next_after` for the one after it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broadcast.errors import NoticeError

try:
    JST: dt.tzinfo = ZoneInfo("Asia/Tokyo")
except ZoneInfoNotFoundError:  # no tz database on the host: Japan has had no daylight saving since 1951
    JST = dt.timezone(dt.timedelta(hours=9), "JST")

ONCE, DAILY, WEEKLY, MONTHLY = "once", "daily", "weekly", "monthly"
KINDS = (ONCE, DAILY, WEEKLY, MONTHLY)
LAST_DAY = -1  # month_day meaning "the last day of the month"
WEEKDAY_CODES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_JA = ("月", "火", "水", "木", "金", "土", "日")
# Occurrences are searched this far ahead; a schedule with none in it has ended.
HORIZON_DAYS = 366 * 5
MAX_EXCLUDED = 366


class ScheduleError(NoticeError):
    """The schedule is not one the dispatcher can follow (Japanese message)."""


def to_jst(moment: dt.datetime) -> dt.datetime:
    """An aware datetime in Japan time."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(JST)


def format_jst(moment: dt.datetime | None, with_weekday: bool = True) -> str:
    """`2026-12-01(火) 09:00` for staff, or a dash."""
    if moment is None:
        return "—"
    local = to_jst(moment)
    weekday = f"({WEEKDAY_JA[local.weekday()]})" if with_weekday else ""
    return f"{local:%Y-%m-%d}{weekday} {local:%H:%M}"


def parse_local_datetime(text: str) -> dt.datetime:
    """ISO 8601 date-time; without an offset it is Japan time (what staff mean)."""
    value = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"日時「{text}」を読み取れません（例: 2026-12-01T09:00）。") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=JST)
    return parsed.astimezone(JST)


def parse_date(text: str, what: str = "日付") -> dt.date:
    """YYYY-MM-DD (also YYYY/MM/DD)."""
    value = text.strip().replace("/", "-")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"{what}「{text}」を読み取れません（例: 2026-12-31）。") from None


def parse_dates(text: str | Iterable[str], what: str = "除外日") -> frozenset[dt.date]:
    """Dates separated by commas, spaces or new lines (or an iterable of such strings)."""
    parts: list[str] = []
    for chunk in [text] if isinstance(text, str) else text:
        parts += [p for p in re.split(r"[\s,、]+", chunk) if p]
    return frozenset(parse_date(p, what) for p in parts)


def parse_weekdays(codes: Iterable[str]) -> frozenset[int]:
    """`mon`, `thu`... (or 月, 木...) to weekday numbers (Monday = 0)."""
    days = set()
    for code in codes:
        key = code.strip().lower()
        if not key:
            continue
        if key in WEEKDAY_CODES:
            days.add(WEEKDAY_CODES.index(key))
        elif key in WEEKDAY_JA:
            days.add(WEEKDAY_JA.index(key))
        else:
            raise ScheduleError(f"曜日「{code}」が分かりません（mon, tue, wed, thu, fri, sat, sun のいずれか）。")
    return frozenset(days)


def parse_month_day(text: str | int) -> int:
    """1..28 or `last`."""
    value = str(text).strip().lower()
    if value in ("last", "末", "月末", "-1"):
        return LAST_DAY
    if value.isdigit() and 1 <= int(value) <= 28:
        return int(value)
    if value.isdigit() and 29 <= int(value) <= 31:
        raise ScheduleError("29〜31日は月によってないため指定できません。月末に送るには monthly:last（月末）を指定してください。")
    raise ScheduleError(f"日「{text}」が分かりません（1〜28 または last）。")


def parse_every(spec: str) -> tuple[str, frozenset[int], int | None]:
    """`daily`, `weekly:mon,thu`, `monthly:15`, `monthly:last` -> (kind, weekdays, month_day)."""
    kind, _, arg = spec.strip().lower().partition(":")
    if kind == DAILY and not arg:
        return DAILY, frozenset(), None
    if kind == WEEKLY:
        days = parse_weekdays(arg.split(","))
        if not days:
            raise ScheduleError("weekly には曜日を指定してください（例: weekly:mon,thu）。")
        return WEEKLY, days, None
    if kind == MONTHLY and arg:
        return MONTHLY, frozenset(), parse_month_day(arg)
    raise ScheduleError(f"繰り返し「{spec}」が分かりません（daily / weekly:mon,thu / monthly:15 / monthly:last）。")


def _is_last_day(day: dt.date) -> bool:
    return day.day == calendar.monthrange(day.year, day.month)[1]


@dataclass(frozen=True)
class Schedule:
    """Once at `start`, or every matching day at start's time of day, from start until `until` (inclusive)."""

    kind: str
    start: dt.datetime  # aware; Japan time; the first moment anything may be sent
    weekdays: frozenset[int] = field(default_factory=frozenset)
    month_day: int | None = None
    until: dt.date | None = None
    excluded: frozenset[dt.date] = field(default_factory=frozenset)
    # A one-off that staff sent 「今すぐ」: `start` is when they confirmed it.
    immediate: bool = False

    @property
    def is_recurring(self) -> bool:
        """True unless it is a one-off."""
        return self.kind != ONCE

    def validate(self) -> None:
        """Raise ScheduleError when the schedule is inconsistent or has no occurrence at all."""
        if self.kind not in KINDS:
            raise ScheduleError(f"配信タイミング「{self.kind}」が分かりません。")
        if self.start.tzinfo is None:
            raise ScheduleError("開始日時にタイムゾーンがありません。")
        if self.immediate and self.kind != ONCE:
            raise ScheduleError("「今すぐ送信」は1回だけの配信にしか指定できません。")
        if self.kind == ONCE and (self.until or self.excluded):
            raise ScheduleError("終了日・除外日は繰り返し配信のときだけ指定できます。")
        if self.kind == WEEKLY and not self.weekdays:
            raise ScheduleError("毎週の配信では曜日を1つ以上選んでください。")
        if self.kind == WEEKLY and not self.weekdays <= set(range(7)):
            raise ScheduleError("曜日の指定が正しくありません。")
        if self.kind == MONTHLY and not (self.month_day == LAST_DAY or (self.month_day and 1 <= self.month_day <= 28)):
            raise ScheduleError("毎月の配信日は1〜28日または月末を指定してください。")
        if self.until is not None and self.until < to_jst(self.start).date():
            raise ScheduleError("終了日が開始日より前です。")
        if len(self.excluded) > MAX_EXCLUDED:
            raise ScheduleError(f"除外日は{MAX_EXCLUDED}日までです。")
        if self.first() is None:
            raise ScheduleError("指定の期間に配信日がありません（曜日・終了日・除外日を確認してください）。")

    def matches(self, day: dt.date) -> bool:
        """True when something is sent on this (Japanese) calendar day, time of day aside."""
        if day in self.excluded or (self.until is not None and day > self.until):
            return False
        if self.kind == DAILY:
            return True
        if self.kind == WEEKLY:
            return day.weekday() in self.weekdays
        if self.kind == MONTHLY:
            return _is_last_day(day) if self.month_day == LAST_DAY else day.day == self.month_day
        return day == to_jst(self.start).date()

    def next_after(self, moment: dt.datetime) -> dt.datetime | None:
        """The first occurrence strictly after `moment` (aware), in Japan time; None when there is none."""
        start = to_jst(self.start)
        if self.kind == ONCE:
            return start if start > moment else None
        day = max(start.date(), to_jst(moment).date())
        last = self.until or (day + dt.timedelta(days=HORIZON_DAYS))
        while day <= last:
            if self.matches(day):
                # Built as local wall time in Asia/Tokyo, so 09:00 means 09:00 in Japan whatever the host.
                candidate = dt.datetime.combine(day, start.time(), tzinfo=JST)
                if candidate > moment and candidate >= start:
                    return candidate
            day += dt.timedelta(days=1)
        return None

    def first(self) -> dt.datetime | None:
        """The first occurrence (start itself when it matches)."""
        return self.next_after(self.start - dt.timedelta(microseconds=1))

    def upcoming(self, after: dt.datetime, limit: int = 5) -> list[dt.datetime]:
        """The next few occurrences after `after` (for the confirmation screen)."""
        out: list[dt.datetime] = []
        moment = after
        while len(out) < limit:
            nxt = self.next_after(moment)
            if nxt is None:
                break
            out.append(nxt)
            moment = nxt
        return out

    def describe(self) -> str:
        """A short Japanese description: 「毎週 月・木 09:00（2026-12-01から 2026-12-31まで、除外2日）」."""
        start = to_jst(self.start)
        time_of_day = f"{start:%H:%M}"
        if self.kind == ONCE:
            return f"今すぐ送信（{format_jst(start)} に確定）" if self.immediate else f"{format_jst(start)} に1回"
        if self.kind == DAILY:
            head = f"毎日 {time_of_day}"
        elif self.kind == WEEKLY:
            head = f"毎週 {'・'.join(WEEKDAY_JA[d] for d in sorted(self.weekdays))} {time_of_day}"
        else:
            day = "月末" if self.month_day == LAST_DAY else f"{self.month_day}日"
            head = f"毎月{day} {time_of_day}"
        tail = [f"{start:%Y-%m-%d}から"]
        if self.until:
            tail.append(f"{self.until:%Y-%m-%d}まで")
        if self.excluded:
            tail.append("除外: " + "、".join(f"{d:%m/%d}" for d in sorted(self.excluded)[:5]) + ("…" if len(self.excluded) > 5 else ""))
        return f"{head}（{' '.join(tail)}）"

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored on the notice."""
        data: dict[str, Any] = {"kind": self.kind, "start": to_jst(self.start).isoformat()}
        if self.immediate:
            data["immediate"] = True
        if self.kind == WEEKLY:
            data["weekdays"] = [WEEKDAY_CODES[d] for d in sorted(self.weekdays)]
        if self.kind == MONTHLY:
            data["month_day"] = "last" if self.month_day == LAST_DAY else self.month_day
        if self.until:
            data["until"] = self.until.isoformat()
        if self.excluded:
            data["excluded"] = [d.isoformat() for d in sorted(self.excluded)]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        """Parse the stored form."""
        month_day = data.get("month_day")
        return cls(
            kind=str(data["kind"]),
            start=parse_local_datetime(str(data["start"])),
            weekdays=parse_weekdays(data.get("weekdays") or ()),
            month_day=parse_month_day(month_day) if month_day is not None else None,
            until=parse_date(data["until"]) if data.get("until") else None,
            excluded=frozenset(parse_date(d) for d in data.get("excluded") or ()),
            immediate=bool(data.get("immediate")),
        )

    @classmethod
    def once(cls, at: dt.datetime, *, immediate: bool = False) -> Schedule:
        """A one-off at `at` (`immediate`: sent 「今すぐ」, `at` being the moment staff confirmed)."""
        return cls(ONCE, to_jst(at), immediate=immediate)

    @classmethod
    def recurring(
        cls,
        every: str,
        start: dt.datetime,
        until: dt.date | None = None,
        excluded: Iterable[dt.date] = (),
    ) -> Schedule:
        """From the CLI's `--every` form."""
        kind, weekdays, month_day = parse_every(every)
        return cls(kind, to_jst(start), weekdays, month_day, until, frozenset(excluded))
