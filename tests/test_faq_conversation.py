"""Residents asking the bot: answers, 「もしかして」, honest "don't know", buttons, small talk."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.db import get_db, utcnow
from faq import service
from faq.models import QuestionLog
from faq.store import load_repo_kb
from handlers.faq_replies import CATEGORIES_PER_PAGE
from tests.conftest import Chat, wait_until

RESIDENT = "U" + "5" * 32
OTHER = "U" + "6" * 32


@pytest.fixture
def kb_app(make_app):
    """An app for 常総市 with the shipped knowledge base loaded."""
    def factory(**overrides):
        app = make_app(MUNICIPALITY="joso", **overrides)
        with get_db(app).session() as s:
            load_repo_kb(s, "joso")
        return app
    return factory


def chat_with(app, fake_line, user=RESIDENT) -> Chat:
    return Chat(app.test_client(), fake_line, user)


def buttons(message) -> list[dict]:
    return [item["action"] for item in message.get("quickReply", {}).get("items", [])]


def log_rows(app) -> list[QuestionLog]:
    with get_db(app).session() as s:
        return list(s.scalars(select(QuestionLog).order_by(QuestionLog.id)))


def test_a_clear_question_gets_the_answer_and_a_helpfulness_question(kb_app, fake_line) -> None:
    app = kb_app()
    resident = chat_with(app, fake_line)
    answer, ask = resident.says("戸籍謄本をコンビニで取りたいのですが", expect=2)
    assert "コンビニ" in answer["text"] and "戸籍" in answer["text"]
    assert ask["text"] == "この回答は役に立ちましたか？"
    yes, no = buttons(ask)
    assert (yes["label"], no["label"]) == ("はい", "いいえ")
    (thanks,) = resident.taps(yes["data"])
    assert "ありがとうございます" in thanks["text"]
    (row,) = log_rows(app)
    assert (row.decision, row.topic, row.is_helpful) == ("answer", "konbini-koseki", True)


def test_not_helpful_is_stored_for_staff(kb_app, fake_line) -> None:
    app = kb_app()
    resident = chat_with(app, fake_line)
    _, ask = resident.says("ごみの分別の仕方を教えて", expect=2)
    no = buttons(ask)[1]
    (reply,) = resident.taps(no["data"])
    assert "職員が内容を見直します" in reply["text"]
    assert log_rows(app)[0].is_helpful is False


def test_unsure_offers_three_candidates_and_none_of_these(kb_app, fake_line) -> None:
    # Nothing is confident enough to answer directly: the bot must ask 「もしかして」.
    app = kb_app(FAQ_ANSWER_THRESHOLD=1.01)
    resident = chat_with(app, fake_line)
    (clarify,) = resident.says("マイナンバーカードのこと")
    assert clarify["text"].startswith("もしかして")
    options = buttons(clarify)
    assert len(options) == 4 and options[-1]["label"] == "どれでもない"
    picked = json.loads(options[0]["data"])["t"]
    answer, ask = resident.taps(options[0]["data"], expect=2)
    assert answer["text"] and ask["text"] == "この回答は役に立ちましたか？"
    (row,) = log_rows(app)
    assert row.decision == "clarify" and row.chosen_topic == picked  # a labelled example for staff
    assert picked.startswith("mynumber") or picked == "mynaportal"


def test_none_of_these_is_stored_and_answered_honestly(kb_app, fake_line) -> None:
    app = kb_app(FAQ_ANSWER_THRESHOLD=1.01)
    resident = chat_with(app, fake_line)
    (clarify,) = resident.says("マイナンバーカードのこと")
    (reply,) = resident.taps(buttons(clarify)[-1]["data"])
    assert "お答えできません" in reply["text"]
    assert log_rows(app)[0].chosen_topic == ""


def test_off_topic_question_gets_an_honest_dont_know_with_menu_and_contact(kb_app, fake_line) -> None:
    app = kb_app()
    resident = chat_with(app, fake_line)
    (reply,) = resident.says("プロ野球の優勝チームの予想を教えて。電話は090-1234-5678、mail taro@example.com")
    assert "お答えできません" in reply["text"]
    assert "常総市" in reply["text"]  # the city's contact
    assert buttons(reply) and all(b["type"] == "postback" for b in buttons(reply))
    (row,) = log_rows(app)
    assert row.decision == "unknown"
    assert "090" not in row.masked_text and "example.com" not in row.masked_text
    assert "［電話番号］" in row.masked_text and "［メール］" in row.masked_text


def test_greetings_thanks_menu_and_help_are_handled_before_matching(kb_app, fake_line) -> None:
    app = kb_app()
    resident = chat_with(app, fake_line)
    (hello,) = resident.says("こんにちは！")
    assert "常総市公式LINE" in hello["text"]
    (thanks,) = resident.says("ありがとうございました")
    assert "どういたしまして" in thanks["text"]
    (menu,) = resident.says("メニュー")
    labels = [b["label"] for b in buttons(menu)]
    assert "証明書" in labels and len(labels) <= 13
    (help_,) = resident.says("ヘルプ")
    assert "使い方" in help_["text"]
    assert log_rows(app) == []  # small talk is not a question for staff


def test_menu_category_and_entry_buttons_lead_to_an_answer(kb_app, fake_line) -> None:
    app = kb_app()
    resident = chat_with(app, fake_line)
    (menu,) = resident.says("メニュー")
    certificates = next(b for b in buttons(menu) if b["label"] == "証明書")
    (listing,) = resident.taps(certificates["data"])
    entries = buttons(listing)
    assert any("コンビニ" in b["label"] for b in entries)
    (answer,) = resident.taps(entries[0]["data"])
    assert answer["text"]


def test_the_category_menu_fits_a_phone_and_pages_through_every_category(kb_app, fake_line) -> None:
    app = kb_app()
    with get_db(app).session() as s:
        categories = [label for _, label in service.categories(s, "joso")]
    assert len(categories) > CATEGORIES_PER_PAGE
    resident = chat_with(app, fake_line)
    # The honest "don't know" offers the first page; 「その他のカテゴリ」 shows the next one.
    (reply,) = resident.says("プロ野球の優勝チームの予想を教えて")
    assert "お答えできません" in reply["text"]
    page = buttons(reply)
    seen: list[str] = []
    texts = []
    for _ in range(-(-len(categories) // CATEGORIES_PER_PAGE)):
        labels = [b["label"] for b in page]
        assert labels[-1] == "その他のカテゴリ" and len(labels) <= CATEGORIES_PER_PAGE + 1
        seen += labels[:-1]
        (menu,) = resident.taps(page[-1]["data"])
        texts.append(menu["text"])
        page = buttons(menu)
    assert seen == categories  # every category once, in the menu's order
    pages = len(texts)
    assert texts[0] == f"知りたいことの分類を選んでください（2/{pages}）。"
    assert texts[-1] == f"知りたいことの分類を選んでください（1/{pages}）。"  # after the last, the first again
    assert [b["label"] for b in page][:-1] == categories[:CATEGORIES_PER_PAGE]


@pytest.mark.parametrize("data", ["not json", "[1,2]", '{"a":"fb","q":"1","v":1}', '{"a":"pick","q":999999,"t":"x"}',
                                  '{"a":"cat","c":"nope"}', '{"a":"show","t":"no-such-entry"}', '{"a":"menu","p":99}',
                                  '{"a":"launch-missiles"}'])
def test_stale_or_forged_postbacks_get_a_polite_message_and_change_nothing(kb_app, fake_line, data) -> None:
    app = kb_app()
    resident = chat_with(app, fake_line)
    (reply,) = resident.taps(data)
    assert "もう一度質問を送ってください" in reply["text"]
    assert log_rows(app) == []


def test_another_residents_feedback_button_cannot_change_my_log(kb_app, fake_line) -> None:
    app = kb_app()
    me = chat_with(app, fake_line, RESIDENT)
    _, ask = me.says("ごみの分別の仕方を教えて", expect=2)
    someone = chat_with(app, fake_line, OTHER)
    (reply,) = someone.taps(buttons(ask)[0]["data"])
    assert "もう一度質問を送ってください" in reply["text"]
    assert log_rows(app)[0].is_helpful is None


def test_city_overlay_gives_city_specific_answers(kb_app, make_app, fake_line) -> None:
    joso = kb_app()
    (answer, _ask) = chat_with(joso, fake_line).says("電子申請のやり方を知りたい", expect=2)
    assert "いばらき電子申請" in answer["text"]
    joso.extensions["inbox"].stop()  # one database serves one city: don't let joso's workers take these events
    nasushiobara = make_app(empty=False, MUNICIPALITY="nasushiobara")
    with get_db(nasushiobara).session() as s:
        load_repo_kb(s, "nasushiobara")
    (other, _ask) = chat_with(nasushiobara, fake_line, OTHER).says("電子申請のやり方を知りたい", expect=2)
    assert "いばらき" not in other["text"] and "那須塩原市" in other["text"]
    with get_db(joso).session() as s:
        rows = s.scalars(select(QuestionLog.municipality).order_by(QuestionLog.id)).all()
    assert rows == ["joso", "nasushiobara"]


def test_kpi_report_lists_unanswered_clusters_and_entry_titles(kb_app, fake_line) -> None:
    app = kb_app()
    resident = chat_with(app, fake_line)
    resident.says("プロ野球の優勝チームの予想を教えて")
    resident.says("プロ野球の優勝チームを予想して")
    resident.says("戸籍謄本をコンビニで取りたいのですが", expect=2)
    runner = app.test_cli_runner()
    month = utcnow().astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m")
    wait_until(lambda: len(log_rows(app)) == 3, message="questions logged")
    out = runner.invoke(args=["kpi", "report", "--month", month, "--format", "csv"]).output
    assert "プロ野球の優勝チーム" in out
    assert "戸籍" in out  # the answered entry shows with its title


def test_edits_reach_the_bot_at_once_here_and_within_a_second_from_other_processes(kb_app, fake_line, monkeypatch) -> None:
    from sqlalchemy import update

    from faq import freshness
    from faq.models import FaqEntry

    app = kb_app()
    resident = chat_with(app, fake_line)
    answer, _ask = resident.says("戸籍謄本をコンビニで取りたいのですが", expect=2)
    assert "コンビニ" in answer["text"]
    # Staff edit in this process (ORM): the next question sees it.
    with get_db(app).session() as s:
        entry = s.scalars(select(FaqEntry).where(FaqEntry.municipality == "joso", FaqEntry.entry_id == "konbini-koseki")).one()
        entry.answer = "【改訂】" + entry.answer
        entry.updated_at = utcnow()
    answer, _ask = resident.says("戸籍謄本をコンビニで取りたいのですが", expect=2)
    assert answer["text"].startswith("【改訂】")
    # An edit by another process (no ORM event here): seen once the stamp is checked again.
    monkeypatch.setattr(freshness, "STAMP_CHECK_SECONDS", 0.0)
    with get_db(app).session() as s:
        s.execute(update(FaqEntry).where(FaqEntry.municipality == "joso", FaqEntry.entry_id == "konbini-koseki")
                  .values(answer="【再改訂】コンビニで取れます。", updated_at=utcnow()))
    answer, _ask = resident.says("戸籍謄本をコンビニで取りたいのですが", expect=2)
    assert answer["text"].startswith("【再改訂】")


def test_a_category_lists_every_entry_page_by_page(kb_app, fake_line) -> None:
    app = kb_app()
    with get_db(app).session() as s:
        cats = service.categories(s, "joso")
        category, label = max(cats, key=lambda c: len(service.entries_in_category(s, "joso", c[0])))
        titles = [e.title for e in service.entries_in_category(s, "joso", category)]
    assert len(titles) > CATEGORIES_PER_PAGE
    resident = chat_with(app, fake_line)
    (menu,) = resident.says("メニュー")
    page_buttons = buttons(menu)
    while not any(b["label"] == label for b in page_buttons):  # find the category on the menu's pages
        (menu,) = resident.taps(page_buttons[-1]["data"])
        page_buttons = buttons(menu)
    (listing,) = resident.taps(next(b for b in page_buttons if b["label"] == label)["data"])
    seen: list[str] = []
    for _ in range(-(-len(titles) // CATEGORIES_PER_PAGE)):
        labels = [b["label"] for b in buttons(listing)]
        assert labels[-1] == "ほかの質問" and len(labels) <= CATEGORIES_PER_PAGE + 1
        seen += labels[:-1]
        (listing,) = resident.taps(buttons(listing)[-1]["data"])
    assert seen == [t[:20] for t in titles]  # every entry once (labels are cut at LINE's 20 characters)
    assert "（1/" in listing["text"]  # after the last page, the first again
