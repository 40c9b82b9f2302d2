"""Segment rules over residents' declared attributes, resolved in SQL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import has_request_context
from sqlalchemy import ColumnElement, Integer, Select, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from bot.auth import audit
from bot.models import StaffUser
from segments.models import Resident, Segment
from segments.vocab import AGE_BANDS, GENDERS, INTERESTS, area_choices, interests_to_mask

FIELDS = ("age_bands", "genders", "areas", "interests")
FIELD_LABELS = {"age_bands": "年代", "genders": "性別", "areas": "地域", "interests": "関心"}


class RuleError(ValueError):
    """A rule names a value residents cannot declare (message in Japanese)."""


class PrivacyFloorError(RuleError):
    """A segment below the privacy floor was targeted without an admin's explicit override."""


@dataclass(frozen=True)
class Criterion:
    """Include any of `include` (empty: no condition), and none of `exclude`."""

    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    @property
    def is_empty(self) -> bool:
        """True when it selects everyone."""
        return not self.include and not self.exclude

    @classmethod
    def of(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> Criterion:
        """Build from any iterables of values."""
        return cls(frozenset(include), frozenset(exclude))


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
        if not isinstance(data, Mapping):
            raise RuleError("条件の形式が正しくありません")
        unknown = set(data) - set(FIELDS)
        if unknown:
            raise RuleError(f"不明な条件です: {', '.join(sorted(unknown))}")
        criteria = {}
        for name in FIELDS:
            part = data.get(name) or {}
            if not isinstance(part, Mapping) or set(part) - {"include", "exclude"}:
                raise RuleError(f"{FIELD_LABELS[name]}の条件の形式が正しくありません")
            values = {}
            for key in ("include", "exclude"):
                listed = part.get(key) or ()
                if isinstance(listed, str) or not all(isinstance(v, str) for v in listed):
                    raise RuleError(f"{FIELD_LABELS[name]}の条件の形式が正しくありません")
                values[key] = frozenset(listed)
            criteria[name] = Criterion(values["include"], values["exclude"])
        return cls(**criteria)

    @property
    def is_everyone(self) -> bool:
        """True when the rule has no condition (every eligible resident)."""
        return all(getattr(self, name).is_empty for name in FIELDS)

    def validate(self, municipality: str) -> None:
        """Raise RuleError when a value is not one residents can choose."""
        allowed = {"age_bands": AGE_BANDS, "genders": GENDERS, "areas": area_choices(municipality), "interests": INTERESTS}
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


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _eligible_scanned() -> ColumnElement[bool]:
    """eligible(), written so that SQLite cannot serve it from an index and scans the table in id order.

    Most residents follow with notices on, so finding them through the boolean indexes means one
    table lookup per resident; SQLite plans that anyway (it assumes an equality is selective) and
    takes about twice as long as a plain scan. PostgreSQL estimates from statistics and needs no
    help (and the CASTs would spoil its row estimates), so this is for SQLite only.
    """
    return and_(
        cast(Resident.is_following, Integer) == 1,
        Resident.consented_at.is_not(None),
        cast(Resident.is_notices_enabled, Integer) == 1,
    )


def conditions(rule: SegmentRule | None, *, scan: bool = False) -> list[ColumnElement[bool]]:
    """SQL conditions of a rule (None: everyone eligible); `scan`: SQLite reads many rows in id order."""
    conds = [_eligible_scanned() if scan else eligible()]
    if rule is not None:
        conds += _value_condition(Resident.age_band, rule.age_bands)
        conds += _value_condition(Resident.gender, rule.genders)
        conds += _value_condition(Resident.area, rule.areas)
        conds += _interest_condition(rule.interests)
    return conds


def count_recipients(session: Session, rule: SegmentRule | None) -> int:
    """How many residents the rule reaches now."""
    # With no attribute condition the eligibility index covers the count; with one, every eligible
    # row must be read anyway, and a scan beats a lookup per resident.
    scan = _is_sqlite(session) and rule is not None and not rule.is_everyone
    return int(session.scalar(select(func.count(Resident.id)).where(*conditions(rule, scan=scan))) or 0)


# Rows fetched per round trip while resolving: memory stays at one buffer, whatever the segment's size.
FETCH_ROWS = 5000


def _id_batches(session: Session, stmt: Select[tuple[str]], batch_size: int) -> Iterator[list[str]]:
    """Stream a one-column select in lists of at most batch_size.

    Core execution (not ORM loading) on the session's connection: resolving is only strings, and
    the ORM's per-row bookkeeping would triple the time. `yield_per` streams (a server-side cursor
    on PostgreSQL), so memory grows with what the caller keeps, not with the segment.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    result = session.connection().execute(stmt.execution_options(yield_per=max(FETCH_ROWS, batch_size)))
    try:
        for part in result.scalars().partitions(batch_size):
            yield list(part)
    finally:
        result.close()


def resolve_recipients(session: Session, rule: SegmentRule | None, batch_size: int = 500) -> Iterator[list[str]]:
    """LINE user ids the rule reaches, in stable order (resident id), in lists of at most batch_size."""
    stmt = select(Resident.line_user_id).where(*conditions(rule, scan=_is_sqlite(session))).order_by(Resident.id)
    return _id_batches(session, stmt, batch_size)


def resolve_all_followers(session: Session, batch_size: int = 500) -> Iterator[list[str]]:
    """Every follower, regardless of consent or settings (emergency notices)."""
    following = cast(Resident.is_following, Integer) == 1 if _is_sqlite(session) else Resident.is_following.is_(True)
    stmt = select(Resident.line_user_id).where(following).order_by(Resident.id)
    return _id_batches(session, stmt, batch_size)


def _audience(rule: SegmentRule | None, all_followers: bool, *, scan: bool) -> list[ColumnElement[bool]]:
    if all_followers:
        return [cast(Resident.is_following, Integer) == 1 if scan else Resident.is_following.is_(True)]
    return conditions(rule, scan=scan)


def resolve_with_language(
    session: Session, rule: SegmentRule | None, *, all_followers: bool = False
) -> Iterator[tuple[str, str | None]]:
    """(LINE user id, declared language or None) of the rule's recipients (or, `all_followers`, of
    every follower), in stable order (resident id): notices in several languages group by it."""
    where = _audience(rule, all_followers, scan=_is_sqlite(session))
    stmt = select(Resident.line_user_id, Resident.language).where(*where).order_by(Resident.id)
    result = session.connection().execute(stmt.execution_options(yield_per=FETCH_ROWS))
    try:
        for line_user_id, language in result:
            yield line_user_id, language
    finally:
        result.close()


def count_by_language(session: Session, rule: SegmentRule | None, *, all_followers: bool = False) -> dict[str | None, int]:
    """How many of the rule's recipients (or of every follower) declared each language (None: none = Japanese)."""
    scan = _is_sqlite(session) and (all_followers or (rule is not None and not rule.is_everyone))
    rows = session.execute(
        select(Resident.language, func.count(Resident.id)).where(*_audience(rule, all_followers, scan=scan)).group_by(Resident.language)
    ).all()
    return {language: int(count) for language, count in rows}


def is_below_privacy_floor(count: int, floor: int) -> bool:
    """True when fewer residents than the floor would receive a notice, 0 included.

    An empty segment singles nobody out today, but the first resident who joins it would be the
    only one: notices to it are held at send time like any other below the floor.
    """
    return count < floor


@dataclass(frozen=True)
class Preview:
    """How many residents a rule reaches now, and whether that is below the privacy floor."""

    count: int
    floor: int

    @property
    def is_below_floor(self) -> bool:
        """True when the rule cannot be targeted without an admin's override."""
        return is_below_privacy_floor(self.count, self.floor)

    def shown_count(self) -> str:
        """The count as shown to staff who may not override: small groups are not counted exactly."""
        return f"{self.floor}人未満" if self.is_below_floor else f"{self.count}人"


def preview(session: Session, rule: SegmentRule | None, floor: int) -> Preview:
    """The count preview of a rule."""
    return Preview(count_recipients(session, rule), floor)


@dataclass(frozen=True)
class FloorOverride:
    """An explicit decision to target a segment below the privacy floor.

    `actor` is the staff member who decided (must be an admin); None means the server's operator
    at the CLI, which is only accepted outside a web request.
    """

    actor: StaffUser | None
    reason: str = ""


def check_privacy_floor(
    session: Session, rule: SegmentRule | None, floor: int, *, override: FloorOverride | None = None, target: str = ""
) -> int:
    """Count the rule's recipients and refuse a segment below the floor unless an admin overrides.

    An empty segment (0) passes without an override, since nobody can be singled out yet, but it is
    still below the floor (`is_below_privacy_floor`): each occurrence sent to it is checked again
    when its recipients are resolved. An accepted override is written to the audit log (the caller
    commits). Returns the count.
    """
    count = count_recipients(session, rule)
    if count == 0 or not is_below_privacy_floor(count, floor):
        return count
    if override is None:
        raise PrivacyFloorError(
            f"対象が{floor}人未満のため、個人が特定されるおそれがあり配信できません。"
            "条件を広げるか、管理者が明示的に許可してください。"
        )
    authorize_floor_override(session, override, count=count, floor=floor, rule=rule, target=target)
    return count


def authorize_floor_override(
    session: Session, override: FloorOverride, *, count: int, floor: int, rule: SegmentRule | None, target: str = "",
    **detail: Any,
) -> None:
    """Accept an override of the privacy floor from an active admin (or the CLI operator) and audit-log it.

    PrivacyFloorError otherwise. `detail` is added to the audit row (the caller commits).
    """
    actor = override.actor
    if actor is None and has_request_context():
        raise PrivacyFloorError("少人数セグメントへの配信は、管理者としてログインして許可してください。")
    if actor is not None and (actor.role != "admin" or not actor.is_active):
        raise PrivacyFloorError("少人数セグメントへの配信を許可できるのは管理者だけです。")
    audit(
        session, "segment_privacy_override", target, actor=actor, count=count, floor=floor,
        rule=(rule or SegmentRule()).to_dict(), reason=override.reason[:200], **detail,
    )


def segment_rule(segment: Segment) -> SegmentRule:
    """The rule of a saved segment."""
    return SegmentRule.from_dict(segment.rule)


def list_segments(session: Session) -> list[Segment]:
    """Saved segments by name."""
    return list(session.scalars(select(Segment).order_by(Segment.name)))


def delete_segment(session: Session, name: str) -> bool:
    """Delete a saved segment; False when there was none by that name."""
    segment = get_segment(session, name)
    if segment is None:
        return False
    session.delete(segment)
    session.flush()
    return True


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
    "Criterion", "RuleError", "SegmentRule", "count_by_language", "count_recipients", "resolve_recipients",
    "resolve_all_followers", "resolve_with_language",
    "is_below_privacy_floor", "get_segment", "save_segment", "eligible",
    "FloorOverride", "PrivacyFloorError", "Preview", "authorize_floor_override", "check_privacy_floor", "delete_segment", "list_segments",
    "preview", "segment_rule",
]
