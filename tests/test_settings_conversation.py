"""Residents choosing which notices they get, as conversations: consent, registration, 「設定」,
stop/resume, deletion, unfollow, and buttons that are stale or forged."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import select

from bot.db import get_db
from kpi.models import UsageEvent
from segments.models import Resident
from tests.conftest import Chat, wait_until

RESIDENT = "U" + "7" * 32
ATTRIBUTE_VALUES = ("30代", "40代", "女性", "水海道地区", "石下地区", "防災", "子育て", "イベント・観光")
STALE = "このボタンは使えなくなっています"


@pytest.fixture
def joso(make_app):
    """The bot of 常総市 (districts 水海道地区 and 石下地区)."""
    return make_app(MUNICIPALITY="joso")


@pytest.fixture
def resident(joso, fake_line) -> Chat:
    return Chat(joso.test_client(), fake_line, RESIDENT)


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [item["action"] for item in message.get("quickReply", {}).get("items", [])]


def button(message: dict[str, Any], label: str) -> dict[str, Any]:
    """The quick-reply button with this label (fails listing the labels there are)."""
    found = [b for b in buttons(message) if b["label"] == label]
    assert found, f"no button {label!r} in {[b['label'] for b in buttons(message)]}"
    return found[0]


def tap(chat: Chat, message: dict[str, Any], label: str) -> dict[str, Any]:
    """Tap a button the bot offered; returns the one reply message."""
    action = button(message, label)
    if action["type"] == "message":
        (reply,) = chat.says(action["text"])
    else:
        (reply,) = chat.taps(action["data"])
    return reply


def row(app, user: str = RESIDENT) -> Resident:
    with get_db(app).session() as s:
        return s.scalars(select(Resident).where(Resident.line_user_id == user)).one()


def usage(app) -> list[UsageEvent]:
    with get_db(app).session() as s:
        return list(s.scalars(select(UsageEvent).order_by(UsageEvent.id)))


def usage_kinds(app) -> list[str]:
    return [u.kind for u in usage(app) if u.kind not in ("message", "command", "postback")]


def register(chat: Chat) -> dict[str, Any]:
    """Follow, consent and answer the four questions; returns the completion message."""
    _greeting, notice = chat.follows(expect=2)
    age = tap(chat, notice, "同意して登録する")
    gender = tap(chat, age, "30代")
    area = tap(chat, gender, "女性")
    interests = tap(chat, area, "水海道地区")
    interests = tap(chat, interests, "防災")
    interests = tap(chat, interests, "子育て")
    return tap(chat, interests, "決定")


def test_follow_greets_with_the_city_and_a_privacy_notice_and_stores_only_the_id(joso, resident) -> None:
    greeting, notice = resident.follows(expect=2)
    assert "友だち追加ありがとうございます" in greeting["text"] and "常総市" in greeting["text"]
    # What is stored, why, for how long, how to delete it.
    for words in ("LINEのユーザーID", "同意した日時", "お知らせの配信先を選ぶため", "ブロックするまで", "「登録情報を削除」"):
        assert words in notice["text"]
    assert [b["label"] for b in buttons(notice)] == ["同意して登録する", "登録しない", "Language / 言語"]
    stored = row(joso)
    assert stored.is_following and stored.followed_at is not None
    assert (stored.consented_at, stored.age_band, stored.gender, stored.area, stored.interests_mask) == (None, None, None, None, 0)


def test_follow_consent_register_change_stop_resume_delete(joso, resident, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    _greeting, notice = resident.follows(expect=2)

    age = tap(resident, notice, "同意して登録する")
    assert "同意した日時を記録しました" in age["text"] and "【1/4】年代" in age["text"]
    assert [b["label"] for b in buttons(age)] == ["10代", "20代", "30代", "40代", "50代", "60代", "70代", "80代以上", "回答しない"]
    assert row(joso).consented_at is not None

    gender = tap(resident, age, "30代")
    assert "年代：30代 を登録しました" in gender["text"] and "【2/4】性別" in gender["text"]
    assert [b["label"] for b in buttons(gender)] == ["男性", "女性", "その他", "回答しない"]
    area = tap(resident, gender, "女性")
    assert "【3/4】地域" in area["text"]
    assert [b["label"] for b in buttons(area)] == ["水海道地区", "石下地区", "回答しない"]  # the city's districts
    interests = tap(resident, area, "水海道地区")
    assert "【4/4】関心のある分野" in interests["text"] and "選択中：なし" in interests["text"]
    assert [b["label"] for b in buttons(interests)] == ["防災", "子育て", "健康・福祉", "ごみ・環境", "イベント・観光", "税・手続き", "決定"]

    # Several interests; a chosen one shows ✓ and tapping it removes it.
    interests = tap(resident, interests, "防災")
    assert "「防災」を追加しました" in interests["text"] and "選択中：防災" in interests["text"]
    interests = tap(resident, interests, "イベント・観光")
    interests = tap(resident, interests, "子育て")
    assert "選択中：防災、子育て、イベント・観光" in interests["text"]
    interests = tap(resident, interests, "✓イベント・観光")
    assert "「イベント・観光」を外しました" in interests["text"] and "選択中：防災、子育て" in interests["text"]
    done = tap(resident, interests, "決定")
    assert "登録が完了しました" in done["text"]
    for line in ("年代：30代", "性別：女性", "地域：水海道地区", "関心のある分野：防災、子育て", "お知らせ：受け取る"):
        assert line in done["text"]
    stored = row(joso)
    assert (stored.age_band, stored.gender, stored.area, stored.interests_mask) == ("30代", "女性", "水海道地区", 0b11)

    # 「設定」 shows the settings and lets the resident change each.
    (settings,) = resident.says("設定")
    assert "現在の登録内容です" in settings["text"] and "年代：30代" in settings["text"]
    assert [b["label"] for b in buttons(settings)] == ["年代を変更", "性別を変更", "地域を変更", "関心を変更", "Language / 言語", "配信停止", "登録情報を削除"]
    age = tap(resident, settings, "年代を変更")
    assert "（現在：30代）" in age["text"]
    changed = tap(resident, age, "40代")
    assert "年代を「40代」に変更しました" in changed["text"] and "年代：40代" in changed["text"]
    area = tap(resident, changed, "地域を変更")
    changed = tap(resident, area, "石下地区")
    assert "地域を「石下地区」に変更しました" in changed["text"]
    interests = tap(resident, changed, "関心を変更")
    interests = tap(resident, interests, "✓防災")
    changed = tap(resident, interests, "決定")
    assert "関心のある分野を「子育て」にしました" in changed["text"]
    stored = row(joso)
    assert (stored.age_band, stored.area, stored.interests_mask) == ("40代", "石下地区", 0b10)

    # 配信停止 / 配信再開, each confirmed.
    stopped = tap(resident, changed, "配信停止")
    assert "配信を停止しました" in stopped["text"] and row(joso).is_notices_enabled is False
    (again,) = resident.says("配信停止")
    assert "すでに停止しています" in again["text"]
    (settings,) = resident.says("設定")
    assert "お知らせ：停止中" in settings["text"] and "配信再開" in [b["label"] for b in buttons(settings)]
    resumed = tap(resident, settings, "配信再開")
    assert "配信を再開しました" in resumed["text"] and row(joso).is_notices_enabled is True

    # 「登録情報を削除」 asks first, then deletes every attribute and the consent.
    (confirm,) = resident.says("登録情報を削除")
    assert "よろしいですか" in confirm["text"]
    deleted = tap(resident, confirm, "削除する")
    assert "すべて削除しました" in deleted["text"]
    stored = row(joso)
    assert stored.is_following
    assert (stored.consented_at, stored.age_band, stored.gender, stored.area, stored.interests_mask) == (None, None, None, None, 0)
    intro, offer = resident.says("設定", expect=2)
    assert "まだ登録されていません" in intro["text"] and buttons(offer)

    assert usage_kinds(joso) == [
        "follow", "consent",
        "settings_change", "settings_change", "settings_change",  # age, gender, area
        "settings_change", "settings_change", "settings_change", "settings_change",  # +防災 +イベント +子育て -イベント
        "settings_change", "settings_change", "settings_change",  # age, area, -防災
        "notices_stopped", "notices_resumed", "attributes_deleted",
    ]
    changes = [u.detail for u in usage(joso) if u.kind == "settings_change"]
    assert {d["field"] for d in changes} == {"age_band", "gender", "area", "interests"} and all(len(d) == 1 for d in changes)
    # Privacy: no attribute value in usage events or in the logs.
    recorded = json.dumps([u.detail for u in usage(joso)], ensure_ascii=False) + "\n".join(r.getMessage() for r in caplog.records)
    assert not [v for v in ATTRIBUTE_VALUES if v in recorded]


def test_delete_can_be_cancelled(joso, resident) -> None:
    register(resident)
    (confirm,) = resident.says("登録情報を削除")
    kept = tap(resident, confirm, "やめる")
    assert "取りやめました" in kept["text"]
    assert row(joso).consented_at is not None and row(joso).age_band == "30代"
    assert "attributes_deleted" not in usage_kinds(joso)


def test_unfollow_deletes_attributes_and_a_later_follow_starts_afresh(joso, resident) -> None:
    done = register(resident)
    (settings,) = resident.says("設定")
    old_button = button(settings, "年代を変更")
    assert "登録が完了しました" in done["text"]
    resident.unfollows()
    wait_until(lambda: not row(joso).is_following, message="unfollow processed")
    stored = row(joso)
    assert stored.unfollowed_at is not None
    assert (stored.consented_at, stored.age_band, stored.gender, stored.area, stored.interests_mask) == (None, None, None, None, 0)

    greeting, notice = resident.follows(expect=2)
    assert "友だち追加ありがとうございます" in greeting["text"] and "同意して登録する" in [b["label"] for b in buttons(notice)]
    stored = row(joso)
    assert stored.is_following and stored.unfollowed_at is None and stored.consented_at is None
    # A button from the earlier friendship changes nothing, even after consenting again.
    (stale,) = resident.taps(old_button["data"])
    assert STALE in stale["text"]
    tap(resident, notice, "同意して登録する")
    (stale,) = resident.taps(old_button["data"])
    assert STALE in stale["text"]
    assert row(joso).age_band is None


def test_a_lost_unfollow_does_not_carry_old_answers_into_a_new_follow(joso, resident) -> None:
    register(resident)
    resident.follows(expect=2)  # LINE never delivered the unfollow in between
    stored = row(joso)
    assert (stored.consented_at, stored.age_band, stored.interests_mask) == (None, None, 0)


def test_skipped_registration_stores_nothing_and_can_register_later(joso, resident) -> None:
    _greeting, notice = resident.follows(expect=2)
    skipped = tap(resident, notice, "登録しない")
    assert "登録せずにご利用いただけます" in skipped["text"] and "「設定」" in skipped["text"]
    assert row(joso).consented_at is None
    assert usage_kinds(joso) == ["follow", "registration_skipped"]
    # Commands that need a registration say so plainly and store nothing.
    (stop,) = resident.says("配信停止")
    assert "登録されていない" in stop["text"]
    (delete,) = resident.says("登録情報を削除")
    assert "削除する登録情報はありません" in delete["text"]
    resume = resident.says("配信再開", expect=2)
    assert "登録が必要です" in resume[0]["text"] and buttons(resume[1])
    assert row(joso).consented_at is None and row(joso).is_notices_enabled is True
    # ... and 「設定」 offers the registration again.
    intro, offer = resident.says("設定", expect=2)
    assert "まだ登録されていません" in intro["text"]
    age = tap(resident, offer, "同意して登録する")
    assert "【1/4】年代" in age["text"] and row(joso).consented_at is not None


def test_consent_tapped_twice_shows_the_settings(joso, resident) -> None:
    _greeting, notice = resident.follows(expect=2)
    tap(resident, notice, "同意して登録する")
    again = tap(resident, notice, "同意して登録する")
    assert "すでに登録されています" in again["text"]
    assert usage_kinds(joso).count("consent") == 1


def test_declining_every_question_is_a_valid_registration(joso, resident) -> None:
    _greeting, notice = resident.follows(expect=2)
    message = tap(resident, notice, "同意して登録する")
    for _ in range(3):
        message = tap(resident, message, "回答しない")
    done = tap(resident, message, "決定")
    assert "登録が完了しました" in done["text"] and "関心のある分野：なし" in done["text"]
    stored = row(joso)
    assert (stored.age_band, stored.gender, stored.area, stored.interests_mask) == ("回答しない", "回答しない", "回答しない", 0)


def test_contact_command_gives_the_citys_contact(joso, resident) -> None:
    (reply,) = resident.says("お問い合わせ")
    assert "常総市役所" in reply["text"]


def _forged(key: int) -> list[str]:
    return [
        json.dumps({"a": "set", "f": "age", "v": "30代", "k": key + 1, "w": 0}),  # another consent's button
        json.dumps({"a": "set", "f": "age", "v": "30代", "w": 0}),  # no key
        json.dumps({"a": "set", "f": "age", "v": "120代", "k": key, "w": 0}),  # not a choice
        json.dumps({"a": "set", "f": "area", "v": "黒磯地区", "k": key, "w": 0}),  # another city's district
        json.dumps({"a": "set", "f": "consented_at", "v": "x", "k": key, "w": 0}),  # not a field
        json.dumps({"a": "set", "f": "age", "v": ["30代"], "k": key, "w": 0}),
        json.dumps({"a": "set", "f": "age", "v": "30代", "k": key, "w": 7}),
        json.dumps({"a": "set", "f": "age", "v": "30代", "k": str(key), "w": 0}),
        json.dumps({"a": "int", "v": "競馬", "on": 1, "k": key, "w": 0}),
        json.dumps({"a": "int", "v": "防災", "on": True, "k": key, "w": 0}),
        json.dumps({"a": "int", "v": "防災", "on": 2, "k": key, "w": 0}),
        json.dumps({"a": "ask", "f": "gen", "k": key, "p": 5}),
        json.dumps({"a": "ask", "f": "zzz", "k": key}),
        json.dumps({"a": "intok", "k": key - 1}),
        json.dumps({"a": "del", "k": key - 1}),
        json.dumps({"a": "del"}),
    ]


def test_stale_or_forged_settings_postbacks_get_a_polite_message_and_change_nothing(joso, resident) -> None:
    register(resident)
    (settings,) = resident.says("設定")
    key = json.loads(button(settings, "年代を変更")["data"])["k"]
    before = row(joso)
    changes_before = usage_kinds(joso)
    for data in _forged(key):
        (reply,) = resident.taps(data)
        assert STALE in reply["text"], data
    after = row(joso)
    assert (after.consented_at, after.age_band, after.gender, after.area, after.interests_mask, after.is_notices_enabled) == (
        before.consented_at, before.age_band, before.gender, before.area, before.interests_mask, before.is_notices_enabled)
    assert usage_kinds(joso) == changes_before


def test_settings_buttons_before_consent_change_nothing(joso, resident) -> None:
    resident.follows(expect=2)
    for data in ('{"a":"set","f":"age","v":"30代","k":0,"w":1}', '{"a":"int","v":"防災","on":1,"k":0,"w":1}',
                 '{"a":"intok","k":0,"w":1}', '{"a":"del","k":0}'):
        (reply,) = resident.taps(data)
        assert STALE in reply["text"]
    stored = row(joso)
    assert (stored.consented_at, stored.age_band, stored.interests_mask) == (None, None, 0)


def test_an_old_delete_button_cannot_delete_a_new_registration(joso, resident) -> None:
    register(resident)
    (confirm,) = resident.says("登録情報を削除")
    tap(resident, confirm, "削除する")
    (_intro, offer) = resident.says("設定", expect=2)
    tap(resident, offer, "同意して登録する")
    (stale,) = resident.taps(button(confirm, "削除する")["data"])
    assert STALE in stale["text"] and row(joso).consented_at is not None


def test_a_city_with_many_districts_pages_its_area_buttons(make_app, fake_line, monkeypatch) -> None:
    from segments import vocab

    many = tuple(f"第{i}地区" for i in range(1, 21))
    monkeypatch.setattr(vocab, "areas_for", lambda municipality: many)
    app = make_app(MUNICIPALITY="joso")
    chat = Chat(app.test_client(), fake_line, RESIDENT)
    _greeting, notice = chat.follows(expect=2)
    message = tap(chat, notice, "同意して登録する")
    message = tap(chat, message, "30代")
    area = tap(chat, message, "男性")
    labels = [b["label"] for b in buttons(area)]
    assert len(labels) == 13 and labels[-1] == "次へ"
    page2 = tap(chat, area, "次へ")
    labels = [b["label"] for b in buttons(page2)]
    assert labels == [*many[12:], "回答しない"]
    tap(chat, page2, "第20地区")
    assert row(app).area == "第20地区"


def test_a_city_without_districts_does_not_ask_for_an_area(make_app, fake_line, monkeypatch) -> None:
    from handlers import settings
    from segments import vocab

    monkeypatch.setattr(vocab, "areas_for", lambda municipality: ())
    monkeypatch.setattr(settings, "areas_for", lambda municipality: ())
    app = make_app(MUNICIPALITY="joso")
    chat = Chat(app.test_client(), fake_line, RESIDENT)
    _greeting, notice = chat.follows(expect=2)
    age = tap(chat, notice, "同意して登録する")
    assert "3つの質問" in age["text"] and "【1/3】年代" in age["text"]
    gender = tap(chat, age, "50代")
    interests = tap(chat, gender, "男性")
    assert "【3/3】関心のある分野" in interests["text"]
    tap(chat, interests, "決定")
    (settings_message,) = chat.says("設定")
    assert "地域を変更" not in [b["label"] for b in buttons(settings_message)]


def test_settings_buttons_and_commands_do_nothing_in_a_group(joso, resident, fake_line) -> None:
    from handlers.models import DONE, InboxEvent
    from tests.conftest import signed_post

    register(resident)
    (settings,) = resident.says("設定")
    data = button(settings, "年代を変更")["data"].replace('"ask","f":"age"', '"set","f":"age","v":"70代"')
    events = []
    for event in (fake_line.postback_event(RESIDENT, data), fake_line.postback_event(RESIDENT, '{"a":"del","k":1}'),
                  fake_line.text_event(RESIDENT, "登録情報を削除")):
        event["source"] = {"type": "group", "groupId": "C" + "1" * 32, "userId": RESIDENT}
        events.append(event)
    before = len(fake_line.deliveries)
    assert signed_post(joso.test_client(), fake_line, {"destination": fake_line.destination, "events": events}).status_code == 200

    def processed() -> bool:
        with get_db(joso).session() as s:
            return all(e.status == DONE for e in s.scalars(select(InboxEvent)))

    wait_until(processed, message="group events processed")
    assert len(fake_line.deliveries) == before  # nothing said in the group
    assert row(joso).age_band == "30代" and row(joso).consented_at is not None
