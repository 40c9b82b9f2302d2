"""Match a resident's question to knowledge-base entries: a pure function of (index, text)."""

from __future__ import annotations

import ctypes
import functools
import gc
import logging
import math
import os
import re
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

# Single-threaded BLAS before numpy loads (see faq.embed for the reason).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from rapidfuzz import fuzz, process  # noqa: E402

from faq.decision import DecisionModel, Signals, load_model  # noqa: E402
from faq.normalize import Analysis, Token, analyze, clean, fold_kana, normalize, strip_filler  # noqa: E402

log = logging.getLogger(__name__)

# Residents' questions are short; anything longer is pasted text. Truncating bounds the
# cost of tokenising (Sudachi) and fuzzy matching however large the input is.
MAX_QUERY_CHARS = 200
# Longer than this is pasted text, not a question: offer candidates, never answer outright.
MAX_ANSWERABLE_CHARS = 400
# Answers only help recall a little; their tail adds nothing but index size.
MAX_ANSWER_CHARS = 1000
ANSWER_HEAD_CHARS = 120  # of the answer, embedded with the question (Params.embed_answer)
FEW_PHRASINGS = 3  # an entry with this many phrasings or fewer (question, title, …) is "imported"
TOP_K = 30  # candidates re-scored with the slower per-phrasing features


class EntryLike(Protocol):
    """What the matcher needs from an entry (KBEntry or a database row)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def question(self) -> str: ...
    @property
    def alternates(self) -> Sequence[str]: ...
    @property
    def keywords(self) -> Sequence[str]: ...
    @property
    def answer(self) -> str: ...


@dataclass(frozen=True)
class Candidate:
    """One ranked entry and its calibrated score in [0, 1]."""

    entry_id: str
    score: float


@dataclass(frozen=True)
class Decision:
    """What to do with a question: answer it, ask 「もしかして」, or admit not knowing."""

    kind: Literal["answer", "clarify", "unknown"]
    entry_id: str | None
    score: float
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on the calibrated score."""

    answer: float = 0.55
    clarify: float = 0.30
    margin: float = 0.05


@dataclass(frozen=True)
class Params:
    """Ranking weights; fixed by measurement (bench/faq), exposed for the benchmark's sweeps."""

    w_word: float = 0.30  # BM25F over words (question/alternates/title, keywords, answer)
    w_phrase: float = 0.10  # best word-overlap cosine against one phrasing
    w_char: float = 0.20  # BM25F over character bigrams (typos, hiragana-only input)
    w_embed: float = 0.40  # sentence-embedding cosine (dropped and renormalised when off)
    field_q: float = 1.0
    field_k: float = 1.0
    field_a: float = 0.3
    # Bigrams of the answers too? Measured: no gain on dev+extra, and they are most of the
    # bigram index (memory, build time), so no.
    char_answer: bool = False
    k1: float = 1.2
    b: float = 0.5
    # Sudachi split: "C" long words, "A" short units, "AC" long words plus their short parts
    # at sub_weight, so 印鑑登録証明書 also meets 印鑑証明. The three measured within one or
    # two questions of each other on dev+extra and misspelt variants; AC is the middle way.
    split: Literal["A", "C", "AC"] = "AC"
    sub_weight: float = 0.5  # weight of mode-A parts of a compound word
    noun_weight: float = 1.0
    verb_weight: float = 0.6  # verbs, adjectives, adverbs
    kana_oov_weight: float = 0.3
    # Share of the remaining distance closed when a misspelt keyword is spotted (measured on
    # deliberately misspelt questions: small gain at 0.2, worse top-1 from 0.4 up).
    keyword_bonus: float = 0.2
    fuzzy_floor: float = 0.88  # fuzz.ratio at or above this is treated as "the same question"
    embed_floor: float = 0.25  # USE cosine of unrelated Japanese sentences sits around here
    # The sentence-embedding model: "use" (USE v3, the Japanese index) or "e5" (multilingual-e5-small,
    # the translation index of faq/multilingual.py, whose own Params set its floor).
    embed_model: Literal["use", "e5"] = "use"
    # "mean": one centroid per entry. Measured as good as the best single phrasing ("max")
    # on the dev and extra questions, at a tenth of the memory and time.
    embed_pool: Literal["max", "mean"] = "mean"
    embed_answer: float = 0.5  # weight of question+answer-head vector added to the centroid of an entry with few phrasings
    homophone_weight: float = 0.7  # a word found by reading a misconverted kanji word aloud
    asks_bonus: float = 0.2  # share of the distance closed for an entry asking what the question asks


DEFAULT_THRESHOLDS = Thresholds()
# Without embeddings the lexical scores run higher for look-alike off-topic questions.
LEXICAL_THRESHOLDS = Thresholds(answer=0.60, clarify=0.30, margin=0.06)
DEFAULT_PARAMS = Params()


def _as_strings(value: object) -> list[str]:
    """A list of strings from a sequence, or from newline-separated text (database rows)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [s for s in value.splitlines() if s.strip()]
    return [str(s) for s in value if str(s).strip()]  # type: ignore[attr-defined]


def _bigrams(folded: str) -> list[str]:
    """Character bigrams within space-separated chunks (a lone character stands alone)."""
    grams: list[str] = []
    for chunk in folded.split():
        if len(chunk) == 1:
            grams.append(chunk)
        else:
            grams.extend(chunk[i : i + 2] for i in range(len(chunk) - 1))
    return grams


def char_grams(text: str, analysis: Analysis | None = None) -> list[str]:
    """Bigrams of the normalised text and of its kana reading (so しんせい meets 申請)."""
    analysis = analysis or analyze(text)
    surface = fold_kana(analysis.prepared)
    grams = _bigrams(surface)
    read = analysis.reading
    if read and read != surface:
        grams.extend(_bigrams(read))
    return grams


def _weighted_tokens(toks: list[Token], p: Params, vocab: dict[str, int] | None = None) -> dict[str, float]:
    """Terms with a weight: nouns 1, verbs/adjectives less (they rarely name the topic),
    mode-A parts of a compound scaled by sub_weight. With vocab (query side), hiragana-only
    words the knowledge base never uses are damped: they are mostly Sudachi cutting a
    kana-typed word into pieces (てんにゅう -> てん/にゅう), which the character bigrams
    of the reading match instead."""
    out: dict[str, float] = {}
    for i, t in enumerate(toks):
        if p.split == "C" and t.part:
            continue
        if p.split == "A" and not t.part and i + 1 < len(toks) and toks[i + 1].part:
            continue  # mode A: a compound is replaced by its parts
        w = p.noun_weight if t.pos in _NOUN_POS else p.verb_weight
        if t.part and p.split == "AC":
            w *= p.sub_weight
        if vocab is not None and t.kana and t.form not in vocab:
            w *= p.kana_oov_weight
        if w > out.get(t.form, 0.0):
            out[t.form] = w
    return out


_NOUN_POS = frozenset({"名詞", "接尾辞", "接頭辞"})


_KANJI_RE = re.compile(r"[\u4e00-\u9fff々]")
_KANA_RUN = re.compile(r"[ぁ-ゖー]{3,}")
_MAX_READING = 14  # longest reading looked up when segmenting a kana run
# Kana endings and function words cover a run's characters when it is segmented without
# standing for a word, so their sounds are not read as words (でしょうか is not 証) unless
# a word explains the run better (よういく is 養育, not よう + いく).
_KANA_FUNCTION = frozenset({
    "でしょうか", "でしょう", "ください", "くださ", "ありますか", "ありません", "ありました", "あります", "いますか",
    "います", "ません", "ました", "ましたが", "ますか", "ます", "ですか", "です", "でした", "たいです", "たいんですけど",
    "たいんですが", "たいのですが", "たいんだけど", "たい", "ほしい", "したい", "して", "した", "する", "しない",
    "できますか", "できる", "できない", "できます", "なりますか", "なります", "いいですか", "いい", "よいですか", "よい",
    "だけど", "けれど", "けど", "ところ", "とか", "など", "ので", "から", "まで", "について", "という", "って",
    "くらい", "ぐらい", "どこ", "いつ", "なに", "なん", "どう", "どれ", "だれ", "こと", "もの", "ため", "よう", "そう",
    "わかる", "わからない", "しりたい", "おしえて", "ひと", "わたし", "ぼく", "うち", "ちゃう", "ちゃった",
    "は", "が", "を", "に", "で", "と", "の", "へ", "も", "や", "か", "ね", "よ", "な",
})


@functools.lru_cache(maxsize=65536)
def _dictionary_reading(form: str) -> str:
    """Reading of a word's dictionary form (払う -> はらう), "" if it is not one word."""
    toks = [t for t in analyze(form).tokens if not t.part]
    return toks[0].reading if len(toks) == 1 else ""


def _add_readings(lexicon: dict[str, tuple[str, float]], toks: list[Token], p: Params) -> None:
    """Record the readings of kanji and katakana words: nouns by their surface reading, verbs
    and adjectives by the reading of their dictionary form (the form a kana question yields)."""
    for t in toks:
        # Words written in kanji or katakana (スマホ); words written in hiragana meet kana as they are.
        if t.kana or not t.reading:
            continue
        noun = t.pos in _NOUN_POS
        reading = t.reading if noun else _dictionary_reading(t.form)
        # One kanji read with two kana (税 ぜい, 市 し) would turn up inside unrelated kana.
        if len(reading) < 3 and not (len(reading) == 2 and len(t.form) >= 2):
            continue
        weight = (p.noun_weight if noun else p.verb_weight) * (p.sub_weight if t.part else 1.0)
        known = lexicon.get(reading)
        if known is None or weight > known[1]:
            lexicon[reading] = (t.form, weight)


class _Postings:
    """Compressed sparse rows: term id -> (row indices, values), for fast accumulation."""

    def __init__(self, terms: np.ndarray, rows: np.ndarray, vals: np.ndarray, n_terms: int) -> None:
        order = np.argsort(terms, kind="stable")
        self.rows = rows[order].astype(np.int32)
        self.vals = vals[order].astype(np.float32)
        counts = np.bincount(terms, minlength=n_terms)
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def accumulate(self, weights: dict[int, float], size: int) -> np.ndarray:
        """Sum weight * value over the query terms, per row."""
        idx_parts: list[np.ndarray] = []
        val_parts: list[np.ndarray] = []
        for term, w in weights.items():
            lo, hi = self.indptr[term], self.indptr[term + 1]
            if hi > lo:
                idx_parts.append(self.rows[lo:hi])
                val_parts.append(self.vals[lo:hi] * np.float32(w))
        if not idx_parts:
            return np.zeros(size, dtype=np.float32)
        summed = np.bincount(np.concatenate(idx_parts), weights=np.concatenate(val_parts), minlength=size)
        return summed.astype(np.float32)


class _Vocabulary:
    """term <-> dense id."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def add(self, term: str) -> int:
        """Id of term, assigning a new one if needed."""
        tid = self.ids.get(term)
        if tid is None:
            tid = self.ids[term] = len(self.ids)
        return tid

    def __len__(self) -> int:
        return len(self.ids)


FIELDS = ("q", "k", "a")  # question+alternates+title, keywords, answer


class _Bm25fBuilder:
    """Collects one row per (document, term) with its count in each field, as compact
    arrays: memory stays modest even at 10,000 entries (millions of rows for bigrams)."""

    def __init__(self) -> None:
        self.vocab = _Vocabulary()
        self.terms = array("i")
        self.docs = array("i")
        self.counts = [array("f") for _ in FIELDS]
        self.lengths = [array("f") for _ in FIELDS]
        self.n_docs = 0

    def add(self, field_counts: Sequence[dict[str, float]]) -> None:
        """Add the next document: one term->count mapping per field, in FIELDS order."""
        doc = self.n_docs
        self.n_docs += 1
        for f, counts in enumerate(field_counts):
            self.lengths[f].append(float(sum(counts.values())))
        for term in dict.fromkeys(t for counts in field_counts for t in counts):
            self.terms.append(self.vocab.add(term))
            self.docs.append(doc)
            for f, counts in enumerate(field_counts):
                self.counts[f].append(counts.get(term, 0.0))

    def build(self, field_weights: Sequence[float], k1: float, b: float) -> _FieldIndex:
        """Postings of idf(t) * m(t, d), m = BM25F saturation clipped to [0, 1]."""
        n, v = self.n_docs, len(self.vocab)
        terms = np.frombuffer(self.terms, dtype=np.int32)
        docs = np.frombuffer(self.docs, dtype=np.int32)
        pseudo = np.zeros(len(terms), dtype=np.float32)
        for f, weight in enumerate(field_weights):
            lengths = np.frombuffer(self.lengths[f], dtype=np.float32)
            avg = max(float(lengths.mean()) if n else 1.0, 1e-9)
            norm = (1.0 - b + b * lengths / avg).astype(np.float32)
            pseudo += np.float32(weight) * np.frombuffer(self.counts[f], dtype=np.float32) / norm[docs]
        df = np.bincount(terms, minlength=v)
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        # (k1+1)tf/(k1+tf) is 1 at tf=1: one plain occurrence counts fully, more is capped.
        strength = np.minimum(np.float32(1.0), np.float32(k1 + 1.0) * pseudo / (np.float32(k1) + pseudo))
        postings = _Postings(terms, docs, strength * idf[terms], v)
        return _FieldIndex(self.vocab.ids, idf, float(np.log1p((n + 0.5) / 0.5)), postings)


@dataclass
class _FieldIndex:
    """BM25F index whose per-term match strength is clipped to [0, 1]."""

    vocab: dict[str, int]
    idf: np.ndarray
    oov_idf: float
    postings: _Postings

    def idf_of(self, term: str) -> float:
        """idf of a term; unseen terms get the highest idf (they are the most specific)."""
        tid = self.vocab.get(term)
        return float(self.idf[tid]) if tid is not None else self.oov_idf

    def coverage(self, weights: dict[str, float], size: int) -> np.ndarray:
        """idf-weighted fraction of the query's terms each document matches, in [0, 1]."""
        total = sum(w * self.idf_of(t) for t, w in weights.items())
        if total <= 0:
            return np.zeros(size, dtype=np.float32)
        known = {self.vocab[t]: w for t, w in weights.items() if t in self.vocab}
        return self.postings.accumulate(known, size) / np.float32(total)


@dataclass
class MatcherIndex:
    """Everything needed to rank entries for a question; build once, match many times."""

    ids: list[str]
    params: Params
    words: _FieldIndex
    chars: _FieldIndex
    phrase_postings: _Postings
    phrase_norms: np.ndarray
    phrase_starts: np.ndarray  # first phrasing of each entry (phrasings are grouped by entry)
    phrase_texts: list[list[str]]  # normalised phrasings per entry, for the fuzzy fast path
    keywords: list[list[str]]
    asks: list[frozenset[str]]  # what each entry's own question asks for (where, when, who, ...)
    exact: dict[str, list[int]]
    known_places: frozenset[str]
    # Reading (hiragana) -> (word form, weight) of the entries' kanji words, so a question typed
    # in kana meets them (てんしゅつとどけ -> 転出届, はらう -> 払う).
    kana_lexicon: dict[str, tuple[str, float]] = field(default_factory=dict)
    embeddings: np.ndarray | None = None  # (entries, 512) centroids, or (phrasings, 512) for "max"
    embedder: object | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        entries: Sequence[EntryLike],
        *,
        use_embeddings: bool | None = None,
        cache_dir: Path | None = None,
        params: Params | None = None,
        place_names_known: Iterable[str] = (),
    ) -> MatcherIndex:
        """Index entries; use_embeddings=None means "if the package is installed"."""
        p = params or DEFAULT_PARAMS
        ids = [str(e.id) for e in entries]
        word_builder = _Bm25fBuilder()
        char_builder = _Bm25fBuilder()
        # Phrasings' terms as flat arrays (phrase id, term, weight): dicts per phrasing
        # would cost hundreds of MB at 10,000 entries.
        ph_ids, ph_terms, ph_weights = array("i"), array("i"), array("f")
        phrase_entry = array("i")
        phrase_raw: list[str] = []
        phrase_texts: list[list[str]] = []
        keywords: list[list[str]] = []
        asks: list[frozenset[str]] = []
        exact: dict[str, list[int]] = {}
        places: set[str] = {normalize(x) for x in place_names_known}
        lexicon: dict[str, tuple[str, float]] = {}

        for i, e in enumerate(entries):
            phrasings = [e.question, e.title, *_as_strings(e.alternates)]
            kws = _as_strings(e.keywords)
            answer = (e.answer or "")[:MAX_ANSWER_CHARS]
            q_tf: Counter[str] = Counter()
            q_chars: Counter[str] = Counter()
            texts: list[str] = []
            for ph in phrasings:
                # Every phrasing is kept, even one without content words, so each entry owns
                # a contiguous non-empty run of phrasings (np.maximum.reduceat relies on it).
                analysis = analyze(ph)
                places.update(analysis.places)
                _add_readings(lexicon, analysis.tokens, p)
                terms = _weighted_tokens(analysis.tokens, p)
                j = len(phrase_entry)
                for t, w in terms.items():
                    q_tf[t] += w
                    ph_ids.append(j)
                    ph_terms.append(word_builder.vocab.add(t))
                    ph_weights.append(w)
                q_chars.update(char_grams(ph, analysis))
                phrase_entry.append(i)
                phrase_raw.append(ph)
                norm = normalize(ph)
                texts.append(norm)
                if norm:
                    owners = exact.setdefault(norm, [])
                    if i not in owners:
                        owners.append(i)
            k_tf: Counter[str] = Counter()
            k_chars: Counter[str] = Counter()
            for kw in kws:
                analysis = analyze(kw)
                places.update(analysis.places)
                _add_readings(lexicon, analysis.tokens, p)
                for t, w in _weighted_tokens(analysis.tokens, p).items():
                    k_tf[t] += w
                k_chars.update(char_grams(kw, analysis))
            a_tf: Counter[str] = Counter()
            answer_analysis = analyze(answer)
            places.update(answer_analysis.places)
            for t in answer_analysis.tokens:
                w = p.noun_weight if t.pos in _NOUN_POS else p.verb_weight
                a_tf[t.form] += w * (p.sub_weight if t.part else 1.0)
            word_builder.add((q_tf, k_tf, a_tf))
            a_chars = Counter(char_grams(answer, answer_analysis)) if p.char_answer else Counter()
            char_builder.add((q_chars, k_chars, a_chars))
            phrase_texts.append(texts)
            keywords.append([k for k in (normalize(k) for k in kws) if k])
            # Only an entry with few phrasings is about one question; a curated entry's many
            # phrasings ask everything about its topic.
            asks.append(question_asks(f"{e.question} {e.title}") if len(phrasings) <= FEW_PHRASINGS else frozenset())

        fw = (p.field_q, p.field_k, p.field_a)
        words = word_builder.build(fw, p.k1, p.b)
        chars = char_builder.build(fw, p.k1, p.b)

        # Phrasing vectors use the entry-level idf: a word shared by every phrasing of one
        # entry is still specific to that entry.
        n_ph = len(phrase_entry)
        pid = np.frombuffer(ph_ids, dtype=np.int32)
        pterm = np.frombuffer(ph_terms, dtype=np.int32)
        pval = np.frombuffer(ph_weights, dtype=np.float32) * words.idf[pterm] if len(pterm) else np.zeros(0, np.float32)
        sq = np.bincount(pid, weights=pval.astype(np.float64) ** 2, minlength=n_ph)
        norms = np.where(sq > 0, np.sqrt(sq), 1.0).astype(np.float32)
        entry_of = np.frombuffer(phrase_entry, dtype=np.int32).copy()

        index = cls(
            ids=ids,
            params=p,
            words=words,
            chars=chars,
            phrase_postings=_Postings(pterm, pid, pval, len(words.vocab)),
            phrase_norms=norms,
            phrase_starts=np.searchsorted(entry_of, np.arange(len(ids))).astype(np.int64),
            phrase_texts=phrase_texts,
            keywords=keywords,
            asks=asks,
            exact=exact,
            known_places=frozenset(places),
            kana_lexicon=lexicon,
        )
        if use_embeddings is None:
            use_embeddings = _embeddings_installed()
        if use_embeddings and ids:
            answers = [f"{e.question} {(e.answer or '')[:ANSWER_HEAD_CHARS]}" for e in entries] if p.embed_answer > 0 else []
            index._attach_embeddings(phrase_raw, cache_dir, answers)
        _release_free_heap()
        return index

    def _attach_embeddings(self, phrase_raw: list[str], cache_dir: Path | None, answers: list[str]) -> None:
        """Embed every phrasing; on any failure stay lexical-only."""
        from faq.embed import EmbeddingUnavailable, embedder_for

        embedder = embedder_for(self.params.embed_model)
        try:
            embedder.load()  # now, at start-up, rather than on a resident's first question
            vecs = embedder.encode_cached([clean(t) for t in phrase_raw], cache_dir)
        except EmbeddingUnavailable as exc:
            log.warning("FAQ matcher runs lexical-only: %s", exc)
            return
        if self.params.embed_pool == "mean":
            # One centroid per entry, summed in slices so the float32 copy stays small.
            n = len(self.ids)
            cents = np.zeros((n, vecs.shape[1]), dtype=np.float32)
            bounds = [*self.phrase_starts.tolist(), len(vecs)]
            step = 1024
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                chunk = vecs[bounds[lo] : bounds[hi]].astype(np.float32)
                cents[lo:hi] = np.add.reduceat(chunk, np.asarray(bounds[lo:hi]) - bounds[lo], axis=0)
            cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-9)
            if answers:
                # The question with the head of its answer says what the entry is about in words
                # its phrasings may lack (an imported FAQ has one question per entry).
                # Only for entries with few phrasings: many phrasings already say it better.
                few = np.flatnonzero(np.diff([*self.phrase_starts.tolist(), len(vecs)]) <= FEW_PHRASINGS)
                if len(few):
                    a = embedder.encode_cached([clean(answers[i]) for i in few], cache_dir).astype(np.float32)
                    cents[few] += np.float32(self.params.embed_answer) * a
                cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-9)
            self.embeddings = cents
        else:
            self.embeddings = np.ascontiguousarray(vecs, dtype=np.float32)
        self.embedder = embedder

    @property
    def default_thresholds(self) -> Thresholds:
        """Measured defaults for this index's mode (with or without embeddings)."""
        return DEFAULT_THRESHOLDS if self.embeddings is not None else LEXICAL_THRESHOLDS

    @property
    def uses_embeddings(self) -> bool:
        """Whether embeddings take part in ranking."""
        return self.embeddings is not None

    def scores(self, text: str) -> np.ndarray:
        """Calibrated score in [0, 1] for every entry (the ranking before thresholds)."""
        return self._score(self._prepare(text))[0]

    def _prepare(self, text: str) -> _Query:
        """Normalise and tokenise the (truncated) question once, without its filler."""
        primed = getattr(_PRIMED, "queries", None)
        if primed and text in primed:
            return primed.pop(text)
        raw = (text or "")[:MAX_QUERY_CHARS]
        core = strip_filler(raw)
        analysis = analyze(core)
        terms = _weighted_tokens(analysis.tokens, self.params, self.words.vocab)
        embed_text = clean(core)
        if self.kana_lexicon:
            found, embed_text = self._from_kana(analysis, embed_text)
            for form, w in found.items():
                if w == 0.0:
                    terms.pop(form, None)  # a misconverted word replaced by what it was meant to be
                elif w < 0.0 and form in terms:  # a piece of a kana word the readings explain
                    terms[form] = min(terms[form], self.params.kana_oov_weight)
                elif w > terms.get(form, 0.0):
                    terms[form] = w
        return _Query(
            asks=question_asks(core),
            raw=raw,
            norm=normalize(core),
            terms=terms,
            grams=dict.fromkeys(char_grams(core, analysis), 1.0),
            places=tuple(analysis.places),
            embed_text=embed_text,
        )

    def _from_kana(self, analysis: Analysis, embed_text: str) -> tuple[dict[str, float], str]:
        """Kanji words of the knowledge base found in the question's kana, and the question
        with those kana spans written as the words (for the embedding model).

        Kana words Sudachi recognised are looked up by their reading; runs of kana it cut
        into odd pieces are segmented against the readings, longest cover first."""
        lex = self.kana_lexicon
        found: dict[str, float] = {}
        for t in analysis.tokens:
            if t.kana and not t.part:
                hit = lex.get(t.form)
                if hit is not None:
                    found[hit[0]] = max(found.get(hit[0], 0.0), hit[1])
        # IME slips: a kanji word the knowledge base never uses, read aloud, is often one it
        # does (非難所 -> ひなんじょ -> 避難所, 建 + 診 -> けんしん -> 健診). One unknown word, or
        # two or three in a row, must read exactly as a word of two or more characters; what
        # is found counts for less than a word written right, and replaces the slip.
        words = [t for t in analysis.tokens if not t.part]
        i = 0
        while i < len(words):
            hit_at = None
            for k in (3, 2, 1):
                group = words[i : i + k]
                # kana pieces may sit in a slip (し援 for 支援), but one kanji word must be unknown
                if len(group) < k or not all(self._slip(t) or self._kana_piece(t) for t in group) \
                        or not any(self._slip(t) for t in group):
                    continue
                hit = lex.get("".join(t.reading for t in group))
                if hit is not None and len(hit[0]) >= 2 and hit[0] not in {t.form for t in group}:
                    hit_at = (k, hit)
                    break
            if hit_at is None:
                i += 1
                continue
            k, (form, weight) = hit_at
            found[form] = max(found.get(form, 0.0), weight * self.params.homophone_weight)
            for t in words[i : i + k]:
                found.setdefault(t.form, 0.0)
            i += k
        folded = fold_kana(analysis.prepared)
        replacements: list[tuple[str, str]] = []
        for run in _KANA_RUN.finditer(folded):
            hits = _segment(run.group(), lex, _KANA_FUNCTION)
            for reading, form, weight in hits:
                found[form] = max(found.get(form, 0.0), weight)
                if _KANJI_RE.search(form):
                    replacements.append((reading, form))
            if hits:
                # Sudachi's own cut of a run the readings explain is noise (てん + 腫 of てんしゅつ).
                for t in analysis.tokens:
                    if t.kana and t.reading and t.reading in run.group() and t.form not in found:
                        found[t.form] = -1.0
        for reading, form in replacements:
            embed_text = embed_text.replace(reading, form, 1)
        return found, embed_text

    def _slip(self, t: Token) -> bool:
        """A word that may be an IME slip: written in kanji, read, unknown to the entries."""
        return not t.kana and bool(t.reading) and t.form not in self.words.vocab and _KANJI_RE.search(t.form) is not None

    def _kana_piece(self, t: Token) -> bool:
        """A short kana word the entries never use (a piece of a slip such as し of し援)."""
        return t.kana and len(t.reading) <= 2 and t.form not in self.words.vocab

    def _features(self, q: _Query) -> dict[str, np.ndarray]:
        """Per-entry similarity features, each in [0, 1]."""
        n = len(self.ids)
        feats = {"word": self.words.coverage(q.terms, n), "char": self.chars.coverage(q.grams, n)}
        phrase = np.zeros(n, dtype=np.float32)
        qw = {t: w * self.words.idf_of(t) for t, w in q.terms.items()}
        qnorm = math.sqrt(sum(v * v for v in qw.values()))
        if qnorm > 0:
            known = {self.words.vocab[t]: v for t, v in qw.items() if t in self.words.vocab}
            dots = self.phrase_postings.accumulate(known, len(self.phrase_norms))
            cos = dots / (self.phrase_norms * np.float32(qnorm))
            phrase = np.maximum.reduceat(cos, self.phrase_starts)
        feats["phrase"] = phrase
        emb = self._embed_scores(q)
        if emb is not None:
            feats["embed"] = emb
        return feats

    def _fuse(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """Weighted mean of the features (weights renormalised over those present)."""
        p = self.params
        weights = {"word": p.w_word, "phrase": p.w_phrase, "char": p.w_char, "embed": p.w_embed}
        total = sum(weights[k] for k in feats)
        fused = sum((weights[k] / total) * v for k, v in feats.items())
        return np.clip(fused, 0.0, 1.0).astype(np.float32)

    def _score(self, q: _Query) -> tuple[np.ndarray, list[int]]:
        """All entries' scores plus the indices of the top candidates, best first."""
        fused, order, _ = self._score_all(q)
        return fused, order

    def _score_all(self, q: _Query) -> tuple[np.ndarray, list[int], dict[str, np.ndarray]]:
        """Scores, top candidates (best first) and the per-entry features behind them."""
        n = len(self.ids)
        p = self.params
        if n == 0 or not q.norm:
            return np.zeros(n, dtype=np.float32), [], {}
        feats = self._features(q)
        fused = self._fuse(feats)

        k = min(TOP_K, n)
        top = np.argpartition(-fused, k - 1)[:k] if k < n else np.arange(n)
        # The fuzzy fast path: a question (nearly) equal to a stored phrasing is that entry.
        for i in self.exact.get(q.norm, ()):
            fused[i] = 1.0
        for i in top:
            if len(q.norm) >= 4:
                hit = process.extractOne(q.norm, self.phrase_texts[i], scorer=fuzz.ratio)
                best = hit[1] / 100.0 if hit else 0.0
                if best >= p.fuzzy_floor:
                    fused[i] = max(fused[i], best)
            if p.keyword_bonus > 0:
                spotted = self._spot_keywords(q.norm, i)
                fused[i] += p.keyword_bonus * spotted * (1.0 - fused[i])
            if q.asks and p.asks_bonus > 0:
                # Sibling entries of an imported FAQ differ in what they ask (養育医療の申請場所 /
                # 申請者 / 申請方法): the one asking what the resident asks moves up.
                if q.asks & self.asks[i]:
                    fused[i] += p.asks_bonus * (1.0 - fused[i])
                elif self.asks[i]:
                    fused[i] -= p.asks_bonus * fused[i]
        cand = set(int(i) for i in top) | set(self.exact.get(q.norm, ()))
        # Stable order: score desc, then knowledge-base order, so ties are deterministic.
        order = sorted(cand, key=lambda i: (-float(fused[i]), i))
        return fused, order, feats

    def _spot_keywords(self, norm: str, i: int) -> float:
        """Similarity of a misspelt keyword of the entry found in the question, else 0.

        Keywords spelt right are already counted by the word and bigram indexes."""
        best = 0.0
        for kw in self.keywords[i]:
            if kw in norm:
                return 0.0
            if len(kw) >= 4:
                r = fuzz.partial_ratio(kw, norm) / 100.0
                if r >= 0.85:
                    best = max(best, r)
        return best

    def prime(self, texts: list[str]) -> None:
        """Prepare these questions and embed them in one model call for this thread's next
        match() calls.

        The model streams its weights once per call, so a batch costs about as much as one
        question. What the next matches do not use is dropped at the next prime().
        """
        if self.embeddings is None or self.embedder is None:
            return
        from faq.embed import EmbeddingUnavailable

        _PRIMED.queries = {}
        _PRIMED.vectors = {}
        queries = {t: self._prepare(t) for t in dict.fromkeys(texts)}
        keys = list(dict.fromkeys(q.embed_text for q in queries.values()))
        try:
            vectors = self.embedder.encode(keys)  # type: ignore[attr-defined]
        except EmbeddingUnavailable:
            return  # each question is embedded (or falls back) on its own in match()
        _PRIMED.queries = queries
        _PRIMED.vectors = dict(zip(keys, vectors))

    def _embed_scores(self, q: _Query) -> np.ndarray | None:
        """Embedding cosine per entry rescaled so unrelated text is ~0, or None if off."""
        if self.embeddings is None or self.embedder is None:
            return None
        from faq.embed import EmbeddingUnavailable

        key = q.embed_text
        primed = getattr(_PRIMED, "vectors", None)
        try:
            qv = primed.pop(key) if primed and key in primed else self.embedder.encode([key])[0]  # type: ignore[attr-defined]
        except EmbeddingUnavailable as exc:
            log.warning("embedding failed, lexical-only for this question: %s", exc)
            return None
        sims = self.embeddings @ qv
        per_entry = sims if len(sims) == len(self.ids) else np.maximum.reduceat(sims, self.phrase_starts)
        floor = self.params.embed_floor
        return np.clip((per_entry - floor) / (1.0 - floor), 0.0, 1.0)

    @property
    def decision_model(self) -> DecisionModel | None:
        """The calibrated decision for this index's mode, or None (then thresholds decide)."""
        return load_model("embed" if self.embeddings is not None else "lexical")

    def signals(self, text: str) -> tuple[Signals | None, tuple[Candidate, ...], bool]:
        """What the decision looks at for a question, the top candidates, and whether a rule
        forbids a direct answer whatever the signals (pasted text, another town named)."""
        q = self._prepare(text)
        fused, order, feats = self._score_all(q)
        cands = tuple(Candidate(self.ids[i], round(float(fused[i]), 4)) for i in order[:3] if fused[i] > 0)
        return (self._signals(q, fused, order, feats) if cands else None), cands, not self._answerable(text, q)

    def _answerable(self, text: str, q: _Query) -> bool:
        """False for pasted text and for questions about a place the knowledge base does not know."""
        elsewhere = any(not self._known_place(pl) for pl in q.places)
        return len(text or "") <= MAX_ANSWERABLE_CHARS and not elsewhere

    def _known_place(self, place: str) -> bool:
        """A place the knowledge base speaks of, or a part of one (烏山 of 那須烏山市)."""
        if place in self.known_places:
            return True
        return len(place) >= 2 and any(place in known for known in self.known_places)

    def _signals(self, q: _Query, fused: np.ndarray, order: list[int], feats: dict[str, np.ndarray]) -> Signals:
        """Margin over the runner-up, agreement of the rankings, coverage, length."""
        i1 = order[0]
        s1 = float(fused[i1])
        s2 = float(fused[order[1]]) if len(order) > 1 else 0.0
        word, char = feats["word"], feats["char"]
        emb = feats.get("embed")

        def runner_up(values: np.ndarray) -> float:
            if len(values) < 2:
                return 0.0
            top2 = np.partition(values, len(values) - 2)[-2:]
            return float(top2[0]) if float(values[i1]) >= float(top2[1]) else float(top2[1])

        total = sum(w * self.words.idf_of(t) for t, w in q.terms.items())
        unknown = sum(w * self.words.idf_of(t) for t, w in q.terms.items() if t not in self.words.vocab)
        fuzzy = 0.0
        if len(q.norm) >= 4:
            hit = process.extractOne(q.norm, self.phrase_texts[i1], scorer=fuzz.ratio)
            fuzzy = hit[1] / 100.0 if hit else 0.0
        return Signals(
            score=s1,
            margin=s1 - s2,
            word=float(word[i1]),
            word_margin=float(word[i1]) - runner_up(word),
            char=float(char[i1]),
            embed=float(emb[i1]) if emb is not None else 0.0,
            embed_margin=(float(emb[i1]) - runner_up(emb)) if emb is not None else 0.0,
            agree=float(int(np.argmax(word)) == i1) + (float(int(np.argmax(emb)) == i1) if emb is not None else 0.0),
            unknown_share=unknown / total if total > 0 else 1.0,
            length=math.log1p(len(q.norm)),
            terms=math.log1p(len(q.terms)),
            exact=float(len(self.exact.get(q.norm, ())) == 1 or fuzzy >= self.params.fuzzy_floor),
            imported=float(len(self.phrase_texts[i1]) <= FEW_PHRASINGS),
        )

    def match(self, text: str, thresholds: Thresholds | None = None, answer_threshold: float | None = None,
              answer_head: Callable[[Signals, Candidate], float] | None = None) -> Decision:
        """Decide answer / clarify / unknown for one question.

        With no thresholds given, the calibrated decision model (faq/decision.py) decides from
        the signals; `answer_head` (signals, best candidate -> probability that it is right) and
        `answer_threshold`, when given, take the place of its answer head and threshold (the
        translation index's model for foreign questions); explicit thresholds (settings, tests,
        sweeps) use the score rule."""
        q = self._prepare(text)
        fused, order, feats = self._score_all(q)
        cands = tuple(Candidate(self.ids[i], round(float(fused[i]), 4)) for i in order[:3] if fused[i] > 0)
        if not cands:
            return Decision("unknown", None, 0.0, ())
        s1 = cands[0].score
        answerable = self._answerable(text, q)
        model = self.decision_model if thresholds is None else None
        if model is not None and answer_threshold is not None:
            model = replace(model, answer_threshold=answer_threshold)
        if model is not None:
            signals = self._signals(q, fused, order, feats)
            kind, confidence = model.decide(signals, answer_head(signals, cands[0]) if answer_head else None)
            if kind == "answer" and not answerable:
                kind = "clarify"
            return Decision(kind, cands[0].entry_id if kind == "answer" else None,
                            round(confidence, 4), cands)
        th = thresholds or self.default_thresholds
        s2 = cands[1].score if len(cands) > 1 else 0.0
        exact_hit = len(self.exact.get(q.norm, ())) == 1
        if s1 < th.clarify:
            return Decision("unknown", None, s1, cands)
        confident = exact_hit or (s1 >= th.answer and s1 - s2 >= th.margin)
        if confident and answerable:
            return Decision("answer", cands[0].entry_id, s1, cands)
        return Decision("clarify", None, s1, cands)


# Question vectors embedded ahead by MatcherIndex.prime(), per thread, used once.
_PRIMED = threading.local()


@dataclass(frozen=True)
class _Query:
    """A question prepared for scoring."""

    raw: str
    norm: str
    terms: dict[str, float]
    grams: dict[str, float]
    places: tuple[str, ...]  # place names the question mentions
    embed_text: str = ""  # what the embedding model sees: filler cut, kana words in kanji
    asks: frozenset[str] = frozenset()  # what the question asks for (question_asks)


_ASKS = {
    kind: re.compile("|".join(words))
    for kind, words in {
        "where": ("どこ", "場所", "窓口", "申請先", "提出先", "受け取り先", "会場", "どちら"),
        "when": ("いつ", "時期", "期限", "期間", "期日", "何日", "何時", "日程", "締め切り", "締切", "までに"),
        "who": ("誰", "だれ", "申請者", "本人以外", "代理"),
        "need": ("必要なもの", "必要な物", "必要書類", "持ち物", "何が必要", "何を持", "もっていく", "持っていく", "書類"),
        "cost": ("いくら", "費用", "料金", "手数料", "金額", "無料", "有料", "自己負担"),
        "lost": ("紛失", "なくし", "無くし", "失くし", "忘れ"),
        "change": ("変更", "変わ", "かわった", "変えたい"),
        "how": ("どうやって", "どうすれば", "どのように", "どうしたら", "方法", "手続", "流れ", "やり方", "仕方", "申込方法",
                "申し込み方"),
        "if-not": ("どうなる", "どうなり", "しないと", "しなかった", "出さない", "遅れ"),
    }.items()
}


def question_asks(text: str) -> frozenset[str]:
    """What a question asks for: where, when, who, what is needed, cost, lost, change, how,
    what happens if not."""
    norm = normalize(text)
    return frozenset(kind for kind, pattern in _ASKS.items() if pattern.search(norm))


def _segment(run: str, lex: dict[str, tuple[str, float]],
             function: frozenset[str] = frozenset()) -> list[tuple[str, str, float]]:
    """Cover a kana run with known readings and function words, most characters covered,
    then fewest pieces.

    Returns (reading, form, weight) for the readings used; function words and uncovered
    characters stand for nothing (てんしゅつとどけだしたい -> 転出届)."""
    n = len(run)
    # best[i] = (covered, -words, path) for run[:i]
    best: list[tuple[int, int, tuple[tuple[int, int], ...]]] = [(0, 0, ())] + [(-1, 0, ())] * n
    for i in range(n):
        cov, neg, path = best[i]
        if cov < 0:
            continue
        if (cov, neg) > best[i + 1][:2]:
            best[i + 1] = (cov, neg, path)
        for j in range(i + 1, min(n, i + _MAX_READING) + 1):
            piece = run[i:j]
            if j - i >= 2 and piece in lex:
                cand = (cov + j - i, neg - 1, path + ((i, j),))
            elif piece in function:
                cand = (cov + j - i, neg - 1, path)
            else:
                continue
            if cand[:2] > best[j][:2]:
                best[j] = cand
    out = []
    for i, j in best[n][2]:
        form, weight = lex[run[i:j]]
        out.append((run[i:j], form, weight))
    return out


def _release_free_heap() -> None:
    """Hand the build's freed scratch memory back to the OS (glibc keeps it otherwise).

    Building a large index churns through many small temporary objects; without this a
    10,000-entry build leaves ~140 MB of free heap counted in the process's RSS."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _embeddings_installed() -> bool:
    """Whether the embedding package is importable (default for use_embeddings=None)."""
    from faq.embed import package_version

    return package_version() is not None
