"""The residents' message catalogs (bot/translations/<lang>/LC_MESSAGES/messages.po) against the code.

Every message the code sends (t(…), t.label(…), N_(…) in handlers/ and faq/translations.py, found
by bot.i18n.extract_messages), every label taken from data (categories, fields, choices) and every
command word is in every catalog, not empty, with the same {placeholders}; button labels fit LINE's
20 characters; a message a catalog lacks is Japanese plus a note, never empty.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import i18n
from faq.service import CATEGORY_LABELS
from handlers.settings import TRANSLATED_COMMANDS
from segments.service import FIELD_LABELS
from segments.vocab import AGE_BANDS, GENDERS, INTERESTS

ROOT = Path(__file__).resolve().parent.parent
LABEL_MAX = 20  # LINE's quick-reply label limit
# Button labels of the handlers (with the data labels and command words below).
BUTTONS = ("はい", "いいえ", "どれでもない", "その他のカテゴリ", "ほかの質問", "同意して登録する", "登録しない", "関心を変更",
           "決定", "次へ", "削除する", "やめる", "未登録", "受け取る", "停止中", "なし")


def data_messages() -> list[str]:
    """Japanese words translated from data rather than literals."""
    return list(dict.fromkeys([*CATEGORY_LABELS.values(), *FIELD_LABELS.values(), *AGE_BANDS, *GENDERS, *INTERESTS]))


def used_messages() -> dict[str, list[str]]:
    found = i18n.extract_messages(i18n.message_sources(ROOT))
    for msgid in [*data_messages(), *TRANSLATED_COMMANDS, i18n.MISSING_NOTE]:
        found.setdefault(msgid, ["(data)"])
    return found


def test_the_extractor_finds_the_messages_of_the_handlers() -> None:
    found = used_messages()
    # A few of each kind: a literal t(), a t.label(), an N_() constant, a message of faq.translations.
    for msgid in ("この回答は役に立ちましたか？", "はい", "その他のカテゴリ", "お問い合わせ：", "使う言語を選んでください。"):
        assert msgid in found, msgid
    assert len(found) > 100


@pytest.mark.parametrize("language", i18n.TRANSLATED)
def test_every_message_is_in_every_catalog_with_its_placeholders(language: str) -> None:
    catalog = i18n.read_catalog(i18n.CATALOG_DIR, language)
    missing = [f"{msgid!r} ({', '.join(where)})" for msgid, where in used_messages().items() if msgid not in catalog]
    assert not missing, f"{language}: {len(missing)} messages missing from the catalog: {missing[:10]}"
    for msgid, text in catalog.items():
        assert text.strip(), f"{language}: empty translation of {msgid!r}"
        assert i18n.placeholders(text) == i18n.placeholders(msgid), f"{language}: placeholders differ in {msgid!r}"
        text.format_map({name: "x" for name in i18n.placeholders(msgid)})  # no stray braces


@pytest.mark.parametrize("language", i18n.TRANSLATED)
def test_button_labels_fit_and_commands_are_distinct(language: str) -> None:
    catalog = i18n.read_catalog(i18n.CATALOG_DIR, language)
    too_long = {m: catalog[m] for m in [*BUTTONS, *data_messages(), *TRANSLATED_COMMANDS] if len(catalog[m]) > LABEL_MAX}
    assert not too_long, f"{language}: labels over {LABEL_MAX} characters: {too_long}"
    commands = [catalog[c].casefold() for c in TRANSLATED_COMMANDS]
    assert len(set(commands)) == len(commands), f"{language}: two commands share a word: {commands}"


def test_the_japanese_catalog_is_the_code_itself() -> None:
    catalog = i18n.read_catalog(i18n.CATALOG_DIR, "ja")
    assert all(msgid == text for msgid, text in catalog.items())
    assert set(used_messages()) <= set(catalog)


def test_translate_label_and_the_fallback_note() -> None:
    assert i18n.translate("この回答は役に立ちましたか？", "pt") == "Esta resposta ajudou você?"
    assert i18n.translate("この回答は役に立ちましたか？", None) == "この回答は役に立ちましたか？"
    assert i18n.translate("{field}を選んでください。", "en", field="age group") == "Please choose your age group."
    # A message no catalog has: Japanese with the note in the resident's language, never empty.
    assert i18n.translate("カタログにない文です。", "vi") == "カタログにない文です。\n(Tin nhắn này chỉ có tiếng Nhật.)"
    assert i18n.label("カタログにない", "vi") == "カタログにない"  # a label stays short: no note
    t = i18n.Translator("zh")
    assert t("これからは{language}でお送りします。", language="中文") == "今后将用中文发送。"
    assert i18n.Translator("xx").language == "ja"  # unknown codes are Japanese


def test_commands_in_the_residents_languages() -> None:
    assert i18n.command_msgid("settings", TRANSLATED_COMMANDS) == "設定"
    assert i18n.command_msgid("Configurações", TRANSLATED_COMMANDS) == "設定"
    assert i18n.command_msgid("Dừng thông báo", TRANSLATED_COMMANDS) == "配信停止"
    assert i18n.command_msgid("常见问题", TRANSLATED_COMMANDS) == "よくある質問"
    assert i18n.command_msgid("how do I get a residence card", TRANSLATED_COMMANDS) is None


def test_the_city_setting_languages() -> None:
    assert i18n.parse_languages(None) == ("ja", "ja-easy", "en", "pt", "vi", "zh", "fil")
    assert i18n.parse_languages("pt, en") == ("ja", "pt", "en")  # ja always, order kept
    with pytest.raises(ValueError, match="unknown language 'de'"):
        i18n.parse_languages("en,de")


def test_a_bad_languages_setting_refuses_to_start() -> None:
    from bot.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="LANGUAGES='en,klingon'"):
        load_config({"APP_ENV": "testing", "LANGUAGES": "en,klingon"})
    assert load_config({"APP_ENV": "testing", "LANGUAGES": "en,pt"})["LANGUAGES"] == "en,pt"
