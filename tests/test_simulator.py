"""The chat simulator: a development page that talks to the bot only through the fake LINE platform."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from bot.sandbox import simulator as simulator_module
from bot.sandbox.simulator import SIMULATED_RESIDENTS, USER_ID_RE
from kpi.models import UsageEvent
from tests.conftest import _empty_tables, webhook_served

ROOT = Path(__file__).resolve().parent.parent

RESIDENT = "U" + "5" * 32


class Simulator:
    """The simulator's JSON API over real HTTP, as the page's JavaScript calls it."""

    def __init__(self, url: str) -> None:
        self.url = url + "/simulator"
        self.http = requests.Session()
        self.since: dict[str, int] = {}

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        """POST JSON the way the page does (same origin)."""
        origin = self.url.rsplit("/", 1)[0]
        return self.http.post(self.url + "/api/" + path, json=body, headers={"Origin": origin}, timeout=10)

    def new_messages(self, user: str, expect: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll /api/messages like the page until `expect` new bot messages arrive."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < expect:
            assert time.monotonic() < deadline, f"the bot sent {found!r}, expected {expect} message(s)"
            query = {"user": user, "since": self.since.get(user, 0)}
            answer = self.http.get(self.url + "/api/messages", params=query, timeout=10)
            assert answer.status_code == 200, answer.text
            payload = answer.json()
            found += payload["messages"]
            self.since[user] = payload["next"]
            time.sleep(0.05)
        return found


@pytest.fixture
def simulator_app(make_app: Callable[..., Flask], fake_line_server: Any) -> Flask:
    """An app in development mode with the simulator on, pointed at the fake platform."""
    _fake, served = fake_line_server
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, FAKE_LINE_URL=served.url)
    _empty_tables(app)
    return app


@pytest.fixture
def simulator(simulator_app: Flask, fake_line: FakeLinePlatform) -> Iterator[Simulator]:
    """The simulator served over HTTP, with the fake platform posting its webhooks to this app."""
    with webhook_served(simulator_app, fake_line) as url:
        yield Simulator(url)


def test_page_is_served_in_development_in_japanese(simulator_app: Flask) -> None:
    page = simulator_app.test_client().get("/simulator")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<html lang="ja">' in html
    for words in ("LINE シミュレーター", "友だち追加", "ブロック", "新しい住民", "送信"):
        assert words in html
    assert "simulator.js" in html and "simulator.css" in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_static_assets_are_served(simulator_app: Flask) -> None:
    client = simulator_app.test_client()
    for name in ("simulator.js", "simulator.css"):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200
        answer.close()


def test_simulated_residents_have_valid_line_user_ids() -> None:
    assert len(SIMULATED_RESIDENTS) >= 3
    assert all(USER_ID_RE.match(r["userId"]) for r in SIMULATED_RESIDENTS)
    assert len({r["userId"] for r in SIMULATED_RESIDENTS}) == len(SIMULATED_RESIDENTS)


def test_not_served_when_disabled(make_app: Callable[..., Flask]) -> None:
    client = make_app(APP_ENV="development", SIMULATOR_ENABLED=False).test_client()
    assert client.get("/simulator").status_code == 404
    assert client.post("/simulator/api/send", json={"user": RESIDENT, "text": "こんにちは"}).status_code == 404


def test_not_served_in_production(make_app: Callable[..., Flask]) -> None:
    # The configuration switches the simulator off in production whatever the environment says...
    client = make_app(APP_ENV="production", SIMULATOR_ENABLED=True, FAKE_LINE_URL="http://127.0.0.1:9").test_client()
    assert client.get("/simulator").status_code == 404
    # ...and the blueprint refuses on its own even if something registered it anyway.
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True)
    app.config["APP_ENV"] = "production"
    assert app.test_client().get("/simulator").status_code == 404
    assert app.test_client().get("/simulator/api/messages", query_string={"user": RESIDENT}).status_code == 404


def test_follow_greets_and_a_question_is_answered(simulator: Simulator, fake_line: FakeLinePlatform) -> None:
    followed = simulator.post("follow", {"user": RESIDENT})
    assert followed.status_code == 200, followed.text
    assert {k: v for k, v in followed.json().items() if k != "time"} == {"ok": True, "botStatus": 200}
    greeting = simulator.new_messages(RESIDENT)
    assert greeting[0]["type"] == "text"
    assert "友だち追加ありがとうございます" in greeting[0]["text"]

    sent = simulator.post("send", {"user": RESIDENT, "text": "ごみの出し方を教えて"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["ok"] is True
    reply = simulator.new_messages(RESIDENT)
    assert reply[0]["type"] == "text"
    assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in reply[0]["text"])
    # The bot answered this resident by a reply, through the fake platform, as on LINE.
    assert [d.kind for d in fake_line.deliveries] == ["reply", "reply"]
    assert all(d.to == [RESIDENT] for d in fake_line.deliveries)


def test_postback_and_unfollow_reach_the_bot(simulator: Simulator, fake_line: FakeLinePlatform) -> None:
    tapped = simulator.post("postback", {"user": RESIDENT, "data": '{"a":"menu"}', "displayText": "メニュー"})
    assert tapped.status_code == 200, tapped.text
    assert tapped.json()["botStatus"] == 200
    picked = simulator.post("postback", {"user": RESIDENT, "data": "pick", "params": {"date": "2025-04-01"}})
    assert picked.status_code == 200, picked.text
    blocked = simulator.post("unfollow", {"user": RESIDENT})
    assert blocked.status_code == 200, blocked.text
    assert {k: v for k, v in blocked.json().items() if k != "time"} == {"ok": True, "botStatus": 200}


def test_messages_of_other_residents_are_not_mixed(simulator: Simulator) -> None:
    other = SIMULATED_RESIDENTS[1]["userId"]
    assert simulator.post("follow", {"user": RESIDENT}).status_code == 200
    simulator.new_messages(RESIDENT)
    answer = simulator.http.get(simulator.url + "/api/messages", params={"user": other, "since": 0}, timeout=10)
    assert {k: v for k, v in answer.json().items() if k != "time"} == {"messages": [], "next": 0}


def test_the_clock_beside_messages_is_the_servers_in_japan_time(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # 00:05 UTC is 9:05 in Japan: whatever the browser's time zone, the page shows what the server sends.
    monkeypatch.setattr(simulator_module, "utcnow", lambda: dt.datetime(2026, 12, 4, 0, 5, tzinfo=dt.UTC))
    sent = simulator.post("send", {"user": RESIDENT, "text": "こんにちは"})
    assert sent.status_code == 200 and sent.json()["time"] == "9:05"
    polled = simulator.http.get(simulator.url + "/api/messages", params={"user": RESIDENT, "since": 0}, timeout=10)
    assert polled.json()["time"] == "9:05"
    monkeypatch.setattr(simulator_module, "utcnow", lambda: dt.datetime(2026, 12, 4, 15, 30, tzinfo=dt.UTC))
    assert simulator.post("follow", {"user": RESIDENT}).json()["time"] == "0:30"  # past midnight in Japan
    script = (ROOT / "bot" / "static" / "simulator.js").read_text(encoding="utf-8")
    assert "getHours()" not in script and "toLocale" not in script  # the browser's zone is never asked


def test_non_json_posts_are_refused(simulator_app: Flask) -> None:
    client = simulator_app.test_client()
    form = client.post("/simulator/api/send", data={"user": RESIDENT, "text": "こんにちは"})
    assert form.status_code == 415
    assert "application/json" in form.get_json()["error"]
    plain = client.post(
        "/simulator/api/follow", data='{"user": "%s"}' % RESIDENT, headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415


def test_cross_site_requests_are_refused(simulator_app: Flask) -> None:
    client = simulator_app.test_client()
    body = {"user": RESIDENT, "text": "こんにちは"}
    assert client.post("/simulator/api/send", json=body, headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/simulator/api/send", json=body, headers={"Origin": "null"}).status_code == 403
    assert client.post("/simulator/api/send", json=body, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post("/simulator/api/send", json=body, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("send", {"user": "Uabc", "text": "こんにちは"}),
        ("send", {"user": RESIDENT, "text": "   "}),
        ("send", {"user": RESIDENT, "text": "あ" * 5001}),
        ("send", ["not", "an", "object"]),
        ("postback", {"user": RESIDENT}),
        ("postback", {"user": RESIDENT, "data": "x" * 301}),
        ("postback", {"user": RESIDENT, "data": "x", "params": {"evil": "1"}}),
        ("follow", {"user": "U" + "G" * 32}),
    ],
)
def test_malformed_requests_are_refused(simulator_app: Flask, path: str, body: Any) -> None:
    answer = simulator_app.test_client().post(f"/simulator/api/{path}", json=body)
    assert answer.status_code == 400
    assert answer.get_json()["error"]


def test_messages_needs_a_valid_user_and_since(simulator_app: Flask) -> None:
    client = simulator_app.test_client()
    assert client.get("/simulator/api/messages", query_string={"user": "nobody"}).status_code == 400
    assert client.get("/simulator/api/messages", query_string={"user": RESIDENT, "since": "x"}).status_code == 400


def test_unreachable_fake_platform_is_reported_in_japanese(make_app: Callable[..., Flask]) -> None:
    # Port 9 (discard) is not listening on loopback: the page must say so, not crash.
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, FAKE_LINE_URL="http://127.0.0.1:9")
    answer = app.test_client().get("/simulator/api/messages", query_string={"user": RESIDENT})
    assert answer.status_code == 502
    assert "疑似LINEプラットフォーム" in answer.get_json()["error"]


def test_webhook_that_cannot_be_delivered_is_reported(simulator_app: Flask, fake_line: FakeLinePlatform) -> None:
    previous = fake_line.webhook_url
    fake_line.webhook_url = None  # the fake does not know where the bot is
    try:
        answer = simulator_app.test_client().post("/simulator/api/send", json={"user": RESIDENT, "text": "こんにちは"})
    finally:
        fake_line.webhook_url = previous
    assert answer.status_code == 502
    assert "/callback" in answer.get_json()["error"]


def test_missing_fake_platform_setting_is_explained(make_app: Callable[..., Flask]) -> None:
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, FAKE_LINE_URL=None)
    client = app.test_client()
    assert "FAKE_LINE_URL" in client.get("/simulator").get_data(as_text=True)
    answer = client.post("/simulator/api/follow", json={"user": RESIDENT})
    assert answer.status_code == 503
    assert "FAKE_LINE_URL" in answer.get_json()["error"]


# ---- locations and photos -----------------------------------------------------------------------

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _message_kinds(app: Flask) -> list[str | None]:
    """The message types the bot counted (usage events), oldest first."""
    with get_db(app).session() as session:
        rows = session.scalars(select(UsageEvent).where(UsageEvent.kind == "message").order_by(UsageEvent.id))
        return [(row.detail or {}).get("message_type") for row in rows]


def test_a_location_and_a_photo_reach_the_bot_as_line_sends_them(
        simulator: Simulator, simulator_app: Flask, fake_line: FakeLinePlatform) -> None:
    sent = simulator.post("location", {"user": RESIDENT, "latitude": 36.649, "longitude": 140.149,
                                       "title": "テスト地点", "address": ""})
    assert sent.status_code == 200, sent.text
    assert sent.json()["ok"] is True
    simulator.new_messages(RESIDENT)  # no report, no shelter search: the bot's hint
    photo = simulator.post("image", {"user": RESIDENT, "contentType": "image/png",
                                     "data": base64.b64encode(PNG_1PX).decode()})
    assert photo.status_code == 200, photo.text
    simulator.new_messages(RESIDENT)
    assert _message_kinds(simulator_app) == ["location", "image"]


def test_the_fake_platform_serves_a_control_api_image_at_the_content_endpoint(
        fake_line_server: Any, fake_line: FakeLinePlatform, simulator: Simulator) -> None:
    _fake, served = fake_line_server
    answer = requests.post(served.url + "/_fake/events/image", timeout=10, json={
        "user": RESIDENT, "contentType": "image/png", "contentBase64": base64.b64encode(PNG_1PX).decode()})
    assert answer.status_code == 200, answer.text
    message = answer.json()["event"]["message"]
    assert message["type"] == "image" and message["contentProvider"] == {"type": "line"}
    content = requests.get(f"{served.url}/v2/bot/message/{message['id']}/content", timeout=10,
                           headers={"Authorization": "Bearer test-access-token"})
    assert content.status_code == 200 and content.content == PNG_1PX
    assert content.headers["Content-Type"] == "image/png"

    located = requests.post(served.url + "/_fake/events/location", timeout=10, json={
        "user": RESIDENT, "latitude": 36.65, "longitude": 140.15, "title": "テスト地点", "address": "テスト市本町1-1"})
    assert located.status_code == 200, located.text
    assert {k: v for k, v in located.json()["event"]["message"].items() if k != "id"} == {
        "type": "location", "latitude": 36.65, "longitude": 140.15, "title": "テスト地点", "address": "テスト市本町1-1"}


@pytest.mark.parametrize(("kind", "body", "status"), [
    ("location", {"user": RESIDENT, "latitude": "36.6", "longitude": 140.1}, 400),
    ("location", {"user": RESIDENT, "latitude": 91, "longitude": 140.1}, 400),
    ("location", {"user": RESIDENT, "latitude": True, "longitude": 140.1}, 400),
    ("location", {"user": RESIDENT, "latitude": 36.6, "longitude": 140.1, "title": "x" * 101}, 400),
    ("location", {"user": 7, "latitude": 36.6, "longitude": 140.1}, 400),
    ("image", {"user": RESIDENT, "contentType": "image/gif", "contentBase64": "R0lGODlh"}, 400),
    ("image", {"user": RESIDENT, "contentType": "image/png", "contentBase64": "not base64!"}, 400),
    ("image", {"user": RESIDENT, "contentType": "image/jpeg", "contentBase64": base64.b64encode(PNG_1PX).decode()}, 400),
    ("image", {"user": RESIDENT, "contentType": "image/png",
               "contentBase64": base64.b64encode(PNG_1PX + bytes(10 * 1024 * 1024)).decode()}, 413),
])
def test_the_fake_platform_refuses_bad_location_and_image_events(
        fake_line_server: Any, fake_line: FakeLinePlatform, kind: str, body: dict[str, Any], status: int) -> None:
    _fake, served = fake_line_server
    answer = requests.post(f"{served.url}/_fake/events/{kind}", json=body, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.json()["message"]
    assert not fake_line.requests or all(r.path.startswith("/_fake") for r in fake_line.requests)


@pytest.mark.parametrize(("path", "body", "status", "says"), [
    ("location", {"user": RESIDENT, "latitude": None, "longitude": 140.1}, 400, "緯度"),
    ("location", {"user": RESIDENT, "latitude": 36.6, "longitude": 181}, 400, "経度"),
    ("location", {"user": RESIDENT, "latitude": 36.6, "longitude": 140.1, "address": "あ" * 101}, 400, "住所"),
    ("location", {"user": "Uabc", "latitude": 36.6, "longitude": 140.1}, 400, "LINE ユーザーID"),
    ("image", {"user": RESIDENT, "contentType": "image/gif", "data": "R0lGODlh"}, 400, "JPEG か PNG"),
    ("image", {"user": RESIDENT, "contentType": "image/png", "data": ""}, 400, "データがありません"),
    ("image", {"user": RESIDENT, "contentType": "image/png", "data": "%%%"}, 400, "読めません"),
    ("image", {"user": RESIDENT, "contentType": "image/jpeg", "data": base64.b64encode(PNG_1PX).decode()}, 400,
     "画像ではありません"),
    ("image", {"user": RESIDENT, "contentType": "image/png",
               "data": base64.b64encode(PNG_1PX + bytes(10 * 1024 * 1024)).decode()}, 413, "大きすぎます"),
])
def test_bad_locations_and_images_get_a_japanese_error(
        simulator_app: Flask, path: str, body: dict[str, Any], status: int, says: str) -> None:
    answer = simulator_app.test_client().post(f"/simulator/api/{path}", json=body)
    assert answer.status_code == status
    assert says in answer.get_json()["error"]


def test_preset_points_are_made_around_the_imported_shelters(simulator_app: Flask) -> None:
    client = simulator_app.test_client()
    page = client.get("/simulator").get_data(as_text=True)
    assert "preset-place" not in page and "避難所データを取り込むと" in page  # none imported: no presets
    sites = ROOT / "tests" / "data" / "shelters-standard-sites.csv"  # generated test data
    assert simulator_app.test_cli_runner().invoke(args=["shelters", "import", str(sites)]).exit_code == 0
    page = client.get("/simulator").get_data(as_text=True)
    places = simulator_module.preset_places((36.65, 140.15))
    assert [p["label"] for p in places] == ["登録済み避難所の中心", "中心から北へ約1km", "中心から東へ約2km", "中心から南西へ約3km"]
    assert places[1]["latitude"] == pytest.approx(36.659, abs=0.001) and places[2]["longitude"] == pytest.approx(140.172, abs=0.001)
    assert page.count('class="preset-place"') == 4 and "実在の施設ではありません" in page
