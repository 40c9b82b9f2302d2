"""The site outside the admin: landing page, Japanese error pages (JSON for machine endpoints),
and every admin address working with and without a trailing slash."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from tests.test_admin import PASSWORD, csrf_token, is_logged_in, login, make_user

DUMMY_ARGUMENTS = {"IntegerConverter": 1, "UnicodeConverter": "x", "PathConverter": "x"}


def links(html: str) -> list[str]:
    return re.findall(r'<a [^>]*href="([^"]+)"', html)


def test_landing_page_in_development_links_the_admin_and_the_simulator(make_app: Callable[..., Flask]) -> None:
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, MUNICIPALITY="joso")
    client = app.test_client()
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and '<html lang="ja">' in html
    assert "<h1>常総市公式LINE</h1>" in html
    assert links(html) == ["/faq", "/admin/", "/simulator"]
    # Every link leads somewhere: no page that does not exist yet.
    for href in links(html):
        assert client.get(href, follow_redirects=True).status_code == 200, href


def test_landing_page_without_the_simulator_links_only_the_admin(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert links(html) == ["/faq", "/admin/"]
    assert "シミュレーター" not in html


@pytest.fixture
def failing_app(app: Flask) -> Flask:
    """The test app with pages that fail (added before its first request)."""
    app.add_url_rule("/forbidden", "forbidden", lambda: abort(403))
    app.add_url_rule("/broken", "broken", lambda: 1 / 0)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a real server's behaviour, not the test client's
    return app


@pytest.mark.parametrize(("path", "status", "title"), [
    ("/no-such-page", 404, "ページが見つかりません"),
    ("/forbidden", 403, "このページは表示できません"),
    ("/broken", 500, "サーバーでエラーが発生しました"),
])
def test_browsers_get_japanese_error_pages(failing_app: Flask, path: str, status: int, title: str) -> None:
    response = failing_app.test_client().get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert response.mimetype == "text/html" and '<html lang="ja">' in html
    assert f"<h1>{title}</h1>" in html and 'href="/"' in html
    assert "Not Found" not in html and "Internal Server Error" not in html


def test_machine_endpoints_keep_json_errors(failing_app: Flask) -> None:
    client = failing_app.test_client()
    # The webhook's own 4xx answers are unchanged ...
    bad_signature = client.post("/callback", data=b'{"events": []}', headers={"X-Line-Signature": "wrong"})
    assert (bad_signature.status_code, bad_signature.get_json()) == (400, {"message": "invalid signature"})
    # ... and errors raised before it runs are JSON of the same shape, not HTML.
    wrong_method = client.get("/callback")
    assert wrong_method.status_code == 405 and wrong_method.get_json() == {"message": "method not allowed"}
    assert "POST" in wrong_method.headers["Allow"]
    # A client that asks for JSON gets JSON anywhere.
    for path, status in (("/no-such-page", 404), ("/broken", 500)):
        response = client.get(path, headers={"Accept": "application/json"})
        assert response.status_code == status and response.is_json, path
        assert set(response.get_json()) == {"message"}


def test_admin_errors_keep_the_admin_pages(client: FlaskClient) -> None:
    html = client.get("/admin/no-such-page").get_data(as_text=True)
    assert "ページが見つかりません" in html and "LINE窓口 管理画面" in html


def _admin_get_paths(app: Flask) -> list[tuple[str, bool]]:
    """(address, whether it names a record) of every GET route under /admin; records get dummy ids."""
    paths = []
    for rule in app.url_map.iter_rules():
        assert isinstance(rule, Rule)
        if not rule.rule.startswith("/admin") or "GET" not in (rule.methods or ()):
            continue
        values = {name: DUMMY_ARGUMENTS[type(conv).__name__] for name, conv in rule._converters.items()}
        paths.append((app.url_map.bind("localhost").build(rule.endpoint, values), bool(values)))
    return sorted(set(paths))


def test_every_admin_page_opens_with_and_without_a_trailing_slash(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    login(client, "boss")
    paths = _admin_get_paths(app)
    assert {"/admin/", "/admin/faq", "/admin/notices", "/admin/kpi", "/admin/users"} <= {p for p, _ in paths}
    for path, names_record in paths:
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        canonical = client.get(path)
        # A dummy record id is a 404 of the page itself; either way both addresses must agree.
        assert canonical.status_code not in ({405, 500} if names_record else {404, 405, 500}), path
        moved = client.get(other)
        assert moved.status_code == 308 and moved.location.endswith(path), (other, moved.status_code)
        arrived, expected = client.get(other, follow_redirects=True), client.get(path, follow_redirects=True)
        assert (arrived.status_code, arrived.request.path) == (expected.status_code, expected.request.path), other
    assert is_logged_in(client)


def test_a_form_posted_to_the_address_with_a_slash_still_arrives(app: Flask, client: FlaskClient) -> None:
    make_user(app, "boss")
    form = {"username": "boss", "password": PASSWORD, "csrf_token": csrf_token(client)}
    response = client.post("/admin/login/", data=form, follow_redirects=True)
    assert response.status_code == 200 and is_logged_in(client)


def test_only_existing_pages_are_redirected(client: FlaskClient) -> None:
    assert client.get("/admin/no-such-page/").status_code == 404
    assert client.get("/no-such-page/").status_code == 404
    assert client.get("/admin/faq/?category=certificates").location == "/admin/faq?category=certificates"
