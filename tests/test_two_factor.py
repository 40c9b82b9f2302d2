"""Two-factor login (TOTP): enrolment with a server-drawn QR code, the code step of the login,
one-time recovery codes, the admin requirement, turning it off, and the operator's reset."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from bot import admin, auth, twofactor
from bot.db import get_db
from bot.models import RecoveryCode, StaffUser
from tests.test_admin import PASSWORD, audit_rows, csrf_token, is_logged_in, login, make_user
from tests.test_staff_sessions import replay, saved_cookie

START = dt.datetime(2026, 12, 4, 1, 0, 0, tzinfo=dt.UTC)


class Clock:
    """The time the app sees (auth and admin read it), moved on by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A clock the test moves, so each code below belongs to its own 30-second step."""
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))
    fake = Clock()
    monkeypatch.setattr(auth, "utcnow", fake)
    monkeypatch.setattr(admin, "utcnow", fake)
    return fake


def code(secret: str, clock: Clock) -> str:
    """What the authenticator app shows now."""
    return pyotp.TOTP(secret).at(clock.now)


def form_page(client: FlaskClient, path: str) -> tuple[str, str]:
    """GET a form page; its HTML and CSRF token from that same response."""
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code, page.location)
    text = page.get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert match
    return text, match.group(1)


def enrol(client: FlaskClient, clock: Clock) -> tuple[str, list[str]]:
    """Set up the authenticator as staff do; returns the secret and the recovery codes shown."""
    text, token = form_page(client, "/admin/2fa/setup")
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', text).group(1).replace(" ", "")  # type: ignore[union-attr]
    response = client.post("/admin/2fa/setup", data={"code": code(secret, clock), "csrf_token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    codes = re.findall(r"<li><code>([0-9a-z-]+)</code></li>", response.get_data(as_text=True))
    clock.advance(30)
    return secret, codes


def submit_code(client: FlaskClient, value: str, ip: str = "127.0.0.1") -> TestResponse:
    """The second step of the login form."""
    return client.post("/admin/login/code", data={"code": value, "csrf_token": csrf_token(client, "/admin/login/code")},
                       environ_base={"REMOTE_ADDR": ip})


def logout(client: FlaskClient) -> None:
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})


def stored(app: Flask, username: str) -> StaffUser:
    with get_db(app).session() as session:
        user = auth.find_user(session, username)
        assert user is not None
        session.expunge(user)
        return user


@pytest.fixture
def enrolled(app: Flask, client: FlaskClient, clock: Clock) -> tuple[str, list[str]]:
    """sato (faq) with two-factor login on, logged out again."""
    make_user(app, "sato", "faq")
    login(client, "sato")
    secret, codes = enrol(client, clock)
    logout(client)
    return secret, codes


# --- enrolment --------------------------------------------------------------------------------------


def test_enrolment_shows_a_server_drawn_qr_code_of_a_server_side_secret(app: Flask, client: FlaskClient, clock: Clock) -> None:
    make_user(app, "sato", "faq")
    login(client, "sato")
    assert "未設定" in client.get("/admin/2fa").get_data(as_text=True)
    text, token = form_page(client, "/admin/2fa/setup")
    secret = stored(app, "sato").totp_secret
    assert secret and len(secret) == 32
    assert html.unescape(text).count(twofactor.grouped(secret)) == 1
    uri = twofactor.provisioning_uri(stored(app, "sato"), secret)
    assert str(twofactor.qr_svg(uri)) in text  # the QR code encodes this secret, drawn inline
    assert "<svg" in text and "<img" not in text and "http" not in text.split("<svg", 1)[1].split("</svg>")[0].replace(
        "http://www.w3.org/2000/svg", "")  # nothing loaded from anywhere
    assert not twofactor.has_two_factor(stored(app, "sato"))  # not on before a code confirms it

    wrong = client.post("/admin/2fa/setup", data={"code": "000000", "csrf_token": token})
    assert wrong.status_code == 400 and "確認コードが正しくありません" in wrong.get_data(as_text=True)
    assert [row.target for row in audit_rows(app, "2fa_enable_failed")] == ["sato"]

    done = client.post("/admin/2fa/setup", data={"code": code(secret, clock), "csrf_token": token})
    page = done.get_data(as_text=True)
    assert done.status_code == 200 and "二段階認証を有効にしました" in page
    assert len(re.findall(r"<li><code>[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}</code></li>", page)) == 10
    assert done.headers["Cache-Control"] == "no-store"
    assert twofactor.has_two_factor(stored(app, "sato"))
    assert [row.target for row in audit_rows(app, "2fa_enable")] == ["sato"]

    # Shown once: afterwards neither the QR code nor the secret appears anywhere.
    again = client.get("/admin/2fa/setup")
    assert again.status_code == 302 and again.location == "/admin/2fa"
    status = client.get("/admin/2fa").get_data(as_text=True)
    assert "<svg" not in status and twofactor.grouped(secret) not in status and "有効" in status


def test_opening_the_setup_page_again_draws_a_new_secret(app: Flask, client: FlaskClient, clock: Clock) -> None:
    make_user(app, "sato", "faq")
    login(client, "sato")
    _text, token = form_page(client, "/admin/2fa/setup")
    first = stored(app, "sato").totp_secret
    form_page(client, "/admin/2fa/setup")
    assert stored(app, "sato").totp_secret != first
    response = client.post("/admin/2fa/setup", data={"code": code(first or "", clock), "csrf_token": token})
    assert response.status_code == 400  # the secret of a page left behind no longer works


def test_recovery_codes_are_stored_hashed(app: Flask, enrolled: tuple[str, list[str]]) -> None:
    _secret, codes = enrolled
    assert len(set(codes)) == 10
    with get_db(app).session() as session:
        hashes = [row.code_hash for row in session.scalars(select(RecoveryCode))]
    assert len(hashes) == 10
    for value in codes:
        assert all(value not in h and value.replace("-", "") not in h for h in hashes)


def test_turning_two_factor_on_ends_the_users_other_sessions(app: Flask, client: FlaskClient, clock: Clock) -> None:
    make_user(app, "sato", "faq")
    other = app.test_client()
    login(other, "sato")
    login(client, "sato")
    enrol(client, clock)
    assert is_logged_in(client) and not is_logged_in(other)


# --- logging in with a code -------------------------------------------------------------------------------


def test_login_needs_the_code_after_the_password(app: Flask, client: FlaskClient, clock: Clock,
                                                 enrolled: tuple[str, list[str]]) -> None:
    secret, _codes = enrolled
    response = login(client, "sato", next="/admin/kpi")
    assert response.status_code == 302 and response.location == "/admin/login/code"
    assert not is_logged_in(client)  # the password alone opens nothing
    assert "確認コード" in client.get("/admin/login/code").get_data(as_text=True)

    wrong = submit_code(client, "123456")
    assert wrong.status_code == 200 and "確認コードが正しくありません" in wrong.get_data(as_text=True)
    assert not is_logged_in(client)
    assert [row.target for row in audit_rows(app, "login_2fa_failed")] == ["sato"]

    right = submit_code(client, code(secret, clock))
    assert right.status_code == 302 and right.location == "/admin/kpi"
    assert is_logged_in(client)
    assert audit_rows(app, "login")[-1].detail == {"two_factor": "totp"}


def test_wrong_password_never_reaches_the_code_step(app: Flask, client: FlaskClient, enrolled: Any) -> None:
    response = login(client, "sato", "wrong-password-x")
    assert response.status_code == 200 and "ユーザー名またはパスワードが正しくありません。" in response.get_data(as_text=True)
    expired = client.get("/admin/login/code")
    assert expired.status_code == 302 and expired.location == "/admin/login"


def test_a_code_works_once(app: Flask, client: FlaskClient, clock: Clock, enrolled: tuple[str, list[str]]) -> None:
    secret, _codes = enrolled
    seen = code(secret, clock)
    login(client, "sato")
    assert submit_code(client, seen).status_code == 302
    logout(client)
    login(client, "sato")
    assert submit_code(client, seen).status_code == 200  # the same code again (e.g. seen over a shoulder)
    assert not is_logged_in(client)
    clock.advance(30)
    assert submit_code(client, code(secret, clock)).status_code == 302


def test_the_code_step_expires(app: Flask, client: FlaskClient, clock: Clock, enrolled: tuple[str, list[str]],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    secret, _codes = enrolled
    login(client, "sato")
    token = csrf_token(client, "/admin/login/code")
    monkeypatch.setattr(auth, "SECOND_FACTOR_SECONDS", -1)  # the page was left open too long
    response = client.post("/admin/login/code", data={"code": code(secret, clock), "csrf_token": token})
    assert response.status_code == 302 and response.location == "/admin/login"
    assert "確認コードの入力時間が過ぎました" in client.get("/admin/login").get_data(as_text=True)
    assert not is_logged_in(client)


def test_a_recovery_code_works_once(app: Flask, client: FlaskClient, enrolled: tuple[str, list[str]]) -> None:
    _secret, codes = enrolled
    login(client, "sato")
    response = submit_code(client, codes[0])
    assert response.status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    assert "復旧コードを1つ使いました（残り9個）" in page
    (row,) = audit_rows(app, "2fa_recovery_code_used")
    assert (row.username, row.target, row.detail) == ("sato", "sato", {"remaining": 9})
    assert audit_rows(app, "login")[-1].detail == {"two_factor": "recovery_code"}
    logout(client)

    login(client, "sato")
    assert submit_code(client, codes[0]).status_code == 200  # used: refused
    assert not is_logged_in(client)
    # As typed off paper: capitals and spaces instead of hyphens.
    assert submit_code(client, codes[1].upper().replace("-", " ")).status_code == 302
    assert "残り8個" in client.get("/admin/").get_data(as_text=True)


def test_few_recovery_codes_left_is_pointed_out(app: Flask, client: FlaskClient, enrolled: tuple[str, list[str]]) -> None:
    _secret, codes = enrolled
    for value in codes[:7]:
        login(client, "sato")
        assert submit_code(client, value).status_code == 302
        page = client.get("/admin/").get_data(as_text=True)
        logout(client)
    assert "残り3個" in page and "新しい復旧コードを発行してください" in page


def test_the_code_step_is_throttled_and_a_right_password_does_not_reset_it(
    app: Flask, client: FlaskClient, clock: Clock, enrolled: tuple[str, list[str]]
) -> None:
    secret, _codes = enrolled
    app.config.update(LOGIN_MAX_FAILURES=3, LOGIN_BACKOFF_SECONDS=60)
    login(client, "sato", ip="198.51.100.7")
    for _ in range(2):
        assert submit_code(client, "000000", ip="198.51.100.7").status_code == 200
    login(client, "sato", ip="198.51.100.7")  # the right password again: still two failures
    assert submit_code(client, "000001", ip="198.51.100.7").status_code == 200
    locked = submit_code(client, code(secret, clock), ip="198.51.100.7")
    assert locked.status_code == 429 and "一時的にログインできません" in locked.get_data(as_text=True)
    assert not is_logged_in(client)
    # Somewhere else, the member of staff still gets in.
    other = app.test_client()
    login(other, "sato", ip="192.0.2.44")
    assert submit_code(other, code(secret, clock), ip="192.0.2.44").status_code == 302


# --- required for admins ----------------------------------------------------------------------------------


def test_admins_must_set_it_up_before_anything_else_when_required(make_app: Any, clock: Clock) -> None:
    app = make_app(ADMIN_REQUIRE_2FA=True)
    make_user(app, "boss", "admin")
    make_user(app, "tanaka", "viewer")
    client = app.test_client()
    assert login(client, "boss").status_code == 302
    for page in ("/admin/", "/admin/users", "/admin/audit", "/admin/kpi", "/admin/password"):
        response = client.get(page)
        assert response.status_code == 302 and response.location == "/admin/2fa/setup", page
    setup = client.get("/admin/2fa/setup").get_data(as_text=True)
    assert "管理者は二段階認証の設定が必要です" in setup
    enrol(client, clock)
    assert client.get("/admin/users").status_code == 200

    viewer = app.test_client()
    login(viewer, "tanaka")
    assert viewer.get("/admin/kpi").status_code == 200  # optional for other roles


def test_admins_are_not_forced_when_the_setting_is_off(app: Flask, client: FlaskClient) -> None:
    assert app.config["ADMIN_REQUIRE_2FA"] is False  # testing default
    make_user(app, "boss", "admin")
    login(client, "boss")
    assert client.get("/admin/users").status_code == 200


def test_promotion_to_admin_requires_setup_at_the_next_login(make_app: Any) -> None:
    app = make_app(ADMIN_REQUIRE_2FA=True)
    make_user(app, "tanaka", "viewer")
    client = app.test_client()
    login(client, "tanaka")
    with get_db(app).session() as session:
        user = auth.find_user(session, "tanaka")
        assert user is not None
        auth.change_role(session, user, "admin")
    assert not is_logged_in(client)
    login(client, "tanaka")
    assert client.get("/admin/users").location == "/admin/2fa/setup"


# --- turning it off, new recovery codes -------------------------------------------------------------------


def test_turning_it_off_needs_password_and_code(app: Flask, client: FlaskClient, clock: Clock,
                                                enrolled: tuple[str, list[str]]) -> None:
    secret, _codes = enrolled
    login(client, "sato")
    submit_code(client, code(secret, clock))
    clock.advance(30)
    _text, token = form_page(client, "/admin/2fa")
    wrong = client.post("/admin/2fa/disable", data={"password": "not-my-password", "code": code(secret, clock), "csrf_token": token})
    assert wrong.status_code == 400 and "パスワードまたは確認コードが正しくありません。" in wrong.get_data(as_text=True)
    assert [row.target for row in audit_rows(app, "2fa_disable_failed")] == ["sato"]
    assert twofactor.has_two_factor(stored(app, "sato"))

    ok = client.post("/admin/2fa/disable", data={"password": PASSWORD, "code": code(secret, clock), "csrf_token": token})
    assert ok.status_code == 302
    assert "二段階認証を無効にしました。" in client.get("/admin/2fa").get_data(as_text=True)
    assert not twofactor.has_two_factor(stored(app, "sato"))
    assert [row.target for row in audit_rows(app, "2fa_disable")] == ["sato"]
    with get_db(app).session() as session:
        assert session.scalars(select(RecoveryCode)).all() == []
    logout(client)
    assert login(client, "sato").location == "/admin/"  # the password alone again


def test_new_recovery_codes_replace_the_old_ones(app: Flask, client: FlaskClient, clock: Clock,
                                                 enrolled: tuple[str, list[str]]) -> None:
    secret, old = enrolled
    login(client, "sato")
    submit_code(client, code(secret, clock))
    _text, token = form_page(client, "/admin/2fa")
    refused = client.post("/admin/2fa/recovery-codes", data={"password": "not-my-password", "csrf_token": token})
    assert refused.status_code == 400
    response = client.post("/admin/2fa/recovery-codes", data={"password": PASSWORD, "csrf_token": token})
    new = re.findall(r"<li><code>([0-9a-z-]+)</code></li>", response.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    assert [row.action for row in audit_rows(app) if row.action.startswith("2fa_recovery_codes")] == [
        "2fa_recovery_codes_new_failed", "2fa_recovery_codes_new"]
    logout(client)
    login(client, "sato")
    assert submit_code(client, old[2]).status_code == 200
    assert submit_code(client, new[2]).status_code == 302


# --- the operator's reset ---------------------------------------------------------------------------------


def test_cli_reset_2fa(app: Flask, client: FlaskClient, runner: Any, clock: Clock, enrolled: tuple[str, list[str]]) -> None:
    secret, _codes = enrolled
    login(client, "sato")
    submit_code(client, code(secret, clock))
    value = saved_cookie(client)
    assert "二段階認証: あり" in runner.invoke(args=["users", "list"]).output

    result = runner.invoke(args=["users", "reset-2fa", "sato"])
    assert result.exit_code == 0, result.output
    assert "ユーザー「sato」の二段階認証をリセットしました" in result.output
    user = stored(app, "sato")
    assert user.totp_secret is None and user.totp_enabled_at is None
    with get_db(app).session() as session:
        assert session.scalars(select(RecoveryCode)).all() == []
    assert not is_logged_in(replay(app, value))  # open sessions end
    (row,) = audit_rows(app, "2fa_reset")
    assert (row.username, row.target, row.detail) == (auth.CLI_ACTOR, "sato", {"was_enabled": True})
    assert "二段階認証: なし" in runner.invoke(args=["users", "list"]).output

    other = app.test_client()
    assert login(other, "sato").location == "/admin/"  # the password alone, until set up again


def test_cli_reset_2fa_of_a_required_admin_asks_for_setup_at_next_login(make_app: Any, clock: Clock) -> None:
    app = make_app(ADMIN_REQUIRE_2FA=True)
    make_user(app, "boss", "admin")
    client = app.test_client()
    login(client, "boss")
    enrol(client, clock)
    result = app.test_cli_runner().invoke(args=["users", "reset-2fa", "boss"])
    assert result.exit_code == 0 and "次回ログインすると二段階認証の設定画面が表示されます" in result.output
    assert not is_logged_in(client)
    login(client, "boss")
    assert client.get("/admin/users").location == "/admin/2fa/setup"


def test_cli_reset_2fa_unknown_user(runner: Any) -> None:
    result = runner.invoke(args=["users", "reset-2fa", "ghost"])
    assert result.exit_code != 0 and "ユーザー「ghost」は存在しません。" in result.output
