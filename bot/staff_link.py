"""Staff link their own LINE account to their admin user, for test sends of notices.

The admin page issues a one-time code (6 digits, valid LINK_CODE_MINUTES); the staff member sends
「職員連携 123456」 to the city's account from their own LINE; the message handler calls
`link_from_message`, which stores the sender's LINE user id on the staff user. Only the code's
SHA-256 is stored; a code works once. The message is never put in the question log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import unicodedata

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.db import utcnow
from bot.models import AuditLog, StaffUser

LINK_CODE_MINUTES = 10
LINK_WORD = "職員連携"
# Anyone can send the bot a message: after this many wrong codes in LINK_CODE_MINUTES (from anyone),
# no code is accepted until the window has passed, so a code cannot be found by trying them all.
MAX_FAILURES = 20
FAILED_ACTION = "staff_line_link_failed"
_MESSAGE_RE = re.compile(rf"^{LINK_WORD}\s*(\d{{6}})$")


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def issue_link_code(user: StaffUser, now: dt.datetime | None = None) -> str:
    """A fresh one-time code for the user (replacing any earlier one); the caller commits."""
    now = now or utcnow()
    code = f"{secrets.randbelow(1_000_000):06d}"
    user.line_link_code_hash = _hash(code)
    user.line_link_expires_at = now + dt.timedelta(minutes=LINK_CODE_MINUTES)
    return code


def unlink(user: StaffUser) -> None:
    """Forget the user's LINE account (and any code not yet used)."""
    user.line_user_id = None
    user.line_linked_at = None
    user.line_link_code_hash = None
    user.line_link_expires_at = None


def is_link_message(text: str) -> bool:
    """True for 「職員連携 123456」 (full-width digits and spaces too)."""
    return _MESSAGE_RE.match(unicodedata.normalize("NFKC", text).strip()) is not None


def link_from_message(session: Session, line_user_id: str | None, text: str, now: dt.datetime | None = None) -> str | None:
    """If `text` is a link message, link the sender to the staff user whose code it is and return the
    reply (Japanese, for staff); None when the text is not a link message (the caller carries on)."""
    match = _MESSAGE_RE.match(unicodedata.normalize("NFKC", text).strip())
    if match is None or not line_user_id:
        return None
    now = now or utcnow()
    window = now - dt.timedelta(minutes=LINK_CODE_MINUTES)
    failures = session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == FAILED_ACTION, AuditLog.at >= window)) or 0
    if failures >= MAX_FAILURES:
        return "連携コードの誤りが続いたため、しばらく連携を受け付けていません。時間をおいて、新しいコードを発行してください。"
    user = session.scalar(
        select(StaffUser).where(StaffUser.line_link_code_hash == _hash(match.group(1)), StaffUser.is_active.is_(True))
    )
    if user is None or user.line_link_expires_at is None or user.line_link_expires_at < now:
        # Who tried is not recorded (a resident may have typed it): only that a code was wrong.
        session.add(AuditLog(at=now, staff_user_id=None, username="LINE", action=FAILED_ACTION, target="", detail={}, ip=""))
        return "この連携コードは使えません（期限切れ、使用済み、または誤り）。管理画面で新しいコードを発行してください。"
    # One LINE account belongs to one staff user: an earlier link of this account is moved here.
    session.execute(
        update(StaffUser).where(StaffUser.line_user_id == line_user_id, StaffUser.id != user.id)
        .values(line_user_id=None, line_linked_at=None)
    )
    session.flush()
    user.line_user_id = line_user_id
    user.line_linked_at = now
    user.line_link_code_hash = None
    user.line_link_expires_at = None
    from bot.auth import audit

    audit(session, "staff_line_link", user.username, actor=user)
    return f"管理画面のユーザー「{user.username}」とこのLINEアカウントを連携しました。お知らせのテスト送信がこのアカウントに届きます。"


def linked_staff(session: Session, user_ids: list[int] | None = None) -> list[StaffUser]:
    """Active staff users with a linked LINE account (optionally only these ids)."""
    stmt = select(StaffUser).where(StaffUser.line_user_id.is_not(None), StaffUser.is_active.is_(True)).order_by(StaffUser.id)
    if user_ids is not None:
        stmt = stmt.where(StaffUser.id.in_(user_ids))
    return list(session.scalars(stmt).all())
