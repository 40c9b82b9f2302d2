"""Shared fixtures: a migrated database, a fresh app per test, the fake LINE platform,
and a signed-webhook helper so tests read like conversations."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.serving import make_server

from bot.app import create_app
from bot.cli import upgrade_database
from bot.db import get_db
from bot.models_registry import metadata
from bot.sandbox.fake_line import FakeLinePlatform

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
CHANNEL_SECRET = "test-channel-secret"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """TEST_DATABASE_URL (PostgreSQL in CI) or a fresh SQLite file, migrated once."""
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    upgrade_database(url)
    return url


@pytest.fixture(scope="session", autouse=True)
def translation_vectors() -> None:
    """The foreign translations' phrasings embedded once per run into the service's on-disk cache
    (faq.service.EMBEDDING_CACHE_DIR), as `flask faq load` does before the service starts: on a
    fresh clone this takes about a minute, which no single conversation test should wait for."""
    from faq.kb import MUNICIPALITIES, load_kb
    from faq.multilingual import repo_index
    from faq.service import EMBEDDING_CACHE_DIR

    for code in MUNICIPALITIES:
        repo_index(code, load_kb(code), cache_dir=EMBEDDING_CACHE_DIR)


@pytest.fixture(scope="session")
def fake_line_server() -> Iterator[Any]:
    """The fake LINE platform served on loopback for the whole run."""
    fake = FakeLinePlatform(channel_secret=CHANNEL_SECRET, spec_dir=SHARED / "line-openapi", reply_token_ttl=60.0)
    served = fake.serve()
    yield fake, served
    served.stop()


@pytest.fixture
def fake_line(fake_line_server: Any) -> Iterator[FakeLinePlatform]:
    """The fake platform, emptied for this test; any invalid request the bot made fails the test."""
    fake, _served = fake_line_server
    fake.reset()
    fake.clear_faults()
    yield fake
    fake.clear_faults()
    invalid = list(fake.invalid)
    assert not invalid, f"the bot sent requests LINE would reject: {invalid}"


def _empty_tables(app: Flask) -> None:
    db = get_db(app)
    with db.engine.begin() as conn:
        names = [t.name for t in reversed(metadata.sorted_tables)]
        if db.is_postgres:
            conn.execute(text("TRUNCATE " + ", ".join(names) + " RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def make_app(database_url: str, fake_line_server: Any) -> Iterator[Callable[..., Flask]]:
    """Factory for apps wired to the test database and the fake platform (all stopped at teardown)."""
    _fake, served = fake_line_server
    apps: list[Flask] = []

    def factory(empty: bool = True, **overrides: Any) -> Flask:
        """A new app; `empty=False` keeps the tables (a restarted process sees what was left)."""
        settings: dict[str, Any] = {
            "APP_ENV": "testing",
            "DATABASE_URL": database_url,
            "LINE_CHANNEL_SECRET": CHANNEL_SECRET,
            "LINE_CHANNEL_ACCESS_TOKEN": "test-access-token",
            "LINE_API_BASE_URL": served.url,
            "LINE_TIMEOUT_SECONDS": 2.0,
            "INBOX_POLL_SECONDS": 0.05,
            "INBOX_WORKER_THREADS": 2,
            "SECRET_KEY": "test-secret-key-of-at-least-32-characters",
            "SIMULATOR_ENABLED": False,
        }
        settings.update(overrides)
        app = create_app(**settings)
        apps.append(app)
        if empty:
            _empty_tables(app)
        return app

    yield factory
    for app in apps:
        app.extensions["inbox"].stop()
        app.extensions["line"].close()
        get_db(app).dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """A fresh app on empty tables."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """HTTP test client."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    """CLI runner."""
    return app.test_cli_runner()


def signed_post(client: FlaskClient, fake: FakeLinePlatform, payload: Any = None, raw: bytes | None = None) -> Any:
    """POST a webhook body to /callback signed with the channel secret, as LINE does."""
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    return client.post(
        "/callback", data=body, headers={"X-Line-Signature": fake.sign(body), "Content-Type": "application/json"}
    )


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, message: str = "condition") -> Any:
    """Poll until predicate() is truthy; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {message}")


def free_port() -> int:
    """A free TCP port on loopback, for a server a test starts."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """The child processes of pid (gunicorn's workers of its master), whichever thread forked them."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def is_healthy(url: str) -> bool:
    """True when the bot served at url answers /healthz."""
    import requests

    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


class Chat:
    """A resident talking to the bot: a signed webhook goes in, the fake platform shows the reply."""

    def __init__(self, client: FlaskClient, fake: FakeLinePlatform, user_id: str) -> None:
        self.client = client
        self.fake = fake
        self.user_id = user_id

    def _send(self, event: dict[str, Any], expect: int) -> list[dict[str, Any]]:
        before = len(self.fake.delivered(self.user_id))
        response = signed_post(self.client, self.fake, {"destination": self.fake.destination, "events": [event]})
        assert response.status_code == 200, response.get_data(as_text=True)
        if expect == 0:
            return []
        messages = self.fake.wait_for_delivery(self.user_id, before + expect, timeout=30.0)
        return messages[before:]

    def says(self, text: str, expect: int = 1) -> list[dict[str, Any]]:
        """The resident sends text; returns the bot's messages."""
        return self._send(self.fake.text_event(self.user_id, text), expect)

    def taps(self, data: str, expect: int = 1) -> list[dict[str, Any]]:
        """The resident taps a postback button with this data."""
        return self._send(self.fake.postback_event(self.user_id, data), expect)

    def follows(self, expect: int = 1) -> list[dict[str, Any]]:
        """The resident adds the account as a friend."""
        return self._send(self.fake.follow_event(self.user_id), expect)

    def unfollows(self) -> None:
        """The resident blocks the account."""
        self._send(self.fake.unfollow_event(self.user_id), 0)


@pytest.fixture
def chat(client: FlaskClient, fake_line: FakeLinePlatform) -> Callable[[str], Chat]:
    """Start a conversation as a resident: chat("U...")."""
    return lambda user_id="U" + "a" * 32: Chat(client, fake_line, user_id)


class LiveServer:
    """The app served over real HTTP on loopback (browser tests, simulator)."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Shut the server down."""
        self.server.shutdown()


@contextlib.contextmanager
def webhook_served(app: Flask, fake: FakeLinePlatform) -> Iterator[str]:
    """The app over HTTP with the fake platform's webhooks pointed at it (simulator, browser tests); yields its URL."""
    server = LiveServer(app)
    previous = fake.webhook_url
    fake.webhook_url = server.url + "/callback"
    try:
        yield server.url
    finally:
        fake.webhook_url = previous
        server.stop()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The test app over HTTP."""
    server = LiveServer(app)
    yield server
    server.stop()
