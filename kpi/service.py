"""Recording usage events; the usage rate's denominator set on the KPI screen."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import unicodedata
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db import utcnow
from bot.models import StaffUser
from kpi.cities import CityKpiConfig, Denominator
from kpi.models import KpiDenominator, UsageEvent

JST = dt.timezone(dt.timedelta(hours=9), "JST")

# What the usage rate may be divided by (the plans say 「利用率」 without saying of what).
DENOMINATOR_BASES = ("人口", "世帯数")
DENOMINATOR_MAX = 100_000_000
DENOMINATOR_SOURCE_MAX = 200
_DATE_RE = re.compile(r"^(\d{4})\s*(?:-|/|年)\s*(\d{1,2})\s*(?:-|/|月)\s*(\d{1,2})\s*日?$")


class DenominatorError(ValueError):
    """The denominator typed on the KPI screen was refused; `errors` are Japanese messages for staff."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(" / ".join(errors))
        self.errors = errors


@dataclasses.dataclass(frozen=True)
class DenominatorForm:
    """The denominator as typed: 12,345 / 人口 / 2026年10月1日 / 市ホームページ「人口と世帯数」."""

    value: str = ""
    basis: str = ""
    as_of: str = ""
    source: str = ""


def parse_denominator(form: DenominatorForm, today: dt.date) -> Denominator:
    """The typed denominator checked; DenominatorError with every problem in Japanese otherwise."""
    errors: list[str] = []
    raw = unicodedata.normalize("NFKC", form.value).replace(",", "").replace("、", "").strip()
    value = 0
    if not raw:
        errors.append("人数または世帯数を入力してください。")
    elif not raw.isdigit():
        errors.append("人数または世帯数は数字だけで入力してください（例: 24,512）。")
    else:
        value = int(raw)
        if value <= 0:
            errors.append("人数または世帯数は1以上にしてください。")
        elif value > DENOMINATOR_MAX:
            errors.append(f"人数または世帯数が大きすぎます（{DENOMINATOR_MAX:,}以下）。")
    if form.basis not in DENOMINATOR_BASES:
        errors.append("分母の種類（人口または世帯数）を選んでください。")
    as_of: dt.date | None = None
    text = unicodedata.normalize("NFKC", form.as_of).strip()
    match = _DATE_RE.match(text)
    if not text:
        errors.append("いつの時点の数かを入力してください（例: 2026年10月1日）。")
    elif not match:
        errors.append("時点は「2026年10月1日」または「2026-10-01」の形で入力してください。")
    else:
        try:
            as_of = dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            errors.append(f"時点「{form.as_of.strip()}」という日付はありません。")
        else:
            if as_of > today:
                errors.append("時点に未来の日付は指定できません。")
            elif as_of.year < 2000:
                errors.append("時点は2000年以降の日付にしてください。")
    source = " ".join(form.source.split())
    if not source:
        errors.append("出典（どこに載っている数か）を入力してください（例: 市ホームページ「人口と世帯数」）。")
    elif len(source) > DENOMINATOR_SOURCE_MAX:
        errors.append(f"出典は{DENOMINATOR_SOURCE_MAX}文字以内にしてください（現在{len(source)}文字）。")
    if errors:
        raise DenominatorError(errors)
    assert as_of is not None
    return Denominator(value=value, basis=form.basis, as_of=as_of.isoformat(), source=source)


def stored_denominator(session: Session, municipality: str) -> Denominator | None:
    """The latest denominator set on the KPI screen for the city, if any."""
    row = session.scalars(
        select(KpiDenominator).where(KpiDenominator.municipality == municipality).order_by(KpiDenominator.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return Denominator(value=row.value, basis=row.basis, as_of=row.as_of.isoformat(), source=row.source)


def set_denominator(session: Session, municipality: str, denominator: Denominator, actor: StaffUser | None) -> KpiDenominator:
    """Keep a new denominator for the city (it applies from the next page on); the caller audits and commits."""
    row = KpiDenominator(
        municipality=municipality, value=denominator.value, basis=denominator.basis,
        as_of=dt.date.fromisoformat(denominator.as_of), source=denominator.source, set_at=utcnow(),
        staff_user_id=actor.id if actor is not None else None, username=actor.username if actor is not None else "",
    )
    session.add(row)
    return row


def with_stored_denominator(session: Session, city: CityKpiConfig) -> CityKpiConfig:
    """The city's KPI settings with the denominator set on the KPI screen, when one was set."""
    stored = stored_denominator(session, city.municipality)
    return dataclasses.replace(city, denominator=stored) if stored is not None else city


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
