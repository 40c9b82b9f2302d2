"""Login throttling that cannot lock staff out from elsewhere, and the transport headers (HSTS, nosniff)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from bot import auth
from tests.test_admin import _age_attempts, audit_rows, csrf_token, is_logged_in, login, make_user

ATTACKER = "198.51.100.66"
OFFICE = "192.0.2.10"
WRONG = "wrong-password-x"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap hashes keep the many logins quick."""
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


def logout(client: FlaskClient) -> None:
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})


def retry_after(response: TestResponse) -> int:
    assert response.status_code == 429, response.status_code
    return int(response.headers["Retry-After"])


def test_an_attacker_elsewhere_cannot_lock_the_admin_out(app: Flask, client: FlaskClient) -> None:
    make_user(app, "admin")
    # The admin logged in from the office before (a known address).
    assert login(client, "admin", ip=OFFICE).status_code == 302
    logout(client)
    attacker = app.test_client()
    for _ in range(5):  # LOGIN_MAX_FAILURES by default
        assert login(attacker, "admin", WRONG, ip=ATTACKER).status_code == 200
    assert login(attacker, "admin", ip=ATTACKER).status_code == 429  # even the right password, there
    assert login(attacker, "admin", WRONG, ip=ATTACKER).status_code == 429

    assert login(client, "admin", ip=OFFICE).status_code == 302  # the real admin at their own desk
    assert is_logged_in(client)
    logout(client)
    assert login(client, "admin", ip="203.0.113.5").status_code == 302  # and from a new address too


def test_the_wait_of_one_account_and_address_doubles_with_each_failure(app: Flask, client: FlaskClient) -> None:
    app.config.update(LOGIN_MAX_FAILURES=3, LOGIN_BACKOFF_SECONDS=60, LOGIN_LOCKOUT_SECONDS=900)
    make_user(app, "sato")
    for _ in range(3):
        assert login(client, "sato", WRONG, ip=ATTACKER).status_code == 200
    waits = [retry_after(login(client, "sato", WRONG, ip=ATTACKER))]
    for _ in range(4):
        _age_attempts(app, waits[-1] + 1)  # the wait is over: one more failure is counted...
        assert login(client, "sato", WRONG, ip=ATTACKER).status_code == 200
        waits.append(retry_after(login(client, "sato", WRONG, ip=ATTACKER)))  # ...and the next wait is longer
    assert [round(w, -1) for w in waits] == [60, 120, 240, 480, 900]  # doubling up to LOGIN_LOCKOUT_SECONDS
    assert len(audit_rows(app, "login_locked")) == 5

    _age_attempts(app, 901)
    assert login(client, "sato", ip=ATTACKER).status_code == 302  # the right password after the wait


def test_backoff_seconds() -> None:
    policy = auth.LoginPolicy(max_failures=5, backoff_seconds=30, max_wait_seconds=900,
                              max_failures_per_address=20, max_failures_per_account=20)
    assert [auth.backoff_seconds(policy, n) for n in (0, 4, 5, 6, 7, 9, 10, 1000)] == [0, 0, 30, 60, 120, 480, 900, 900]


def test_a_success_of_the_pair_starts_the_count_again(app: Flask, client: FlaskClient) -> None:
    app.config.update(LOGIN_MAX_FAILURES=3, LOGIN_BACKOFF_SECONDS=60)
    make_user(app, "sato")
    for _ in range(3):
        login(client, "sato", WRONG, ip=OFFICE)
    _age_attempts(app, 61)
    assert login(client, "sato", ip=OFFICE).status_code == 302
    logout(client)
    for _ in range(2):
        assert login(client, "sato", WRONG, ip=OFFICE).status_code == 200
    assert login(client, "sato", ip=OFFICE).status_code == 302


def test_guessing_from_many_addresses_stops_only_unknown_addresses(app: Flask, client: FlaskClient) -> None:
    app.config.update(LOGIN_MAX_FAILURES_PER_ACCOUNT=4, LOGIN_LOCKOUT_SECONDS=600)
    make_user(app, "sato")
    assert login(client, "sato", ip=OFFICE).status_code == 302
    logout(client)
    for n in range(4):  # each address stays below its own limit
        assert login(app.test_client(), "sato", WRONG, ip=f"198.51.100.{n}").status_code == 200
    assert retry_after(login(app.test_client(), "sato", ip="203.0.113.9")) <= 600  # a new address waits
    assert login(client, "sato", ip=OFFICE).status_code == 302  # staff where they logged in before do not
    _age_attempts(app, 601)
    logout(client)
    assert login(client, "sato", ip="203.0.113.9").status_code == 302


def test_unknown_usernames_are_throttled_alike(app: Flask, client: FlaskClient) -> None:
    app.config.update(LOGIN_MAX_FAILURES=2)
    make_user(app, "sato")
    messages = []
    for name in ("sato", "ghost"):
        for _ in range(2):
            login(client, name, WRONG, ip=ATTACKER)
        response = login(client, name, WRONG, ip=ATTACKER)
        assert response.status_code == 429
        page = response.get_data(as_text=True).replace(name, "NAME")
        messages.append((re.sub(r'name="csrf_token" value="[^"]*"', "", page), response.headers["Retry-After"]))
    assert messages[0] == messages[1]  # the page does not tell which names exist


# --- transport headers --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/static/admin.css", "/healthz", "/admin/login"])
def test_nosniff_on_every_response_static_files_too(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_only_when_configured_and_over_https(make_app: Callable[..., Flask]) -> None:
    unset = make_app().test_client()  # testing: off unless configured
    assert "Strict-Transport-Security" not in unset.get("/admin/login", base_url="https://localhost").headers

    client = make_app(empty=False, HSTS_MAX_AGE_SECONDS=31536000).test_client()
    for path in ("/admin/login", "/static/admin.css", "/healthz"):
        assert client.get(path, base_url="https://localhost").headers["Strict-Transport-Security"] == "max-age=31536000"
        assert "Strict-Transport-Security" not in client.get(path).headers  # plain HTTP: browsers ignore it anyway

    proxied = make_app(empty=False, HSTS_MAX_AGE_SECONDS=600, TRUSTED_PROXIES=1).test_client()
    behind_tls = proxied.get("/healthz", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.1"})
    assert behind_tls.headers["Strict-Transport-Security"] == "max-age=600"
    assert "Strict-Transport-Security" not in proxied.get("/healthz").headers
