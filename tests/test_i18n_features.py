"""Residents who read Portuguese or Vietnamese through the garbage lookup and its reminder, a report
with its status pushes, and a survey: every message the fake LINE platform delivers is in their
language (compared with the catalogs through bot.i18n, not with strings written here), and a
message carrying the city's own Japanese (an item, a collection kind, a survey question, a reason
staff typed, a category of the city's own) starts with the one-line note of handlers.japanese_note.
A Japanese resident's messages stay as they were; a やさしい日本語 resident gets no note.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bot.db import get_db, utcnow
from bot.i18n import MISSING_NOTE, label, translate
from bot.sandbox.fake_line import FakeLinePlatform
from garbage import reminders
from garbage import service as garbage_service
from garbage import texts as gt
from bot import japanese_note
from reports import service as report_service
from reports.models import IN_PROGRESS, REJECTED, Report
from reports.texts import COORDINATES, ROAD_GUIDANCE, STATUS_TEXTS
from segments.models import Resident
from segments.service import record_follow
from surveys import service as survey_service
from surveys.models import MULTIPLE, SCALE, SINGLE, TEXT
from tests.conftest import Chat
from tests.test_garbage import JST
from tests.test_garbage import city as city  # noqa: F401 - the fixture: 那須烏山市 with the test garbage data

USER = "U" + "e" * 31 + "1"
JAPANESE_TEXT = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u3400-\u4dbf\u4e00-\u9fff]")  # kana and kanji, not ・ or ー


class Speaker(Chat):
    """A resident with a language stored (as the language setting stores it), who can also send a location."""

    def sends_location(self, lat: float, lon: float, expect: int = 1) -> list[dict[str, Any]]:
        event = self.fake.text_event(self.user_id, "x")
        event["message"] = {"id": event["message"]["id"], "type": "location", "latitude": lat, "longitude": lon}
        return self._send(event, expect)


def speaker(app: Flask, fake_line: FakeLinePlatform, language: str, user: str = USER) -> Speaker:
    with get_db(app).session() as session:
        record_follow(session, user).language = language
    return Speaker(app.test_client(), fake_line, user)


def note(app: Flask, language: str) -> str:
    with get_db(app).read_session() as session:
        return japanese_note.note(session, str(app.config["MUNICIPALITY"]), language)


def labels(message: dict[str, Any]) -> list[str]:
    return [item["action"]["label"] for item in (message.get("quickReply") or {}).get("items", [])]


def tap(chat: Chat, message: dict[str, Any], shown: str, expect: int = 1) -> list[dict[str, Any]]:
    """Tap the postback quick reply with this label (a ticked survey choice shows ✓ first)."""
    for item in (message.get("quickReply") or {}).get("items", []):
        action = item["action"]
        if action["type"] == "postback" and action["label"].lstrip("✓") == shown:
            return chat.taps(action["data"], expect)
    raise AssertionError(f"no button {shown!r} in {labels(message)}")


def without(text: str, *city_words: str) -> str:
    """The text with the city's Japanese words (names, items, kinds) taken out."""
    for word in sorted(city_words, key=len, reverse=True):
        text = text.replace(word, "")
    return text


# --- garbage ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["pt", "vi"])
def test_garbage_lookup_area_and_reminder_in_the_residents_language(city: Flask, fake_line: FakeLinePlatform,  # noqa: F811
                                                                     language: str) -> None:
    resident = speaker(city, fake_line, language)
    head = note(city, language) + "\n\n"
    assert head.strip() != japanese_note.JAPANESE_DATA_NOTE  # really translated

    (reply,) = resident.says("電池は何ごみ？")
    assert reply["text"].startswith(head)
    assert translate(gt.ITEM_ANSWER, language, item="乾電池", category="有害ごみ") in reply["text"]
    assert reply["text"].endswith(translate(gt.ASK_AREA, language))
    area = next(item for item in reply["quickReply"]["items"] if item["action"]["displayText"] == "テスト第一地区")

    (reply,) = resident.taps(area["action"]["data"])
    with get_db(city).read_session() as session:
        nxt = garbage_service.area_calendar(session, str(city.config["MUNICIPALITY"]), "テスト第一地区").next_of(
            "有害ごみ", garbage_service.today_jst())
    assert reply["text"] == head + "\n".join([
        translate(gt.AREA_SET, language, area="テスト第一地区"),
        translate(gt.NEXT_DAY, language, area="テスト第一地区", kind="有害ごみ", date=gt.date_label(nxt, language))])
    assert labels(reply) == [label(gt.NEXT_DAYS_BUTTON, language), label(gt.REMINDER_OFFER, language)[:19] + "…"
                             if len(label(gt.REMINDER_OFFER, language)) > 20 else label(gt.REMINDER_OFFER, language)]

    # The 「next garbage day」 button sends its label in the resident's language: it is understood.
    (days,) = resident.says(label(gt.NEXT_DAYS_BUTTON, language))
    assert days["text"].startswith(head + translate(gt.NEXT_DAYS_TITLE, language, area="テスト第一地区"))
    first_line = days["text"].split("\n")[3]
    assert JAPANESE_TEXT.search(without(first_line, "可燃ごみ", "資源ごみ", "プラ", "古紙", "有害ごみ", "不燃ごみ",
                                        "びん", "ペットボトル", "・", "（", "）", "、", "：")) is None, first_line

    # 「ごみの通知」 in the resident's language: the status, then the reminder on.
    (status,) = resident.says(label(gt.REMINDER_COMMAND, language))
    assert status["text"] == translate(gt.REMINDER_STATUS, language, state=label(gt.OFF, language), area="テスト第一地区")
    (on,) = tap(resident, status, label(gt.TURN_ON, language))
    assert on["text"] == translate(gt.REMINDER_ON, language, time="19:00", area="テスト第一地区")
    assert f'"{label(gt.REMINDER_COMMAND, language)}"' in on["text"]  # the word that stops it, as it is understood

    # The evening-before reminder (pushed later) is in the stored language, with the note: the kind is Japanese.
    evening = dt.date(2026, 12, 27)  # 12/28 (月): 可燃ごみ in テスト第一地区
    reminders.send_reminders(city, dt.datetime.combine(evening, dt.time(19, 0), JST))
    pushed = fake_line.delivered(resident.user_id)[-1]["text"]
    assert pushed == head + translate(gt.REMINDER, language, date=gt.date_label(dt.date(2026, 12, 28), language),
                                      area="テスト第一地区", kinds="可燃ごみ")


def test_a_language_changed_after_opting_in_is_the_reminders_language(city: Flask, fake_line: FakeLinePlatform) -> None:  # noqa: F811
    resident = speaker(city, fake_line, "pt")
    (reply,) = resident.says(label(gt.REMINDER_COMMAND, "pt"))
    area = next(item for item in reply["quickReply"]["items"] if item["action"]["displayText"] == "テスト第一地区")
    resident.taps(area["action"]["data"])
    with get_db(city).session() as session:
        session.scalars(select(Resident).where(Resident.line_user_id == USER)).one().language = "vi"
    reminders.send_reminders(city, dt.datetime.combine(dt.date(2026, 12, 27), dt.time(19, 0), JST))
    pushed = fake_line.delivered(USER)[-1]["text"]
    assert pushed.startswith(note(city, "vi")) and translate(
        gt.REMINDER, "vi", date=gt.date_label(dt.date(2026, 12, 28), "vi"), area="テスト第一地区", kinds="可燃ごみ") in pushed


def test_japanese_and_yasashii_residents_get_no_note(city: Flask, fake_line: FakeLinePlatform) -> None:  # noqa: F811
    japanese = speaker(city, fake_line, "ja")
    (reply,) = japanese.says("すぷれーかん")
    assert reply["text"].startswith("「スプレー缶」は「資源ごみ（かん）」です。\n注意点：")
    assert "お住まいの地区を選ぶと、次の収集日もお知らせします。" in reply["text"]
    easy = speaker(city, fake_line, "ja-easy", "U" + "e" * 31 + "2")
    (reply,) = easy.says("すぷれーかん")
    assert reply["text"].startswith(translate(gt.ITEM_ANSWER, "ja-easy", item="スプレー缶", category="資源ごみ（かん）"))
    assert note(city, "ja-easy") not in reply["text"]
    assert gt.date_label(dt.date(2026, 12, 4), "ja") == "12月4日（金）"
    assert gt.date_label(dt.date(2026, 12, 4), "pt") == translate(gt.DATE, "pt", month=12, day=4, weekday=label("金曜日", "pt"))


# --- reports -----------------------------------------------------------------------------------------------


@pytest.fixture
def rapp(make_app, tmp_path) -> Flask:
    return make_app(REPORT_PHOTO_DIR=str(tmp_path / "photos"))


@pytest.mark.parametrize("language", ["pt", "vi"])
def test_a_report_and_its_status_pushes_in_the_residents_language(rapp: Flask, fake_line: FakeLinePlatform,
                                                                  language: str) -> None:
    def t(msgid: str, **values: Any) -> str:
        return translate(msgid, language, **values)

    resident = speaker(rapp, fake_line, language)
    (ask,) = resident.taps(json.dumps({"a": "rep", "k": "start"}))  # the rich menu's 通報 button
    assert not ask["text"].startswith(note(rapp, language))  # the shipped categories are translated
    assert labels(ask) == [label(c, language)[:19] + "…" if len(label(c, language)) > 20 else label(c, language)
                           for c in (*report_service.categories(rapp.config), "やめる")]
    assert JAPANESE_TEXT.search(ask["text"]) is None, ask["text"]

    (photo_step,) = tap(resident, ask, label("道路", language))
    assert photo_step["text"].startswith(t(ROAD_GUIDANCE))
    (place_step,) = tap(resident, photo_step, label("スキップ", language))
    assert JAPANESE_TEXT.search(place_step["text"]) is None, place_step["text"]
    (description_step,) = resident.sends_location(36.6585, 140.1528)
    (summary,) = tap(resident, description_step, label("説明なし", language))
    place = label(COORDINATES, language, latitude="36.658500", longitude="140.152800")
    assert place in summary["text"] and label("道路", language) in summary["text"]
    assert JAPANESE_TEXT.search(summary["text"]) is None, summary["text"]
    (done,) = tap(resident, summary, label("送信", language))
    (report,) = _reports(rapp)
    assert JAPANESE_TEXT.search(done["text"]) is None and report.number in done["text"]

    # The status pushes, sent later, are in the resident's language; the reason staff typed gets the note.
    _change(rapp, report.id, IN_PROGRESS)
    assert report_service.send_pending_notices(rapp) == 1
    pushed = fake_line.delivered(USER)[-1]["text"]
    assert pushed == t(STATUS_TEXTS[IN_PROGRESS], number=report.number, category=label("道路", language))
    _change(rapp, report.id, REJECTED, "県道のため、県の土木事務所が管理しています")
    assert report_service.send_pending_notices(rapp) == 1
    pushed = fake_line.delivered(USER)[-1]["text"]
    assert pushed == note(rapp, language) + "\n\n" + t(
        STATUS_TEXTS[REJECTED], number=report.number, category=label("道路", language),
        reason="県道のため、県の土木事務所が管理しています") + "\n" + t(ROAD_GUIDANCE)


def test_a_category_of_the_citys_own_brings_the_note(make_app, tmp_path, fake_line: FakeLinePlatform) -> None:
    app = make_app(REPORT_PHOTO_DIR=str(tmp_path / "photos"), REPORT_CATEGORIES="道路,側溝の詰まり")
    resident = speaker(app, fake_line, "pt")
    (ask,) = resident.taps(json.dumps({"a": "rep", "k": "start"}))
    assert ask["text"].startswith(note(app, "pt") + "\n\n")
    assert labels(ask)[:2] == [label("道路", "pt"), "側溝の詰まり"]


def test_a_language_the_city_no_longer_offers_gets_the_push_in_japanese(make_app, tmp_path,
                                                                       fake_line: FakeLinePlatform) -> None:
    app = make_app(REPORT_PHOTO_DIR=str(tmp_path / "photos"), LANGUAGES="ja,en")
    resident = speaker(app, fake_line, "pt")  # chosen when the city still offered Português
    (ask,) = resident.taps(json.dumps({"a": "rep", "k": "start"}))
    assert ask["text"].startswith("通報の分類を選んでください。")  # the chat: Japanese, as handlers.context decides
    with get_db(app).session() as session:
        resident_id = session.scalar(select(Resident.id).where(Resident.line_user_id == USER))
        draft = report_service.current_draft(session, resident_id)
        report_service.choose_category(app.config, draft, "道路")
        report_service.set_location(app.config, draft, 36.6585, 140.1528, None)
        number = report_service.submit(session, app.config, draft)
        report_id = draft.id
    _change(app, report_id, IN_PROGRESS)
    assert report_service.send_pending_notices(app) == 1
    assert fake_line.delivered(USER)[-1]["text"] == f"通報（{number}・道路）について、市の担当者が対応を始めました。"


def _reports(app: Flask) -> list[Report]:
    with get_db(app).session() as session:
        rows = list(session.scalars(select(Report).where(Report.number.is_not(None)).order_by(Report.id)))
        session.expunge_all()
        return rows


def _change(app: Flask, report_id: int, status: str, reason: str | None = None) -> None:
    with get_db(app).session() as session:
        report_service.change_status(session, session.get(Report, report_id), status, reason)


# --- surveys ----------------------------------------------------------------------------------------------


QUESTIONS = [
    survey_service.QuestionDraft(SINGLE, "防災訓練に参加しましたか", ["参加した", "参加していない"]),
    survey_service.QuestionDraft(MULTIPLE, "知った方法（いくつでも）", ["広報紙", "LINE"]),
    survey_service.QuestionDraft(SCALE, "訓練は役に立ちましたか"),
    survey_service.QuestionDraft(TEXT, "ご意見をどうぞ"),
]


def _survey(app: Flask) -> int:
    with get_db(app).session() as session:
        survey = survey_service.create_survey(session, title="防災訓練アンケート", intro="1分で終わります。", is_anonymous=True,
                                              closes_at=None, questions=QUESTIONS)
        session.commit()
        return survey.id


@pytest.mark.parametrize("language", ["pt", "vi"])
def test_a_survey_in_the_residents_language_with_the_note_over_the_staffs_japanese(
        make_app, fake_line: FakeLinePlatform, language: str) -> None:
    app = make_app()
    survey_id = _survey(app)
    resident = speaker(app, fake_line, language)
    head = note(app, language) + "\n\n"

    intro, question = resident.taps(json.dumps(survey_service.start_data(survey_id)), expect=2)
    assert intro["text"].startswith(head + label("アンケート「{title}」", language, title="防災訓練アンケート")
                                    + label("（無記名のアンケートです）", language))
    assert question["text"] == head + "（1/4）防災訓練に参加しましたか"
    assert labels(question) == ["参加した", "参加していない", label("中断する", language)]

    (question,) = tap(resident, question, "参加した")
    assert question["text"].startswith(head + "（2/4）知った方法（いくつでも）\n" + translate("（いくつでも選べます。選び終わったら「次へ」）", language))
    assert label("次へ", language) in translate("（いくつでも選べます。選び終わったら「次へ」）", language)  # the button it names
    (question,) = tap(resident, question, "LINE")
    assert question["text"].endswith(translate("選択中：{choices}", language, choices="LINE"))
    (question,) = tap(resident, question, label("次へ", language))
    assert question["text"] == head + "（3/4）訓練は役に立ちましたか\n" + translate("（1：そう思わない 〜 5：そう思う）", language)
    (question,) = tap(resident, question, "4")
    assert question["text"].endswith(translate("自由にご記入ください（200文字まで）。個人が特定できる情報は書かないでください。", language))
    (thanks,) = tap(resident, question, label("回答しない", language))
    assert thanks["text"] == translate("アンケートは以上です。ご回答ありがとうございました。", language)
    (again,) = resident.taps(json.dumps(survey_service.start_data(survey_id)))
    assert again["text"] == translate("このアンケートには回答済みです。ご協力ありがとうございました。", language)


def test_a_japanese_resident_sees_the_survey_as_before(make_app, fake_line: FakeLinePlatform) -> None:
    app = make_app()
    survey_id = _survey(app)
    resident = speaker(app, fake_line, "ja")
    intro, question = resident.taps(json.dumps(survey_service.start_data(survey_id)), expect=2)
    assert intro["text"] == "アンケート「防災訓練アンケート」（無記名のアンケートです）\n1分で終わります。"
    assert question["text"] == "（1/4）防災訓練に参加しましたか"
    assert labels(question) == ["参加した", "参加していない", "中断する"]
    (stopped,) = tap(resident, question, "中断する")
    assert stopped["text"] == "アンケートを中断しました。お知らせの「アンケートに答える」ボタンから、いつでも続きに戻れます。"


# --- shelters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["pt", "vi"])
def test_the_shelter_search_in_the_residents_language(make_app, fake_line: FakeLinePlatform, language: str) -> None:
    from disaster.hazards import ASKED_ORDER, UNKNOWN
    from disaster.hazards import label as hazard
    from tests.test_disaster import HOME, SHELTER_TAP, SITES, bubble_texts, bubbles

    app = make_app()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["shelters", "import", str(SITES)]).exit_code == 0
    assert runner.invoke(args=["shelters", "open", "1", "2", "3", "4"]).exit_code == 0
    resident = speaker(app, fake_line, language)
    (ask,) = resident.taps(SHELTER_TAP)
    assert JAPANESE_TEXT.search(ask["text"]) is None, ask["text"]
    (question,) = resident.sends_location(*HOME)
    assert JAPANESE_TEXT.search(question["text"]) is None, question["text"]
    assert labels(question) == [label(hazard(code), language) for code in (*ASKED_ORDER, UNKNOWN)]
    carousel, after = tap(resident, question, label("洪水", language), expect=2)
    card = bubble_texts(bubbles(carousel)[0])
    assert card[0] == "テスト第一避難所"  # the city's data, as it is
    assert label(hazard("flood"), language) in card[3] and JAPANESE_TEXT.search(card[1] + card[3]) is None
    assert carousel["altText"].startswith(label("近くの開設中の避難所", language))
    assert after["text"].startswith(note(app, language) + "\n\n")  # the names and addresses are Japanese


def test_the_survey_invitation_in_a_notice_goes_in_each_versions_language(make_app, tmp_path,
                                                                          fake_line: FakeLinePlatform) -> None:
    from broadcast import service as broadcast_service
    from broadcast.messages import NoticeContent
    from broadcast.schedule import Schedule
    from tests.test_broadcast import FAST, add_residents, run_dispatcher

    app = make_app(**FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"))
    survey_id = _survey(app)
    (japanese,) = add_residents(app, 1, start=1)
    (portuguese,) = add_residents(app, 1, start=2, language="pt")
    (vietnamese,) = add_residents(app, 1, start=3, language="vi")  # the notice has no vi version
    now = utcnow()
    with get_db(app).session() as session:
        target = broadcast_service.make_target(session, app.config["MUNICIPALITY"])
        notice = broadcast_service.create_broadcast(
            session, content=NoticeContent.build("防災訓練のお礼"), schedule=Schedule.once(now), target=target,
            versions={"pt": NoticeContent.build("Obrigado pelo treinamento")}, now=now).broadcast
        survey_service.attach_to_notice(session, session.get(survey_service.Survey, survey_id), notice.id)
    run_dispatcher(app, now + dt.timedelta(minutes=1))

    def invitation(user: str) -> dict[str, Any]:
        (found,) = [m for m in fake_line.delivered(user) if m.get("type") == "template"]
        return found

    sent = invitation(portuguese)
    assert sent["template"]["text"] == label("アンケート「{title}」にご協力ください。", "pt", title="防災訓練アンケート")
    assert sent["template"]["actions"][0]["label"] == label("アンケートに答える", "pt")
    assert json.loads(sent["template"]["actions"][0]["data"]) == survey_service.start_data(survey_id)
    assert invitation(japanese)["template"]["text"] == "アンケート「防災訓練アンケート」にご協力ください。"
    assert invitation(japanese)["template"]["actions"][0]["label"] == "アンケートに答える"
    # No version in Vietnamese: the Japanese notice with its button, and the broadcast's note in Vietnamese.
    assert invitation(vietnamese)["template"]["actions"][0]["label"] == "アンケートに答える"
    assert fake_line.delivered(vietnamese)[-1]["text"] == translate(MISSING_NOTE, "vi")
