"""The per-language evaluation sets of faq/eval (issue 17): well formed, labelled with real topics, split honestly.

They are read with the same parser as `flask faq eval`, so a file these tests pass is one the command accepts.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from faq.evaluation import parse_eval_tsv
from tests.conftest import SHARED

EVAL = Path(__file__).resolve().parent.parent / "faq" / "eval"
LANGUAGES = ("ja-easy", "en", "pt", "vi", "zh", "fil")
# The first pair (tune, heldout) and a second pair written later from the topic list alone, before
# the matcher was run on it (tune2, heldout2): the first held-out set had been looked at too often.
# A third held-out set (heldout3, not for ja-easy) was written before the out-of-scope matters of
# faq/kb/out-of-scope/ were added, once the second had been looked at.
MINIMUM = {"tune": 20, "heldout": 40, "tune2": 40, "heldout2": 50, "heldout3": 50}
PAIRS = (("tune", "heldout"), ("tune2", "heldout2"))

KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ff]")
HIRAGANA = re.compile(r"[\u3041-\u309f]")
HAN = re.compile(r"[\u4e00-\u9fff]")
# Letters only Vietnamese uses among the Latin languages here: ă â đ ê ô ơ ư and the tone-marked vowels.
VIETNAMESE = re.compile(r"[ăâđêôơưĂÂĐÊÔƠƯ\u1ea0-\u1ef9]")
VIETNAMESE_ONLY = re.compile(r"[ăđơưĂĐƠƯ\u1ea0-\u1ef9]")  # â ê ô are Portuguese letters too
# Japanese or traditional forms whose simplified Chinese form differs (a zh row written with these is not zh).
NOT_SIMPLIFIED = re.compile(r"[証險険館帳話電気氣県縣體書車們這來會為學國払齢険號単]")
# Small function-word lexicons, chosen so that no word is in two of them.
LEXICON = {
    "en": {"the", "how", "what", "where", "when", "which", "my", "i", "is", "are", "can", "do", "does",
           "there", "any", "to", "for", "you", "it", "get", "need", "want", "whats", "who", "tell"},
    "pt": {"como", "onde", "meu", "minha", "pra", "para", "que", "q", "qual", "quando", "tem", "posso", "não",
           "nao", "você", "voce", "vc", "é", "o", "um", "uma", "da", "do", "dá", "de", "com", "quero", "preciso",
           "me", "vou", "vai", "fica", "aqui", "esse", "ta", "tô"},
    "fil": {"ang", "ng", "sa", "po", "ba", "ko", "mga", "yung", "pwede", "paano", "pano", "saan", "ano", "ako",
            "namin", "samin", "kailan", "kailangan", "lang", "na", "mo", "ka", "dito", "daw", "ikaw", "bang"},
}


def path(part: str, lang: str) -> Path:
    return EVAL / f"{part}-{lang}.tsv"


def rows(part: str, lang: str) -> list[tuple[str, str]]:
    """(question, expected) rows, checked to be exactly two columns with the header question, expected."""
    text = path(part, lang).read_text(encoding="utf-8")
    reader = csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    header, *body = list(reader)
    assert header == ["question", "expected"], f"{path(part, lang).name}: header {header}"
    for n, row in enumerate(body, start=2):
        assert len(row) == 2, f"{path(part, lang).name}:{n}: {len(row)} columns"
        assert row[0] == row[0].strip() and row[0], f"{path(part, lang).name}:{n}: empty or padded question"
    return [(q, e) for q, e in body]


def topic_ids() -> set[str]:
    with (SHARED / "faq-topics.tsv").open(encoding="utf-8") as f:
        return {r["id"] for r in csv.DictReader(f, delimiter="\t")}


def ids_of(expected: str) -> list[str]:
    return [] if expected == "-" else expected.split("|")


def normalized(question: str) -> str:
    """A question reduced to its letters and digits, for finding the same question written twice."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return "".join(ch for ch in text if ch.isalnum())


OFFTOPIC = "tune-offtopic"  # questions that must not be answered, for the translation index's threshold
OFFTOPIC_LANGUAGES = ("en", "pt", "vi", "zh", "fil")
PART_LANGUAGES = {**{part: LANGUAGES for part in MINIMUM}, "heldout3": OFFTOPIC_LANGUAGES}
FILES = [(part, lang) for part in MINIMUM for lang in PART_LANGUAGES[part]]


def test_there_is_a_tuning_and_a_held_out_file_for_every_language_and_nothing_else() -> None:
    expected = {path(part, lang).name for part, lang in FILES}
    expected |= {path(OFFTOPIC, lang).name for lang in OFFTOPIC_LANGUAGES}
    assert {p.name for p in EVAL.glob("*.tsv")} == expected


@pytest.mark.parametrize("lang", OFFTOPIC_LANGUAGES)
def test_the_off_topic_tuning_sets_are_unanswerable_new_and_in_their_language(lang: str) -> None:
    from bot.i18n import detect_language

    questions = rows(OFFTOPIC, lang)
    assert len(questions) >= 20 and all(e == "-" for _, e in questions)
    assert parse_eval_tsv(path(OFFTOPIC, lang).read_text(encoding="utf-8"))
    elsewhere = {normalized(q) for part, other in FILES for q, _ in rows(part, other)}
    keys = [normalized(q) for q, _ in questions]
    assert not set(keys) & elsewhere and len(set(keys)) == len(keys)
    assert share([q for q, _ in questions], lambda q: detect_language(q) == lang) >= 0.9


@pytest.mark.parametrize(("part", "lang"), FILES)
def test_each_file_parses_names_real_topics_and_is_big_enough(part: str, lang: str) -> None:
    body = rows(part, lang)
    topics = topic_ids()
    for question, expected in body:
        assert expected == "-" or (ids_of(expected) and set(ids_of(expected)) <= topics), (question, expected)
        assert len(ids_of(expected)) == len(set(ids_of(expected))), (question, expected)
    assert len(body) >= MINIMUM[part]
    # What `flask faq eval` reads is the same rows: none dropped, none merged.
    cases = parse_eval_tsv(path(part, lang).read_text(encoding="utf-8"))
    assert [(c.question, c.expected) for c in cases] == [(q, frozenset(ids_of(e))) for q, e in body]


@pytest.mark.parametrize(("part", "lang"), FILES)
def test_about_one_question_in_seven_should_not_be_answered(part: str, lang: str) -> None:
    body = rows(part, lang)
    off = sum(1 for _, e in body if e == "-")
    assert 0.10 <= off / len(body) <= 0.20, f"{off} of {len(body)} off-topic"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_question_is_in_two_files_of_a_language(lang: str) -> None:
    every = [normalized(q) for part in MINIMUM if lang in PART_LANGUAGES[part] for q, _ in rows(part, lang)]
    repeated = [q for q, n in Counter(every).items() if n > 1]
    assert not repeated


def test_no_question_is_in_two_languages_files() -> None:
    seen: dict[str, str] = {}
    for part, lang in FILES:
        for question, _ in rows(part, lang):
            key = normalized(question)
            assert key not in seen or seen[key] == lang, f"{question!r} in {seen[key]} and {lang}"
            seen[key] = lang


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_language_covers_many_topics_and_the_held_out_set_most_of_them(lang: str, pair: tuple[str, str]) -> None:
    tune = Counter(i for _, e in rows(pair[0], lang) for i in ids_of(e))
    heldout = Counter(i for _, e in rows(pair[1], lang) for i in ids_of(e))
    assert len(tune | heldout) >= 25
    assert len(heldout) >= 20
    # What foreign residents ask most is in both halves.
    for topic in ("moving", "garbage", "foreign-residents", "evacuation-shelter", "tax-payment", "vaccination"):
        assert tune[topic] and heldout[topic], topic
    assert max(heldout.values()) <= 0.1 * sum(heldout.values()) + 2  # no topic dominates


@pytest.mark.parametrize("lang", PART_LANGUAGES["heldout3"])
def test_the_third_held_out_sets_cover_many_topics_too(lang: str) -> None:
    heldout = Counter(i for _, e in rows("heldout3", lang) for i in ids_of(e))
    assert len(heldout) >= 20
    for topic in ("moving", "garbage", "foreign-residents", "evacuation-shelter", "tax-payment", "vaccination"):
        assert heldout[topic], topic
    assert max(heldout.values()) <= 0.1 * sum(heldout.values()) + 2


def share(questions: list[str], test: Callable[[str], object]) -> float:
    """The share of questions for which test is true."""
    return sum(1 for q in questions if test(q)) / len(questions)


def words(question: str) -> set[str]:
    return set(re.findall(r"[^\W\d_]+", question.casefold()))


@pytest.mark.parametrize("part", sorted(MINIMUM))
def test_the_script_fits_the_language(part: str) -> None:
    qs = {lang: [q for q, _ in rows(part, lang)] for lang in PART_LANGUAGES[part]}

    # やさしい日本語: kana in every row, words spaced, few kanji.
    easy = qs.get("ja-easy", ["か な"])
    assert share(easy, lambda q: KANA.search(q)) == 1
    assert share(easy, lambda q: " " in q) >= 0.8
    kana = sum(len(KANA.findall(q)) for q in easy)
    han = sum(len(HAN.findall(q)) for q in easy)
    assert han <= 0.1 * (han + kana)

    # Chinese: Han characters in every row, never kana, simplified forms.
    assert share(qs["zh"], lambda q: HAN.search(q)) == 1
    assert share(qs["zh"], lambda q: KANA.search(q)) == 0
    assert share(qs["zh"], lambda q: NOT_SIMPLIFIED.search(q)) == 0

    # Vietnamese: its diacritics in most rows (residents sometimes type without them), none elsewhere.
    assert share(qs["vi"], lambda q: VIETNAMESE.search(q)) >= 0.8
    for lang in ("en", "pt", "fil"):
        assert share(qs[lang], lambda q: VIETNAMESE_ONLY.search(q)) == 0, lang

    # The Latin-script languages: no Japanese or Chinese script, and their own function words win.
    for lang in ("en", "pt", "fil", "vi"):
        assert share(qs[lang], lambda q: KANA.search(q) or HAN.search(q)) == 0, lang
    for lang, lexicon in LEXICON.items():
        others = [lex for other, lex in LEXICON.items() if other != lang]

        def fits(q: str, lexicon: set[str] = lexicon, others: list[set[str]] = others) -> bool:
            own = len(words(q) & lexicon)
            return own > 0 and all(own >= len(words(q) & other) for other in others)

        assert share(qs[lang], fits) >= 0.85, (lang, [q for q in qs[lang] if not fits(q)])
