"""Staff sessions end for real: a cookie saved before logout, a password change or a role change is refused."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from bot import auth
from tests.test_admin import PASSWORD, csrf_token, is_logged_in, login, make_user, post_form

COOKIE = "linebot_staff"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap hashes keep the many logins quick."""
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


def saved_cookie(client: FlaskClient) -> str:
    """The session cookie as an attacker (or a forgotten browser tab) would have copied it."""
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None, "no session cookie"
    return cookie.value


def replay(app: Flask, value: str) -> FlaskClient:
    """A fresh browser that presents a saved session cookie."""
    other = app.test_client()
    other.set_cookie(COOKIE, value)
    return other


def test_a_saved_cookie_opens_the_admin_until_logout(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    login(client, "boss")
    value = saved_cookie(client)
    assert replay(app, value).get("/admin/users").status_code == 200  # the copy works while logged in

    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    response = replay(app, value).get("/admin/users")
    assert response.status_code == 302 and response.location.startswith("/admin/login")
    assert "ログインしてください。" in replay(app, value).get(response.location).get_data(as_text=True)


def test_logout_ends_the_users_other_sessions(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    second_browser = app.test_client()
    login(client, "boss")
    login(second_browser, "boss")
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    assert not is_logged_in(second_browser)
    assert login(client, "boss").status_code == 302  # and logging in again works


def test_a_saved_cookie_is_refused_after_the_user_changes_their_password(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    login(client, "boss")
    value = saved_cookie(client)
    data = {"current_password": PASSWORD, "new_password": "brand-new-password", "new_password_confirm": "brand-new-password"}
    assert post_form(client, "/admin/password", data, "/admin/password").status_code == 302
    assert is_logged_in(client)  # the browser that changed it carries on
    assert not is_logged_in(replay(app, value))


def test_a_saved_cookie_is_refused_after_the_operator_sets_a_password(app: Flask, client: FlaskClient, runner: Any) -> None:
    make_user(app, "boss")
    login(client, "boss")
    value = saved_cookie(client)
    result = runner.invoke(args=["users", "set-password", "boss", "--password-stdin"], input="another-long-password\n")
    assert result.exit_code == 0, result.output
    assert not is_logged_in(replay(app, value))


def test_a_saved_cookie_is_refused_after_a_role_change(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    user_id = make_user(app, "yamada", "pr")
    victim = app.test_client()
    login(victim, "yamada")
    value = saved_cookie(victim)
    login(client, "boss")
    assert post_form(client, f"/admin/users/{user_id}/role", {"role": "admin"}).status_code == 302
    promoted = replay(app, value)
    assert not is_logged_in(promoted)
    assert promoted.get("/admin/users").status_code == 302  # not an admin page opened with an old cookie


def test_setting_the_same_role_again_keeps_the_session(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    user_id = make_user(app, "yamada", "pr")
    other = app.test_client()
    login(other, "yamada")
    login(client, "boss")
    post_form(client, f"/admin/users/{user_id}/role", {"role": "pr"})
    assert is_logged_in(other)


def test_a_saved_cookie_stays_dead_after_deactivation_and_reactivation(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    user_id = make_user(app, "tanaka", "viewer")
    viewer = app.test_client()
    login(viewer, "tanaka")
    value = saved_cookie(viewer)
    login(client, "boss")
    post_form(client, f"/admin/users/{user_id}/active", {"is_active": "0"})
    post_form(client, f"/admin/users/{user_id}/active", {"is_active": "1"})
    assert not is_logged_in(replay(app, value))
    assert login(viewer, "tanaka").status_code == 302
