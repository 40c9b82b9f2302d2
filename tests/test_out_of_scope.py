"""Out-of-scope matters (faq/kb/out-of-scope/<lang>.yaml, faq/multilingual.py): how residents ask in
their languages about what the city does not handle; such a question is neither answered nor offered
an entry, and the phrasings are real, complete and no question of the evaluation sets."""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

import pytest

from faq import multilingual
from faq.kb import MUNICIPALITIES, load_kb
from faq.matcher import Candidate, Decision
from faq.translations import load_translations
from tests.test_language_conversation import NEWCOMER, buttons, chat, joso, says_any  # noqa: F401 - fixture

MATTERS = {"residence-status", "re-entry", "residence-card-renewal", "driving-licence", "passport-embassy",
           "pension-refund", "work-labour", "housing-private", "money-banking"}
EVAL = Path(__file__).resolve().parent.parent / "faq" / "eval"


def normalized(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def phrasings(entry) -> list[str]:
    return [entry.question, *entry.alternates]


def test_every_foreign_language_names_every_matter_in_many_ways() -> None:
    files = sorted(p.stem for p in multilingual.OUT_OF_SCOPE_DIR.glob("*.yaml"))
    assert files == sorted(multilingual.FOREIGN)
    for language in multilingual.FOREIGN:
        entries = multilingual.out_of_scope_entries((language,))
        assert {e.id for e in entries} == {multilingual.OUT_OF_SCOPE + m for m in MATTERS}, language
        for e in entries:
            assert len(phrasings(e)) >= 8, (language, e.id)


def test_no_phrasing_is_an_evaluation_question_or_a_phrasing_of_a_city_entry() -> None:
    questions = set()
    for path in EVAL.glob("*.tsv"):
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
        questions |= {normalized(r[0]) for r in rows[1:] if r}
    entries_say = set()
    for code in MUNICIPALITIES:
        kb = load_kb(code)
        for t in load_translations(code, kb):
            if t.language in multilingual.FOREIGN:
                entries_say |= {normalized(x) for x in (t.title, t.question, *(t.alternates or ()))}
    for e in multilingual.out_of_scope_entries():
        for text in phrasings(e):
            assert normalized(text) not in questions, (e.id, text)
            assert normalized(text) not in entries_say, (e.id, text)


def test_a_broken_file_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "en.yaml").write_text("- id: visa\n  phrasings: how do I renew\n", encoding="utf-8")
    with pytest.raises(ValueError, match="en.yaml: item 1"):
        multilingual.out_of_scope_entries(("en",), tmp_path)
    (tmp_path / "en.yaml").write_text("id: visa\n", encoding="utf-8")
    with pytest.raises(ValueError, match="en.yaml: a list"):
        multilingual.out_of_scope_entries(("en",), tmp_path)


def test_an_out_of_scope_matter_is_never_answered_nor_offered() -> None:
    """Ranked first by a clear margin: 「お答えできません」; nearly tied with a city entry: that entry is
    offered; below a city entry: dropped from the candidates."""
    matter = multilingual.OUT_OF_SCOPE + "re-entry"
    first = Decision("answer", matter, 0.9, (Candidate(matter, 0.9), Candidate("moving", 0.5)))
    assert multilingual.outside(first) == Decision("unknown", None, 0.9, ())
    below = Decision("clarify", None, 0.5, (Candidate("moving", 0.5), Candidate(matter, 0.4), Candidate("garbage", 0.3)))
    assert [c.entry_id for c in multilingual.outside(below).candidates] == ["moving", "garbage"]
    close = Decision("answer", matter, 0.52, (Candidate(matter, 0.52), Candidate("konbini-certificates", 0.5)))
    assert multilingual.outside(close) == Decision("clarify", None, 0.52, (Candidate("konbini-certificates", 0.5),))
    plain = Decision("answer", "moving", 0.9, (Candidate("moving", 0.9),))
    assert multilingual.outside(plain) is plain


@pytest.mark.parametrize("question", [
    "how can I extend my period of stay, my visa ends next month",
    "preciso tirar a permissão de reentrada antes de viajar pro brasil",
])
def test_a_resident_asking_about_immigration_gets_sorry_in_their_language_not_a_city_procedure(joso, fake_line,  # noqa: F811
                                                                                          question: str) -> None:
    newcomer = chat(joso, fake_line, NEWCOMER)
    newcomer.follows(expect=2)
    replies = says_any(newcomer, question)
    assert len(replies) == 1
    assert replies[0]["text"].startswith(("Sorry", "Desculpe")), replies[0]["text"]
    assert not any('"show"' in (b.get("data") or "") for b in buttons(replies[0]))
