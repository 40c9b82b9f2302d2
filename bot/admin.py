"""The staff admin shell: CSRF, login/logout, layout, staff accounts, audit log, `flask users`."""

from __future__ import annotations

import datetime as dt
import math
import sys
from typing import Any

import click
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.cli import AppGroup
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from bot import audit_text, auth, dates, plans, twofactor
from bot.auth import audit, current_staff, register_nav, require_role
from bot.db import get_db, get_session, utcnow
from bot.models import ROLE_LABELS, ROLES, AuditLog, StaffUser

bp = Blueprint("admin", __name__, url_prefix="/admin")

JST = dt.timezone(dt.timedelta(hours=9), "JST")  # Japan has no daylight saving time
AUDIT_PAGE_SIZE = 50
# Views that must accept POSTs from outside a staff browser (LINE's servers, the simulator).
# The homepage chat's JSON API carries no cookie authority; it requires JSON and an allowed Origin
# instead (webchat.views), so cross-site form posts cannot reach it either.
CSRF_EXEMPT_ENDPOINTS = frozenset({"webhook.callback", "webchat.api_ask", "webchat.api_choose", "webchat.api_feedback"})
CSRF_EXEMPT_BLUEPRINT_PREFIX = "simulator"

MSG_LOGIN_EMPTY = "ユーザー名とパスワードを入力してください。"
MSG_LOGIN_INVALID = "ユーザー名またはパスワードが正しくありません。"
MSG_LOGIN_LOCKED = "ログインの失敗が続いたため、一時的にログインできません。{wait}ほど時間をおいてから再度お試しください。"
MSG_LOGIN_REQUIRED = "ログインしてください。"
MSG_SELF_CHANGE = "自分自身の権限変更・無効化はできません。"
MSG_CODE_EMPTY = "確認コードを入力してください。"
MSG_CODE_INVALID = "確認コードが正しくありません。認証アプリに表示されている最新の6桁、または未使用の復旧コードを入力してください。"
MSG_CODE_EXPIRED = "確認コードの入力時間が過ぎました。もう一度ユーザー名とパスワードからログインしてください。"
MSG_PASSWORD_WRONG = "パスワードまたは確認コードが正しくありません。"
# At or below this many unused recovery codes, staff are told to make new ones.
RECOVERY_CODES_LOW = 3


# --- authentication views --------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Staff login form."""
    next_url = auth.safe_next_url(request.values.get("next"))
    if request.method == "GET":
        if current_staff() is not None:
            return redirect(next_url or url_for("admin.index"))
        notice = MSG_LOGIN_REQUIRED if next_url else None
        return render_template("admin/login.html", next_url=next_url, username="", notice=notice)

    username = request.form.get("username", "")
    password = request.form.get("password", "")
    if not username.strip() or not password:
        return render_template("admin/login.html", next_url=next_url, username=username, error=MSG_LOGIN_EMPTY), 400

    session = get_session()
    result = auth.check_login(session, username, password, auth.client_ip())
    if result.outcome == "ok" and result.user is not None:
        auth.login_user(result.user)
        audit(session, "login")
        session.commit()
        flash("ログインしました。", "success")
        return redirect(next_url or url_for("admin.index"))
    if result.outcome == "second_factor" and result.account is not None:
        session.commit()
        auth.begin_second_factor(result.account, next_url)
        return redirect(url_for("admin.login_code"))

    # Only an existing account's name is logged: a mistyped "username" may be a password.
    target = result.account.username if result.account is not None else ""
    if result.outcome == "locked":
        audit(session, "login_locked", target, known_user=result.account is not None)
        session.commit()
        return _locked_page("admin/login.html", result.retry_after, next_url=next_url, username=username)
    audit(session, "login_failed", target, known_user=result.account is not None)
    session.commit()
    return render_template("admin/login.html", next_url=next_url, username=username, error=MSG_LOGIN_INVALID), 200


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> Any:
    """The second step of a login: a code from the authenticator app, or a recovery code."""
    pending = auth.pending_second_factor()
    if pending is None:
        flash(MSG_CODE_EXPIRED, "error")
        return redirect(url_for("admin.login"))
    user, next_url = pending
    if request.method == "GET":
        return render_template("admin/login_code.html")
    code = request.form.get("code", "").strip()
    if not code:
        return render_template("admin/login_code.html", error=MSG_CODE_EMPTY), 400
    session = get_session()
    result = auth.check_second_factor(session, user, code, auth.client_ip())
    if result.outcome == "locked":
        audit(session, "login_locked", user.username, known_user=True, step="code")
        session.commit()
        return _locked_page("admin/login_code.html", result.retry_after)
    if result.outcome != "ok":
        audit(session, "login_2fa_failed", user.username)
        session.commit()
        return render_template("admin/login_code.html", error=MSG_CODE_INVALID), 200
    auth.login_user(user)
    audit(session, "login", two_factor=result.factor)
    flash("ログインしました。", "success")
    if result.factor == "recovery_code":
        left = twofactor.recovery_codes_left(session, user)
        audit(session, "2fa_recovery_code_used", user.username, remaining=left)
        flash(f"復旧コードを1つ使いました（残り{left}個）。使ったコードはもう使えません。", "warning")
        if left <= RECOVERY_CODES_LOW:
            flash("復旧コードが残り少なくなっています。「二段階認証」の画面で新しい復旧コードを発行してください。", "warning")
    session.commit()
    return redirect(next_url or url_for("admin.index"))


def wait_label(seconds: int) -> str:
    """A wait as staff read it: 「約3分」, 「30秒」."""
    return f"{seconds}秒" if seconds < 60 else f"約{math.ceil(seconds / 60)}分"


def _locked_page(template: str, retry_after: int, **context: Any) -> Any:
    """429 with the wait in words and in Retry-After."""
    error = MSG_LOGIN_LOCKED.format(wait=wait_label(retry_after))
    return render_template(template, error=error, **context), 429, {"Retry-After": str(retry_after)}


@bp.post("/logout")
def logout() -> Response:
    """End the staff session (POST with the CSRF token, so no other site can log staff out).

    Every cookie of this user issued before stops working too (see auth.logout_user).
    """
    session = get_session()
    if current_staff() is not None:
        audit(session, "logout")
    auth.logout_user(session)
    session.commit()
    flash("ログアウトしました。", "success")
    return redirect(url_for("admin.login"))


@bp.route("/password", methods=["GET", "POST"])
@require_role()
def password() -> Any:
    """A staff member changes their own password."""
    user = current_staff()
    assert user is not None
    if request.method == "GET":
        return render_template("admin/password.html")
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    if not auth.verify_password(user.password_hash, current):
        return render_template("admin/password.html", error="現在のパスワードが正しくありません。"), 400
    if new != request.form.get("new_password_confirm", ""):
        return render_template("admin/password.html", error="新しいパスワードが確認用と一致しません。"), 400
    session = get_session()
    try:
        auth.set_password(session, user, new)
    except ValueError as exc:
        session.rollback()
        return render_template("admin/password.html", error=str(exc)), 400
    audit(session, "password_change", user.username)
    session.commit()
    auth.login_user(user)  # the new password ends other sessions; keep this one
    flash("パスワードを変更しました。", "success")
    return redirect(url_for("admin.index"))


# --- two-factor login: status, setup, recovery codes, turning it off ---------------------------------


def _two_factor_page(status: int = 200, error: str | None = None) -> Any:
    user = current_staff()
    assert user is not None
    left = twofactor.recovery_codes_left(get_session(), user) if twofactor.has_two_factor(user) else 0
    context = {
        "enabled": twofactor.has_two_factor(user),
        "required": auth.two_factor_required(user),
        "codes_left": left,
        "codes_low": RECOVERY_CODES_LOW,
        "error": error,
    }
    return render_template("admin/two_factor.html", **context), status


@bp.get("/2fa")
@require_role()
def two_factor() -> Any:
    """Whether this staff member logs in with two factors, and what they can do about it."""
    return _two_factor_page()


def _setup_page(user: StaffUser, secret: str, status: int = 200, error: str | None = None) -> Any:
    uri = twofactor.provisioning_uri(user, secret)
    return render_template(
        "admin/two_factor_setup.html",
        qr=twofactor.qr_svg(uri),
        secret=twofactor.grouped(secret),
        required=auth.two_factor_required(user),
        error=error,
    ), status


@bp.route("/2fa/setup", methods=["GET", "POST"])
@require_role()
def two_factor_setup() -> Any:
    """Enrol an authenticator app: a new secret's QR code, then a code from the app to confirm it."""
    user = current_staff()
    assert user is not None
    session = get_session()
    if twofactor.has_two_factor(user):
        flash("二段階認証は既に有効です。", "info")
        return redirect(url_for("admin.two_factor"))
    if request.method == "GET" or not user.totp_secret:
        # Each visit draws a new secret, so the QR code of the one finally used is shown once.
        secret = twofactor.begin_enrolment(session, user)
        session.commit()
        return _setup_page(user, secret)
    codes = twofactor.finish_enrolment(session, user, request.form.get("code", ""), utcnow())
    if codes is None:
        audit(session, "2fa_enable_failed", user.username)
        session.commit()
        return _setup_page(user, user.totp_secret or "", 400, "確認コードが正しくありません。アプリに表示されている最新の6桁を入力してください。")
    auth.end_sessions(session, user)  # other browsers log in again, now with a code
    audit(session, "2fa_enable", user.username)
    session.commit()
    auth.login_user(user)
    return _recovery_codes_page(codes, first=True)


def _recovery_codes_page(codes: list[str], first: bool) -> Any:
    """The recovery codes, shown this once (the page is never cached: Cache-Control: no-store)."""
    return render_template("admin/two_factor_codes.html", codes=codes, first=first)


@bp.post("/2fa/recovery-codes")
@require_role()
def two_factor_new_codes() -> Any:
    """Replace the recovery codes (after the password): the old ones stop working."""
    user = current_staff()
    assert user is not None
    if not twofactor.has_two_factor(user):
        return redirect(url_for("admin.two_factor"))
    session = get_session()
    result = auth.confirm_identity(session, user, request.form.get("password", ""), None, auth.client_ip())
    if result.outcome == "locked":
        session.commit()
        return _locked_page_two_factor(result.retry_after)
    if result.outcome != "ok":
        audit(session, "2fa_recovery_codes_new_failed", user.username)
        session.commit()
        return _two_factor_page(400, "パスワードが正しくありません。")
    codes = twofactor.new_recovery_codes(session, user, utcnow())
    audit(session, "2fa_recovery_codes_new", user.username, count=len(codes))
    session.commit()
    return _recovery_codes_page(codes, first=False)


@bp.post("/2fa/disable")
@require_role()
def two_factor_disable() -> Any:
    """Turn two-factor login off (password and a code); an admin who must use it is asked to set it up again."""
    user = current_staff()
    assert user is not None
    if not twofactor.has_two_factor(user):
        return redirect(url_for("admin.two_factor"))
    session = get_session()
    result = auth.confirm_identity(
        session, user, request.form.get("password", ""), request.form.get("code", ""), auth.client_ip()
    )
    if result.outcome == "locked":
        session.commit()
        return _locked_page_two_factor(result.retry_after)
    if result.outcome != "ok":
        audit(session, "2fa_disable_failed", user.username)
        session.commit()
        return _two_factor_page(400, MSG_PASSWORD_WRONG)
    twofactor.disable(session, user)
    auth.end_sessions(session, user)
    audit(session, "2fa_disable", user.username, confirmed_with=result.factor)
    session.commit()
    auth.login_user(user)
    flash("二段階認証を無効にしました。", "success")
    return redirect(url_for("admin.two_factor"))


def _locked_page_two_factor(retry_after: int) -> Any:
    page, _status = _two_factor_page(429, MSG_LOGIN_LOCKED.format(wait=wait_label(retry_after)))
    return page, 429, {"Retry-After": str(retry_after)}


# --- dashboard, staff accounts, audit log -----------------------------------------------------


@bp.get("/")
@require_role()
def index() -> str:
    """Dashboard: the sections this staff member may open."""
    return render_template("admin/index.html")


def _users_page(status: int = 200, error: str | None = None, form: dict[str, str] | None = None) -> Any:
    users = get_session().scalars(select(StaffUser).order_by(StaffUser.username)).all()
    return render_template("admin/users.html", users=users, error=error, form=form or {}), status


@bp.get("/users")
@require_role("admin")
def users() -> Any:
    """Staff accounts: list, create, change role, deactivate."""
    return _users_page()


@bp.post("/users")
@require_role("admin")
def users_create() -> Any:
    """Create a staff account from the form."""
    form = {"username": request.form.get("username", ""), "role": request.form.get("role", "")}
    password = request.form.get("password", "")
    if password != request.form.get("password_confirm", ""):
        return _users_page(400, "パスワードが確認用と一致しません。", form)
    session = get_session()
    try:
        user = auth.create_user(session, form["username"], password, form["role"])
    except ValueError as exc:
        session.rollback()
        return _users_page(400, str(exc), form)
    audit(session, "user_create", user.username, role=user.role)
    try:
        session.commit()
    except IntegrityError:  # the same name created at the same moment elsewhere
        session.rollback()
        return _users_page(400, f"ユーザー名「{user.username}」は既に使われています。", form)
    flash(f"ユーザー「{user.username}」を作成しました（権限: {auth.role_label(user.role)}）。", "success")
    return redirect(url_for("admin.users"))


def _other_user(user_id: int) -> StaffUser | None:
    """The target account, or None after flashing why it may not be changed."""
    user = get_session().get(StaffUser, user_id)
    if user is None:
        flash("ユーザーが見つかりません。", "error")
        return None
    me = current_staff()
    # Nobody can lock themselves out; so at least the acting admin always stays an active admin.
    if me is not None and user.id == me.id:
        flash(MSG_SELF_CHANGE, "error")
        return None
    return user


@bp.post("/users/<int:user_id>/role")
@require_role("admin")
def user_role(user_id: int) -> Response:
    """Change another staff member's role."""
    user = _other_user(user_id)
    if user is not None:
        role = request.form.get("role", "")
        old = user.role
        session = get_session()
        try:
            auth.change_role(session, user, role)
        except ValueError as exc:
            session.rollback()
            flash(str(exc), "error")
        else:
            if old != role:
                audit(session, "user_role_change", user.username, old=old, new=role)
            session.commit()
            flash(f"ユーザー「{user.username}」の権限を「{auth.role_label(role)}」にしました。", "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/active")
@require_role("admin")
def user_active(user_id: int) -> Response:
    """Deactivate or reactivate another staff member (accounts are never deleted: the audit log refers to them)."""
    user = _other_user(user_id)
    if user is not None:
        is_active = request.form.get("is_active") == "1"
        if user.is_active != is_active:
            session = get_session()
            auth.set_active(session, user, is_active)
            audit(session, "user_activate" if is_active else "user_deactivate", user.username)
            session.commit()
        state = "有効" if is_active else "無効"
        flash(f"ユーザー「{user.username}」を{state}にしました。", "success")
    return redirect(url_for("admin.users"))


@bp.get("/audit")
@require_role("admin")
def audit_log() -> str:
    """The audit log, newest first, paginated."""
    session = get_session()
    total = session.scalar(select(func.count()).select_from(AuditLog)) or 0
    pages = max(1, math.ceil(total / AUDIT_PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    rows = session.scalars(
        select(AuditLog)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(AUDIT_PAGE_SIZE)
        .offset((page - 1) * AUDIT_PAGE_SIZE)
    ).all()
    labels = auth.AUDIT_ACTION_LABELS
    return render_template(
        "admin/audit.html", rows=rows, page=page, pages=pages, total=total, labels=labels,
        describe=lambda row: audit_text.describe(row, labels), cli_actor=auth.CLI_ACTOR,
    )




def _security_headers(response: Response) -> Response:
    """Pages under /admin (other packages' too) are never cached or framed and load only our own files."""
    # Every response, static files too: browsers use the declared type, never a guessed one.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # HSTS only means something over HTTPS (browsers ignore it on plain HTTP); behind a proxy,
    # request.is_secure needs TRUSTED_PROXIES so that X-Forwarded-Proto is believed.
    max_age = int(current_app.config.get("HSTS_MAX_AGE_SECONDS") or 0)
    if max_age > 0 and request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", f"max-age={max_age}")
    # The CSP allows no inline scripts or styles: other packages put theirs in static files.
    if not _is_admin_request():
        return response
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # same-origin, not no-referrer: Flask-WTF checks the Referer of HTTPS form posts.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    )
    return response


# --- error pages --------------------------------------------------------------------------------


def _is_admin_request() -> bool:
    return request.path == "/admin" or request.path.startswith("/admin/")


ERROR_MESSAGES = {
    400: ("不正なリクエストです", "フォームの有効期限が切れたか、送信内容が正しくありません。ページを読み込み直してからやり直してください。"),
    403: ("アクセス権限がありません", "このページを開く権限がありません。必要な場合は管理者に権限の付与を依頼してください。"),
    404: ("ページが見つかりません", "お探しのページは存在しないか、移動した可能性があります。"),
    405: ("この操作はできません", "このページではその操作を受け付けていません。"),
}


def _error_page(exc: HTTPException) -> Any:
    """Japanese error pages under /admin; other paths (the webhook, JSON APIs) keep the default."""
    if not _is_admin_request() or exc.code not in ERROR_MESSAGES:
        return exc
    title, message = ERROR_MESSAGES[exc.code]
    template = f"admin/{exc.code}.html" if exc.code in (403, 404) else "admin/error.html"
    return render_template(template, code=exc.code, title=title, message=message), exc.code


# --- `flask users ...` -----------------------------------------------------------------------------

users_cli = AppGroup("users", help="Staff accounts of the admin web UI.")


def _read_password(from_stdin: bool) -> str:
    """One line from stdin, or a hidden prompt asked twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("パスワード", hide_input=True, confirmation_prompt="パスワード（確認）")
    return value


@users_cli.command("create")
@click.argument("username")
@click.option("--role", required=True, help=f"one of: {', '.join(ROLES)}")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
def cli_create(username: str, role: str, password_stdin: bool) -> None:
    """Create a staff user."""
    try:
        auth.validate_role(role)  # before asking for a password that would be thrown away
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    password = _read_password(password_stdin)
    try:
        with get_db().session() as session:
            user = auth.create_user(session, username, password, role)
            audit(session, "user_create", user.username, role=user.role)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"ユーザー「{user.username}」を作成しました（権限: {auth.role_label(user.role)}）。")


@users_cli.command("list")
def cli_list() -> None:
    """List staff users."""
    with get_db().session() as session:
        users = session.scalars(select(StaffUser).order_by(StaffUser.username)).all()
    if not users:
        click.echo("ユーザーはまだいません。")
        return
    for user in users:
        state = "有効" if user.is_active else "無効"
        second = "あり" if twofactor.has_two_factor(user) else "なし"
        click.echo(f"{user.username}\t{user.role}\t{state}\t最終ログイン: {jst(user.last_login_at)}\t二段階認証: {second}")


@users_cli.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
def cli_set_password(username: str, password_stdin: bool) -> None:
    """Set a staff user's password (their open sessions end)."""
    with get_db().session() as session:
        if auth.find_user(session, username) is None:
            raise click.ClickException(f"ユーザー「{username}」は存在しません。")
    password = _read_password(password_stdin)
    try:
        with get_db().session() as session:
            user = auth.find_user(session, username)
            assert user is not None
            auth.set_password(session, user, password)
            audit(session, "user_set_password", user.username)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"ユーザー「{user.username}」のパスワードを変更しました。")


@users_cli.command("reset-2fa")
@click.argument("username")
def cli_reset_two_factor(username: str) -> None:
    """Turn off a staff user's two-factor login (lost phone): their sessions end, recovery codes go."""
    with get_db().session() as session:
        user = auth.find_user(session, username)
        if user is None:
            raise click.ClickException(f"ユーザー「{username}」は存在しません。")
        was_enabled = twofactor.has_two_factor(user)
        twofactor.disable(session, user)
        auth.end_sessions(session, user)
        audit(session, "2fa_reset", user.username, was_enabled=was_enabled)
        name, required = user.username, user.role == "admin" and bool(current_app.config.get("ADMIN_REQUIRE_2FA"))
    click.echo(f"ユーザー「{name}」の二段階認証をリセットしました（ログイン中の画面もすべてログアウトされます）。")
    if required:
        click.echo("次回ログインすると二段階認証の設定画面が表示されます。新しいスマートフォンで設定してください。")
    else:
        click.echo("次回からパスワードだけでログインできます。必要なら「二段階認証」の画面で設定し直してください。")


@users_cli.command("ensure-admin")
def cli_ensure_admin() -> None:
    """Create the first admin with a random password when there are no staff users."""
    try:
        with get_db().session() as session:
            password = auth.ensure_first_admin(session)
            if password is not None:
                audit(session, "user_create", auth.FIRST_ADMIN_USERNAME, role="admin", first_admin=True)
    except IntegrityError:  # another process created it at the same moment
        password = None
    if password is None:
        click.echo("管理者は作成済みです")
    else:
        click.echo(
            f"初期管理者を作成しました ユーザー名: {auth.FIRST_ADMIN_USERNAME} パスワード: {password}（この表示は一度だけです）"
        )


# --- wiring ---------------------------------------------------------------------------------------


def jst(value: dt.datetime | None) -> str:
    """A timestamp as Japan time for staff, in Japanese (「2026年11月4日 09:30」), or a dash."""
    return dates.jst_datetime(value)


def _csrf_exempt() -> bool:
    blueprint = request.blueprint or ""
    return request.endpoint in CSRF_EXEMPT_ENDPOINTS or blueprint.startswith(CSRF_EXEMPT_BLUEPRINT_PREFIX)


def init_app(app: Flask) -> None:
    """Wire CSRF protection, the admin blueprint, the layout's helpers and `flask users`."""
    # Tokens live as long as the staff session (8 h), not 1 h: a notice may take a while to write.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # Our own hook below applies the checks, so that exemptions can be by name: the
    # simulator's blueprints are registered after this runs.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf = CSRFProtect(app)

    @app.before_request
    def _csrf_protect() -> None:
        if app.config.get("WTF_CSRF_ENABLED", True) and not _csrf_exempt():
            csrf.protect(apply_exemptions=True)

    app.register_blueprint(bp)
    app.after_request(_security_headers)
    register_nav("ユーザー管理", "admin.users", ["admin"], order=80)
    register_nav("監査ログ", "admin.audit_log", ["admin"], order=90)

    # Functions, not values, so pages that never show the layout never query the staff user.
    app.add_template_global(current_staff, "current_staff")
    app.add_template_global(auth.nav_items, "nav_items")
    app.add_template_global(auth.role_label, "role_label")
    app.add_template_filter(jst, "jst")
    app.add_template_filter(plans.source_html, "plan_source")
    app.add_template_filter(plans.in_text_html, "plan_citations")
    app.add_template_filter(plans.quotes_of, "plan_quote")
    app.add_template_filter(dates.japanese_date, "japanese_date")

    @app.context_processor
    def _layout_context() -> dict[str, Any]:
        return {"ROLES": ROLES, "ROLE_LABELS": ROLE_LABELS}

    for code in ERROR_MESSAGES:
        app.register_error_handler(code, _error_page)
    app.register_error_handler(CSRFError, _error_page)

    app.cli.add_command(users_cli)
