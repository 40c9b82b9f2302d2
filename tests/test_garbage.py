"""Garbage as residents and staff meet it: imports (all or nothing), lookups in the chat in the ways
residents type, the area asked once, 「次のごみの日」, unknown items to the review queue, and the
evening-before reminders over a simulated week (the dispatcher's job called with explicit times)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.db import get_db
from faq.models import QuestionLog
from faq.store import load_repo_kb
from garbage import reminders, service
from garbage.models import GarbageItem, GarbageReminderChunk, GarbageResident
from tests.conftest import Chat, wait_until

DATA = Path(__file__).resolve().parent / "data" / "garbage"
RESIDENT = "U" + "9" * 32
JST = dt.timezone(dt.timedelta(hours=9))
WEEKDAYS = "月火水木金土日"


@pytest.fixture
def city(make_app):
    """那須烏山市's knowledge base plus the generated garbage dictionary and 5374 calendar."""
    app = make_app()
    with get_db(app).session() as s:
        load_repo_kb(s, app.config["MUNICIPALITY"])
    runner = app.test_cli_runner()
    result = runner.invoke(args=["garbage", "import-items", str(DATA / "items.csv")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["garbage", "import-calendar", str(DATA / "calendar")])
    assert result.exit_code == 0, result.output
    return app


def resident(app, fake_line, user_id: str = RESIDENT) -> Chat:
    return Chat(app.test_client(), fake_line, user_id)


def data_of(button: dict) -> dict:
    return json.loads(button["action"]["data"])


def area_button(message: dict, area: str) -> str:
    for item in message["quickReply"]["items"]:
        if item["action"].get("displayText") == area:
            return item["action"]["data"]
    raise AssertionError(f"no button for {area}: {message}")


def expected_next(weekdays: set[int], start: dt.date, nth: set[tuple[int, int]] = frozenset()) -> dt.date:
    """The next day (from start) on one of these weekdays or nth weekdays, outside 2026/12/29-2027/1/3."""
    day = start
    while True:
        in_break = dt.date(2026, 12, 29) <= day <= dt.date(2027, 1, 3)
        if not in_break and (day.weekday() in weekdays or (day.weekday(), (day.day - 1) // 7 + 1) in nth):
            return day
        day += dt.timedelta(days=1)


def label(day: dt.date) -> str:
    return f"{day.month}月{day.day}日（{WEEKDAYS[day.weekday()]}）"


# --- imports -------------------------------------------------------------------------------------------


def test_items_import_reads_the_standard_layout_and_shift_jis_with_other_headers(make_app) -> None:
    app = make_app()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["garbage", "import-items", str(DATA / "items.csv")])
    assert result.exit_code == 0 and "品目 51 件" in result.output and "品目名_英字" in result.output
    result = runner.invoke(args=["garbage", "import-items", str(DATA / "items-sjis.csv")])
    assert result.exit_code == 0, result.output
    assert "出し方の例" in result.output  # the extra column is kept
    with get_db(app).read_session() as s:
        rows = s.scalars(select(GarbageItem).order_by(GarbageItem.id)).all()
        assert [r.name for r in rows] == ["アイロン", "新聞紙", "ふとん乾燥機"]  # replaced, not added
        assert rows[0].notes == "テスト用の注意事項" and rows[0].extra["出し方の例"] == "テスト用の追加の列"


def test_a_bad_items_file_changes_nothing_and_names_its_lines(make_app, tmp_path) -> None:
    app = make_app()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["garbage", "import-items", str(DATA / "items.csv")]).exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,品目名,分別区分\n1,電池,有害ごみ\n2,,不燃ごみ\n3,鍋,\n1,かさ,不燃ごみ\n", encoding="utf-8")
    result = runner.invoke(args=["garbage", "import-items", str(bad)])
    assert result.exit_code != 0
    assert "bad.csv:3: 品目名が空です" in result.output and "bad.csv:4: 分別区分が空です" in result.output
    assert "bad.csv:5: ID「1」が2行目と重なっています" in result.output and "データは変更していません" in result.output
    no_header = tmp_path / "other.csv"
    no_header.write_text("名前,値段\n電池,100\n", encoding="utf-8")
    result = runner.invoke(args=["garbage", "import-items", str(no_header)])
    assert result.exit_code != 0 and "品目名（または品目）と分別区分の列がありません" in result.output
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81\x00")
    assert "文字コードを読み取れません" in runner.invoke(args=["garbage", "import-items", str(binary)]).output
    with get_db(app).read_session() as s:
        assert s.scalar(select(func.count(GarbageItem.id))) == 51


def test_a_calendar_with_a_token_that_is_not_a_day_is_refused_whole(make_app, tmp_path) -> None:
    app = make_app()
    runner = app.test_cli_runner()
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "area_days.csv").write_text("地名,センター,可燃ごみ,不燃ごみ\nA町,,月 木,水2\nB町,,火 金,土 管路\n", encoding="utf-8")
    result = runner.invoke(args=["garbage", "import-calendar", str(folder)])
    assert result.exit_code != 0 and "area_days.csv:3: 「不燃ごみ」の列：「管路」は曜日" in result.output
    with get_db(app).read_session() as s:
        assert not service.area_names(s, app.config["MUNICIPALITY"])
    # The variants of 5374's forks: no centre column title, 「2土」, 「第2・第4水」, months after a colon.
    (folder / "area_days.csv").write_text(
        "地名,（center.csvを使わない場合は空白化）,可燃ごみ,不燃ごみ\nA町,,月曜 木曜,2土 第2・第4水\nB町,,火 金,火2 金4:4 6 8 10 12 2\n",
        encoding="cp932")
    result = runner.invoke(args=["garbage", "import-calendar", str(folder)])
    assert result.exit_code == 0 and "地区 2、ごみの種類 2" in result.output, result.output


# --- the chat --------------------------------------------------------------------------------------------


def test_an_item_asked_before_the_area_is_answered_then_the_area_is_asked_once(city, fake_line) -> None:
    chat = resident(city, fake_line)
    (reply,) = chat.says("電池は何ごみ？")
    assert reply["text"].startswith("「乾電池」は「有害ごみ」です。") and "お住まいの地区を選ぶと" in reply["text"]
    assert [i["action"]["displayText"] for i in reply["quickReply"]["items"]] == ["テスト第一地区", "テスト第二地区", "テスト第三地区"]
    (reply,) = chat.taps(area_button(reply, "テスト第一地区"))
    assert reply["text"].startswith("地区を「テスト第一地区」にしました。")
    assert "テスト第一地区の次の「有害ごみ」の収集日は" in reply["text"]
    with get_db(city).read_session() as s:
        (row,) = s.scalars(select(GarbageResident)).all()
        assert row.area == "テスト第一地区" and row.consented_at is not None and not row.is_reminder_enabled
    today = service.today_jst()
    (reply,) = chat.says("すぷれーかん")  # no garbage word: the whole text is an item name
    nxt = expected_next({4}, today)  # 資源ごみ: 金
    assert reply["text"] == ("「スプレー缶」は「資源ごみ（かん）」です。\n注意点：テスト用の注意点：中身を使い切る（生成したテストデータ）\n"
                             "備考：生成したテストデータ\n" f"テスト第一地区の次の「資源ごみ」の収集日は {label(nxt)} です。")
    assert "お住まいの地区" not in reply["text"]  # asked once
    (reply,) = chat.says("ふとん 捨て方")
    assert reply["text"].startswith("「布団」は「粗大ごみ」です。") and "収集日が決まっている区分ではありません" in reply["text"]
    (reply,) = chat.says("ペットボトルはなにごみですか")
    assert "「資源ごみ（ペットボトル）」" in reply["text"] and "キャップとラベル" in reply["text"]
    (reply,) = chat.says("カンデンチ")
    assert reply["text"].startswith("「乾電池」")


def test_next_collection_days_list_the_coming_two_weeks(city, fake_line) -> None:
    chat = resident(city, fake_line)
    (reply,) = chat.says("次のごみの日")
    (reply,) = chat.taps(area_button(reply, "テスト第三地区"), expect=2)[-1:]
    today = service.today_jst()
    assert reply["text"].startswith("テスト第三地区のこれからのごみの日です。")
    first = expected_next({2, 5}, today)  # 可燃ごみ: 水 土 (第三地区 has no centre, so no break)
    assert f"{label(first)}：" in reply["text"] and "可燃ごみ" in reply["text"].split(f"{label(first)}：")[1].split("\n")[0]
    (again,) = chat.says("ごみの日")
    assert again["text"] == reply["text"]


def test_unknown_items_go_to_the_review_queue_and_other_questions_to_the_faq(city, fake_line) -> None:
    chat = resident(city, fake_line)
    (reply,) = chat.says("ピアノは何ごみ？")
    assert "「ピアノ」は、ごみ分別の一覧に見つかりませんでした" in reply["text"]
    with get_db(city).read_session() as s:
        logged = s.scalars(select(QuestionLog)).all()
        assert [(q.masked_text, q.decision) for q in logged] == [("ピアノは何ごみ?", "unknown")]  # masking NFKC-folds it
    replies = json.dumps(chat.says("住民票をコンビニで取りたい"), ensure_ascii=False)
    assert "コンビニ" in replies and "ごみ" not in replies
    replies = json.dumps(chat.says("粗大ごみの出し方"), ensure_ascii=False)  # a whole category: the FAQ's question
    assert "ごみ分別の一覧に見つかりませんでした" not in replies and "「粗大ごみ」です" not in replies


def test_without_imported_data_garbage_questions_reach_the_faq(make_app, fake_line) -> None:
    app = make_app()
    with get_db(app).session() as s:
        load_repo_kb(s, app.config["MUNICIPALITY"])
    replies = json.dumps(resident(app, fake_line).says("電池は何ごみ？"), ensure_ascii=False)
    assert "有害ごみ" not in replies and "ごみ分別の一覧" not in replies


def test_unfollow_forgets_the_garbage_area(city, fake_line) -> None:
    chat = resident(city, fake_line)
    (reply,) = chat.says("ごみの通知")
    chat.taps(area_button(reply, "テスト第二地区"))
    with get_db(city).read_session() as s:
        assert s.get(GarbageResident, s.scalar(select(GarbageResident.resident_id))).is_reminder_enabled
    chat.unfollows()

    def forgotten() -> bool:
        with get_db(city).read_session() as s:
            return s.scalar(select(func.count()).select_from(GarbageResident)) == 0

    wait_until(forgotten, message="the garbage area deleted at unfollow")


# --- reminders ------------------------------------------------------------------------------------------


def _opt_in(chat: Chat, area: str) -> None:
    (reply,) = chat.says("ごみの通知")
    (reply,) = chat.taps(area_button(reply, area))
    assert "収集日の前の晩（19:00ごろ）" in reply["text"]


def _reminders(fake_line, user_id: str) -> list[str]:
    return [m["text"] for m in fake_line.delivered(user_id) if m.get("text", "").startswith("【ごみの日のお知らせ】")]


def _run_week(app, first_evening: dt.date, days: int = 7) -> None:
    """The dispatcher's job every few minutes around each evening (twice at the same time, too)."""
    for offset in range(days):
        evening = first_evening + dt.timedelta(days=offset)
        for hhmm in ("18:59", "19:00", "19:00", "19:01", "20:30", "23:59"):
            hour, minute = map(int, hhmm.split(":"))
            reminders.send_reminders(app, dt.datetime.combine(evening, dt.time(hour, minute), JST))


def test_reminders_over_a_week_come_once_per_collection_day_and_skip_the_break(city, fake_line) -> None:
    first, third = resident(city, fake_line), resident(city, fake_line, "U" + "8" * 32)
    _opt_in(first, "テスト第一地区")
    _opt_in(third, "テスト第三地区")
    # The week of 2026-12-27 (Sun) to 2027-01-02: the centre of 第一地区 breaks 12/29 - 1/3.
    _run_week(city, dt.date(2026, 12, 27))
    got = _reminders(fake_line, first.user_id)
    assert got == ["【ごみの日のお知らせ】\n明日 12月28日（月） は、テスト第一地区の「可燃ごみ」の収集日です。\n"
                   "通知を止めるときは「ごみの通知」と送ってください。"]
    # 第三地区 has no centre: 水 土 可燃ごみ, 月 資源ごみ, 金 プラ, 第1火・第3火 古紙 (12/29 is no 第1/3火).
    third_days = [t.split("明日 ")[1].split(" は")[0] for t in _reminders(fake_line, third.user_id)]
    assert third_days == ["12月28日（月）", "12月30日（水）", "1月1日（金）", "1月2日（土）"]
    # The next week: every collection day of 第一地区 once (月 木 可燃, 水 プラ, 金 資源, 1/5 第1火 古紙).
    _run_week(city, dt.date(2027, 1, 3))
    days = [t.split("明日 ")[1].split(" は")[0] for t in _reminders(fake_line, first.user_id)[1:]]
    assert days == ["1月4日（月）", "1月5日（火）", "1月6日（水）", "1月7日（木）", "1月8日（金）"]
    assert "「可燃ごみ」" in _reminders(fake_line, first.user_id)[1]


def test_a_late_dispatcher_sends_within_the_window_only_and_opt_out_stops_them(city, fake_line) -> None:
    chat = resident(city, fake_line)
    _opt_in(chat, "テスト第一地区")
    # Monday 1/11 (可燃ごみ): due Sunday 19:00; the dispatcher comes back at 20:30, 90 minutes late: sent.
    reminders.send_reminders(city, dt.datetime(2027, 1, 10, 20, 30, tzinfo=JST))
    assert [t.split("明日 ")[1].split(" は")[0] for t in _reminders(fake_line, chat.user_id)] == ["1月11日（月）"]
    # Thursday 1/14 (可燃ごみ): due Wednesday 19:00; back only at 21:30, past the 120 minutes: never sent.
    reminders.send_reminders(city, dt.datetime(2027, 1, 13, 21, 30, tzinfo=JST))
    reminders.send_reminders(city, dt.datetime(2027, 1, 14, 7, 0, tzinfo=JST))
    assert len(_reminders(fake_line, chat.user_id)) == 1
    (reply,) = chat.says("ごみの通知")
    (off,) = [i for i in reply["quickReply"]["items"] if data_of(i).get("on") == 0]
    (reply,) = chat.taps(off["action"]["data"])
    assert reply["text"] == "ごみの日の通知を止めました。"
    _run_week(city, dt.date(2027, 1, 14), days=4)
    assert len(_reminders(fake_line, chat.user_id)) == 1


def test_a_chunk_line_did_not_confirm_is_resent_with_its_key_and_delivered_once(city, fake_line) -> None:
    chat = resident(city, fake_line)
    _opt_in(chat, "テスト第一地区")
    fake_line.fail("multicast", 500)
    evening = dt.datetime(2027, 1, 10, 19, 0, tzinfo=JST)
    report = reminders.send_reminders(city, evening)
    assert report.runs == 1 and report.sent_chunks == 0 and _reminders(fake_line, chat.user_id) == []
    with get_db(city).read_session() as s:
        (chunk,) = s.scalars(select(GarbageReminderChunk)).all()
        key = chunk.retry_key
    reminders.send_reminders(city, evening + dt.timedelta(minutes=1))
    reminders.send_reminders(city, evening + dt.timedelta(minutes=2))
    assert len(_reminders(fake_line, chat.user_id)) == 1
    with get_db(city).read_session() as s:
        (chunk,) = s.scalars(select(GarbageReminderChunk)).all()
        assert (chunk.status, chunk.retry_key, chunk.attempts) == ("sent", key, 2)
