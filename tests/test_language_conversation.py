"""Residents who read another language: choosing it in the chat, and every message, menu, button and
answer in it (signed webhooks in, the fake LINE platform's deliveries read back).

常総市 with the shipped knowledge base and its translations (faq/kb/translations,
faq/kb/cities/joso/translations) loaded by `faq load`.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, select

from bot.db import get_db
from bot.i18n import detect_language, translate
from faq.models import FaqEntry, FaqTranslation
from faq.store import load_repo_kb
from segments.models import Resident
from tests.conftest import Chat

RESIDENT = "U" + "7" * 31 + "a"
NEWCOMER = "U" + "7" * 31 + "b"
LANGUAGE_BUTTON = "Language / 言語"


@pytest.fixture
def joso(make_app):
    app = make_app(MUNICIPALITY="joso")
    with get_db(app).session() as s:
        load_repo_kb(s, "joso")
    return app


def chat(app, fake_line, user=RESIDENT) -> Chat:
    return Chat(app.test_client(), fake_line, user)


def buttons(message) -> list[dict]:
    return [item["action"] for item in message.get("quickReply", {}).get("items", [])]


def button(message, label: str) -> dict:
    found = [b for b in buttons(message) if b["label"] == label]
    assert found, f"no button {label!r} in {[b['label'] for b in buttons(message)]}"
    return found[0]


def language_of(app, user=RESIDENT) -> str | None:
    with get_db(app).session() as s:
        return s.scalars(select(Resident.language).where(Resident.line_user_id == user)).one()


def translation(app, entry_id: str, language: str) -> FaqTranslation:
    with get_db(app).session() as s:
        return s.scalars(select(FaqTranslation).join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id).where(
            FaqEntry.municipality == "joso", FaqEntry.entry_id == entry_id, FaqTranslation.language == language)).one()


def says_any(resident: Chat, text: str) -> list[dict]:
    """What the bot replied, however many messages (an answer and its vote, or one 「もしかして」):
    they come in one reply call, so all are there once the first is."""
    before = len(resident.fake.delivered(resident.user_id))
    resident.says(text, expect=1)
    return resident.fake.delivered(resident.user_id)[before:]


def show(entry_id: str) -> str:
    return json.dumps({"a": "show", "t": entry_id})


def test_a_resident_chooses_portugues_then_tieng_viet(joso, fake_line) -> None:
    resident = chat(joso, fake_line)
    greeting, notice = resident.follows(expect=2)
    assert "Language / 言語: やさしい日本語 / English / Português / Tiếng Việt / 中文 / Filipino" in greeting["text"]
    (choice,) = resident.taps(button(notice, LANGUAGE_BUTTON)["data"])
    assert [b["label"] for b in buttons(choice)] == ["日本語", "やさしい日本語", "English", "Português", "Tiếng Việt",
                                                     "中文", "Filipino"]

    # Not registered yet: the privacy notice in Portuguese; agreeing stores the language with the consent.
    explain, notice_pt = resident.taps(button(choice, "Português")["data"], expect=2)
    assert "é preciso cadastrar o idioma" in explain["text"]
    assert notice_pt["text"].startswith("[Cadastro para avisos]") and "idioma" in notice_pt["text"]
    assert language_of(joso) is None
    (first,) = resident.taps(button(notice_pt, "Concordo e cadastro")["data"])
    assert language_of(joso) == "pt"
    assert first["text"].startswith("Obrigado por concordar") and "Escolha: Faixa etária." in first["text"]
    assert "Prefiro não dizer" in [b["label"] for b in buttons(first)]
    (second,) = resident.taps(button(first, "Prefiro não dizer")["data"])
    assert second["text"].startswith("Cadastrado — Faixa etária: Prefiro não dizer.")

    # Settings, menus and buttons in Portuguese; the command word in Portuguese works too.
    (settings,) = resident.says("Configurações")
    assert settings["text"].startswith("Estes são os seus dados cadastrados.") and "Idioma: Português" in settings["text"]
    assert [b["label"] for b in buttons(settings)][-2:] == ["Parar avisos", "Apagar meus dados"]
    (menu,) = resident.says("Menu")
    assert menu["text"].startswith("Escolha uma categoria")
    assert buttons(menu)[0]["label"] == "Certidões" and buttons(menu)[-1]["label"] == "Mais categorias"
    (listing,) = resident.taps(buttons(menu)[0]["data"])
    assert listing["text"].startswith("Perguntas frequentes sobre “Certidões”")
    title = translation(joso, "konbini-certificates", "pt").title  # cut to LINE's 20 characters on a button
    assert any(title.startswith(b["label"].rstrip("…")) for b in buttons(listing)), [b["label"] for b in buttons(listing)]

    # An answer the city has in Portuguese, with its お問い合わせ line labelled in Portuguese.
    (answer,) = resident.taps(show("konbini-certificates"))
    assert answer["text"].startswith(translation(joso, "konbini-certificates", "pt").answer.strip()[:40])
    assert "\nContato: " in answer["text"] and "お問い合わせ" not in answer["text"]

    # A question of the resident's own in Portuguese: whatever the bot decides, it says it in Portuguese.
    replies = says_any(resident, "esqueci a senha do my number card, o que faço?")
    assert replies[-1]["text"] == "Esta resposta ajudou você?" or replies[0]["text"].startswith(
        ("Você quis dizer", "Desculpe, ainda não sabemos")), replies[0]["text"]

    # Then Tiếng Việt from 設定: stored at once (registered), everything from then on in Vietnamese.
    (choice,) = resident.says("Language")
    (changed,) = resident.taps(button(choice, "Tiếng Việt")["data"])
    assert language_of(joso) == "vi"
    assert changed["text"].startswith("Từ nay chúng tôi sẽ gửi bằng Tiếng Việt.") and "Ngôn ngữ: Tiếng Việt" in changed["text"]
    (menu,) = resident.says("Menu")
    assert menu["text"].startswith("Hãy chọn danh mục") and buttons(menu)[0]["label"] == "Giấy chứng nhận"
    (answer,) = resident.taps(show("moving"))
    assert answer["text"].startswith(translation(joso, "moving", "vi").answer.strip()[:40])
    unknown = says_any(resident, "xin cho hỏi giá vé máy bay đi Hà Nội tháng sau")
    assert unknown[0]["text"].startswith(("Xin lỗi", "Có phải bạn hỏi")), unknown[0]["text"]

    # Vietnamese typed without its marks is too unclear to detect on its own; the chosen language
    # decides, so it is matched against the translations and answered in Vietnamese.
    unmarked = "the cu tru bi mat thi lam sao"
    assert detect_language(unmarked) is None
    replies = says_any(resident, unmarked)
    offered = [json.loads(b["data"]).get("t") for b in buttons(replies[0]) if b["type"] == "postback"]
    assert replies[0]["text"].startswith("Có phải bạn hỏi") and "foreign-residents" in offered or \
        replies[0]["text"].startswith(translation(joso, "foreign-residents", "vi").answer.strip()[:20]), replies[0]["text"]

    # Deleting the registration forgets the language, like the other attributes.
    (confirm,) = resident.says("Xóa đăng ký")
    assert "ngôn ngữ" in confirm["text"]
    (done,) = resident.taps(button(confirm, "Xóa")["data"])
    assert done["text"].startswith("Đã xóa toàn bộ thông tin đăng ký.")
    assert language_of(joso) is None


def test_writing_english_unprompted_gets_the_answer_in_english_and_the_offer_once(joso, fake_line) -> None:
    newcomer = chat(joso, fake_line, NEWCOMER)
    newcomer.follows(expect=2)
    first = says_any(newcomer, "How can I get a residence certificate at a convenience store?")
    last = first[-1]
    offer = button(last, translate("{language}で受け取る", "en", language="English"))  # "Use English"
    assert json.loads(offer["data"]) == {"a": "lang", "l": "en"}
    if last["text"] == "Did this answer help you?":  # answered: the vote stays, the offer joins it
        assert [b["label"] for b in buttons(last)][:2] == ["Yes", "No"]
        assert "\nContact: " in first[0]["text"]
    else:
        assert last["text"].startswith(("Did you mean", "Sorry"))
    # The offer is made once, not with every message.
    again = says_any(newcomer, "I forgot my My Number Card PIN")
    assert all(b["label"] != offer["label"] for m in again for b in buttons(m))
    assert language_of(joso, NEWCOMER) is None  # nothing stored without consent
    # Taking the offer: the privacy notice in English, whose consent stores English.
    explain, notice = newcomer.taps(offer["data"], expect=2)
    assert notice["text"].startswith("[Registering for notices]")
    newcomer.taps(button(notice, "Agree and register")["data"])
    assert language_of(joso, NEWCOMER) == "en"


def test_without_a_translation_the_answer_falls_back_with_a_note(joso, fake_line) -> None:
    resident = chat(joso, fake_line)
    resident.follows(expect=2)
    (choice,) = resident.says("言語")
    explain, notice = resident.taps(button(choice, "English")["data"], expect=2)
    resident.taps(button(notice, "Agree and register")["data"])
    with get_db(joso).session() as s:  # this entry has no English and no やさしい日本語
        entry = s.scalars(select(FaqEntry.id).where(FaqEntry.municipality == "joso", FaqEntry.entry_id == "konbini-koseki")).one()
        s.execute(delete(FaqTranslation).where(FaqTranslation.entry_id == entry))
    (answer,) = resident.taps(show("konbini-koseki"))
    note, _, japanese = answer["text"].partition("\n\n")
    assert note.startswith("This answer is only in Japanese. If you do not understand it, please ask the city office: ")
    assert "常総市" in note and "コンビニ" in japanese and "お問い合わせ：" in japanese
    # やさしい日本語 comes before Japanese when the resident's language has no translation of the entry.
    with get_db(joso).session() as s:
        entry = s.scalars(select(FaqEntry.id).where(FaqEntry.municipality == "joso", FaqEntry.entry_id == "moving")).one()
        s.execute(delete(FaqTranslation).where(FaqTranslation.entry_id == entry, FaqTranslation.language == "fil"))
    (choice,) = resident.says("Language")
    resident.taps(button(choice, "Filipino")["data"])
    (answer,) = resident.taps(show("moving"))
    assert answer["text"].startswith(translation(joso, "moving", "ja-easy").answer.strip()[:30])


def test_a_city_offering_fewer_languages_offers_only_those(make_app, fake_line) -> None:
    app = make_app(MUNICIPALITY="joso", LANGUAGES="pt,vi")
    resident = chat(app, fake_line)
    greeting, notice = resident.follows(expect=2)
    assert greeting["text"].endswith("Language / 言語: Português / Tiếng Việt")
    (choice,) = resident.taps(button(notice, LANGUAGE_BUTTON)["data"])
    assert [b["label"] for b in buttons(choice)] == ["日本語", "Português", "Tiếng Việt"]
    (stale,) = resident.taps(json.dumps({"a": "lang", "l": "en"}))  # not offered here: refused politely
    assert "使えなくなっています" in stale["text"]


def test_japanese_only_city_shows_no_language_button(make_app, fake_line) -> None:
    app = make_app(MUNICIPALITY="joso", LANGUAGES="ja")
    _greeting, notice = chat(app, fake_line).follows(expect=2)
    assert LANGUAGE_BUTTON not in [b["label"] for b in buttons(notice)]
