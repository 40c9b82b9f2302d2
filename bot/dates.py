"""Dates and times as staff read them: Japan time, in Japanese (「2026年11月4日 09:30」).

Pages render dates on the server with these, never in the browser, whose language and time zone
may be anything (an English month name, UTC).
"""

from __future__ import annotations

import datetime as dt

JST = dt.timezone(dt.timedelta(hours=9), "JST")  # Japan has no daylight saving time


def jst_datetime(value: dt.datetime | None) -> str:
    """An aware timestamp as Japan time: 「2026年11月4日 09:30」, or a dash."""
    if value is None:
        return "—"
    local = value.astimezone(JST)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def jst_clock(value: dt.datetime) -> str:
    """The time of day in Japan, as LINE shows it beside a message: 「9:05」."""
    local = value.astimezone(JST)
    return f"{local.hour}:{local.minute:02d}"


def japanese_date(value: dt.date | str | None) -> str:
    """2026-10-01 (a date or its ISO text) -> 「2026年10月1日」; other text is returned as it is."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        value = value.astimezone(JST).date()
    return f"{value.year}年{value.month}月{value.day}日"
