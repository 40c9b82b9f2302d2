"""Staff authentication: password hashing, throttled login, sessions, roles, audit log, navigation."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable, Collection
import time
from dataclasses import dataclass, replace
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

import flask
from flask import abort, current_app, g, has_request_context, redirect, request, url_for
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from bot import twofactor
from bot.db import get_session, utcnow
from bot.models import ROLE_LABELS, ROLES, AuditLog, LoginAttempt, StaffUser

P = ParamSpec("P")
R = TypeVar("R")

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")
PASSWORD_MIN_CHARS = 12
# scrypt/pbkdf2 cost grows with the input; a cap keeps a login form from being a CPU lever.
PASSWORD_MAX_CHARS = 256
FIRST_ADMIN_USERNAME = "admin"
CLI_ACTOR = "(CLI)"
# Keys whose values never reach the audit log, whatever a caller passes.
SECRET_DETAIL_KEYS = ("password", "secret", "token")
LOGIN_ATTEMPT_RETENTION = dt.timedelta(days=30)
# Failures of one account from one address older than this no longer count toward its wait.
LOGIN_FAILURE_MEMORY = dt.timedelta(days=1)
# Enough failures in a row to reach any sensible maximum wait (the wait doubles each time).
PAIR_LOOKBACK = 40

# "second_factor": the password was right and the user's authenticator code is still needed.
LoginOutcome = Literal["ok", "invalid", "locked", "second_factor"]
# How long a right password waits for the second step's code before it has to be typed again.
SECOND_FACTOR_SECONDS = 300
# The pages a user may open while their required two-factor setup is not done.
TWO_FACTOR_SETUP_ENDPOINTS = frozenset({"admin.two_factor", "admin.two_factor_setup"})

# Japanese labels of audit actions for the audit page; other packages may add theirs.
AUDIT_ACTION_LABELS: dict[str, str] = {
    "login": "ログイン",
    "login_failed": "ログイン失敗",
    "login_locked": "ログイン拒否（ロック中）",
    "logout": "ログアウト",
    "user_create": "ユーザー作成",
    "user_role_change": "権限変更",
    "user_deactivate": "ユーザー無効化",
    "user_activate": "ユーザー有効化",
    "user_set_password": "パスワード設定",
    "password_change": "パスワード変更（本人）",
    "login_2fa_failed": "ログイン失敗（確認コード）",
    "2fa_enable": "二段階認証を有効化",
    "2fa_enable_failed": "二段階認証の設定失敗（確認コード）",
    "2fa_disable": "二段階認証を無効化",
    "2fa_disable_failed": "二段階認証の無効化失敗",
    "2fa_reset": "二段階認証のリセット（CLI）",
    "2fa_recovery_code_used": "復旧コードでログイン",
    "2fa_recovery_codes_new": "復旧コードを再発行",
    "2fa_recovery_codes_new_failed": "復旧コードの再発行失敗",
}


# --- passwords and accounts -------------------------------------------------------------


def hash_password(password: str) -> str:
    """A salted, slow hash of the password (werkzeug's default: scrypt)."""
    return generate_password_hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches the stored hash."""
    return check_password_hash(password_hash, password)


@functools.cache
def _dummy_hash() -> str:
    """A hash to check against when the username is unknown, so timing does not reveal it."""
    return generate_password_hash(secrets.token_hex(16))


def validate_password(password: str) -> None:
    """Raise ValueError (Japanese) if the password is not acceptable."""
    if len(password) < PASSWORD_MIN_CHARS:
        raise ValueError(f"パスワードは{PASSWORD_MIN_CHARS}文字以上で指定してください。")
    if len(password) > PASSWORD_MAX_CHARS:
        raise ValueError(f"パスワードは{PASSWORD_MAX_CHARS}文字以内で指定してください。")


def validate_role(role: str) -> None:
    """Raise ValueError (Japanese) if the role is unknown."""
    if role not in ROLES:
        raise ValueError(f"権限は {', '.join(ROLES)} のいずれかを指定してください。")


def normalize_username(username: str) -> str:
    """Usernames are lowercase ASCII; accept what staff type with stray spaces or capitals."""
    return username.strip().lower()


def create_user(session: Session, username: str, password: str, role: str) -> StaffUser:
    """Validate and add a staff user (flushed, not committed); ValueError with a Japanese message."""
    username = normalize_username(username)
    if not USERNAME_RE.match(username):
        raise ValueError("ユーザー名は半角英小文字・数字・「. _ -」の3〜32文字で指定してください（先頭は英数字）。")
    validate_password(password)
    validate_role(role)
    if session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise ValueError(f"ユーザー名「{username}」は既に使われています。")
    user = StaffUser(username=username, password_hash=hash_password(password), role=role, is_active=True)
    session.add(user)
    session.flush()
    return user


def end_sessions(session: Session, user: StaffUser) -> None:
    """End every session of the user, on every browser (flushed, not committed).

    Session cookies carry the user's session_version in their signature (session_auth_hash),
    so raising it makes every cookie issued before, including copies saved elsewhere, worthless.
    """
    user.session_version = (user.session_version or 0) + 1
    session.flush()


def set_password(session: Session, user: StaffUser, password: str) -> None:
    """Validate and store a new password; the user's existing sessions end."""
    validate_password(password)
    user.password_hash = hash_password(password)
    end_sessions(session, user)


def change_role(session: Session, user: StaffUser, role: str) -> None:
    """Validate and set the user's role; when it changes, the user's sessions end."""
    validate_role(role)
    if user.role != role:
        user.role = role
        end_sessions(session, user)
    session.flush()


def set_active(session: Session, user: StaffUser, is_active: bool) -> None:
    """Deactivate or reactivate the user; either way their sessions end (none comes back to life)."""
    if user.is_active != is_active:
        user.is_active = is_active
        end_sessions(session, user)


def find_user(session: Session, username: str) -> StaffUser | None:
    """The staff user with this username, or None."""
    return session.scalar(select(StaffUser).where(StaffUser.username == normalize_username(username)))


def ensure_first_admin(session: Session) -> str | None:
    """Create user `admin` with a random password when there is no staff user; return that password."""
    if session.scalar(select(func.count()).select_from(StaffUser)):
        return None
    password = secrets.token_urlsafe(15)  # 20 characters, ~120 bits
    create_user(session, FIRST_ADMIN_USERNAME, password, "admin")
    return password


# --- login with rate limiting -------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt came to: the user on success, and why not otherwise."""

    outcome: LoginOutcome
    user: StaffUser | None = None
    # The existing account the attempt named, if any (for the audit log; never the typed text).
    account: StaffUser | None = None
    # For "locked": whole seconds until this account may be tried again from this address.
    retry_after: int = 0
    # For "ok" after the second step: "totp" or "recovery_code".
    factor: str = ""


@dataclass(frozen=True)
class LoginPolicy:
    """The login throttle's numbers (settings LOGIN_*)."""

    max_failures: int
    backoff_seconds: float
    max_wait_seconds: float
    max_failures_per_address: int
    max_failures_per_account: int


def login_policy() -> LoginPolicy:
    """The throttle's numbers from the app's settings."""
    config = current_app.config
    return LoginPolicy(
        max_failures=int(config["LOGIN_MAX_FAILURES"]),
        backoff_seconds=float(config["LOGIN_BACKOFF_SECONDS"]),
        max_wait_seconds=float(config["LOGIN_LOCKOUT_SECONDS"]),
        max_failures_per_address=int(config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
        max_failures_per_account=int(config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
    )


def backoff_seconds(policy: LoginPolicy, failures: int) -> float:
    """How long one account-and-address pair waits after this many failures in a row.

    Nothing below LOGIN_MAX_FAILURES; then LOGIN_BACKOFF_SECONDS, doubled by each further
    failure, up to LOGIN_LOCKOUT_SECONDS.
    """
    if failures < policy.max_failures:
        return 0.0
    doublings = min(failures - policy.max_failures, 40)
    return min(policy.backoff_seconds * 2**doublings, policy.max_wait_seconds)


def _attempt_key(user: StaffUser | None, username: str) -> str:
    """What login attempts are counted under: the username, or a keyed digest when unknown.

    Unknown names are still counted (so the throttle does not reveal which names exist),
    but not stored as typed: staff sometimes type their password into the username field.
    """
    if user is not None:
        return user.username
    key = current_app.config["SECRET_KEY"].encode()
    return "#" + hmac.new(key, username.encode(), hashlib.sha256).hexdigest()[:40]


def _nth_latest_failure(session: Session, condition: Any, n: int, since: dt.datetime) -> dt.datetime | None:
    """When the n-th most recent failure matching `condition` since `since` happened, if there were n."""
    return session.scalar(
        select(LoginAttempt.at)
        .where(condition, LoginAttempt.is_success.is_(False), LoginAttempt.at >= since)
        .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
        .offset(n - 1)
        .limit(1)
    )


def _is_known_address(session: Session, key: str, ip: str, now: dt.datetime) -> bool:
    """True when the account logged in successfully from this address within the retention period."""
    return session.scalar(
        select(LoginAttempt.id)
        .where(
            LoginAttempt.username == key,
            LoginAttempt.ip == ip,
            LoginAttempt.is_success.is_(True),
            LoginAttempt.at >= now - LOGIN_ATTEMPT_RETENTION,
        )
        .limit(1)
    ) is not None


def throttled_until(session: Session, key: str, ip: str, now: dt.datetime) -> dt.datetime | None:
    """When this account may be tried again from this address, or None when it may be now.

    No rule locks an account as such, so nobody can keep a member of staff out from elsewhere:
    1. The pair (account, address): after LOGIN_MAX_FAILURES failures in a row it waits, and
       each further failure doubles the wait (backoff_seconds). Only a success of the same pair
       starts the count again (only someone who knows the password can produce one); failures
       older than a day are forgotten.
    2. The address, whatever accounts it names (password spraying): LOGIN_MAX_FAILURES_PER_ADDRESS
       failures within LOGIN_LOCKOUT_SECONDS; successes do not reset it.
    3. The account, from whatever addresses (guessing from many machines):
       LOGIN_MAX_FAILURES_PER_ACCOUNT failures within LOGIN_LOCKOUT_SECONDS stop only addresses
       where the account has not logged in successfully in the last 30 days; staff at their
       usual desk still get in.
    Attempts refused here are not recorded, so waits end instead of being extended by whoever
    keeps trying.
    """
    policy = login_policy()
    window_start = now - dt.timedelta(seconds=policy.max_wait_seconds)
    window = dt.timedelta(seconds=policy.max_wait_seconds)
    until: list[dt.datetime] = []
    rows = session.execute(
        select(LoginAttempt.at, LoginAttempt.is_success)
        .where(LoginAttempt.username == key, LoginAttempt.ip == ip, LoginAttempt.at >= now - LOGIN_FAILURE_MEMORY)
        .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
        .limit(policy.max_failures + PAIR_LOOKBACK)
    ).all()
    failures = 0
    for _at, is_success in rows:
        if is_success:
            break
        failures += 1
    wait = backoff_seconds(policy, failures)
    if wait > 0:
        until.append(rows[0].at + dt.timedelta(seconds=wait))
    if policy.max_failures_per_address > 0:
        nth = _nth_latest_failure(session, LoginAttempt.ip == ip, policy.max_failures_per_address, window_start)
        if nth is not None:
            until.append(nth + window)
    if policy.max_failures_per_account > 0:
        nth = _nth_latest_failure(session, LoginAttempt.username == key, policy.max_failures_per_account, window_start)
        if nth is not None and not _is_known_address(session, key, ip, now):
            until.append(nth + window)
    latest = max(until, default=None)
    return latest if latest is not None and latest > now else None


def _locked_result(user: StaffUser | None, until: dt.datetime, now: dt.datetime) -> LoginResult:
    return LoginResult("locked", None, user, retry_after=max(1, math.ceil((until - now).total_seconds())))


def is_locked_out(session: Session, username: str, ip: str) -> bool:
    """True when this username may not be tried from this address just now."""
    username = normalize_username(username)
    key = _attempt_key(find_user(session, username), username)
    return throttled_until(session, key, ip[:64], utcnow()) is not None


def check_login(session: Session, username: str, password: str, ip: str) -> LoginResult:
    """Check credentials under the throttle and record the attempt (flushed, not committed)."""
    username = normalize_username(username)
    ip = ip[:64]
    now = utcnow()
    user = find_user(session, username) if len(username) <= 64 else None
    key = _attempt_key(user, username)
    until = throttled_until(session, key, ip, now)
    if until is not None:
        return _locked_result(user, until, now)
    if user is None or len(password) > PASSWORD_MAX_CHARS:
        verify_password(_dummy_hash(), password[:PASSWORD_MAX_CHARS])
        ok = False
    else:
        ok = verify_password(user.password_hash, password) and user.is_active
    if not ok:
        _record_failure(session, key, ip, now)
        return LoginResult("invalid", None, user)
    assert user is not None
    if twofactor.has_two_factor(user):
        # Nothing recorded yet: a right password alone must not restart the count of failures,
        # or whoever knows it could guess codes for ever.
        return LoginResult("second_factor", None, user)
    return _login_succeeded(session, user, ip, now)


def check_second_factor(session: Session, user: StaffUser, code: str, ip: str) -> LoginResult:
    """Second step: a code from the authenticator app or an unused recovery code, under the same throttle."""
    ip = ip[:64]
    now = utcnow()
    until = throttled_until(session, user.username, ip, now)
    if until is not None:
        return _locked_result(user, until, now)
    factor = ""
    if user.is_active and twofactor.has_two_factor(user):
        if twofactor.verify_totp(session, user, code, now):
            factor = "totp"
        elif twofactor.use_recovery_code(session, user, code, now):
            factor = "recovery_code"
    if not factor:
        _record_failure(session, user.username, ip, now)
        return LoginResult("invalid", None, user)
    return replace(_login_succeeded(session, user, ip, now), factor=factor)


def confirm_identity(session: Session, user: StaffUser, password: str, code: str | None, ip: str) -> LoginResult:
    """Before disabling two-factor login or new recovery codes: the password (and a code), throttled like a login.

    Failures count toward the same waits as logins, so a borrowed session cannot be used to guess
    the password or codes. Nothing is recorded on success (it is not a login).
    """
    ip = ip[:64]
    now = utcnow()
    until = throttled_until(session, user.username, ip, now)
    if until is not None:
        return _locked_result(user, until, now)
    ok = len(password) <= PASSWORD_MAX_CHARS and verify_password(user.password_hash, password)
    factor = ""
    if ok and code is not None:
        if twofactor.verify_totp(session, user, code, now):
            factor = "totp"
        elif twofactor.use_recovery_code(session, user, code, now):
            factor = "recovery_code"
        ok = bool(factor)
    if not ok:
        _record_failure(session, user.username, ip, now)
        return LoginResult("invalid", None, user)
    return LoginResult("ok", user, user, factor=factor)


def _record_failure(session: Session, key: str, ip: str, now: dt.datetime) -> None:
    session.add(LoginAttempt(at=now, username=key, ip=ip, is_success=False))
    session.flush()


def _login_succeeded(session: Session, user: StaffUser, ip: str, now: dt.datetime) -> LoginResult:
    session.add(LoginAttempt(at=now, username=user.username, ip=ip, is_success=True))
    user.last_login_at = now
    # Pruned on success so the table stays small without a separate job.
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - LOGIN_ATTEMPT_RETENTION))
    session.flush()
    return LoginResult("ok", user, user)


def authenticate(session: Session, username: str, password: str, ip: str) -> StaffUser | None:
    """The staff user for these credentials, or None (wrong, inactive, locked out, or a code still needed)."""
    return check_login(session, username, password, ip).user


# --- the signed-cookie session ------------------------------------------------------------


def client_ip() -> str:
    """The client address of the current request (needs ProxyFix behind a reverse proxy)."""
    return (request.remote_addr or "")[:64]


def session_auth_hash(user: StaffUser) -> str:
    """Ties a session to the user's password and session version: a change to either ends it."""
    key = current_app.config["SECRET_KEY"].encode()
    message = f"{user.id}:{user.session_version or 0}:{user.password_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def login_user(user: StaffUser) -> None:
    """Start a fresh session for the user (clearing the old one prevents session fixation)."""
    flask.session.clear()
    flask.session["staff_id"] = user.id
    flask.session["auth"] = session_auth_hash(user)
    g.staff_user = user


def logout_user(session: Session | None = None) -> None:
    """Forget the signed-in user; with a database session, also end every other session of theirs.

    A signed cookie cannot be taken back from a browser, so clearing it here is not enough:
    a copy saved before logging out would still open the admin. Raising the session version
    (the caller commits) makes every earlier cookie of this user fail the check in current_staff.
    """
    user = current_staff()
    if session is not None and user is not None:
        end_sessions(session, user)
    flask.session.clear()
    g.staff_user = None


def begin_second_factor(user: StaffUser, next_url: str | None) -> None:
    """Remember, in a fresh session, that this user gave the right password and owes a code.

    Not signed in yet: current_staff() stays None until check_second_factor succeeds. The note
    is tied to the user's password and session version and lapses after SECOND_FACTOR_SECONDS.
    """
    flask.session.clear()
    flask.session["pending_2fa"] = {
        "uid": user.id,
        "auth": session_auth_hash(user),
        "at": int(time.time()),
        "next": next_url or "",
    }
    g.staff_user = None


def pending_second_factor() -> tuple[StaffUser, str | None] | None:
    """The user waiting for the second step in this session, and where they were going; or None."""
    pending = flask.session.get("pending_2fa")
    if not isinstance(pending, dict) or not isinstance(pending.get("uid"), int):
        return None
    if not isinstance(pending.get("at"), int) or time.time() - pending["at"] > SECOND_FACTOR_SECONDS:
        return None
    user = get_session().get(StaffUser, pending["uid"])
    if user is None or not user.is_active or not twofactor.has_two_factor(user):
        return None
    if not hmac.compare_digest(str(pending.get("auth", "")), session_auth_hash(user)):
        return None
    return user, safe_next_url(str(pending.get("next") or "")) or None


def two_factor_required(user: StaffUser) -> bool:
    """True when this user must log in with two factors (role admin while ADMIN_REQUIRE_2FA is on)."""
    return user.role == "admin" and bool(current_app.config.get("ADMIN_REQUIRE_2FA"))


def needs_two_factor_setup(user: StaffUser) -> bool:
    """True when two-factor login is required of the user but not set up yet."""
    return two_factor_required(user) and not twofactor.has_two_factor(user)


def current_staff() -> StaffUser | None:
    """The signed-in, active staff user of this request, or None."""
    if not has_request_context():
        return None  # the CLI and background work act as nobody in particular
    if "staff_user" in g:
        return g.staff_user  # type: ignore[no-any-return]
    user: StaffUser | None = None
    staff_id = flask.session.get("staff_id")
    if isinstance(staff_id, int):
        candidate = get_session().get(StaffUser, staff_id)
        # Read from the database each request so deactivation and role changes apply at once.
        if (
            candidate is not None
            and candidate.is_active
            and hmac.compare_digest(str(flask.session.get("auth", "")), session_auth_hash(candidate))
        ):
            user = candidate
    g.staff_user = user
    return user


def has_role(user: StaffUser | None, roles: Collection[str]) -> bool:
    """True when the user may open something meant for these roles (admin may open everything)."""
    if user is None:
        return False
    return user.role == "admin" or not roles or user.role in roles


def safe_next_url(target: str | None) -> str | None:
    """The target if it is a local admin path (no open redirect), else None."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/admin") or "\\" in target:
        return None
    return target


def require_role(*roles: str) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Guard a view: not signed in -> login page; without one of the roles -> 403 (no roles: any staff)."""
    for role in roles:
        validate_role(role)

    def decorator(view: Callable[P, R]) -> Callable[P, Any]:
        @functools.wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> Any:
            user = current_staff()
            if user is None:
                return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
            if needs_two_factor_setup(user) and request.endpoint not in TWO_FACTOR_SETUP_ENDPOINTS:
                # Signed in with the password alone: nothing opens before the authenticator is set up.
                return redirect(url_for("admin.two_factor_setup"))
            if not has_role(user, roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


# --- audit log ---------------------------------------------------------------------------


def _redact(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        key: "[redacted]" if any(word in key.lower() for word in SECRET_DETAIL_KEYS) else value
        for key, value in detail.items()
    }


def audit(
    session: Session, action: str, target: str = "", *, actor: StaffUser | None = None, **detail: Any
) -> AuditLog:
    """Add an audit row: who (`actor`, else the signed-in staff, else the CLI), from where; the caller commits."""
    # `detail` must be JSON-serialisable; values under keys that look secret are redacted.
    in_request = has_request_context()
    if actor is None and in_request:
        actor = current_staff()
    if actor is not None:
        username = actor.username
    else:
        username = "" if in_request else CLI_ACTOR
    entry = AuditLog(
        at=utcnow(),
        staff_user_id=actor.id if actor is not None else None,
        username=username[:64],
        action=action[:64],
        target=target[:256],
        detail=_redact(detail),
        ip=client_ip() if in_request else "",
    )
    session.add(entry)
    return entry


# --- navigation registry -------------------------------------------------------------------


@dataclass(frozen=True)
class NavItem:
    """One entry of the admin navigation."""

    label: str
    endpoint: str
    roles: frozenset[str]
    order: int


# Keyed by endpoint so registering again (a new app per test) replaces instead of duplicating.
_NAV: dict[str, NavItem] = {}


def register_nav(label_ja: str, endpoint: str, roles: tuple[str, ...] | list[str], *, order: int = 100) -> None:
    """Add a section to the admin navigation for these roles (admin always sees it)."""
    for role in roles:
        validate_role(role)
    _NAV[endpoint] = NavItem(label_ja, endpoint, frozenset(roles), order)


def nav_items(user: StaffUser | None = None) -> list[NavItem]:
    """The navigation items the user may open in the current app, in order."""
    user = user if user is not None else current_staff()
    views = current_app.view_functions
    items = [item for item in _NAV.values() if item.endpoint in views and has_role(user, item.roles)]
    return sorted(items, key=lambda item: (item.order, item.label))


def role_label(role: str) -> str:
    """The Japanese name of a role."""
    return ROLE_LABELS.get(role, role)
