"""Resident lifecycle services (follow, unfollow); segment rules come with the segments issue."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db import utcnow
from segments.models import Resident


def get_resident(session: Session, line_user_id: str) -> Resident | None:
    """The resident with this LINE user id, if known."""
    return session.scalars(select(Resident).where(Resident.line_user_id == line_user_id)).first()


def record_follow(session: Session, line_user_id: str) -> Resident:
    """Mark the resident as following; a re-follow starts afresh with no attributes."""
    resident = get_resident(session, line_user_id)
    if resident is None:
        resident = Resident(line_user_id=line_user_id)
        session.add(resident)
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


def record_unfollow(session: Session, line_user_id: str) -> Resident:
    """Mark the resident as gone and delete their declared attributes."""
    resident = get_resident(session, line_user_id)
    if resident is None:
        resident = Resident(line_user_id=line_user_id, followed_at=None)
        session.add(resident)
    resident.is_following = False
    resident.unfollowed_at = utcnow()
    forget_attributes(resident)
    session.flush()
    return resident
