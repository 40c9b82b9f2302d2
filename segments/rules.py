"""Segment rules over residents' declared attributes, resolved in SQL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from segments.models import Resident, Segment
from segments.vocab import AGE_BANDS, GENDERS, INTERESTS, areas_for, interests_to_mask

FIELDS = ("age_bands", "genders", "areas", "interests")
FIELD_LABELS = {"age_bands": "年代", "genders": "性別", "areas": "地域", "interests": "関心"}


class RuleError(ValueError):
    """A rule names a value residents cannot declare (message in Japanese)."""


@dataclass(frozen=True)
class Criterion:
    """Include any of `include` (empty: no condition), and none of `exclude`."""

    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    @property
    def is_empty(self) -> bool:
        """True when it selects everyone."""
        return not self.include and not self.exclude


@dataclass(frozen=True)
class SegmentRule:
    """Criteria over age band, gender, area and interests, combined with AND."""

    age_bands: Criterion = field(default_factory=Criterion)
    genders: Criterion = field(default_factory=Criterion)
    areas: Criterion = field(default_factory=Criterion)
    interests: Criterion = field(default_factory=Criterion)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in Segment.rule and Broadcast rows)."""
        return {
            name: {"include": sorted(getattr(self, name).include), "exclude": sorted(getattr(self, name).exclude)}
            for name in FIELDS
            if not getattr(self, name).is_empty
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SegmentRule:
        """Parse the stored form (unknown keys raise RuleError)."""
        data = data or {}
        unknown = set(data) - set(FIELDS)
        if unknown:
            raise RuleError(f"不明な条件です: {', '.join(sorted(unknown))}")
        criteria = {}
        for name in FIELDS:
            part = data.get(name) or {}
            criteria[name] = Criterion(frozenset(part.get("include") or ()), frozenset(part.get("exclude") or ()))
        return cls(**criteria)

    def validate(self, municipality: str) -> None:
        """Raise RuleError when a value is not one residents can choose."""
        allowed = {"age_bands": AGE_BANDS, "genders": GENDERS, "areas": areas_for(municipality), "interests": INTERESTS}
        for name in FIELDS:
            crit: Criterion = getattr(self, name)
            bad = sorted((crit.include | crit.exclude) - set(allowed[name]))
            if bad:
                raise RuleError(f"{FIELD_LABELS[name]}に選べない値があります: {'、'.join(bad)}（選べる値: {'、'.join(allowed[name])}）")
            both = crit.include & crit.exclude
            if both:
                raise RuleError(f"{FIELD_LABELS[name]}で同じ値を含める・除くの両方に指定しています: {'、'.join(sorted(both))}")

    def describe(self) -> str:
        """A short Japanese description for staff."""
        parts = []
        for name in FIELDS:
            crit: Criterion = getattr(self, name)
            if crit.include:
                parts.append(f"{FIELD_LABELS[name]}: {'・'.join(sorted(crit.include))}")
            if crit.exclude:
                parts.append(f"{FIELD_LABELS[name]}（除く）: {'・'.join(sorted(crit.exclude))}")
        return "、".join(parts) or "配信を受け取る全員"


def _value_condition(column: Any, crit: Criterion) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if crit.include:
        conds.append(column.in_(sorted(crit.include)))
    if crit.exclude:
        # Someone who did not declare this attribute is not in the excluded group.
        conds.append(or_(column.is_(None), column.not_in(sorted(crit.exclude))))
    return conds


def _interest_condition(crit: Criterion) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if crit.include:
        conds.append(Resident.interests_mask.op("&")(interests_to_mask(crit.include)) != 0)
    if crit.exclude:
        conds.append(Resident.interests_mask.op("&")(interests_to_mask(crit.exclude)) == 0)
    return conds


def eligible() -> ColumnElement[bool]:
    """Residents who may receive notices: following, consented, notices on."""
    return and_(Resident.is_following.is_(True), Resident.consented_at.is_not(None), Resident.is_notices_enabled.is_(True))


def conditions(rule: SegmentRule | None) -> list[ColumnElement[bool]]:
    """SQL conditions of a rule (None: everyone eligible)."""
    conds = [eligible()]
    if rule is not None:
        conds += _value_condition(Resident.age_band, rule.age_bands)
        conds += _value_condition(Resident.gender, rule.genders)
        conds += _value_condition(Resident.area, rule.areas)
        conds += _interest_condition(rule.interests)
    return conds


def count_recipients(session: Session, rule: SegmentRule | None) -> int:
    """How many residents the rule reaches now."""
    return int(session.scalar(select(func.count(Resident.id)).where(*conditions(rule))) or 0)


def resolve_recipients(session: Session, rule: SegmentRule | None, batch_size: int = 500) -> Iterator[list[str]]:
    """LINE user ids the rule reaches, in stable order (resident id), in lists of at most batch_size."""
    stmt = select(Resident.line_user_id).where(*conditions(rule)).order_by(Resident.id)
    batch: list[str] = []
    for user_id in session.scalars(stmt.execution_options(yield_per=5000)):
        batch.append(user_id)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def resolve_all_followers(session: Session, batch_size: int = 500) -> Iterator[list[str]]:
    """Every follower, regardless of consent or settings (emergency notices)."""
    stmt = select(Resident.line_user_id).where(Resident.is_following.is_(True)).order_by(Resident.id)
    batch: list[str] = []
    for user_id in session.scalars(stmt.execution_options(yield_per=5000)):
        batch.append(user_id)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def is_below_privacy_floor(count: int, floor: int) -> bool:
    """True when a segment is so small that targeting it could single residents out (0 is not)."""
    return 0 < count < floor


def get_segment(session: Session, name: str) -> Segment | None:
    """A saved segment by name."""
    return session.scalar(select(Segment).where(Segment.name == name))


def save_segment(session: Session, name: str, rule: SegmentRule, municipality: str, staff_id: int | None = None) -> Segment:
    """Create or replace a named segment (validated)."""
    name = name.strip()
    if not name or len(name) > 64:
        raise RuleError("セグメント名は1〜64文字で指定してください")
    rule.validate(municipality)
    segment = get_segment(session, name)
    if segment is None:
        segment = Segment(name=name, rule=rule.to_dict(), created_by=staff_id)
        session.add(segment)
    else:
        segment.rule = rule.to_dict()
    session.flush()
    return segment


__all__ = [
    "Criterion", "RuleError", "SegmentRule", "count_recipients", "resolve_recipients", "resolve_all_followers",
    "is_below_privacy_floor", "get_segment", "save_segment", "eligible",
]
