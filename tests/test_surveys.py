"""Surveys in the chat: staff build one and attach it to a notice; residents start it from the
notice's button (signed webhooks, postbacks), answer with quick replies once each, stop and resume;
the results page, its breakdowns above the privacy floor and the CSV count what they answered;
free text is masked; named answers go with an unfollow or 「登録情報を削除」; retention."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from bot import auth
from bot.db import get_db, utcnow
from bot.models import AuditLog
from bot.sandbox.fake_line import FakeLinePlatform
from surveys import service
from surveys.models import MULTIPLE, SCALE, SINGLE, TEXT, SurveyResponse
from tests.conftest import Chat, wait_until
from tests.test_admin import PASSWORD, csrf_token, login, make_user
from tests.test_broadcast import FAST, add_residents, run_dispatcher, schedule_notice

QUESTIONS = [
    service.QuestionDraft(SINGLE, "防災訓練に参加しましたか", ["参加した", "参加していない", "知らなかった"]),
    service.QuestionDraft(MULTIPLE, "知った方法（いくつでも）", ["広報紙", "LINE", "回覧板"]),
    service.QuestionDraft(SCALE, "訓練は役に立ちましたか"),
    service.QuestionDraft(TEXT, "ご意見をどうぞ"),
]


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


@pytest.fixture
def sapp(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(**FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"), SEGMENT_PRIVACY_FLOOR=3)


def pr(app: Flask) -> FlaskClient:
    client = app.test_client()
    make_user(app, "koho", "pr")
    assert login(client, "koho", PASSWORD).status_code == 302
    return client


def make_survey(app: Flask, *, anonymous: bool = False, closes_at: dt.datetime | None = None) -> int:
    with get_db(app).session() as session:
        survey = service.create_survey(session, title="防災訓練アンケート", intro="1分で終わります。", is_anonymous=anonymous,
                                       closes_at=closes_at, questions=[service.QuestionDraft(q.kind, q.text, list(q.choices)) for q in QUESTIONS])
        session.commit()
        return survey.id


def tap(chat: Chat, message: dict[str, Any], label: str, expect: int = 1) -> list[dict[str, Any]]:
    """Tap the quick reply with this label (a ticked choice shows ✓ first)."""
    for item in message["quickReply"]["items"]:
        if item["action"]["label"].lstrip("✓") == label:
            return chat.taps(item["action"]["data"], expect)
    raise AssertionError(f"no quick reply {label!r} in {message['quickReply']['items']}")


def start_button(fake: FakeLinePlatform, user: str) -> str:
    """The postback data of the 「アンケートに答える」 button the notice brought."""
    for message in fake.delivered(user):
        if message.get("type") == "template":
            return str(message["template"]["actions"][0]["data"])
    raise AssertionError("the notice carried no survey button")


def answer_all(chat: Chat, data: str, single: str, multiple: list[str], scale: str, free: str | None) -> list[dict[str, Any]]:
    """Start the survey and answer every question; returns the last reply."""
    intro, question = chat.taps(data, expect=2)
    assert "防災訓練アンケート" in intro["text"]
    question = tap(chat, question, single)[0]
    for label in multiple:
        question = tap(chat, question, label)[0]
    question = tap(chat, question, "次へ")[0]
    question = tap(chat, question, scale)[0]
    assert "自由にご記入ください" in question["text"]
    return chat.says(free) if free is not None else tap(chat, question, "回答しない")


def test_several_residents_answer_once_each_and_the_counts_are_right(sapp: Flask, fake_line: FakeLinePlatform) -> None:
    users = add_residents(sapp, 5, age_band="30代")
    users += add_residents(sapp, 2, start=100, age_band="40代")
    survey_id = make_survey(sapp)
    notice = schedule_notice(sapp, "防災訓練のお礼とアンケートのお願い", at=utcnow() + dt.timedelta(minutes=30))
    client = pr(sapp)
    response = client.post(f"/admin/surveys/{survey_id}/attach",
                           data={"csrf_token": csrf_token(client, f"/admin/surveys/{survey_id}"), "broadcast_id": notice})
    assert response.status_code == 302
    run_dispatcher(sapp, utcnow() + dt.timedelta(minutes=31))
    data = start_button(fake_line, users[0])
    assert json.loads(data) == {"a": "survey", "s": survey_id}

    web = sapp.test_client()
    plan = [
        ("参加した", ["LINE"], "5", "とても良かった。連絡先は090-1234-5678です"),
        ("参加した", ["LINE", "広報紙"], "4", None),
        ("参加していない", ["回覧板"], "3", "次は参加します"),
        ("参加した", [], "5", None),
        ("知らなかった", ["LINE"], "2", None),
        ("参加した", ["広報紙"], "4", None),
        ("参加していない", ["LINE"], "1", None),
    ]
    for user, (single, multiple, scale, free) in zip(users, plan, strict=True):
        last = answer_all(Chat(web, fake_line, user), data, single, multiple, scale, free)
        assert "ご回答ありがとうございました" in last[0]["text"]

    # Once each: the button again says so, and nothing is counted twice.
    again = Chat(web, fake_line, users[0]).taps(data)
    assert "回答済み" in again[0]["text"]

    with get_db(sapp).session() as session:
        survey = service.get_survey(session, survey_id)
        assert survey is not None
        completed, unfinished, results = service.results(session, survey)
        assert (completed, unfinished) == (7, 0)
        assert results[0].counts == [("参加した", 4), ("参加していない", 2), ("知らなかった", 1)]
        assert results[1].counts == [("広報紙", 2), ("LINE", 4), ("回覧板", 1)]
        assert results[2].counts == [("1", 1), ("2", 1), ("3", 1), ("4", 2), ("5", 2)]
        assert results[2].average == pytest.approx(24 / 7)
        assert sorted(results[3].texts) == sorted(["とても良かった。連絡先は［電話番号］です", "次は参加します"])

    page = client.get(f"/admin/surveys/{survey_id}").get_data(as_text=True)
    assert 'id="completed-count">7<' in page
    assert 'data-count="参加した">4<' in page and "<svg" in page
    assert "1234-5678" not in page

    # By age band: 30代 (5 respondents) is shown, 40代 (2, under the floor of 3) is not.
    by_age = client.get(f"/admin/surveys/{survey_id}?by=age_band").get_data(as_text=True)
    assert "<td>30代</td>" in by_age and "<td>40代</td>" not in by_age

    rows = list(csv.reader(io.StringIO(client.get(f"/admin/surveys/{survey_id}/results.csv").get_data(as_text=True).lstrip("\ufeff"))))
    assert len(rows) == 8 and rows[0][2].startswith("Q1 ")
    assert sorted(row[2] for row in rows[1:]) == sorted(p[0] for p in plan)
    assert all("1234-5678" not in cell for row in rows for cell in row)
    with get_db(sapp).session() as session:
        actions = [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))]
        assert "survey_attach" in actions and "survey_csv" in actions


def test_a_resident_can_stop_and_resume_where_they_were(sapp: Flask, fake_line: FakeLinePlatform) -> None:
    (user,) = add_residents(sapp, 1)
    survey_id = make_survey(sapp)
    data = json.dumps(service.start_data(survey_id))
    chat = Chat(sapp.test_client(), fake_line, user)
    _, question = chat.taps(data, expect=2)
    question = tap(chat, question, "参加した")[0]
    assert "知った方法" in question["text"]
    question = tap(chat, question, "LINE")[0]
    stopped = tap(chat, question, "中断する")[0]
    assert "中断しました" in stopped["text"]
    # A message now goes to the FAQ as usual, not into the survey.
    assert "知った方法" not in chat.says("ごみの出し方")[0]["text"]

    (resumed,) = chat.taps(data)
    assert "知った方法" in resumed["text"] and "選択中：LINE" in resumed["text"]
    question = tap(chat, resumed, "次へ")[0]
    question = tap(chat, question, "3")[0]
    # An old button of an earlier question changes nothing: the current question is asked again.
    again = tap(chat, resumed, "広報紙")[0]
    assert "ご意見" in again["text"]
    assert "ご回答ありがとうございました" in tap(chat, again, "回答しない")[0]["text"]
    with get_db(sapp).session() as session:
        survey = service.get_survey(session, survey_id)
        assert survey is not None
        _, _, results = service.results(session, survey)
        assert results[1].counts == [("広報紙", 0), ("LINE", 1), ("回覧板", 0)]


def test_anonymous_closed_unfollow_and_retention(sapp: Flask, fake_line: FakeLinePlatform) -> None:
    users = add_residents(sapp, 3)
    named = make_survey(sapp)
    anonymous = make_survey(sapp, anonymous=True)
    web = sapp.test_client()
    for survey_id in (named, anonymous):
        answer_all(Chat(web, fake_line, users[0]), json.dumps(service.start_data(survey_id)), "参加した", ["LINE"], "5", None)
    with get_db(sapp).session() as session:
        rows = session.scalars(select(SurveyResponse).order_by(SurveyResponse.survey_id)).all()
        assert [r.resident_id is None for r in rows] == [False, True]  # anonymous keeps no resident id

    # Unfollow: the named answer is deleted, the anonymous one (not linked to anyone) stays.
    Chat(web, fake_line, users[0]).unfollows()

    def remaining() -> list[int]:
        with get_db(sapp).session() as session:
            return [r.survey_id for r in session.scalars(select(SurveyResponse))]

    wait_until(lambda: remaining() == [anonymous], message="the named answer deleted on unfollow")

    # Closed: the button says so.
    with get_db(sapp).session() as session:
        survey = service.get_survey(session, named)
        assert survey is not None
        service.close_survey(session, survey)
        session.commit()
    assert "締め切りました" in Chat(web, fake_line, users[1]).taps(json.dumps(service.start_data(named)))[0]["text"]

    # Retention: answers started longer ago than SURVEY_RETENTION_DAYS go.
    with get_db(sapp).session() as session:
        assert service.purge_old_responses(session, 365, now=utcnow() + dt.timedelta(days=366)) == 1
        session.commit()
        assert session.scalar(select(SurveyResponse.id)) is None


def test_building_a_survey_refuses_bad_input_in_japanese(sapp: Flask, fake_line: FakeLinePlatform) -> None:
    client = pr(sapp)
    token = csrf_token(client, "/admin/surveys/new")
    base = {"csrf_token": token, "title": "テスト", "step": "save", "is_anonymous": "1"}
    response = client.post("/admin/surveys/new", data={**base, "q0_kind": SINGLE, "q0_text": "好きな季節は", "q0_choices": "春"})
    assert response.status_code == 400 and "選択肢は2〜12個" in response.get_data(as_text=True)
    response = client.post("/admin/surveys/new", data={**base, "closes_at": "あした", "q0_kind": SCALE, "q0_text": "満足度"})
    assert response.status_code == 400 and "読み取れません" in response.get_data(as_text=True)
    response = client.post("/admin/surveys/new", data={**base, "title": ""})
    assert response.status_code == 400
    response = client.post("/admin/surveys/new", data={**base, "q0_kind": SCALE, "q0_text": "満足度"})
    assert response.status_code == 302
    assert re.search(r"/admin/surveys/\d+$", response.headers["Location"])


def test_deleting_ones_registration_deletes_named_answers(sapp: Flask, fake_line: FakeLinePlatform) -> None:
    (user,) = add_residents(sapp, 1, age_band="30代")
    named = make_survey(sapp)
    chat = Chat(sapp.test_client(), fake_line, user)
    answer_all(chat, json.dumps(service.start_data(named)), "参加した", ["LINE"], "5", "よかった")
    (confirm,) = chat.says("登録情報を削除")
    assert "すべて削除しました" in tap(chat, confirm, "削除する")[0]["text"]
    with get_db(sapp).session() as session:
        assert session.scalar(select(SurveyResponse.id)) is None
        survey = service.get_survey(session, named)
        assert survey is not None and service.results(session, survey)[0] == 0
