"""Item lookup as a pure function: the misspelled set (written before tuning) and no false triggers
on the FAQ's development questions that are not about garbage."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from faq import normalize as faq_normalize
from garbage import calendar, lookup, text
from garbage.service import kind_for_category

DATA = Path(__file__).resolve().parent / "data" / "garbage"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


@pytest.fixture(scope="module")
def index() -> lookup.ItemIndex:
    text.set_text_functions(faq_normalize.normalize, faq_normalize.reading)
    with (DATA / "items.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    return lookup.ItemIndex([lookup.ItemRecord(n, r["品目名"], r["品目名_カナ"], r["分別区分"], r["注意点"], r["備考"])
                             for n, r in enumerate(rows)])


def misspelled() -> list[tuple[str, str]]:
    with (DATA / "misspelled.tsv").open(encoding="utf-8") as f:
        return [(r["query"], r["expected"]) for r in csv.DictReader(f, delimiter="\t")]


def test_misspelled_item_names_find_their_item(index) -> None:
    hits = [q for q, expected in misspelled() if (m := index.search(q, 1)) and expected in lookup.aliases(m[0].item.name)]
    assert len(hits) / len(misspelled()) >= 0.9, sorted(set(q for q, _ in misspelled()) - set(hits))


@pytest.mark.parametrize(("message", "item"), [
    ("電池は何ごみ？", "乾電池"), ("ふとん 捨て方", "布団"), ("すぷれーかん", "スプレー缶"), ("ペットボトルの分別", "ペットボトル"),
    ("古い扇風機を捨てたい", "扇風機"), ("ダンボールはいつ出せますか", "段ボール"), ("フライパン", "フライパン"),
])
def test_residents_ways_of_asking_are_recognised(index, message, item) -> None:
    _question, match = index.recognise(message)
    assert match is not None and match.item.name == item


@pytest.mark.parametrize("message", ["ごみの出し方", "粗大ごみの出し方", "住民票の出し方", "転入届の出し方を教えて", "テレビを見た"])
def test_general_questions_and_other_senses_of_the_words_are_left_to_the_faq(index, message) -> None:
    question, match = index.recognise(message)
    assert match is None and not (question.has_cue and question.phrase and not index.is_generic(question.phrase))


def test_no_false_triggers_on_the_faqs_development_questions(index) -> None:
    with (SHARED / "eval" / "dev-questions.tsv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    triggered = []
    for row in rows:
        question, match = index.recognise(row["question"])
        claimed = match is not None or (question.has_cue and question.phrase and not index.is_generic(question.phrase))
        if claimed and row["expected"] != "garbage":
            triggered.append(row["question"])
    assert triggered == []


def test_categories_find_their_calendar_kind() -> None:
    kinds = ["可燃ごみ", "不燃ごみ", "資源ごみ", "古紙・古布", "プラスチック製容器包装", "有害ごみ"]
    assert kind_for_category("資源ごみ（かん）", kinds) == "資源ごみ"
    assert kind_for_category("有害ごみ", kinds) == "有害ごみ"
    assert kind_for_category("粗大ごみ", kinds) is None


def test_5374_cells() -> None:
    rule = calendar.parse_rule("火2 金4:4 6 8 10 12 2")
    import datetime as dt
    assert rule.occurs(dt.date(2027, 2, 9)) and not rule.occurs(dt.date(2027, 3, 9))  # 第2火, only in the listed months
    assert calendar.parse_rule("第2・第4水") == calendar.parse_rule("水2 水4") == calendar.parse_rule("2水 4水")
    with pytest.raises(calendar.RuleError):
        calendar.parse_rule("土 管路")
