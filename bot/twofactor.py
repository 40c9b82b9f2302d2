"""Two-factor login for staff: TOTP codes (RFC 6238, any authenticator app), the enrolment QR code
drawn on the server as SVG, and one-time recovery codes stored as hashes.

Only the data and checks live here; the views are in bot.admin, the throttled login steps in bot.auth.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import re
import secrets

import pyotp
import segno
from markupsafe import Markup
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from bot.models import RecoveryCode, StaffUser

ISSUER = "LINE窓口 管理画面"
RECOVERY_CODE_COUNT = 10
# Crockford's base32: no I, L, O or U, so a code read off paper is typed right. 16 symbols = 80 bits.
RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_CODE_SYMBOLS = 16
TOTP_DIGITS = 6
# Accept the code of the previous and next 30-second step too: phones' clocks drift a little.
TOTP_DRIFT_STEPS = 1


def has_two_factor(user: StaffUser) -> bool:
    """True when the user logs in with a code from their authenticator app."""
    return user.totp_enabled_at is not None and bool(user.totp_secret)


# --- TOTP ---------------------------------------------------------------------------------------


def begin_enrolment(session: Session, user: StaffUser) -> str:
    """A fresh secret for a user without two-factor login yet (flushed); returns it.

    It is stored at once (server-side, not in the cookie) but used for logins only after the
    user confirmed it with a code. Opening the enrolment page again replaces it, so the QR code
    of the secret finally in use is shown once only.
    """
    if has_two_factor(user):
        raise ValueError("二段階認証は既に有効です。")
    user.totp_secret = pyotp.random_base32()  # 32 characters, 160 bits
    user.totp_last_step = None
    session.flush()
    return user.totp_secret


def provisioning_uri(user: StaffUser, secret: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS).provisioning_uri(name=user.username, issuer_name=ISSUER)


def qr_svg(data: str) -> Markup:
    """A QR code of `data` as inline SVG, drawn here (no network, no script, no inline style)."""
    qr = segno.make(data, error="m", micro=False)
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=5, border=4, dark="#000", light="#fff", xmldecl=False, svgns=True,
            title="二段階認証の設定用QRコード", svgclass="qr-code", lineclass=None)
    return Markup(out.getvalue().decode())


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def totp_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The 30-second step whose code `code` is (now, or one step either side), else None."""
    code = re.sub(r"[\s-]", "", code)
    if not re.fullmatch(rf"\d{{{TOTP_DIGITS}}}", code):
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS)
    current = totp.timecode(now)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def verify_totp(session: Session, user: StaffUser, code: str, now: dt.datetime) -> bool:
    """True for a right code not used before (a code seen once, e.g. over a shoulder, never works again)."""
    if not user.totp_secret:
        return False
    step = totp_step(user.totp_secret, code, now)
    if step is None:
        return False
    # One statement, so two requests with the same code cannot both see it unused.
    taken = session.execute(
        update(StaffUser)
        .where(
            StaffUser.id == user.id,
            or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return False
    session.refresh(user, ["totp_last_step"])
    return True


def finish_enrolment(session: Session, user: StaffUser, code: str, now: dt.datetime) -> list[str] | None:
    """Turn two-factor login on when `code` fits the pending secret; returns the new recovery codes."""
    if has_two_factor(user) or not user.totp_secret or not verify_totp(session, user, code, now):
        return None
    user.totp_enabled_at = now
    return new_recovery_codes(session, user, now)


def disable(session: Session, user: StaffUser) -> None:
    """Forget the secret and the recovery codes (flushed): the user logs in with the password alone."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.staff_user_id == user.id))
    session.flush()


# --- recovery codes ----------------------------------------------------------------------------------


def _normalize_recovery_code(code: str) -> str:
    """What a typed code stands for: no spaces or hyphens, lowercase, look-alikes read as digits."""
    code = re.sub(r"[\s-]", "", code).lower()
    return code.translate(str.maketrans({"o": "0", "i": "1", "l": "1"}))


def _hash_recovery_code(code: str) -> str:
    # A fast hash is enough: each code is 80 random bits, far beyond guessing even with the table.
    return hashlib.sha256(_normalize_recovery_code(code).encode()).hexdigest()


def _format_recovery_code(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def new_recovery_codes(session: Session, user: StaffUser, now: dt.datetime) -> list[str]:
    """Replace the user's recovery codes with RECOVERY_CODE_COUNT new ones; returns them (shown once)."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.staff_user_id == user.id))
    codes = [
        _format_recovery_code("".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_SYMBOLS)))
        for _ in range(RECOVERY_CODE_COUNT)
    ]
    for code in codes:
        session.add(RecoveryCode(staff_user_id=user.id, code_hash=_hash_recovery_code(code), created_at=now))
    session.flush()
    return codes


def looks_like_recovery_code(code: str) -> bool:
    """True when the text has the length of a recovery code (not a 6-digit app code)."""
    return len(_normalize_recovery_code(code)) == RECOVERY_CODE_SYMBOLS


def use_recovery_code(session: Session, user: StaffUser, code: str, now: dt.datetime) -> bool:
    """Mark the matching unused recovery code used and return True; each works once."""
    if not looks_like_recovery_code(code):
        return False
    # One statement, so two requests with the same code cannot both use it.
    used = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.staff_user_id == user.id,
            RecoveryCode.code_hash == _hash_recovery_code(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(used.rowcount)  # type: ignore[attr-defined]


def recovery_codes_left(session: Session, user: StaffUser) -> int:
    """How many of the user's recovery codes are still unused."""
    return session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.staff_user_id == user.id, RecoveryCode.used_at.is_(None))
    ) or 0
