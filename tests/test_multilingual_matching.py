"""Questions in residents' foreign languages matched against the entries' translations (faq.multilingual):
signed webhooks in, the fake LINE platform's deliveries read back; 常総市 with its shipped knowledge
base and translations loaded by `faq load`. The questions are written here, not taken from faq/eval.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from bot.db import get_db
from faq import multilingual, service
from faq.normalize import normalize
from faq.models import FaqEntry, FaqTranslation, QuestionLog
from faq.store import load_repo_kb
from tests.conftest import Chat, wait_until

VIETNAMESE = "U" + "8" * 31 + "a"
FILIPINO = "U" + "8" * 31 + "b"


def joso_app(make_app):
    app = make_app(MUNICIPALITY="joso")
    with get_db(app).session() as s:
        load_repo_kb(s, "joso")
    return app


def replies(resident: Chat, text: str) -> list[dict]:
    """Every message of the one reply to `text` (an answer, its vote, the offer of the language)."""
    before = len(resident.fake.delivered(resident.user_id))
    resident.says(text, expect=1)
    return resident.fake.delivered(resident.user_id)[before:]


def logged(app) -> list[QuestionLog]:
    with get_db(app).session() as s:
        return list(s.scalars(select(QuestionLog).order_by(QuestionLog.id)))


def test_questions_in_vietnamese_and_filipino_get_the_answer_in_that_language(make_app, fake_line) -> None:
    app = joso_app(make_app)
    vi = Chat(app.test_client(), fake_line, VIETNAMESE)
    vi.follows(expect=2)
    messages = replies(vi, "Tôi vừa chuyển nhà đến thành phố này thì phải làm những thủ tục gì?")
    answer = messages[0]["text"]
    assert "転入届" in answer and "trong vòng 14 ngày" in answer  # the Vietnamese answer of 「引っ越し」

    fil = Chat(app.test_client(), fake_line, FILIPINO)
    fil.follows(expect=2)
    messages = replies(fil, "Kailan ang araw ng pagkuha ng basura sa lugar namin?")
    assert "basura" in messages[0]["text"].lower()  # the Filipino answer of 「ごみの分別と収集日」

    wait_until(lambda: len(logged(app)) == 2, message="both questions logged")
    rows = logged(app)
    assert [(r.decision, r.topic, r.language) for r in rows] == [("answer", "moving", "vi"), ("answer", "garbage", "fil")]


def test_a_staff_edit_of_a_translation_reaches_the_matching(make_app) -> None:
    app = joso_app(make_app)
    config = dict(app.config)
    question = "Magkano ang bayad para sa kuting ng aso sa zoo?"
    with get_db(app).session() as s:
        before = service.decide(s, "joso", question, config)
        assert before.kind != "answer" or before.entry_id != "vaccination"
        row = s.scalars(select(FaqTranslation).join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id).where(
            FaqEntry.municipality == "joso", FaqEntry.entry_id == "vaccination", FaqTranslation.language == "fil")).one()
        row.alternates = [*row.alternates, question]
        row.is_staff_edited = True
        s.commit()
    with get_db(app).session() as s:
        after = service.decide(s, "joso", question, config)
    assert (after.kind, after.entry_id) == ("answer", "vaccination")  # the exact phrasing now answers


def test_japanese_questions_are_decided_by_the_japanese_index_alone(make_app) -> None:
    app = joso_app(make_app)
    config = dict(app.config)
    with get_db(app).session() as s:
        index, _ = service.INDEXES.get(s, "joso")
        for question in ("戸籍謄本をコンビニで取りたいのですが", "ごみ の ひ は いつ ですか", "電子申請のやり方を知りたい"):
            assert multilingual.question_language(question, config) not in multilingual.FOREIGN
            expected = index.match(question, service.thresholds_from(config, index.default_thresholds))
            assert service.decide(s, "joso", question, config) == expected


def test_plain_japanese_the_japanese_index_only_clarifies_is_answered_from_the_easy_japanese_translations(make_app) -> None:
    app = joso_app(make_app)
    config = dict(app.config)
    asked, answered = "ほいくえん に はいりたい", "ごみ の だしかた を おしえて ください"
    with get_db(app).session() as s:
        index, _ = service.INDEXES.get(s, "joso")
        japanese = {q: index.match(q, service.thresholds_from(config, index.default_thresholds)) for q in (asked, answered)}
        decided = {q: service.decide(s, "joso", q, config) for q in (asked, answered)}
    assert all(multilingual.question_language(q, config) == "ja-easy" for q in (asked, answered))
    assert japanese[asked].kind == "clarify"  # the Japanese index alone would ask 「もしかして」
    assert decided[asked].kind == "answer" and decided[asked].entry_id == "nursery"
    assert decided[answered] == japanese[answered]  # what the Japanese index answers stays its answer


def test_the_translation_index_groups_an_entrys_languages_and_leaves_out_plain_japanese(make_app) -> None:
    app = joso_app(make_app)
    with get_db(app).session() as s:
        index = multilingual.TRANSLATION_INDEXES.get(s, "joso")
        languages = set(s.scalars(select(FaqTranslation.language).distinct()))
        easy = s.scalars(select(FaqTranslation.question).join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id).where(
            FaqEntry.municipality == "joso", FaqEntry.entry_id == "garbage", FaqTranslation.language == "ja-easy")).one()
        published = set(s.scalars(select(FaqEntry.entry_id).where(FaqEntry.municipality == "joso", FaqEntry.is_published.is_(True))))
    assert index is not None and len(index.ids) == len(set(index.ids))
    # Every entry is translated; the out-of-scope matters stand beside them.
    assert {i for i in index.ids if not multilingual.is_out_of_scope(i)} == published
    assert {i for i in index.ids if multilingual.is_out_of_scope(i)} == {e.id for e in multilingual.out_of_scope_entries()}
    assert "ja-easy" in languages and "ja-easy" not in multilingual.FOREIGN
    phrasings = " ".join(" ".join(texts) for texts in index.phrase_texts)
    assert "konbini" in phrasings and normalize("cửa hàng tiện lợi") in phrasings  # en/fil and vi of one entry
    assert normalize(easy) not in index.phrase_texts[index.ids.index("garbage")]  # やさしい日本語 stays Japanese


def test_a_translated_clarify_offers_the_japanese_index_candidates_too() -> None:
    from faq.matcher import Candidate, Decision
    from faq.multilingual import combine

    translated = Decision("clarify", None, 0.4, (Candidate("moving", 0.4), Candidate("garbage", 0.3), Candidate("nursery", 0.2)))
    japanese = Decision("unknown", None, 0.2, (Candidate("tax-payment", 0.2), Candidate("moving", 0.19)))
    merged = combine(translated, lambda: japanese)
    assert merged.kind == "clarify"
    assert [c.entry_id for c in merged.candidates] == ["moving", "tax-payment", "garbage"]
    answered = Decision("answer", "moving", 0.8, (Candidate("moving", 0.8),))
    assert combine(answered, lambda: japanese) is answered
    assert combine(Decision("unknown", None, 0.1, ()), lambda: japanese) is japanese


def test_each_foreign_language_answers_at_its_own_threshold_of_the_foreign_model(make_app, monkeypatch) -> None:
    """The foreign questions' answer head (faq/foreign-decision-model.json) decides: an English question
    it answers is only offered as 「もしかして」 once English's threshold is above its confidence, and
    a Portuguese question is still answered at Portuguese's."""
    from faq import decision

    app = joso_app(make_app)
    config = dict(app.config)
    english = "how can I get my juminhyo at the convenience store"
    portuguese = "como tirar o juminhyo na loja de conveniência"
    shipped = decision.load_foreign_model()
    assert shipped is not None and set(shipped.answer_thresholds) == set(multilingual.FOREIGN)
    with get_db(app).session() as s:
        assert multilingual.question_language(english, config) == "en"
        before = service.decide(s, "joso", english, config)
        assert before.kind == "answer" and before.entry_id == "konbini-certificates"
        assert shipped.threshold("en") <= before.score < 1.0
        stricter = replace(shipped, answer_thresholds={**shipped.answer_thresholds, "en": 1.0})
        monkeypatch.setattr(multilingual, "load_foreign_model", lambda: stricter)
        after = service.decide(s, "joso", english, config)
        other = service.decide(s, "joso", portuguese, config)
    assert after.kind == "clarify" and after.candidates[0].entry_id == "konbini-certificates"
    assert other.kind == "answer" and other.entry_id == "konbini-certificates"