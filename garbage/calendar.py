"""Collection rules of the 5374 layout (a cell of area_days.csv) and the days they give.

A cell lists tokens separated by spaces (also 全角 spaces, 「・」 and 「、」):
「月」「月曜」「月曜日」「毎週月」: every week; 「水2」「2水」「第2水」「第2水曜日」「第2・第4水」: the nth
weekday of the month; 「20270115」 or 「2027/1/15」: a date. 「火2 金4:4 6 8 10 12 2」: the months the
weekday tokens apply to (after a colon, as the 茨城町 fork writes it). 「*1」 points to remarks.csv
and is kept in the cell but not used for dates. Anything else is an error naming the token.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

WEEKDAYS = "月火水木金土日"  # datetime.weekday(): Monday = 0
_WD = f"[{WEEKDAYS}]"
_EVERY = re.compile(rf"^(?:毎週)?({_WD})(?:曜日?)?$")
_NTH_AFTER = re.compile(rf"^({_WD})(?:曜日?)?([1-5])$")
_NTH_BEFORE = re.compile(rf"^第?([1-5])({_WD})(?:曜日?)?$")
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DATE_SLASH = re.compile(r"^(\d{4})[/.\-年](\d{1,2})[/.\-月](\d{1,2})日?$")
_REMARK = re.compile(r"^\*\d+$")
# 「第2・第4水」, 「第1、3火曜」: several weeks of one weekday written together.
_NTH_LIST = re.compile(rf"第([1-5](?:[・、,]第?[1-5])+)({_WD})(曜日?)?")
_SEPARATORS = re.compile(r"[\s・、,]+")
HORIZON_DAYS = 400


class RuleError(ValueError):
    """A cell of area_days.csv that is not a collection rule (the message is Japanese)."""


@dataclass(frozen=True)
class Rule:
    """When one kind is collected in one area."""

    weekly: frozenset[int] = frozenset()
    nth: frozenset[tuple[int, int]] = frozenset()  # (weekday, week of the month 1-5)
    dates: frozenset[dt.date] = frozenset()
    months: frozenset[int] | None = None  # weekday tokens apply only in these months
    remarks: tuple[str, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        """True when the cell gives no day at all (the kind is not collected in that area)."""
        return not (self.weekly or self.nth or self.dates)

    def occurs(self, day: dt.date) -> bool:
        """Whether the rule collects on this day (breaks aside)."""
        if day in self.dates:
            return True
        if self.months is not None and day.month not in self.months:
            return False
        weekday = day.weekday()
        return weekday in self.weekly or (weekday, (day.day - 1) // 7 + 1) in self.nth


def _expand_lists(text: str) -> str:
    return _NTH_LIST.sub(lambda m: " ".join(f"第{n}{m.group(2)}" for n in re.findall(r"[1-5]", m.group(1))), text)


def parse_rule(cell: str | None) -> Rule:
    """A cell as a Rule; RuleError (in Japanese) for a token it cannot read."""
    text = unicodedata.normalize("NFKC", cell or "").strip()
    if not text:
        return Rule()
    months: frozenset[int] | None = None
    if ":" in text:
        text, _, month_part = text.partition(":")
        try:
            values = {int(m) for m in _SEPARATORS.split(month_part.strip()) if m}
        except ValueError:
            raise RuleError(f"「:」のあとは月の数字を空白で区切って書いてください（「{month_part.strip()}」）") from None
        if not values or not values <= set(range(1, 13)):
            raise RuleError(f"「:」のあとの月は1〜12で書いてください（「{month_part.strip()}」）")
        months = frozenset(values)
    weekly: set[int] = set()
    nth: set[tuple[int, int]] = set()
    dates: set[dt.date] = set()
    remarks: list[str] = []
    for token in _SEPARATORS.split(_expand_lists(text)):
        if not token:
            continue
        if m := _EVERY.match(token):
            weekly.add(WEEKDAYS.index(m.group(1)))
        elif m := _NTH_AFTER.match(token):
            nth.add((WEEKDAYS.index(m.group(1)), int(m.group(2))))
        elif m := _NTH_BEFORE.match(token):
            nth.add((WEEKDAYS.index(m.group(2)), int(m.group(1))))
        elif m := (_DATE_COMPACT.match(token) or _DATE_SLASH.match(token)):
            try:
                dates.add(dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
            except ValueError:
                raise RuleError(f"「{token}」は日付として正しくありません") from None
        elif _REMARK.match(token):
            remarks.append(token)
        else:
            raise RuleError(f"「{token}」は曜日（例：月、水2、第2水）や日付（例：20270115）として読めません")
    return Rule(frozenset(weekly), frozenset(nth), frozenset(dates), months, tuple(remarks))


def parse_date(value: str) -> dt.date:
    """A date of center.csv: 2026/12/29, 2026-12-29, 20261229 or 2026年12月29日."""
    text = unicodedata.normalize("NFKC", value or "").strip()
    m = _DATE_COMPACT.match(text) or _DATE_SLASH.match(text)
    if not m:
        raise RuleError(f"「{value}」は日付として読めません（例：2026/12/29）")
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise RuleError(f"「{value}」は日付として正しくありません") from None


Break = tuple[dt.date, dt.date]


def in_break(day: dt.date, breaks: Iterable[Break]) -> bool:
    """Whether the centre does not collect on this day."""
    return any(start <= day <= end for start, end in breaks)


def collection_days(rules: Sequence[tuple[str, Rule]], start: dt.date, days: int,
                    breaks: Sequence[Break] = ()) -> list[tuple[dt.date, list[str]]]:
    """The days from `start` (included) within `days` days on which kinds are collected, with those kinds."""
    found = []
    for offset in range(max(0, days)):
        day = start + dt.timedelta(days=offset)
        if in_break(day, breaks):
            continue
        kinds = [kind for kind, rule in rules if rule.occurs(day)]
        if kinds:
            found.append((day, kinds))
    return found


def next_day(rule: Rule, start: dt.date, breaks: Sequence[Break] = (), horizon: int = HORIZON_DAYS) -> dt.date | None:
    """The first collection day from `start` (included), outside the breaks; None within the horizon."""
    if rule.is_empty:
        return None
    for offset in range(horizon):
        day = start + dt.timedelta(days=offset)
        if rule.occurs(day) and not in_break(day, breaks):
            return day
    return None


def weekday_label(day: dt.date) -> str:
    """「12月4日（金）」."""
    return f"{day.month}月{day.day}日（{WEEKDAYS[day.weekday()]}）"
