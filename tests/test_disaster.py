"""Disaster mode and the shelter search, as conversations: signed webhooks in, the fake LINE
platform's deliveries and default rich menu out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from bot.db import get_db
from bot.models import AuditLog
from broadcast.dispatcher import send_due_broadcasts
from broadcast.models import Broadcast
from disaster import mode
from disaster.models import DisasterState
from faq.matcher import Candidate, Decision
from faq.service import prefer_category
from faq.store import load_repo_kb
from handlers.richmenu import IMAGE_PATH, load_definition, setup_rich_menu
from tests.conftest import Chat
from tests.test_admin import PASSWORD, csrf_token, login, make_user
from tests.test_broadcast import add_residents

DATA = Path(__file__).resolve().parent / "data"
SITES = DATA / "shelters-standard-sites.csv"
RESIDENT = "U" + "d" * 32
FAST = mode.Retry(attempts=4, base=0.01)
SHELTER_TAP = json.dumps({"a": "dis", "k": "shelter"})
# A point in the generated data's box, nearest to テスト第一避難所 (36.6500, 140.1500).
HOME = (36.6490, 140.1490)


def default_menu(app) -> str | None:
    answer = requests.get(app.config["LINE_API_BASE_URL"] + "/v2/bot/user/all/richmenu",
                          headers={"Authorization": "Bearer test"}, timeout=5)
    return answer.json().get("richMenuId") if answer.status_code == 200 else None


def menu_name(app, menu_id: str | None) -> str | None:
    menus = {m["richMenuId"]: m["name"] for m in app.extensions["line"].list_rich_menus()}
    return menus.get(menu_id) if menu_id else None


@pytest.fixture
def city(make_app):
    """那須烏山市 with its knowledge base and the generated shelters, 001-004 open (005 closed)."""
    app = make_app()
    with get_db(app).session() as s:
        load_repo_kb(s, app.config["MUNICIPALITY"])
    runner = app.test_cli_runner()
    assert runner.invoke(args=["shelters", "import", str(SITES)]).exit_code == 0
    assert runner.invoke(args=["shelters", "open", "1", "2", "3", "4"]).exit_code == 0
    return app


def resident(app, fake_line) -> Chat:
    return Chat(app.test_client(), fake_line, RESIDENT)


def sends_location(chat: Chat, point: tuple[float, float], expect: int = 1) -> list[dict]:
    return chat._send(chat.fake.location_event(chat.user_id, *point), expect)


def bubbles(message: dict) -> list[dict]:
    assert message["type"] == "flex" and message["contents"]["type"] == "carousel"
    return message["contents"]["contents"]


def bubble_texts(bubble: dict) -> list[str]:
    return [c["text"] for c in bubble["body"]["contents"]]


def test_tapping_search_asks_for_the_location_with_lines_location_action(city, fake_line) -> None:
    chat = resident(city, fake_line)
    (reply,) = chat.taps(SHELTER_TAP)
    assert "位置情報を送る" in reply["text"]
    assert reply["quickReply"]["items"] == [{"type": "action", "action": {"type": "location", "label": "位置情報を送る"}}]
    (again,) = chat.says("避難所")  # the word does the same
    assert again["quickReply"]["items"][0]["action"]["type"] == "location"


def test_location_then_hazard_gives_the_three_nearest_open_suitable_shelters(city, fake_line) -> None:
    chat = resident(city, fake_line)
    chat.taps(SHELTER_TAP)
    (question,) = sends_location(chat, HOME)
    labels = [i["action"]["label"] for i in question["quickReply"]["items"]]
    assert labels == ["洪水", "土砂災害", "地震", "津波", "大規模な火事", "高潮", "内水氾濫", "火山", "わからない"]
    flood = next(i["action"]["data"] for i in question["quickReply"]["items"] if i["action"]["label"] == "洪水")
    carousel, note = chat.taps(flood, 2)
    cards = bubbles(carousel)
    # Open and for floods: 001 (0.1 km), 003 (0.6 km), 004 (3 km); 002 is not for floods, 005 is closed.
    assert [bubble_texts(b)[0] for b in cards] == ["テスト第一避難所", "テスト第三避難所", "テスト第四避難所"]
    assert bubble_texts(cards[0])[1].startswith("約0.1km") and bubble_texts(cards[0])[2] == "テスト県テスト市本町1-1"
    assert "洪水" in bubble_texts(cards[0])[3]
    uri = cards[0]["footer"]["contents"][0]["action"]["uri"]
    assert uri == "https://www.google.com/maps/search/?api=1&query=36.650000%2C140.150000"
    assert "1. テスト第一避難所（0.1km）テスト県テスト市本町1-1" in carousel["altText"]
    assert "近い順に3か所" in note["text"] and "https://www.city.nasukarasuyama.lg.jp/" in note["text"]


def test_a_closed_shelter_is_never_offered(city, fake_line) -> None:
    chat = resident(city, fake_line)
    unknown = json.dumps({"a": "shl", "h": "any", "la": HOME[0], "lo": HOME[1]})
    carousel, _ = chat.taps(unknown, 2)
    assert "テスト第一避難所" in [bubble_texts(b)[0] for b in bubbles(carousel)]
    assert city.test_cli_runner().invoke(args=["shelters", "close", "1"]).exit_code == 0
    carousel, _ = chat.taps(unknown, 2)
    names = [bubble_texts(b)[0] for b in bubbles(carousel)]
    assert "テスト第一避難所" not in names and "テスト第五避難所" not in names and len(names) == 3


def test_no_open_shelter_says_so_with_the_citys_contact(city, fake_line) -> None:
    assert city.test_cli_runner().invoke(args=["shelters", "close", "--all"]).exit_code == 0
    chat = resident(city, fake_line)
    (reply,) = chat.taps(json.dumps({"a": "shl", "h": "flood", "la": HOME[0], "lo": HOME[1]}))
    assert "開設している避難所はありません" in reply["text"] and "那須烏山市役所" in reply["text"]


def test_none_for_that_hazard_offers_all_open_ones(city, fake_line) -> None:
    chat = resident(city, fake_line)
    (reply,) = chat.taps(json.dumps({"a": "shl", "h": "tsunami", "la": HOME[0], "lo": HOME[1]}))
    assert "「津波」に対応する開設中の避難所は見つかりませんでした" in reply["text"]
    assert reply["quickReply"]["items"][0]["action"]["label"] == "わからない"


def test_a_forged_hazard_button_is_stale_not_an_error(city, fake_line) -> None:
    chat = resident(city, fake_line)
    (reply,) = chat.taps(json.dumps({"a": "shl", "h": "meteor", "la": "x", "lo": 1}))
    assert "使えなくなっています" in reply["text"]


def test_switching_on_and_off_changes_everyones_default_menu_once(city, fake_line) -> None:
    gateway = city.extensions["line"]
    normal = setup_rich_menu(gateway, load_definition(), IMAGE_PATH.read_bytes()).rich_menu_id
    runner = city.test_cli_runner()
    on = runner.invoke(args=["line", "disaster", "on"])
    assert on.exit_code == 0 and "災害モードにしました" in on.output, on.output
    disaster_menu = default_menu(city)
    assert disaster_menu != normal and menu_name(city, disaster_menu) == "公式LINE 災害時メニュー"
    again = runner.invoke(args=["line", "disaster", "on", "--message", "二度目"])
    assert again.exit_code == 0 and "すでに災害モードです" in again.output
    creates = [r for r in fake_line.requests if r.method == "POST" and r.path == "/v2/bot/richmenu"]
    assert len(creates) == 2  # the normal menu and the disaster menu, once
    off = runner.invoke(args=["line", "disaster", "off"])
    assert off.exit_code == 0 and "通常のメニューに戻しました" in off.output
    assert default_menu(city) == normal
    # On again: the disaster menu made before is reused.
    assert runner.invoke(args=["line", "disaster", "on"]).exit_code == 0
    assert default_menu(city) == disaster_menu
    assert len([r for r in fake_line.requests if r.method == "POST" and r.path == "/v2/bot/richmenu"]) == 2
    with get_db(city).read_session() as s:
        actions = [a.action for a in s.scalars(select(AuditLog).where(AuditLog.action.like("disaster_%")).order_by(AuditLog.id))]
        assert s.scalar(select(func.count(Broadcast.id))) == 0
    assert actions == ["disaster_on", "disaster_off", "disaster_on"]


def test_the_mode_survives_a_restart_and_the_disaster_menu_works(city, make_app, fake_line) -> None:
    assert city.test_cli_runner().invoke(args=["line", "disaster", "on", "--hazard", "earthquake"]).exit_code == 0
    restarted = make_app(empty=False)
    status = restarted.test_cli_runner().invoke(args=["line", "disaster", "status"])
    assert "実施中" in status.output and "地震" in status.output
    chat = resident(restarted, fake_line)
    # The hazard staff named is not asked: the location gives the shelters for earthquakes at once.
    carousel, _ = sends_location(chat, HOME, 2)
    assert [bubble_texts(b)[0] for b in bubbles(carousel)] == ["テスト第一避難所", "テスト第二避難所", "テスト第四避難所"]
    definition = json.loads((Path(mode.MENU_DEFINITION_PATH)).read_text(encoding="utf-8"))
    replies = {}
    for area in definition["areas"][1:]:
        (replies[area["action"]["label"]],) = chat.taps(area["action"]["data"])
    assert "https://www.city.nasukarasuyama.lg.jp/" in replies["最新の災害情報"]["text"]
    assert "171" in replies["安否・家族への連絡"]["text"] and "https://www.web171.jp/" in replies["安否・家族への連絡"]["text"]
    assert "那須烏山市役所" in replies["市の連絡先"]["text"]


def test_the_emergency_notice_reaches_every_follower_once(city, fake_line) -> None:
    everyone = add_residents(city, 3) + add_residents(city, 2, start=10, is_notices_enabled=False) \
        + add_residents(city, 2, start=20, consented_at=None)
    gone = add_residents(city, 1, start=30, is_following=False)
    result = city.test_cli_runner().invoke(args=["line", "disaster", "on", "--message", "【緊急】避難指示が出ました。"])
    assert result.exit_code == 0 and "緊急のお知らせ #" in result.output, result.output
    assert city.test_cli_runner().invoke(args=["line", "disaster", "on", "--message", "【緊急】避難指示が出ました。"]).exit_code == 0
    send_due_broadcasts(city, wait=True)
    send_due_broadcasts(city, wait=True)
    for user in everyone:
        assert [m.get("text") for m in fake_line.delivered(user)] == ["【緊急】避難指示が出ました。"], user
    assert fake_line.delivered(gone[0]) == []
    with get_db(city).read_session() as s:
        (notice,) = s.scalars(select(Broadcast)).all()
        assert notice.is_emergency
        assert s.get(DisasterState, city.config["MUNICIPALITY"]).emergency_broadcast_id == notice.id


def test_line_errors_are_retried_and_a_refused_switch_is_finished_later(city, fake_line) -> None:
    db, gateway, municipality = get_db(city), city.extensions["line"], city.config["MUNICIPALITY"]
    fake_line.fail("richmenu", 500, times=2)
    result = mode.switch(db, gateway, municipality, True, username="test", retry=FAST)
    assert result.changed and menu_name(city, default_menu(city)) == "公式LINE 災害時メニュー"
    mode.switch(db, gateway, municipality, False, username="test", retry=FAST)
    assert default_menu(city) is None  # there was no default menu before
    fake_line.fail("richmenu", 400, times=1)  # a refusal is not retried
    with pytest.raises(mode.DisasterModeError, match="LINEのメニューを切り替えられませんでした"):
        mode.switch(db, gateway, municipality, True, username="test", retry=FAST)
    with db.read_session() as s:
        state = s.get(DisasterState, municipality)
        assert state.is_on and not state.is_menu_applied
    mode.reconcile_menus(city)  # the maintenance job
    assert menu_name(city, default_menu(city)) == "公式LINE 災害時メニュー"
    with db.read_session() as s:
        assert s.get(DisasterState, municipality).is_menu_applied


def test_while_on_answers_end_with_the_latest_information(make_app, fake_line) -> None:
    app = make_app(DISASTER_INFO_URL="https://example.jp/bousai")
    with get_db(app).session() as s:
        load_repo_kb(s, app.config["MUNICIPALITY"])
    chat = resident(app, fake_line)
    before = chat.says("住民票をコンビニで取りたい", 2)
    assert "最新の情報" not in before[0]["text"]
    assert app.test_cli_runner().invoke(args=["line", "disaster", "on"]).exit_code == 0
    after = chat.says("住民票をコンビニで取りたい", 2)
    assert after[0]["text"].endswith("【災害時】最新の情報：https://example.jp/bousai")


def test_the_faq_prefers_disaster_entries_only_when_close() -> None:
    from faq.kb import KBEntry

    def entry(entry_id: str, category: str) -> KBEntry:
        import datetime as dt
        return KBEntry(id=entry_id, category=category, title=entry_id, question="", alternates=(), keywords=(), answer="",
                       source="", municipality="x", reviewed_at=dt.date(2026, 1, 1), section="")

    by_id = {"a": entry("a", "welfare"), "b": entry("b", "disaster"), "c": entry("c", "disaster")}
    close = Decision("answer", "a", 0.9, (Candidate("a", 0.62), Candidate("b", 0.60), Candidate("c", 0.40)))
    preferred = prefer_category(close, by_id, "disaster")
    assert preferred.entry_id == "b" and [c.entry_id for c in preferred.candidates] == ["b", "a", "c"]
    far = Decision("answer", "a", 0.9, (Candidate("a", 0.70), Candidate("b", 0.60)))
    assert prefer_category(far, by_id, "disaster") == far
    clarify = Decision("clarify", None, 0.4, (Candidate("a", 0.50), Candidate("c", 0.48)))
    assert [c.entry_id for c in prefer_category(clarify, by_id, "disaster").candidates] == ["c", "a"]
    unknown = Decision("unknown", None, 0.1, (Candidate("a", 0.1), Candidate("b", 0.1)))
    assert prefer_category(unknown, by_id, "disaster") == unknown


def test_the_admin_switch_has_a_confirmation_page_and_is_audited(city, fake_line) -> None:
    client = city.test_client()
    make_user(city, "kouhou", "pr")
    assert login(client, "kouhou", PASSWORD).status_code == 302
    page = client.get("/admin/disaster").get_data(as_text=True)
    assert "災害モード: 通常" in page and "開設中の避難所：4 か所" in page
    token = csrf_token(client, "/admin/disaster")
    confirm = client.post("/admin/disaster/confirm", data={"csrf_token": token, "state": "on", "hazard": "flood",
                                                           "message": "避難してください"})
    body = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "災害モードを始めます" in body and "避難してください" in body and "洪水" in body
    assert default_menu(city) is None  # nothing done before 実行する
    done = client.post("/admin/disaster/switch", data={"csrf_token": token, "state": "on", "hazard": "flood",
                                                       "message": "避難してください"}, follow_redirects=True)
    assert "災害モードにしました" in done.get_data(as_text=True) and "緊急のお知らせ #" in done.get_data(as_text=True)
    assert menu_name(city, default_menu(city)) == "公式LINE 災害時メニュー"
    assert "実施中" in client.get("/admin/disaster").get_data(as_text=True)
    off = client.post("/admin/disaster/switch", data={"csrf_token": token, "state": "off"}, follow_redirects=True)
    assert "災害モードを終えました" in off.get_data(as_text=True) and default_menu(city) is None
    with get_db(city).read_session() as s:
        rows = [(a.action, a.username) for a in s.scalars(select(AuditLog).where(AuditLog.action.like("disaster_%")).order_by(AuditLog.id))]
    assert rows == [("disaster_on", "kouhou"), ("disaster_off", "kouhou")]
    audit_page = app_admin_audit(city)
    assert "災害モードを開始" in audit_page and "洪水" in audit_page
    viewer = city.test_client()
    make_user(city, "kanri", "viewer")
    login(viewer, "kanri", PASSWORD)
    assert viewer.get("/admin/disaster").status_code == 403


def app_admin_audit(app) -> str:
    client = app.test_client()
    make_user(app, "kanrisha", "admin")
    login(client, "kanrisha", PASSWORD)
    return client.get("/admin/audit").get_data(as_text=True)
