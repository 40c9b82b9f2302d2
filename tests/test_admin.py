"""The staff admin shell: login, CSRF, lockout, roles, audit log, `flask users`."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from bot import admin, auth
from bot.db import get_db
from bot.models import ROLES, AuditLog, LoginAttempt, StaffUser

PASSWORD = "correct-horse-battery"
REAL_HASH_PASSWORD = auth.hash_password
PAGES = ("/admin/users", "/admin/audit", "/admin/notices", "/admin/faq", "/admin/kpi", "/admin/directory")
# Which role may open which page (admin may open everything).
ALLOWED = {
    "/admin/users": {"admin"},
    "/admin/audit": {"admin"},
    "/admin/notices": {"admin", "pr", "dept"},
    "/admin/faq": {"admin", "faq"},
    "/admin/kpi": {"admin", "pr", "faq", "viewer"},
    "/admin/directory": {"admin"},
}
NAV_LABELS = {
    "/admin/users": "ユーザー管理",
    "/admin/audit": "監査ログ",
    "/admin/notices": "お知らせ配信",
    "/admin/faq": "FAQ管理",
    "/admin/kpi": "利用状況（KPI）",
    "/admin/directory": "連絡先（課の一覧）",
}


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap hashes keep these many logins quick; test_password_is_stored_hashed checks the real one."""
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


def make_user(app: Flask, username: str, role: str = "admin", password: str = PASSWORD, active: bool = True) -> int:
    """A staff user straight in the database; returns its id."""
    with get_db(app).session() as session:
        user = auth.create_user(session, username, password, role)
        user.is_active = active
        return user.id


def csrf_token(client: FlaskClient, path: str = "/admin/login") -> str:
    """The CSRF token of a form, read the way a browser gets it: by loading the page."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(
    client: FlaskClient, username: str, password: str = PASSWORD, ip: str = "127.0.0.1", **extra: str
) -> TestResponse:
    """Submit the login form as a browser at `ip` would."""
    data = {"username": username, "password": password, "csrf_token": csrf_token(client), **extra}
    return client.post("/admin/login", data=data, environ_base={"REMOTE_ADDR": ip})


def user_form(username: str, password: str = PASSWORD, role: str = "viewer") -> dict[str, str]:
    """The fields of the create-user form."""
    return {"username": username, "password": password, "password_confirm": password, "role": role}


def post_form(client: FlaskClient, path: str, data: dict[str, str], form_page: str = "/admin/users") -> TestResponse:
    """POST a staff form with the CSRF token taken from the page that shows it."""
    return client.post(path, data={**data, "csrf_token": csrf_token(client, form_page)})


def audit_rows(app: Flask, action: str | None = None) -> list[AuditLog]:
    """Audit rows, oldest first."""
    with get_db(app).session() as session:
        query = select(AuditLog).order_by(AuditLog.id)
        if action:
            query = query.where(AuditLog.action == action)
        return list(session.scalars(query))


def nav_links(html: str) -> list[str]:
    """The labels in the layout's main navigation."""
    nav = re.search(r'<nav class="main-nav".*?</nav>', html, re.S)
    return re.findall(r"<a [^>]*>([^<]+)</a>", nav.group(0)) if nav else []


def is_logged_in(client: FlaskClient) -> bool:
    """True when the dashboard opens instead of redirecting to the login page."""
    return client.get("/admin/").status_code == 200


# --- login ----------------------------------------------------------------------------------------


def test_login_page_is_japanese(client: FlaskClient) -> None:
    html = client.get("/admin/login").get_data(as_text=True)
    assert '<html lang="ja">' in html
    for text in ("ログイン", "ユーザー名", "パスワード"):
        assert text in html


def test_login_success_opens_dashboard_and_records_last_login(app: Flask, client: FlaskClient) -> None:
    user_id = make_user(app, "sato", "pr")
    response = login(client, "sato")
    assert response.status_code == 302
    assert response.location == "/admin/"
    html = client.get("/admin/").get_data(as_text=True)
    assert "ログインしました。" in html
    assert "ダッシュボード" in html and "ようこそ、sato さん" in html
    assert "ログアウト" in html
    with get_db(app).session() as session:
        user = session.get(StaffUser, user_id)
        assert user is not None and user.last_login_at is not None
        assert abs((user.last_login_at - dt.datetime.now(dt.UTC)).total_seconds()) < 60


def test_login_accepts_capitals_and_spaces_in_username(app: Flask, client: FlaskClient) -> None:
    make_user(app, "sato")
    assert login(client, "  Sato ").status_code == 302


@pytest.mark.parametrize("username,password", [("sato", "wrong-password-123"), ("nobody", PASSWORD)])
def test_login_failure_shows_japanese_message(app: Flask, client: FlaskClient, username: str, password: str) -> None:
    make_user(app, "sato")
    response = login(client, username, password)
    assert response.status_code == 200
    # The same message for a wrong password and an unknown user: no account enumeration.
    assert "ユーザー名またはパスワードが正しくありません。" in response.get_data(as_text=True)
    assert not is_logged_in(client)


def test_empty_login_form_asks_for_both_fields(client: FlaskClient) -> None:
    response = login(client, "", "")
    assert response.status_code == 400
    assert "ユーザー名とパスワードを入力してください。" in response.get_data(as_text=True)


def test_inactive_user_cannot_log_in(app: Flask, client: FlaskClient) -> None:
    make_user(app, "sato", active=False)
    assert "ユーザー名またはパスワードが正しくありません。" in login(client, "sato").get_data(as_text=True)
    assert not is_logged_in(client)


def test_password_is_stored_hashed(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "hash_password", REAL_HASH_PASSWORD)
    user_id = make_user(app, "sato")
    with get_db(app).session() as session:
        user = session.get(StaffUser, user_id)
        assert user is not None
        stored = user.password_hash
    assert PASSWORD not in stored
    assert stored.startswith("scrypt:")
    assert auth.verify_password(stored, PASSWORD)
    assert not auth.verify_password(stored, PASSWORD + "x")


def test_authenticate_service(app: Flask) -> None:
    make_user(app, "sato", "faq")
    with app.app_context(), get_db(app).session() as session:
        user = auth.authenticate(session, "sato", PASSWORD, "192.0.2.1")
        assert user is not None and user.username == "sato" and user.role == "faq"
        assert auth.authenticate(session, "sato", "not-the-password", "192.0.2.1") is None
        assert auth.authenticate(session, "ghost", PASSWORD, "192.0.2.1") is None


def test_next_parameter_is_followed_only_inside_admin(app: Flask, client: FlaskClient) -> None:
    make_user(app, "sato")
    redirect = client.get("/admin/kpi")
    assert redirect.status_code == 302
    assert redirect.location.startswith("/admin/login?next=/admin/kpi")
    assert login(client, "sato", next="/admin/kpi").location == "/admin/kpi"
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    for evil in ("https://evil.example/", "//evil.example/admin", "/simulator"):
        assert login(client, "sato", next=evil).location == "/admin/"
        client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})


# --- sessions and CSRF ---------------------------------------------------------------------------


def test_post_without_csrf_token_is_rejected(app: Flask, client: FlaskClient) -> None:
    make_user(app, "sato")
    client.get("/admin/login")
    response = client.post("/admin/login", data={"username": "sato", "password": PASSWORD})
    assert response.status_code == 400
    assert "不正なリクエストです" in response.get_data(as_text=True)
    assert not is_logged_in(client)

    login(client, "sato")
    no_token = {"username": "tanaka", "password": PASSWORD, "password_confirm": PASSWORD, "role": "pr"}
    assert client.post("/admin/users", data=no_token).status_code == 400
    assert client.post("/admin/logout").status_code == 400
    assert client.post("/admin/logout", data={"csrf_token": "forged"}).status_code == 400
    assert is_logged_in(client)
    with get_db(app).session() as session:
        assert session.scalar(select(StaffUser).where(StaffUser.username == "tanaka")) is None


def test_webhook_is_exempt_from_csrf(client: FlaskClient) -> None:
    # LINE cannot send a CSRF token: the webhook must reach its own signature check.
    response = client.post("/callback", data=b'{"events": []}', headers={"X-Line-Signature": "bad"})
    assert response.status_code == 400
    assert response.get_json() == {"message": "invalid signature"}


def test_logout_is_a_post_that_ends_the_session(app: Flask, client: FlaskClient) -> None:
    make_user(app, "sato")
    login(client, "sato")
    assert client.get("/admin/logout").status_code == 405
    assert is_logged_in(client)
    response = client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    assert response.status_code == 302 and response.location == "/admin/login"
    assert "ログアウトしました。" in client.get("/admin/login").get_data(as_text=True)
    assert not is_logged_in(client)
    assert [row.username for row in audit_rows(app, "logout")] == ["sato"]


def test_session_is_regenerated_on_login(app: Flask, client: FlaskClient) -> None:
    make_user(app, "sato")
    with client.session_transaction() as sess:
        sess["planted"] = "by-an-attacker"
    token_before = csrf_token(client)
    login(client, "sato")
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess.get("staff_id") is not None
    assert csrf_token(client, "/admin/") != token_before


def test_new_password_ends_existing_sessions(app: Flask, client: FlaskClient, runner: Any) -> None:
    make_user(app, "sato")
    login(client, "sato")
    result = runner.invoke(args=["users", "set-password", "sato", "--password-stdin"], input="another-long-password\n")
    assert result.exit_code == 0, result.output
    assert "ユーザー「sato」のパスワードを変更しました。" in result.output
    assert not is_logged_in(client)
    assert login(client, "sato", "another-long-password").status_code == 302


def test_staff_can_change_their_own_password(app: Flask, client: FlaskClient) -> None:
    make_user(app, "sato", "viewer")
    login(client, "sato")
    data = {
        "current_password": "wrong-password-1",
        "new_password": "brand-new-password",
        "new_password_confirm": "brand-new-password",
    }
    response = post_form(client, "/admin/password", data, "/admin/password")
    assert response.status_code == 400
    assert "現在のパスワードが正しくありません。" in response.get_data(as_text=True)
    response = post_form(client, "/admin/password", {**data, "current_password": PASSWORD}, "/admin/password")
    assert response.status_code == 302
    assert is_logged_in(client)  # this session carries on with the new password
    other = app.test_client()
    assert login(other, "sato").status_code == 200  # the old password no longer works
    assert login(other, "sato", "brand-new-password").status_code == 302


def _set_cookie(response: TestResponse) -> str:
    cookies = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("linebot_staff=")]
    assert cookies, "no session cookie set"
    return cookies[-1]


def test_session_cookie_flags(app: Flask, client: FlaskClient) -> None:
    make_user(app, "sato")
    cookie = _set_cookie(login(client, "sato"))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # testing config: SESSION_COOKIE_SECURE defaults to off outside production


def test_session_cookie_is_secure_when_configured(app: Flask, make_app: Callable[..., Flask]) -> None:
    make_user(app, "sato")
    secure_app = make_app(empty=False, SESSION_COOKIE_SECURE=True)
    client = secure_app.test_client()
    page = client.get("/admin/login", base_url="https://localhost").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/admin/login",
        data={"username": "sato", "password": PASSWORD, "csrf_token": token.group(1)},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/admin/login"},
    )
    assert response.status_code == 302
    cookie = _set_cookie(response)
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_admin_pages_are_not_cached_or_framed(app: Flask, client: FlaskClient) -> None:
    make_user(app, "sato")
    login(client, "sato")
    response = client.get("/admin/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


# --- lockout --------------------------------------------------------------------------------------


def _age_attempts(app: Flask, seconds: int) -> None:
    """Move every recorded login attempt into the past."""
    with get_db(app).session() as session:
        for attempt in session.scalars(select(LoginAttempt)):
            attempt.at = attempt.at - dt.timedelta(seconds=seconds)


def test_lockout_per_account_and_address(app: Flask, client: FlaskClient) -> None:
    app.config.update(LOGIN_MAX_FAILURES=3, LOGIN_BACKOFF_SECONDS=600, LOGIN_LOCKOUT_SECONDS=900)
    make_user(app, "sato")
    for _ in range(3):
        assert login(client, "sato", "wrong-password-x", ip="198.51.100.1").status_code == 200
    response = login(client, "sato", ip="198.51.100.1")
    assert response.status_code == 429
    assert "一時的にログインできません。約10分ほど" in response.get_data(as_text=True)
    assert 590 <= int(response.headers["Retry-After"]) <= 600
    assert not is_logged_in(client)
    assert [row.target for row in audit_rows(app, "login_locked")] == ["sato"]

    _age_attempts(app, 601)
    assert login(client, "sato", ip="198.51.100.1").status_code == 302


def test_lockout_is_not_extended_by_attempts_while_locked(app: Flask, client: FlaskClient) -> None:
    app.config.update(LOGIN_MAX_FAILURES=2, LOGIN_LOCKOUT_SECONDS=600)
    make_user(app, "sato")
    for _ in range(2):
        login(client, "sato", "wrong-password-x")
    for _ in range(3):
        assert login(client, "sato", "wrong-password-x").status_code == 429
    with get_db(app).session() as session:
        assert len(session.scalars(select(LoginAttempt)).all()) == 2


def test_lockout_per_ip_address(app: Flask, client: FlaskClient) -> None:
    app.config.update(LOGIN_MAX_FAILURES_PER_ADDRESS=3, LOGIN_LOCKOUT_SECONDS=600)
    make_user(app, "sato")
    make_user(app, "suzuki")
    for name in ("sato", "suzuki", "nobody"):  # spraying different accounts from one address
        login(client, name, "wrong-password-x", ip="198.51.100.9")
    response = login(client, "suzuki", ip="198.51.100.9")
    assert response.status_code == 429
    assert "一時的にログインできません" in response.get_data(as_text=True)
    # The accounts themselves are not locked: the same staff from another address gets in.
    assert login(client, "suzuki", ip="203.0.113.8").status_code == 302


def test_success_resets_the_account_count(app: Flask, client: FlaskClient) -> None:
    app.config.update(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_SECONDS=600)
    make_user(app, "sato")
    for n in range(2):
        login(client, "sato", "wrong-password-x", ip=f"198.51.100.{n}")
    assert login(client, "sato", ip="198.51.100.50").status_code == 302
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    for n in range(2):
        login(client, "sato", "wrong-password-x", ip=f"198.51.100.{n + 10}")
    assert login(client, "sato", ip="198.51.100.51").status_code == 302


def test_mistyped_username_is_not_stored_as_typed(app: Flask, client: FlaskClient) -> None:
    # Staff sometimes type their password into the username field.
    login(client, "my-secret-password-1", "x")
    with get_db(app).session() as session:
        attempts = session.scalars(select(LoginAttempt)).all()
        assert len(attempts) == 1 and "my-secret-password-1" not in attempts[0].username
    rows = audit_rows(app, "login_failed")
    assert len(rows) == 1 and rows[0].target == "" and "my-secret-password-1" not in str(rows[0].detail)


# --- roles and pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(app: Flask, client: FlaskClient, role: str) -> None:
    make_user(app, f"user-{role}", role)
    login(client, f"user-{role}")
    for page in PAGES:
        response = client.get(page)
        expected = 200 if role in ALLOWED[page] else 403
        assert response.status_code == expected, (role, page)
        if expected == 403:
            assert "アクセス権限がありません" in response.get_data(as_text=True)
    html = client.get("/admin/").get_data(as_text=True)
    in_nav_order = ("/admin/notices", "/admin/faq", "/admin/kpi", "/admin/directory", "/admin/users", "/admin/audit")
    # Other packages add their own entries (each tested with its package); these pages keep their order.
    shown = [label for label in nav_links(html) if label in NAV_LABELS.values()]
    assert shown == [NAV_LABELS[page] for page in in_nav_order if role in ALLOWED[page]]


@pytest.mark.parametrize("page", ("/admin/", "/admin/password", *PAGES))
def test_logged_out_access_redirects_to_login(client: FlaskClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 302
    assert response.location.startswith("/admin/login?next=")
    assert "ログインしてください。" in client.get(response.location).get_data(as_text=True)


def test_section_pages_open_with_their_heading(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    login(client, "boss")
    for page, heading in (("/admin/notices", "お知らせ配信"), ("/admin/faq", "FAQ"), ("/admin/kpi", "利用状況（KPI）")):
        response = client.get(page)
        assert response.status_code == 200
        assert heading in response.get_data(as_text=True)


def test_unknown_admin_page_is_a_japanese_404(app: Flask, client: FlaskClient) -> None:
    assert "ページが見つかりません" in client.get("/admin/no-such-page").get_data(as_text=True)
    # Outside /admin the site's own pages answer, not the staff layout (tests/test_site.py).
    assert "LINE窓口 管理画面" not in client.get("/no-such-page").get_data(as_text=True)


def test_deactivated_user_is_signed_out_at_once(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    viewer_id = make_user(app, "tanaka", "viewer")
    viewer = app.test_client()
    login(viewer, "tanaka")
    assert is_logged_in(viewer)
    login(client, "boss")
    response = post_form(client, f"/admin/users/{viewer_id}/active", {"is_active": "0"})
    assert response.status_code == 302
    assert "ユーザー「tanaka」を無効にしました。" in client.get("/admin/users").get_data(as_text=True)
    assert not is_logged_in(viewer)
    assert [row.target for row in audit_rows(app, "user_deactivate")] == ["tanaka"]


def test_role_change_ends_open_sessions_and_applies_at_next_login(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    pr_id = make_user(app, "yamada", "pr")
    other = app.test_client()
    login(other, "yamada")
    assert other.get("/admin/notices").status_code == 200
    login(client, "boss")
    assert post_form(client, f"/admin/users/{pr_id}/role", {"role": "faq"}).status_code == 302
    assert other.get("/admin/notices").status_code == 302  # back to the login page
    assert not is_logged_in(other)
    login(other, "yamada")
    assert other.get("/admin/notices").status_code == 403
    assert other.get("/admin/faq").status_code == 200
    (row,) = audit_rows(app, "user_role_change")
    assert (row.username, row.target, row.detail) == ("boss", "yamada", {"old": "pr", "new": "faq"})


def test_admin_cannot_demote_or_deactivate_themselves(app: Flask, client: FlaskClient) -> None:
    boss_id = make_user(app, "boss")
    login(client, "boss")
    post_form(client, f"/admin/users/{boss_id}/role", {"role": "viewer"})
    post_form(client, f"/admin/users/{boss_id}/active", {"is_active": "0"})
    html = client.get("/admin/users").get_data(as_text=True)
    assert "自分自身の権限変更・無効化はできません。" in html
    assert client.get("/admin/audit").status_code == 200  # still an active admin


def test_register_nav_and_require_role_for_other_packages(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_NAV", dict(auth._NAV))
    bp = Blueprint("extra_admin", __name__, url_prefix="/admin/extra")

    @bp.get("/")
    @auth.require_role("faq")
    def extra() -> str:
        return "extra page"

    app.register_blueprint(bp)
    auth.register_nav("追加の機能", "extra_admin.extra", ["faq"], order=25)
    auth.register_nav("未登録の画面", "nowhere.index", ["viewer"])  # endpoint not in this app: hidden
    for role, allowed in (("faq", True), ("admin", True), ("viewer", False)):
        make_user(app, f"u-{role}", role)
        client = app.test_client()
        login(client, f"u-{role}")
        assert client.get("/admin/extra/").status_code == (200 if allowed else 403)
        links = nav_links(client.get("/admin/").get_data(as_text=True))
        assert ("追加の機能" in links) is allowed
        assert "未登録の画面" not in links


# --- staff accounts in the web UI ------------------------------------------------------------------


def test_admin_creates_user_through_the_form(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    login(client, "boss")
    form = user_form("tanaka", "tanaka-password-1", role="viewer")
    response = post_form(client, "/admin/users", form)
    assert response.status_code == 302
    html = client.get("/admin/users").get_data(as_text=True)
    assert "ユーザー「tanaka」を作成しました（権限: 閲覧（KPI））。" in html
    assert 'data-username="tanaka"' in html
    other = app.test_client()
    assert login(other, "tanaka", "tanaka-password-1").status_code == 302


@pytest.mark.parametrize(
    "form,message",
    [
        (user_form("tanaka", "short"), "パスワードは12文字以上"),
        ({**user_form("tanaka"), "password_confirm": PASSWORD + "x"}, "確認用と一致しません"),
        (user_form("田中"), "ユーザー名は半角英小文字"),
        (user_form("tanaka", role="root"), "権限は admin, pr, faq, viewer"),
        (user_form("boss", role="pr"), "既に使われています"),
    ],
)
def test_user_form_rejects_bad_input_in_japanese(
    app: Flask, client: FlaskClient, form: dict[str, str], message: str
) -> None:
    make_user(app, "boss")
    login(client, "boss")
    response = post_form(client, "/admin/users", form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert audit_rows(app, "user_create") == []


# --- audit log ------------------------------------------------------------------------------------


def test_audit_rows_for_login_and_user_creation(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    login(client, "boss", "wrong-password-1", ip="192.0.2.10")
    login(client, "boss", ip="192.0.2.10")
    form = user_form("tanaka", "tanaka-password-1", role="pr")
    post_form(client, "/admin/users", form)
    rows = audit_rows(app)
    assert [(r.action, r.username, r.target, r.ip) for r in rows] == [
        ("login_failed", "", "boss", "192.0.2.10"),
        ("login", "boss", "", "192.0.2.10"),
        ("user_create", "boss", "tanaka", "127.0.0.1"),
    ]
    assert rows[1].staff_user_id is not None and rows[2].detail == {"role": "pr"}
    everything = " ".join(f"{r.target} {r.detail}" for r in rows)
    assert "wrong-password-1" not in everything and "tanaka-password-1" not in everything and PASSWORD not in everything


def test_audit_redacts_secret_details(app: Flask) -> None:
    with app.test_request_context("/"), get_db(app).session() as session:
        row = auth.audit(session, "something", "x", password="hunter2hunter2", api_token="abc", count=3)
    assert row.detail == {"password": "[redacted]", "api_token": "[redacted]", "count": 3}


def test_audit_page_is_newest_first_and_paginated(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    with app.app_context(), get_db(app).session() as session:
        for n in range(admin.AUDIT_PAGE_SIZE + 5):
            auth.audit(session, "test_event", f"target-{n:03d}")
    login(client, "boss")  # the newest row
    first = client.get("/admin/audit").get_data(as_text=True)
    assert "監査ログ" in first and "ログイン" in first
    # 56 rows: the login and target-054 .. target-006 on page 1, target-005 .. target-000 on page 2.
    assert first.index(">ログイン<") < first.index("target-054") < first.index("target-053")
    assert "target-006" in first and "target-005" not in first
    second = client.get("/admin/audit?page=2").get_data(as_text=True)
    assert "target-005" in second and "target-000" in second and "target-054" not in second
    assert client.get("/admin/audit?page=99").status_code == 200  # clamped to the last page


# --- `flask users` --------------------------------------------------------------------------------


def test_cli_create_with_password_from_stdin(app: Flask, runner: Any) -> None:
    result = runner.invoke(args=["users", "create", "Sato", "--role", "pr", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "ユーザー「sato」を作成しました（権限: 広報（お知らせ配信））。" in result.output
    with get_db(app).session() as session:
        user = auth.find_user(session, "sato")
        assert user is not None and user.role == "pr" and auth.verify_password(user.password_hash, PASSWORD)
    (row,) = audit_rows(app, "user_create")
    assert (row.username, row.target) == (auth.CLI_ACTOR, "sato")


def test_cli_create_prompts_twice_with_hidden_input(app: Flask, runner: Any) -> None:
    result = runner.invoke(args=["users", "create", "sato", "--role", "viewer"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "パスワード（確認）" in result.output and PASSWORD not in result.output
    with get_db(app).session() as session:
        assert auth.find_user(session, "sato") is not None


def test_cli_create_rejects_bad_role(app: Flask, runner: Any) -> None:
    args = ["users", "create", "sato", "--role", "root", "--password-stdin"]
    result = runner.invoke(args=args, input=PASSWORD + "\n")
    assert result.exit_code != 0
    assert "権限は admin, pr, faq, viewer, reports, dept のいずれかを指定してください。" in result.output


def test_cli_create_rejects_short_password(app: Flask, runner: Any) -> None:
    result = runner.invoke(args=["users", "create", "sato", "--role", "pr", "--password-stdin"], input="short\n")
    assert result.exit_code != 0
    assert "パスワードは12文字以上で指定してください。" in result.output
    with get_db(app).session() as session:
        assert auth.find_user(session, "sato") is None


def test_cli_create_rejects_duplicate(app: Flask, runner: Any) -> None:
    make_user(app, "sato")
    result = runner.invoke(args=["users", "create", "sato", "--role", "pr", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code != 0 and "既に使われています" in result.output


def test_cli_list(app: Flask, runner: Any) -> None:
    assert "ユーザーはまだいません。" in runner.invoke(args=["users", "list"]).output
    make_user(app, "sato", "faq")
    make_user(app, "suzuki", "viewer", active=False)
    output = runner.invoke(args=["users", "list"]).output
    assert "sato\tfaq\t有効" in output and "suzuki\tviewer\t無効" in output


def test_cli_set_password_unknown_user(runner: Any) -> None:
    result = runner.invoke(args=["users", "set-password", "ghost", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code != 0 and "ユーザー「ghost」は存在しません。" in result.output


def test_cli_ensure_admin_prints_the_password_once(app: Flask, client: FlaskClient, runner: Any) -> None:
    first = runner.invoke(args=["users", "ensure-admin"])
    assert first.exit_code == 0, first.output
    expected = r"初期管理者を作成しました ユーザー名: admin パスワード: (\S+)（この表示は一度だけです）\n"
    match = re.fullmatch(expected, first.output)
    assert match, first.output
    password = match.group(1)
    assert len(password) >= auth.PASSWORD_MIN_CHARS

    second = runner.invoke(args=["users", "ensure-admin"])
    assert second.exit_code == 0
    assert second.output == "管理者は作成済みです\n"
    assert password not in second.output

    assert login(client, "admin", password).status_code == 302
    assert client.get("/admin/users").status_code == 200


def test_ensure_first_admin_only_when_there_are_no_staff(app: Flask) -> None:
    make_user(app, "sato", "viewer")
    with get_db(app).session() as session:
        assert auth.ensure_first_admin(session) is None
        assert auth.find_user(session, "admin") is None
