"""The Japanese normaliser and tokeniser used by the FAQ matcher."""

from __future__ import annotations

import time

import pytest

from faq.normalize import clean, normalize, reading, tokens


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ＡＢＣ１２３", "abc123"),  # full-width latin and digits
        ("ｺﾝﾋﾞﾆ", "こんびに"),  # half-width katakana
        ("コンビニ", "こんびに"),  # katakana folds to hiragana
        ("マイナンバー　カード", "まいなんばーかーど"),  # ideographic space between Japanese words
        ("Wi‐Fi", "wi fi"),  # hyphen variants are noise
    ],
)
def test_width_and_kana_folding(a: str, b: str) -> None:
    """全角/半角 and カタカナ/ひらがな variants normalise to one form."""
    assert normalize(a) == b


def test_long_vowel_marks() -> None:
    """A repeated or word-final ー does not make two spellings differ."""
    assert normalize("サーバー") == normalize("サーバ")
    assert normalize("コンピューター") == normalize("コンピュータ")
    assert normalize("すごーーーい") == normalize("すごーい")
    assert "ー" in normalize("カード")  # inside a word it is kept


@pytest.mark.parametrize(
    ("variant", "standard"),
    [("髙橋", "高橋"), ("山﨑", "山崎"), ("渡邊", "渡辺"), ("渡邉", "渡辺"), ("澤田", "沢田"), ("齋藤", "斎藤"), ("齊藤", "斎藤")],
)
def test_itaiji(variant: str, standard: str) -> None:
    """Common 異体字 in names fold to the everyday character."""
    assert normalize(variant) == normalize(standard)


def test_emoji_and_punctuation_are_noise() -> None:
    """Emoji, symbols and punctuation disappear; the words stay."""
    assert normalize("ごみの日は？？😀🙏✨！！") == "ごみの日は"
    assert normalize("😀🎉👍") == ""
    assert tokens("😀🎉👍") == []


def test_empty_and_whitespace() -> None:
    """Nothing in, nothing out."""
    assert normalize("") == ""
    assert normalize(" \u3000\n\t") == ""
    assert tokens("") == []
    assert reading("") == ""


def test_particles_and_auxiliaries_are_dropped() -> None:
    """Only content words remain."""
    toks = tokens("住民票をコンビニで取れますか？")
    assert "住民票" in toks
    assert "こんびに" in toks
    assert not {"を", "で", "ます", "か"} & set(toks)


@pytest.mark.parametrize("spelling", ["引越し", "引っ越し", "転居", "ひっこし", "引っ越す"])
def test_moving_synonyms_share_a_token(spelling: str) -> None:
    """引越し / 引っ越し / 転居 are one word to the matcher."""
    assert "引っ越し" in tokens(f"{spelling}の手続き")


def test_seal_synonyms() -> None:
    """はんこ / ハンコ / 判子 / 印鑑 share a token."""
    assert set(tokens("はんこ")) == set(tokens("ハンコ")) == set(tokens("判子")) == set(tokens("印鑑"))


def test_my_number_card_synonyms() -> None:
    """マイナカード and its long names are the same card."""
    expected = "まいなんばーかーど"
    for spelling in ("マイナカード", "マイナンバーカード", "個人番号カード", "まいなかーど"):
        assert expected in tokens(f"{spelling}を作りたい"), spelling


def test_garbage_spellings() -> None:
    """ごみ / ゴミ share a token."""
    assert tokens("ゴミの日") == tokens("ごみの日")


def test_reading_lets_kana_meet_kanji() -> None:
    """The kana reading of a kanji word equals the word typed in hiragana."""
    assert reading("転入届") == reading("てんにゅうとどけ") == "てんにゅうとどけ"


def test_huge_input_is_bounded() -> None:
    """100k characters neither crash the tokenizer nor take long."""
    start = time.perf_counter()
    assert isinstance(tokens("住民票" * 33_334), list)
    assert isinstance(normalize("あ" * 100_000), str)
    assert time.perf_counter() - start < 5.0


def test_only_kanji_place_names_count_as_another_town() -> None:
    from faq.normalize import analyze

    assert analyze("東京で住民票を取りたい").places == ["東京"]
    assert analyze("宇都宮市のごみの出し方").places == ["宇都宮市"]
    # Sudachi tags バレー (volleyball) as a place name; a kana word must not make the bot refuse.
    assert analyze("バレーの練習で体育館を借りたい").places == []


def test_words_of_latin_script_languages_keep_their_spaces() -> None:
    # neologdn would join Vietnamese syllables (về ngày -> vềngày); Japanese spacing rules are unchanged.
    assert clean("Tôi muốn hỏi về ngày đổ rác") == "tôi muốn hỏi về ngày đổ rác"
    assert clean("Cartão de residência") == "cartão de residência"
    assert normalize("住民票 コンビニ") == "住民票こんびに"


def test_accents_of_latin_letters_are_folded_for_matching_only() -> None:
    # Residents type Vietnamese and Portuguese with or without accents; both meet the same words.
    assert normalize("Tôi muốn hỏi về ngày đổ rác") == normalize("toi muon hoi ve ngay do rac") == "toi muon hoi ve ngay do rac"
    assert normalize("Cartão de residência") == "cartao de residencia"
    assert clean("Cartão") == "cartão"  # what the embedding model sees keeps them
    # Japanese is untouched: voiced kana and half-width kana fold as before.
    assert normalize("ガス ｶﾞｽ ぱぴぷ") == "がすがすぱぴぷ"
