"""Resident lifecycle and settings: follow, consent, declared attributes, notices on/off, deletion.

Nothing beyond the LINE user id and follow time is kept until the resident consents; every
attribute setter refuses to run without consent, so no caller can store one by mistake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from bot.db import utcnow
from bot.staff_languages import language_order, staff_label
from segments.models import Resident
from segments.vocab import AGE_BANDS, GENDERS, INTERESTS, INTEREST_BITS, area_choices, mask_to_interests

# Single-valued attributes a resident may declare (Resident column names).
ATTRIBUTE_FIELDS = ("age_band", "gender", "area")
FIELD_LABELS = {"age_band": "年代", "gender": "性別", "area": "地域", "interests": "関心のある分野"}
_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


class SettingError(ValueError):
    """A setting the resident cannot make (no consent, or a value not offered)."""


_CACHE_KEY = "segments.residents"


def preload_residents(session: Session, line_user_ids: Iterable[str]) -> None:
    """Load these residents in one query and let get_resident answer from them in this session.

    For a batch of webhook events handled in one transaction: one query instead of one per event.
    """
    ids = set(line_user_ids)
    found = {r.line_user_id: r for r in session.scalars(select(Resident).where(Resident.line_user_id.in_(ids)))} if ids else {}
    cache: dict[str, Resident | None] = session.info.setdefault(_CACHE_KEY, {})
    cache.update({i: found.get(i) for i in ids})


def get_resident(session: Session, line_user_id: str) -> Resident | None:
    """The resident with this LINE user id, if known."""
    cache = session.info.get(_CACHE_KEY)
    if cache is not None and line_user_id in cache:
        cached = cache[line_user_id]
        if cached is None:
            return None
        if inspect(cached).persistent:  # not deleted, nor rolled back with a savepoint
            return cached
    resident = session.scalars(select(Resident).where(Resident.line_user_id == line_user_id)).first()
    if cache is not None:
        cache[line_user_id] = resident
    return resident


def _new_resident(session: Session, line_user_id: str, **values: object) -> Resident:
    """Add a resident (and tell the preloaded residents of this session, if any, about it)."""
    resident = Resident(line_user_id=line_user_id, **values)
    session.add(resident)
    if _CACHE_KEY in session.info:
        session.info[_CACHE_KEY][line_user_id] = resident
    return resident


def record_follow(session: Session, line_user_id: str) -> Resident:
    """Mark the resident as following; a re-follow starts afresh with no attributes.

    Attributes are normally deleted at unfollow already; forgetting them here too means a lost
    unfollow event (LINE does not guarantee delivery) cannot carry old answers into a new friendship.
    """
    resident = get_resident(session, line_user_id)
    if resident is None:
        resident = _new_resident(session, line_user_id)
    else:
        forget_attributes(resident)
    resident.is_following = True
    resident.followed_at = utcnow()
    resident.unfollowed_at = None
    session.flush()
    return resident


def forget_attributes(resident: Resident) -> None:
    """Remove everything the resident declared (consent, attributes)."""
    resident.consented_at = None
    resident.age_band = None
    resident.gender = None
    resident.area = None
    resident.interests_mask = 0
    resident.is_notices_enabled = True
    resident.language = None


def record_unfollow(session: Session, line_user_id: str) -> Resident:
    """Mark the resident as gone and delete their declared attributes."""
    resident = get_resident(session, line_user_id)
    if resident is None:
        resident = _new_resident(session, line_user_id, followed_at=None)
    resident.is_following = False
    resident.unfollowed_at = utcnow()
    forget_attributes(resident)
    session.flush()
    return resident


# --- consent and settings ---------------------------------------------------------------------


def has_consented(resident: Resident | None) -> bool:
    """True when the resident agreed to have attributes stored (and has not withdrawn)."""
    return resident is not None and resident.consented_at is not None


def give_consent(resident: Resident) -> bool:
    """Store the time of consent; False when the resident had already consented (nothing changes)."""
    if resident.consented_at is not None:
        return False
    resident.consented_at = utcnow()
    resident.is_notices_enabled = True
    return True


def consent_key(resident: Resident) -> int | None:
    """A number naming the current consent (milliseconds since 2020); None without consent.

    Settings buttons carry it, so a button offered before a deletion or an unfollow is stale
    once the resident consents again, and changes nothing.
    """
    if resident.consented_at is None:
        return None
    return (resident.consented_at - _EPOCH) // dt.timedelta(milliseconds=1)


def _require_consent(resident: Resident) -> None:
    if resident.consented_at is None:
        raise SettingError("consent required")


def choices_for(field: str, municipality: str) -> tuple[str, ...]:
    """The values offered for a single-valued attribute."""
    if field == "age_band":
        return AGE_BANDS
    if field == "gender":
        return GENDERS
    if field == "area":
        return area_choices(municipality)
    raise SettingError(f"unknown field {field!r}")


def set_attribute(resident: Resident, field: str, value: str, municipality: str) -> bool:
    """Set age band, gender or area to an offered value; True when it changed."""
    _require_consent(resident)
    if value not in choices_for(field, municipality):
        raise SettingError(f"value not offered for {field}")
    if getattr(resident, field) == value:
        return False
    setattr(resident, field, value)
    return True


def set_interest(resident: Resident, name: str, selected: bool) -> bool:
    """Add or remove one interest; True when it changed (idempotent, so a repeated tap is harmless)."""
    _require_consent(resident)
    if name not in INTEREST_BITS:
        raise SettingError("interest not offered")
    bit = INTEREST_BITS[name]
    new_mask = resident.interests_mask | bit if selected else resident.interests_mask & ~bit
    if new_mask == resident.interests_mask:
        return False
    resident.interests_mask = new_mask
    return True


def set_language(resident: Resident, language: str) -> bool:
    """Set the language the bot uses with the resident (a declared attribute, so only with consent);
    True when it changed. The caller checks the code is one the city offers (bot.i18n)."""
    _require_consent(resident)
    if resident.language == language:
        return False
    resident.language = language
    return True


def set_notices_enabled(resident: Resident, enabled: bool) -> bool:
    """Turn notices on or off; True when it changed."""
    _require_consent(resident)
    if resident.is_notices_enabled == enabled:
        return False
    resident.is_notices_enabled = enabled
    return True


def delete_attributes(resident: Resident) -> bool:
    """「登録情報を削除」: forget consent and attributes; False when there was nothing to delete."""
    if resident.consented_at is None:
        return False
    forget_attributes(resident)
    return True


@dataclass(frozen=True)
class ResidentSettings:
    """What a resident has declared, for showing back to them."""

    age_band: str | None
    gender: str | None
    area: str | None
    interests: tuple[str, ...]
    is_notices_enabled: bool

    @classmethod
    def of(cls, resident: Resident) -> ResidentSettings:
        """The resident's current settings."""
        return cls(resident.age_band, resident.gender, resident.area,
                   tuple(mask_to_interests(resident.interests_mask)), resident.is_notices_enabled)


def residents_by_language(session: Session, municipality: str, start: dt.datetime, end: dt.datetime,
                          limit: int) -> Sequence[Sequence[Any]]:
    """(language as staff read it, followers now) — the KPI's 「言語別の友だち」 table.

    Declared languages only change now, so the figure is today's whatever the month; a resident
    who chose no language is counted as 日本語. (`municipality`, `start`, `end`: the KPI section
    signature; one database holds one city.)"""
    rows = session.execute(
        select(Resident.language, func.count(Resident.id)).where(Resident.is_following.is_(True)).group_by(Resident.language)
    ).all()
    totals: dict[str, int] = {}
    for language, count in rows:
        code = language or "ja"
        totals[code] = totals.get(code, 0) + int(count)
    return [(staff_label(code), totals[code]) for code in sorted(totals, key=language_order)][:limit]


__all__ = [
    "ATTRIBUTE_FIELDS", "FIELD_LABELS", "INTERESTS", "ResidentSettings", "SettingError", "choices_for",
    "consent_key", "delete_attributes", "forget_attributes", "get_resident", "give_consent", "has_consented",
    "preload_residents",
    "record_follow", "record_unfollow", "set_attribute", "set_interest", "set_language", "set_notices_enabled",
]
