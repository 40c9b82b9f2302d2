"""Models of the app shell: staff accounts, their recovery codes, login attempts, audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow

ROLES = ("admin", "pr", "faq", "viewer", "reports", "dept")
ROLE_LABELS = {"admin": "管理者", "pr": "広報（お知らせ配信）", "faq": "FAQ担当", "viewer": "閲覧（KPI）",
               "reports": "通報の担当", "dept": "部署（お知らせの作成・承認依頼）"}


class StaffUser(Base):
    """A member of city staff who signs in to /admin."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Part of every session cookie's signature: raising it ends all of the user's sessions
    # (logout, password or role change, deactivation, two-factor changes).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Two-factor login (TOTP, RFC 6238). The secret is set while enrolling and kept once
    # totp_enabled_at is set; totp_last_step is the last accepted time step (no code is used twice).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Role dept: the department whose notices the user drafts and sees (broadcast.approval).
    department: Mapped[str | None] = mapped_column(String(64))
    # The user's own LINE account, for test sends of notices: linked with a one-time code the user
    # sends to the bot from LINE (only its SHA-256 is stored, until it expires or is used).
    line_user_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    line_linked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    line_link_code_hash: Mapped[str | None] = mapped_column(String(64))
    line_link_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RecoveryCode(Base):
    """A one-time code that stands in for the authenticator app; only its SHA-256 is stored."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class LoginAttempt(Base):
    """One staff login attempt, for rate limiting across processes."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"), Index("ix_login_attempts_ip_at", "ip", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    is_success: Mapped[bool] = mapped_column(default=False)


class AuditLog(Base):
    """What a staff member did, when, from where."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str] = mapped_column(String(64), default="")
