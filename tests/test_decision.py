"""The calibrated decision, filler removal and kana readings (faq/decision.py, faq/matcher.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from faq.decision import (FEATURES, FOREIGN_FEATURES, FOREIGN_MODEL_PATH, MODEL_PATH, DecisionModel, ForeignModel, Signals,
                          fit_logistic, load_foreign_model, load_model, pick_threshold)
from faq.kb import city_places, load_kb
from faq.matcher import MatcherIndex, Thresholds
from faq.normalize import strip_filler
from tests.test_matcher import KB


@pytest.fixture(scope="module")
def index() -> MatcherIndex:
    """The small test knowledge base, lexical only: none of its phrasings is written in kana."""
    return MatcherIndex.build(KB, use_embeddings=False)


@pytest.fixture(scope="module")
def joso() -> MatcherIndex:
    """常総市's shipped knowledge base (lexical only, so the test does not depend on the model)."""
    return MatcherIndex.build(load_kb("joso"), use_embeddings=False, place_names_known=city_places("joso"))


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("お世話になります。住民票をコンビニで取りたいです。よろしくお願いします", "住民票をコンビニで取りたい", "世話"),
        ("すみません、ごみの日を教えてください！", "ごみの日", "すみません"),
        ("あの、避難所はどこ", "避難所はどこ", "あの"),
        ("あさっての粗大ごみ", "あさっての粗大ごみ", None),  # あ inside a word stays
    ],
)
def test_filler_is_cut_and_content_kept(text: str, kept: str, gone: str | None) -> None:
    out = strip_filler(text)
    assert kept in out
    if gone:
        assert gone not in out


def test_a_greeting_alone_is_left_as_it_is() -> None:
    assert strip_filler("よろしくお願いします") == "よろしくお願いします"


@pytest.mark.parametrize("question", ["転居届を出したい", "固定資産税を払う方法", "粗大ゴミの出し方", "暗証番号がロックされた"])
def test_greetings_around_a_question_do_not_change_its_match(index: MatcherIndex, question: str) -> None:
    """The same question wrapped the way residents write on LINE gets the same ranking."""
    bare = index.match(question)
    wrapped = index.match(f"お世話になります。すみません、{question}。教えてください。よろしくお願いします")
    assert [c.entry_id for c in wrapped.candidates] == [c.entry_id for c in bare.candidates]
    assert wrapped.kind == bare.kind


@pytest.mark.parametrize(
    ("kanji", "kana"),
    [
        ("転入届の出し方", "てんにゅうとどけ の だしかた"),
        ("口座振替", "こうざふりかえ"),
        ("暗証番号 ロック", "あんしょうばんごう ろっく"),
        ("避難場所を知りたい", "ひなんばしょ しりたい"),
    ],
)
def test_kana_meets_the_kanji_of_the_entries(index: MatcherIndex, kanji: str, kana: str) -> None:
    """None of the test entries has a kana phrasing: the readings of their words carry the match."""
    expected = index.match(kanji).candidates[0].entry_id
    q = index._prepare(kana)
    words_found = {t for t in q.terms if any("\u4e00" <= ch <= "\u9fff" for ch in t)}
    assert words_found, f"no kanji word found for {kana}"
    assert index.match(kana).candidates[0].entry_id == expected


def test_endings_are_not_read_as_words(joso: MatcherIndex) -> None:
    """でしょうか is not 証, ください not 区: only the content of a kana run is looked up."""
    q = joso._prepare("てつづきは どうすれば いいでしょうか ください")
    assert "証" not in q.embed_text and "区" not in q.embed_text


def test_the_shipped_model_matches_the_signals() -> None:
    """faq/decision-model.json was fitted for exactly these signals, in both modes."""
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert "tests/data/resident-questions-study.tsv" in data["note"]["fitted_on"]
    assert not any("heldout" in f for f in data["note"]["fitted_on"])
    for mode in ("embed", "lexical"):
        model = load_model(mode)
        assert isinstance(model, DecisionModel)
        assert 0.5 <= model.answer_threshold < 1.0 and 0.0 <= model.offer_threshold < model.answer_threshold


def test_a_model_for_other_signals_is_refused(tmp_path: Path) -> None:
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    data["modes"]["embed"]["features"] = list(FEATURES[:-1])
    other = tmp_path / "model.json"
    other.write_text(json.dumps(data), encoding="utf-8")
    assert load_model("embed", other) is None
    assert load_model("embed", tmp_path / "missing.json") is None


def _signals(**values: float) -> Signals:
    base = dict(score=0.5, margin=0.1, word=0.5, word_margin=0.1, char=0.4, embed=0.3, embed_margin=0.05,
                agree=1.0, unknown_share=0.2, length=3.0, terms=1.5, exact=0.0, imported=0.0)
    base.update(values)
    return Signals(**base)


def test_a_clear_winner_is_answered_and_a_tie_is_not() -> None:
    model = load_model("lexical")
    assert model is not None
    clear = _signals(score=0.9, margin=0.6, word=1.0, word_margin=0.8, char=0.9, agree=1.0, unknown_share=0.0)
    tie = _signals(score=0.35, margin=0.0, word=0.3, word_margin=0.0, char=0.3, agree=0.0, unknown_share=0.6)
    assert model.decide(clear)[0] == "answer"
    assert model.decide(tie)[0] in ("clarify", "unknown")
    assert model.decide(clear)[1] > model.decide(tie)[1]


def test_confidence_grows_with_the_margin_over_the_runner_up() -> None:
    model = load_model("embed")
    assert model is not None
    probs = [model.decide(_signals(margin=m, word_margin=m))[1] for m in (0.0, 0.1, 0.2, 0.4)]
    assert probs == sorted(probs) and probs[-1] > probs[0]


def test_the_shipped_foreign_model_was_fitted_on_tuning_questions_for_these_signals(tmp_path: Path) -> None:
    """faq/foreign-decision-model.json: fitted on the tuning sets only, one threshold per foreign
    language; a file for other signals, or none, is refused (then the Japanese model decides)."""
    data = json.loads(FOREIGN_MODEL_PATH.read_text(encoding="utf-8"))
    assert data["note"]["fitted_on"] and all("/tune" in f for f in data["note"]["fitted_on"])
    assert not any("heldout" in f for f in data["note"]["fitted_on"])
    model = load_foreign_model()
    assert isinstance(model, ForeignModel) and len(model.answer.weights) == len(FOREIGN_FEATURES)
    assert set(model.answer_thresholds) == {"en", "pt", "vi", "zh", "fil"}
    assert all(0.5 <= t < 1.0 for t in model.answer_thresholds.values())
    assert model.threshold("xx") == max(model.answer_thresholds.values())  # unknown language: the strictest
    data["features"] = list(FEATURES)
    other = tmp_path / "foreign.json"
    other.write_text(json.dumps(data), encoding="utf-8")
    assert load_foreign_model(other) is None
    assert load_foreign_model(tmp_path / "missing.json") is None


def test_the_japanese_index_agreeing_makes_a_foreign_answer_surer() -> None:
    """The same translation-index signals are more likely right when the Japanese index puts the
    same entry first, and another answer head's probability replaces the model's own."""
    model = load_foreign_model()
    assert model is not None
    signals = _signals(score=0.6, margin=0.05, embed=0.6, embed_margin=0.02)
    assert model.prob(signals, True, 0.9) > model.prob(signals, False, 0.9)
    japanese = load_model("embed")
    assert japanese is not None
    assert japanese.decide(signals, p_answer=1.0)[0] == "answer"
    assert japanese.decide(signals, p_answer=0.0)[0] in ("clarify", "unknown")


def test_explicit_thresholds_still_decide_by_score(index: MatcherIndex) -> None:
    """Settings (FAQ_ANSWER_THRESHOLD …) and the what-if keep the score rule."""
    never = index.match("転居届を出したい", Thresholds(answer=1.01, clarify=0.0, margin=0.0))
    assert never.kind == "clarify"


def test_another_town_is_never_answered_directly(joso: MatcherIndex) -> None:
    d = joso.match("宇都宮市の粗大ごみの出し方")
    assert d.kind != "answer"
    # a part of the city's own name is not another town
    q = joso._prepare("常総の避難所")
    assert joso._answerable("常総の避難所", q)


def test_logistic_fit_and_threshold_choice() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(float)
    model = fit_logistic(x, y)
    assert model.weights[0] > 1.0 and abs(model.weights[1]) < 0.5
    probs = [model.prob(v) for v in x]
    t = pick_threshold(probs, [bool(v) for v in y], 0.95)
    chosen = [g for p, g in zip(probs, y) if p >= t]
    assert chosen and sum(chosen) / len(chosen) >= 0.95
    assert replace(model, bias=model.bias + 10).prob(x[0]) > model.prob(x[0])


SIBLINGS = [
    replace(KB[0], id=f"ikusei-{kind}", title=q[:20], question=q, alternates=(), keywords=(),
            answer="育成医療の申請については、担当課にお問い合わせください。")
    for kind, q in (("where", "育成医療の申請場所を教えてください。"), ("who", "育成医療の申請は誰がすればいいのですか？"),
                    ("how", "育成医療の申請手続を教えてください。"), ("when", "育成医療の申請の時期は？"))
]


@pytest.mark.parametrize(
    ("question", "expected"),
    [("育成医療はどこに申し込むの", "ikusei-where"), ("育成医療の申請って親がするの？だれ？", "ikusei-who"),
     ("育成医療はどうやって申請すればいい？", "ikusei-how"), ("育成医療の申請はいつ？", "ikusei-when")],
)
def test_an_imported_faqs_siblings_are_told_apart_by_what_they_ask(question: str, expected: str) -> None:
    """Imported entries (one question each) that differ only in what they ask."""
    siblings = MatcherIndex.build(SIBLINGS, use_embeddings=False)
    assert siblings.match(question).candidates[0].entry_id == expected


@pytest.mark.parametrize(
    ("slip", "meant", "entry_id"),
    [("非難所はどこ", "避難", "shelter"), ("暗唱番号がロックされた", "暗証", "mynumber-pin"),
     ("印艦証明 コンビニ", "印鑑", "konbini")],
)
def test_an_ime_slip_meets_the_word_it_reads_as(index: MatcherIndex, slip: str, meant: str, entry_id: str) -> None:
    q = index._prepare(slip)
    assert meant in q.terms and q.terms[meant] < 1.0  # found, at a lower weight than a word written right
    assert index.match(slip).candidates[0].entry_id == entry_id


def test_a_word_the_entries_do_not_know_is_not_read_as_one_they_do(index: MatcherIndex) -> None:
    """プロ野球 reads as no entry's word: it stays an unknown word of the question."""
    assert {"野球"} <= set(index._prepare("プロ野球の優勝チームの予想").terms)


def test_a_katakana_lookalike_next_to_kanji_is_the_kanji() -> None:
    from faq.normalize import clean

    assert clean("どこでも窓ロ") == "どこでも窓口" and clean("加エ食品") == "加工食品"
    assert clean("ロッカー") == "ロッカ" and clean("カード") == "カード"  # katakana words stay


def test_an_imported_faq_needs_more_confidence_for_a_direct_answer() -> None:
    """Sibling entries of an imported FAQ: the same signals that answer in the curated knowledge
    base may only offer 「もしかして」 there."""
    model = load_model("embed")
    assert model is not None and model.answer_threshold_imported is not None
    assert model.answer_threshold_imported >= model.answer_threshold
