"""「もしかして」 answered by number, and small talk.

Quick replies don't show on LINE for PC and vanish after a newer message, so the clarify text
numbers its entries and a resident may send 「2」 instead of tapping. The question used is picked
by asking the service which candidates it offers, so these tests don't depend on matcher scores.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from bot.db import get_db, utcnow
from faq import service
from faq.models import QuestionLog
from faq.store import load_repo_kb
from handlers.clarify_choice import parse_choice
from handlers.faq_replies import SMALLTALK_TEXT
from handlers.message import prepare_message
from kpi.models import UsageEvent
from tests.conftest import Chat

RESIDENT = "U" + "7" * 32
OTHER = "U" + "8" * 32
# Vague questions; the first the service answers with a 「もしかして」 of three entries is used.
VAGUE = ("マイナンバーカードのこと", "証明書のこと", "子どものこと", "ごみのこと", "引っ越しのこと", "税金のこと",
         "健康のこと", "避難のこと")
CHAT_LINE = SMALLTALK_TEXT["chat"].format(city="常総市")


@pytest.fixture
def clarify_app(make_app):
    """常総市 with the shipped knowledge base; nothing is confident enough to answer directly."""
    def factory(**overrides):
        app = make_app(MUNICIPALITY="joso", FAQ_ANSWER_THRESHOLD=1.01, **overrides)
        with get_db(app).session() as s:
            load_repo_kb(s, "joso")
        return app
    return factory


def clarifying_questions(app, count: int = 1) -> list[tuple[str, list[str]]]:
    """Questions the service answers with 「もしかして」 and the three entries it offers, in order."""
    found = []
    with get_db(app).session() as s:
        for question in VAGUE:
            decision = service.decide(s, "joso", question, app.config)
            if decision.kind == "clarify" and len(decision.candidates) >= 3:
                found.append((question, [c.entry_id for c in decision.candidates[:3]]))
                if len(found) == count:
                    return found
    pytest.fail(f"fewer than {count} of {VAGUE} get a 「もしかして」 with three entries")


def entry(app, topic: str) -> service.EntryView:
    with get_db(app).session() as s:
        found = service.get_entry(s, "joso", topic)
    assert found is not None
    return found


def buttons(message) -> list[dict]:
    return [item["action"] for item in message.get("quickReply", {}).get("items", [])]


def log_rows(app) -> list[QuestionLog]:
    with get_db(app).session() as s:
        return list(s.scalars(select(QuestionLog).order_by(QuestionLog.id)))


def choice_events(app) -> list[dict]:
    with get_db(app).session() as s:
        return [e.detail for e in s.scalars(select(UsageEvent).where(UsageEvent.kind == "clarify_choice")
                                            .order_by(UsageEvent.id))]


def ask_vague(app, fake_line, user=RESIDENT) -> tuple[Chat, dict, list[str]]:
    (question, topics), = clarifying_questions(app)
    resident = Chat(app.test_client(), fake_line, user)
    (clarify,) = resident.says(question)
    return resident, clarify, topics


@pytest.mark.parametrize("message", ["2", "２", "2番", "２です", " ２番です。"])
def test_a_number_picks_from_the_clarify_exactly_like_the_button(clarify_app, fake_line, message) -> None:
    app = clarify_app()
    resident, clarify, topics = ask_vague(app, fake_line)
    titles = [entry(app, t).title for t in topics]
    assert clarify["text"] == (
        "もしかして、次のどれかについてのご質問ですか？\n"
        f"1. {titles[0]}\n2. {titles[1]}\n3. {titles[2]}\n"
        "番号（1〜3）を送るか、下のボタンから選んでください。当てはまらないときは「0」を送ってください。"
    )
    options = buttons(clarify)  # the buttons are still there, in the same order
    assert [json.loads(b["data"])["t"] for b in options] == [*topics, ""]
    assert options[-1]["label"] == "どれでもない"

    answer, ask = resident.says(message, expect=2)
    assert entry(app, topics[1]).answer in answer["text"]
    assert ask["text"] == "この回答は役に立ちましたか？"
    (row,) = log_rows(app)
    assert (row.decision, row.chosen_topic) == ("clarify", topics[1])
    assert choice_events(app) == [{"topic": topics[1], "question": row.id}]
    (thanks,) = resident.taps(buttons(ask)[0]["data"])  # the vote lands on the same row, as after a tap
    assert "ありがとうございます" in thanks["text"]
    assert log_rows(app)[0].is_helpful is True


def test_zero_is_none_of_these(clarify_app, fake_line) -> None:
    app = clarify_app()
    resident, _clarify, _topics = ask_vague(app, fake_line)
    (reply,) = resident.says("０")
    assert "お答えできません" in reply["text"]
    (row,) = log_rows(app)
    assert row.chosen_topic == ""
    assert choice_events(app) == [{"topic": None, "question": row.id}]


def test_a_number_not_offered_gets_a_polite_message_and_the_clarify_stays_open(clarify_app, fake_line) -> None:
    app = clarify_app()
    resident, _clarify, topics = ask_vague(app, fake_line)
    (reply,) = resident.says("5")
    assert reply["text"] == ("申し訳ありません。その番号は選べません。1〜3の番号を送るか、"
                             "当てはまるものがないときは「0」を送ってください。")
    assert "quickReply" not in reply
    (row,) = log_rows(app)  # not logged as a question, nothing chosen
    assert row.chosen_topic is None and choice_events(app) == []
    answer, _ask = resident.says("1", expect=2)
    assert entry(app, topics[0]).answer in answer["text"]
    assert log_rows(app)[0].chosen_topic == topics[0]


def test_a_number_without_an_open_clarify_is_an_ordinary_message(clarify_app, fake_line) -> None:
    app = clarify_app()
    resident = Chat(app.test_client(), fake_line, RESIDENT)
    resident.says("1")  # nothing asked yet: matched (or not) like any text
    (row,) = log_rows(app)
    assert row.masked_text == "1" and row.resident_id is not None and row.chosen_topic is None

    _resident, _clarify, topics = ask_vague(app, fake_line)
    resident.says("3", expect=2)
    assert log_rows(app)[1].chosen_topic == topics[2]
    resident.says("3")  # already chosen: an ordinary message again, not a second choice
    rows = log_rows(app)
    assert len(rows) == 3 and rows[1].chosen_topic == topics[2] and rows[2].masked_text == "3"


def test_the_number_refers_to_the_latest_question(clarify_app, fake_line) -> None:
    app = clarify_app()
    (first, _), (second, topics) = clarifying_questions(app, count=2)
    resident = Chat(app.test_client(), fake_line, RESIDENT)
    resident.says(first)
    resident.says(second)
    answer, _ask = resident.says("1", expect=2)
    assert entry(app, topics[0]).answer in answer["text"]
    assert [r.chosen_topic for r in log_rows(app)] == [None, topics[0]]


def test_another_residents_number_does_not_pick_from_my_clarify(clarify_app, fake_line) -> None:
    app = clarify_app()
    me, _clarify, topics = ask_vague(app, fake_line, RESIDENT)
    someone = Chat(app.test_client(), fake_line, OTHER)
    someone.says("2")  # their own ordinary message
    mine, theirs = log_rows(app)
    assert mine.chosen_topic is None
    assert theirs.masked_text == "2" and theirs.resident_id != mine.resident_id and theirs.chosen_topic is None
    me.says("2", expect=2)
    assert log_rows(app)[0].chosen_topic == topics[1]


@pytest.mark.parametrize(("minutes_ago", "picks"), [(9, True), (11, False)])
def test_a_clarify_older_than_the_window_is_not_used(clarify_app, fake_line, minutes_ago, picks) -> None:
    app = clarify_app(FAQ_CHOICE_WINDOW_MINUTES=10)
    resident, _clarify, topics = ask_vague(app, fake_line)
    with get_db(app).session() as s:
        s.execute(update(QuestionLog).values(asked_at=utcnow() - dt.timedelta(minutes=minutes_ago)))
    resident.says("2", expect=2 if picks else 1)
    rows = log_rows(app)
    if picks:
        assert len(rows) == 1 and rows[0].chosen_topic == topics[1]
    else:
        assert len(rows) == 2 and rows[0].chosen_topic is None and rows[1].masked_text == "2"


def test_the_window_defaults_to_thirty_minutes(clarify_app, fake_line) -> None:
    app = clarify_app()
    assert app.config["FAQ_CHOICE_WINDOW_MINUTES"] == 30
    resident, _clarify, _topics = ask_vague(app, fake_line)
    with get_db(app).session() as s:
        s.execute(update(QuestionLog).values(asked_at=utcnow() - dt.timedelta(minutes=31)))
    resident.says("2")
    assert [r.chosen_topic for r in log_rows(app)] == [None, None]


def test_a_choice_number_is_not_matched_before_the_transaction(clarify_app, fake_line) -> None:
    app = clarify_app()
    _resident, _clarify, _topics = ask_vague(app, fake_line)
    with get_db(app).session() as s:
        assert prepare_message(fake_line.text_event(RESIDENT, "2"), s, app.config) is None
        prepared = prepare_message(fake_line.text_event(OTHER, "2"), s, app.config)
        assert prepared is not None and prepared.text == "2"  # no open clarify: matched as usual


@pytest.mark.parametrize(("message", "number"), [
    ("1", 1), ("１", 1), ("1番", 1), ("１です", 1), ("2番目", 2), ("①", 1), ("0", 0), ("０", 0), (" 3。", 3),
    ("3でお願いします", 3), ("1234", None), ("1月", None), ("2人", None), ("1と2", None), ("", None), ("一", None),
])
def test_parse_choice(message, number) -> None:
    assert parse_choice(message) == number


@pytest.mark.parametrize("message", ["今日ひま？", "元気？", "ねむい", "疲れた", "好きな食べ物は？", "天気いいね",
                                     "あなたは誰？", "何歳？", "暇", "おやすみ", "お疲れさま", "笑", "ｗｗ", "はは"])
def test_small_talk_gets_a_friendly_line_without_buttons(clarify_app, fake_line, message) -> None:
    app = clarify_app()
    (reply,) = Chat(app.test_client(), fake_line, RESIDENT).says(message)
    assert reply["text"] == CHAT_LINE
    assert "quickReply" not in reply
    assert log_rows(app) == []  # not a question for staff
    result = app.test_cli_runner().invoke(args=["faq", "ask", "--json", message])
    assert json.loads(result.output.splitlines()[-1])["decision"] == "unknown"


@pytest.mark.parametrize("message", ["大雨で避難所は開いてる？", "大雨の天気で避難所は開いてる？", "好きな本を借りたい",
                                     "何歳から予防接種を受けられる？"])
def test_a_real_question_with_a_chatty_word_is_not_small_talk(clarify_app, fake_line, message) -> None:
    assert service._smalltalk(message) is None
    app = clarify_app()
    (reply,) = Chat(app.test_client(), fake_line, RESIDENT).says(message)
    assert reply["text"] != CHAT_LINE
    (row,) = log_rows(app)  # logged for staff as a question
    assert row.masked_text.rstrip("?？") == message.rstrip("?？")
