"""The homepage chat's JSON API: the same decisions as LINE, 「もしかして」, votes, the question log
marked web, and every bad request refused with a Japanese JSON error (never a 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.config import ConfigError, load_config
from bot.db import get_db
from faq.models import QuestionLog
from faq.store import load_repo_kb
from tests.conftest import Chat

RESIDENT = "U" + "7" * 32
SESSION = "s" * 22
OTHER_SESSION = "t" * 22
ANSWERED = "戸籍謄本をコンビニで取りたいのですが"  # 常総市: konbini-koseki
UNSURE = ("マイナンバー", "手続き")  # 「もしかして」
UNKNOWN = "宇宙人について教えて"
CITY = "https://www.city.example.jp"


@pytest.fixture
def kb_app(make_app):
    """An app for 常総市 with the shipped knowledge base loaded."""
    def factory(**overrides: Any) -> Flask:
        app = make_app(MUNICIPALITY="joso", **overrides)
        with get_db(app).session() as s:
            load_repo_kb(s, "joso")
        return app
    return factory


def ask(client: FlaskClient, text: Any, session: Any = SESSION, **headers: str) -> Any:
    return client.post("/chat/api/ask", json={"text": text, "session": session}, headers=headers)


def post(client: FlaskClient, action: str, body: Any, **headers: str) -> Any:
    return client.post(f"/chat/api/{action}", json=body, headers=headers)


def log_rows(app: Flask) -> list[QuestionLog]:
    with get_db(app).session() as s:
        return list(s.scalars(select(QuestionLog).order_by(QuestionLog.id)))


def line_decision(messages: list[dict[str, Any]]) -> str:
    """What LINE's reply says the decision was."""
    if len(messages) == 2 and messages[1]["text"] == "この回答は役に立ちましたか？":
        return "answer"
    if messages[0]["text"].startswith("もしかして"):
        return "clarify"
    assert "お答えできません" in messages[0]["text"], messages
    return "unknown"


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [item["action"] for item in message.get("quickReply", {}).get("items", [])]


# --- the same decisions as LINE ---------------------------------------------------------------------


def test_the_web_gives_the_decisions_and_entries_line_gives(kb_app, fake_line) -> None:
    app = kb_app()
    client = app.test_client()
    resident = Chat(client, fake_line, RESIDENT)
    for question in (ANSWERED, *UNSURE, UNKNOWN):
        expected = 2 if question == ANSWERED else 1
        line = resident.says(question, expect=expected)
        response = ask(client, question)
        assert response.status_code == 200, response.get_data(as_text=True)
        web = response.get_json()
        assert web["decision"] == line_decision(line), question
        if web["decision"] == "answer":
            assert web["messages"][0]["text"] == line[0]["text"]
            assert web["messages"][1] == {"kind": "feedback", "text": "この回答は役に立ちましたか？"}
            assert web["feedback"] is True and web["choices"] == []
        elif web["decision"] == "clarify":
            assert web["messages"][0]["text"].startswith("もしかして") and "1. " in web["messages"][0]["text"]
            assert [c["title"] for c in web["choices"]] == [b["label"] for b in buttons(line[0])]
            assert web["choices"][-1] == {"id": "", "title": "どれでもない"}
        else:
            text = web["messages"][0]["text"]
            assert "お答えできません" in text and "お問い合わせ先：" in text and "常総市役所" in text
            assert [c["title"] for c in web["categories"]][:4] == [b["label"] for b in buttons(line[0])][:4]
    rows = log_rows(app)
    line_rows = [r for r in rows if r.channel == "line"]
    web_rows = [r for r in rows if r.channel == "web"]
    assert [(r.decision, r.topic, r.masked_text) for r in line_rows] == [(r.decision, r.topic, r.masked_text) for r in web_rows]
    assert all(r.resident_id is None and r.web_session and SESSION not in r.web_session for r in web_rows)
    assert all(r.resident_id is not None and r.web_session is None for r in line_rows)


def test_a_question_in_another_language_is_answered_in_it_as_on_line(kb_app, fake_line) -> None:
    app = kb_app()
    client = app.test_client()
    resident = Chat(client, fake_line, RESIDENT)  # no language chosen: LINE answers in the one written
    for question in ("How do I get a copy of my family register at a convenience store?", "I want to learn about aliens"):
        web = ask(client, question).get_json()
        expected = len(web["messages"])
        line = resident.says(question, expect=expected)[:expected]  # (LINE may add an offer to keep English)
        assert web["decision"] == line_decision_any(line) and web["language"] == "en"
        assert web["messages"][0]["text"] == line[0]["text"]
        if web["decision"] == "answer":
            assert web["messages"][1]["text"] == line[1]["text"] != "この回答は役に立ちましたか？"
            assert web["labels"]["yes"] == buttons(line[1])[0]["label"]
    rows = log_rows(app)
    assert {r.language for r in rows} == {"en"} and {r.channel for r in rows} == {"line", "web"}


def line_decision_any(messages: list[dict[str, Any]]) -> str:
    """The decision of a LINE reply in any language: by its buttons."""
    import json as _json

    actions = [_json.loads(b["data"]).get("a") for m in messages for b in buttons(m) if b.get("type") == "postback"]
    if "fb" in actions:
        return "answer"
    if "pick" in actions:
        return "clarify"
    return "unknown"


def test_the_question_log_keeps_web_questions_masked(kb_app) -> None:
    app = kb_app()
    response = ask(app.test_client(), "電話番号 090-1234-5678 に連絡がほしい")
    assert response.status_code == 200
    (row,) = log_rows(app)
    assert "090-1234-5678" not in row.masked_text and row.channel == "web"


def test_greetings_and_the_menu_log_nothing(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    hello = ask(client, "こんにちは").get_json()
    assert hello["decision"] == "unknown" and hello["smalltalk"] == "greeting" and hello["log_id"] is None
    assert "常総市" in hello["messages"][0]["text"]
    menu = ask(client, "メニュー").get_json()
    assert menu["smalltalk"] == "menu" and {"id": "certificates", "title": "証明書"} in menu["categories"]
    assert log_rows(app) == []


def test_the_category_menu_leads_to_an_answer(kb_app) -> None:
    client = kb_app().test_client()
    menu = client.get("/chat/api/categories").get_json()
    assert menu["categories"][0] == {"id": "certificates", "title": "証明書"}
    entries = client.get("/chat/api/categories/certificates").get_json()
    assert entries["messages"][0]["text"].startswith("「証明書」のよくある質問です")
    assert {"id": "konbini-koseki", "title": "戸籍証明書をコンビニで取る"} in entries["entries"]
    shown = client.get("/chat/api/entries/konbini-koseki").get_json()
    assert shown["decision"] == "answer" and "コンビニ" in shown["messages"][0]["text"]
    assert shown["messages"][0]["entry"]["url"] == "/faq/konbini-koseki" and shown["feedback"] is False
    assert client.get("/chat/api/categories/nope").status_code == 404
    missing = client.get("/chat/api/entries/nope")
    assert missing.status_code == 404 and missing.get_json()["error"]


# --- 「もしかして」 and votes ----------------------------------------------------------------------------


def test_choosing_an_entry_after_clarify_answers_it_and_keeps_the_choice(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    clarify = ask(client, UNSURE[0]).get_json()
    assert clarify["decision"] == "clarify"
    first = clarify["choices"][0]
    chosen = post(client, "choose", {"session": SESSION, "log_id": clarify["log_id"], "choice": first["id"]})
    assert chosen.status_code == 200
    body = chosen.get_json()
    assert body["decision"] == "answer" and body["messages"][0]["entry"]["id"] == first["id"]
    assert body["feedback"] is True and body["log_id"] == clarify["log_id"]
    (row,) = log_rows(app)
    assert row.chosen_topic == first["id"]
    voted = post(client, "feedback", {"session": SESSION, "log_id": clarify["log_id"], "helpful": True})
    assert voted.status_code == 200 and "ありがとうございます" in voted.get_json()["messages"][0]["text"]
    assert log_rows(app)[0].is_helpful is True


def test_none_of_these_says_so_honestly_and_goes_to_the_review_queue(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    clarify = ask(client, UNSURE[1]).get_json()
    body = post(client, "choose", {"session": SESSION, "log_id": clarify["log_id"], "choice": ""}).get_json()
    assert body["decision"] == "unknown" and "お答えできません" in body["messages"][0]["text"]
    assert body["categories"]
    assert log_rows(app)[0].chosen_topic == ""


def test_a_number_typed_after_clarify_picks_like_on_line(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    clarify = ask(client, UNSURE[0]).get_json()
    second = clarify["choices"][1]
    picked = ask(client, "２番").get_json()
    assert picked["decision"] == "answer" and picked["messages"][0]["entry"]["id"] == second["id"]
    assert len(log_rows(app)) == 1 and log_rows(app)[0].chosen_topic == second["id"]
    clarify = ask(client, UNSURE[1]).get_json()
    wrong = ask(client, "7").get_json()
    assert "その番号は選べません" in wrong["messages"][0]["text"] and wrong["log_id"] == clarify["log_id"]


def test_votes_are_stored_and_only_for_answers(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    answer = ask(client, ANSWERED).get_json()
    no = post(client, "feedback", {"session": SESSION, "log_id": answer["log_id"], "helpful": False})
    assert no.status_code == 200 and "職員が内容を見直します" in no.get_json()["messages"][0]["text"]
    assert log_rows(app)[0].is_helpful is False
    unknown = ask(client, UNKNOWN).get_json()
    refused = post(client, "feedback", {"session": SESSION, "log_id": unknown["log_id"], "helpful": True})
    assert refused.status_code == 409 and refused.get_json()["error"] == "この質問には評価をつけられません。"


def test_another_sessions_question_cannot_be_changed(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    answer = ask(client, ANSWERED).get_json()
    clarify = ask(client, UNSURE[0]).get_json()
    for action, body in (("feedback", {"log_id": answer["log_id"], "helpful": True}),
                         ("choose", {"log_id": clarify["log_id"], "choice": clarify["choices"][0]["id"]})):
        response = post(client, action, {"session": OTHER_SESSION, **body})
        assert response.status_code == 404 and response.get_json()["error"] == "その質問は見つかりません。もう一度質問を送ってください。"
    rows = log_rows(app)
    assert rows[0].is_helpful is None and rows[1].chosen_topic is None


def test_line_rows_cannot_be_changed_from_the_web(kb_app, fake_line) -> None:
    app = kb_app()
    client = app.test_client()
    Chat(client, fake_line, RESIDENT).says(ANSWERED, expect=2)
    (row,) = log_rows(app)
    response = post(client, "feedback", {"session": SESSION, "log_id": row.id, "helpful": False})
    assert response.status_code == 404 and log_rows(app)[0].is_helpful is None


# --- bad requests: clear Japanese errors, never a 500 -----------------------------------------------------


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"text": "", "session": SESSION}, 400, "質問を文章で入力してください。"),
    ({"text": " \u3000\n", "session": SESSION}, 400, "質問を文章で入力してください。"),
    ({"session": SESSION}, 400, "質問を文章で入力してください。"),
    ({"text": 42, "session": SESSION}, 400, "質問（text）は文字列で送ってください。"),
    ({"text": ["住民票"], "session": SESSION}, 400, "質問（text）は文字列で送ってください。"),
    ({"text": "あ" * 5001, "session": SESSION}, 400, "質問が長すぎます。5000文字以内で送ってください。"),
    ({"text": "😀" * 2501, "session": SESSION}, 400, "質問が長すぎます。5000文字以内で送ってください。"),
    ({"text": "住民票", "session": "short"}, 400, "会話のID（session）が正しくありません。ページを読み込み直してください。"),
    ({"text": "住民票", "session": 123456789012345678}, 400, "会話のID（session）が正しくありません。ページを読み込み直してください。"),
    ({"text": "住民票"}, 400, "会話のID（session）が正しくありません。ページを読み込み直してください。"),
    (["住民票"], 400, "送信する内容は {\"text\": …, \"session\": …} の形のJSONにしてください。"),
])
def test_bad_questions_are_refused_in_japanese(kb_app, body, status, error) -> None:
    app = kb_app()
    response = app.test_client().post("/chat/api/ask", json=body)
    assert response.status_code == status
    assert response.get_json() == {"error": error}
    assert log_rows(app) == []


def test_raw_bodies_that_are_not_json_text_are_refused(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    cases = [
        (b'{"text": "\\ud800", "session": "' + SESSION.encode() + b'"}', "application/json", 400, "読み取れない文字"),
        (b'{"text": "\xff\xfe", "session": "x"}', "application/json", 400, "JSONの形式"),
        (b"{not json", "application/json", 400, "JSONの形式"),
        (b"", "application/json", 400, "JSONの形式"),
        (b"text=hello&session=" + SESSION.encode(), "application/x-www-form-urlencoded", 415, "application/json"),
        (b'{"text": "hi"}', "text/plain", 415, "application/json"),
        (b'{"text": "' + b"a" * 70_000 + b'"}', "application/json", 413, "大きすぎます"),
    ]
    for data, content_type, status, error in cases:
        response = client.post("/chat/api/ask", data=data, content_type=content_type)
        assert response.status_code == status, (data[:40], response.get_data(as_text=True))
        assert error in response.get_json()["error"]
    assert log_rows(app) == []


def test_a_5000_character_question_and_nul_characters_are_accepted(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    assert ask(client, "住民票" + "あ" * 4997).status_code == 200
    assert ask(client, "住民票\x00をコンビニで").status_code == 200
    rows = log_rows(app)
    assert len(rows) == 2 and "\x00" not in rows[1].masked_text


@pytest.mark.parametrize(("action", "body", "error"), [
    ("choose", {"session": SESSION, "log_id": "1", "choice": "x"}, "質問の番号（log_id）が正しくありません。"),
    ("choose", {"session": SESSION, "log_id": True, "choice": "x"}, "質問の番号（log_id）が正しくありません。"),
    ("choose", {"session": SESSION, "log_id": 999999, "choice": "x"}, "その質問は見つかりません。もう一度質問を送ってください。"),
    ("choose", {"session": SESSION, "log_id": 10**30, "choice": "x"}, "その質問は見つかりません。もう一度質問を送ってください。"),
    ("choose", {"session": SESSION, "log_id": 1, "choice": 3}, "選んだ項目（choice）は文字列で送ってください（「どれでもない」は空の文字列）。"),
    ("feedback", {"session": SESSION, "log_id": None, "helpful": True}, "質問の番号（log_id）が正しくありません。"),
    ("feedback", {"session": SESSION, "log_id": 999999, "helpful": True}, "その質問は見つかりません。もう一度質問を送ってください。"),
    ("feedback", {"session": SESSION, "log_id": 1, "helpful": "yes"}, "評価（helpful）は true か false で送ってください。"),
    ("feedback", {"session": SESSION, "log_id": 1, "helpful": 1}, "評価（helpful）は true か false で送ってください。"),
    ("feedback", {"log_id": 1, "helpful": True}, "会話のID（session）が正しくありません。ページを読み込み直してください。"),
])
def test_bad_choices_and_votes_are_refused_in_japanese(kb_app, action, body, error) -> None:
    response = post(kb_app().test_client(), action, body)
    assert 400 <= response.status_code < 500
    assert response.get_json() == {"error": error}


def test_an_entry_the_clarify_did_not_offer_cannot_be_chosen(kb_app) -> None:
    app = kb_app()
    client = app.test_client()
    clarify = ask(client, UNSURE[0]).get_json()
    response = post(client, "choose", {"session": SESSION, "log_id": clarify["log_id"], "choice": "garbage"})
    assert response.status_code == 409 and "選べません" in response.get_json()["error"]
    answer = ask(client, ANSWERED).get_json()
    response = post(client, "choose", {"session": SESSION, "log_id": answer["log_id"], "choice": "garbage"})
    assert response.status_code == 409


def test_wrong_methods_and_addresses_under_the_api_answer_json(kb_app) -> None:
    client = kb_app().test_client()
    wrong = client.get("/chat/api/ask")
    assert wrong.status_code == 405 and wrong.get_json() == {"error": "この操作はできません。"} and "POST" in wrong.headers["Allow"]
    missing = client.post("/chat/api/nothing", json={})
    assert missing.status_code == 404 and missing.get_json() == {"error": "見つかりません。アドレスを確認してください。"}


# --- rate limits -------------------------------------------------------------------------------------------


def test_one_session_is_limited_with_retry_after_and_a_japanese_message(kb_app) -> None:
    app = kb_app(WEBCHAT_RATE_PER_SESSION=3, WEBCHAT_RATE_WINDOW_SECONDS=60)
    client = app.test_client()
    for _ in range(3):
        assert ask(client, "こんにちは").status_code == 200
    limited = ask(client, "こんにちは")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.get_json()["error"].startswith("短い時間に多くの質問が送られました。")
    assert ask(client, "こんにちは", session=OTHER_SESSION).status_code == 200  # another session is not held up


def test_one_address_is_limited_whatever_sessions_it_uses(kb_app) -> None:
    app = kb_app(WEBCHAT_RATE_PER_ADDRESS=4, WEBCHAT_RATE_PER_SESSION=100)
    client = app.test_client()
    for n in range(4):
        assert ask(client, "こんにちは", session=f"{n}" * 20).status_code == 200
    limited = ask(client, "こんにちは", session="z" * 20)
    assert limited.status_code == 429 and limited.headers["Retry-After"]
    other = app.test_client().post("/chat/api/ask", json={"text": "こんにちは", "session": "z" * 20},
                                   environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200


# --- CSRF, CORS and framing ------------------------------------------------------------------------------------


def test_posts_from_other_sites_are_refused_and_the_citys_site_may_call(kb_app) -> None:
    app = kb_app(WEBCHAT_ALLOWED_ORIGINS=f"{CITY}, https://city.example.jp")
    client = app.test_client()
    evil = ask(client, ANSWERED, Origin="https://evil.example")
    assert evil.status_code == 403 and evil.get_json() == {"error": "このサイトからはチャットを利用できません。"}
    assert "Access-Control-Allow-Origin" not in evil.headers
    assert ask(client, ANSWERED, Origin="null").status_code == 403
    city = ask(client, ANSWERED, Origin=CITY)
    assert city.status_code == 200 and city.headers["Access-Control-Allow-Origin"] == CITY
    assert "Origin" in city.headers["Vary"] and "Access-Control-Allow-Credentials" not in city.headers
    same = ask(client, ANSWERED, Origin="http://localhost")
    assert same.status_code == 200 and "Access-Control-Allow-Origin" not in same.headers
    assert ask(client, ANSWERED).status_code == 200  # no Origin: a server-side front end
    assert [r.channel for r in log_rows(app)] == ["web"] * 3


def test_the_preflight_answers_only_allowed_origins(kb_app) -> None:
    client = kb_app(WEBCHAT_ALLOWED_ORIGINS=CITY).test_client()
    headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = client.options("/chat/api/ask", headers={"Origin": CITY, **headers})
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == CITY
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert allowed.headers["Access-Control-Allow-Headers"].lower() == "content-type"
    refused = client.options("/chat/api/ask", headers={"Origin": "https://evil.example", **headers})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_form_posts_cannot_reach_the_api(kb_app) -> None:
    app = kb_app()
    response = app.test_client().post("/chat/api/ask", data={"text": ANSWERED, "session": SESSION},
                                      headers={"Origin": "https://evil.example"})
    assert response.status_code in (403, 415)
    assert log_rows(app) == []


def test_only_the_citys_site_may_frame_the_chat(kb_app) -> None:
    client = kb_app(WEBCHAT_ALLOWED_ORIGINS=CITY).test_client()
    page = client.get("/chat")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {CITY}" in csp and "script-src 'self'" in csp
    assert "X-Frame-Options" not in page.headers
    default = kb_app().test_client().get("/chat").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self';" in default + ";" and "evil" not in default
    assert "frame-ancestors 'none'" in client.get("/admin/login").headers["Content-Security-Policy"]


@pytest.mark.parametrize("value", ["www.city.example.jp", "https://city.example.jp/page", "ftp://city.example.jp",
                                   "https://city.example.jp?x=1", "https://user@city.example.jp"])
def test_a_malformed_allowed_origin_is_refused_at_start(value: str) -> None:
    with pytest.raises(ConfigError, match="WEBCHAT_ALLOWED_ORIGINS"):
        load_config({"WEBCHAT_ALLOWED_ORIGINS": value})


def test_allowed_origins_are_read_as_a_comma_list() -> None:
    config = load_config({"WEBCHAT_ALLOWED_ORIGINS": " https://a.example.jp/ ,http://b.example.jp:8080"})
    from webchat.views import parse_origins

    assert parse_origins(config["WEBCHAT_ALLOWED_ORIGINS"]) == ("https://a.example.jp", "http://b.example.jp:8080")
    assert parse_origins(None) == ()


def test_json_in_errors_is_japanese_not_escaped(kb_app) -> None:
    raw = kb_app().test_client().post("/chat/api/ask", json={"text": ""}).get_data(as_text=True)
    assert "会話のID" in raw and json.loads(raw)["error"]
