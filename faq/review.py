"""Unanswered-question review: group what the bot could not answer into clusters staff act on.

A question is "unanswered" when the bot said it did not know, when the resident answered
「役に立たなかった」, or when they chose 「どれでもない」 after 「もしかして」. Questions are grouped
greedily and deterministically: identical normalised texts first, then by the similarity of their
content words (Sudachi tokens weighted by how specific they are in the knowledge base; sentence
embeddings help when the package is installed, but only between questions sharing a word).

A cluster's identity is the hash of a normalised member text, so the same cluster is found again
after new questions arrive. Staff decisions (ReviewDecision) take the cluster's questions out of the
queue (ReviewMark); an out-of-scope decision also keeps its member texts, and later questions similar
to them join it instead of reappearing.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from bot.db import utcnow
from bot.models import StaffUser
from bot.staff_languages import language_order, staff_label
from bot.text import multi_line
from faq import service
from faq.models import FaqEntry, QuestionLog, ReviewDecision, ReviewMark
from faq.normalize import clean, normalize, token_parts

log = logging.getLogger(__name__)

REASON_LABELS = {"unknown": "回答できなかった", "not_helpful": "「役に立たなかった」", "none_of_these": "「どれでもない」"}
# Where questions were asked (faq_question_log.channel).
CHANNEL_LABELS = {"line": "LINE", "web": "ホームページ"}
KIND_LABELS = {"out_of_scope": "対象外", "attached": "既存の項目に追加", "created": "新しい項目を作成"}
DEFAULT_DAYS = 90
MAX_ROWS = 5000  # newest unanswered questions considered per review
LEXICAL_THRESHOLD = 0.45  # cosine of the weighted content words
EMBED_THRESHOLD = 0.65  # sentence-embedding cosine, between questions sharing a specific word
EMBED_LEXICAL_FLOOR = 0.15  # ... and with at least this much in common in words
SHARED_WORD_MIN = 0.3  # a shared word must weigh this much in both for the embedding to count
MAX_COMPARED = 3  # a new question is compared with the most asked members only (no long chains)
MAX_MEMBER_TEXTS = 200  # texts an out-of-scope decision keeps to recognise later questions
_NOUN_POS = frozenset({"名詞", "接尾辞", "接頭辞"})
# Politeness and question boilerplate the tokenizer keeps as content words (すみません -> 済む,
# について -> 付く, お願いします -> 願う): they say nothing about the topic and glue clusters together.
_BOILERPLATE = frozenset(normalize(w) for w in (
    "すむ", "つく", "願う", "質問", "申し訳", "無い", "遣り方", "困る", "一寸", "宜しく", "聞く", "教える", "知る",
))


@dataclass
class Phrasing:
    """One distinct (normalised) question with how often and when it was asked."""

    norm: str
    text: str  # the masked text as residents wrote it (most frequent form)
    count: int = 0
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    log_ids: list[int] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)  # entries that were answered but did not help
    forms: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)  # "line" / "web" -> questions
    languages: Counter[str] = field(default_factory=Counter)  # detected language ("ja" when none) -> questions


@dataclass
class Cluster:
    """Similar unanswered questions."""

    phrasings: list[Phrasing]

    @property
    def representative(self) -> Phrasing:
        """The most asked phrasing (ties: the one that formed the cluster)."""
        return max(self.phrasings, key=lambda p: p.count)  # max keeps the first of equals

    @property
    def key(self) -> str:
        """Stable id of the cluster (found again through any of its phrasings: see find_cluster)."""
        return cluster_key(self.representative.norm)

    @property
    def count(self) -> int:
        """How many times its questions were asked."""
        return sum(p.count for p in self.phrasings)

    @property
    def first_seen(self) -> dt.datetime:
        """When the first of its questions was asked."""
        return min(p.first_seen for p in self.phrasings if p.first_seen)

    @property
    def last_seen(self) -> dt.datetime:
        """When the latest of its questions was asked."""
        return max(p.last_seen for p in self.phrasings if p.last_seen)

    @property
    def log_ids(self) -> list[int]:
        """The logged questions of the cluster."""
        return sorted(i for p in self.phrasings for i in p.log_ids)

    @property
    def reasons(self) -> Counter[str]:
        """Why its questions are here (reason -> questions)."""
        total: Counter[str] = Counter()
        for p in self.phrasings:
            total.update(p.reasons)
        return total

    @property
    def answered(self) -> Counter[str]:
        """Entries given as answers that residents said did not help."""
        total: Counter[str] = Counter()
        for p in self.phrasings:
            total.update(p.answered)
        return total

    @property
    def channel_counts(self) -> list[tuple[str, str, int]]:
        """(channel, its Japanese name, questions) for the channels its questions came from, LINE first."""
        total: Counter[str] = Counter()
        for p in self.phrasings:
            total.update(p.channels)
        order = list(CHANNEL_LABELS) + sorted(set(total) - set(CHANNEL_LABELS))
        return [(ch, CHANNEL_LABELS.get(ch, ch), total[ch]) for ch in order if total[ch]]

    @property
    def language_counts(self) -> list[tuple[str, str, int]]:
        """(language, its name for staff, questions) of the languages other than Japanese its questions
        were detected in, in the order residents are offered them (Japanese is not shown: it is the usual)."""
        total: Counter[str] = Counter()
        for p in self.phrasings:
            total.update(p.languages)
        return [(code, staff_label(code), total[code]) for code in sorted(total, key=language_order) if code != "ja"]

    def examples(self, n: int = 5) -> list[Phrasing]:
        """The most asked phrasings."""
        return sorted(self.phrasings, key=lambda p: (-p.count, p.norm))[:n]

    def has(self, key: str) -> bool:
        """True when one of its phrasings has this key."""
        return any(cluster_key(p.norm) == key for p in self.phrasings)


@dataclass
class ReviewQueue:
    """The clusters to review, and how many new questions joined each out-of-scope decision."""

    clusters: list[Cluster]
    joined_out_of_scope: dict[int, int]
    questions: int
    since: dt.datetime


def cluster_key(norm: str) -> str:
    """The short hash that names a cluster."""
    return hashlib.sha1(norm.encode("utf-8")).hexdigest()[:12]


def reason_of(decision: str, is_helpful: bool | None, chosen_topic: str | None) -> str:
    """Why a logged question counts as unanswered."""
    if decision == "unknown":
        return "unknown"
    if chosen_topic == "":
        return "none_of_these"
    return "not_helpful"


# --- features and similarity ------------------------------------------------------------------------


@functools.lru_cache(maxsize=50_000)
def _words(text: str) -> tuple[tuple[str, float], ...]:
    """Content words with a part-of-speech weight (nouns count most; parts of compounds half)."""
    out: dict[str, float] = {}
    for t in token_parts(text):
        if t.form in _BOILERPLATE:
            continue
        w = 1.0 if t.pos in _NOUN_POS else 0.6
        if t.part:
            w *= 0.5
        if w > out.get(t.form, 0.0):
            out[t.form] = w
    return tuple(sorted(out.items()))


class _Specificity:
    """How specific a word is in the city's knowledge base (idf over entries, scaled to (0, 1])."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _cache: ClassVar[dict[str, dict[str, int]]] = {}

    def __init__(self, df: dict[str, int], n: int) -> None:
        self.df = df
        self.n = n
        self.top = math.log((n + 1) / 0.5) if n else 1.0

    def __call__(self, word: str) -> float:
        if not self.n:
            return 1.0
        return max(0.15, math.log((self.n + 1) / (self.df.get(word, 0) + 0.5)) / self.top)

    @classmethod
    def of(cls, entries: Sequence[Any]) -> _Specificity:
        """From entries with title/question/alternates/keywords (cached per content)."""
        digest = hashlib.sha256()
        for e in entries:
            digest.update(repr((e.title, e.question, tuple(e.alternates or ()), tuple(e.keywords or ()))).encode())
        key = digest.hexdigest()
        with cls._lock:
            df = cls._cache.get(key)
        if df is None:
            counts: Counter[str] = Counter()
            for e in entries:
                words: set[str] = set()
                for text in (e.title, e.question, *(e.alternates or ()), *(e.keywords or ())):
                    words.update(w for w, _ in _words(text))
                counts.update(words)
            df = dict(counts)
            with cls._lock:
                if len(cls._cache) > 8:
                    cls._cache.clear()
                cls._cache[key] = df
        return cls(df, len(entries))


@dataclass
class _Item:
    phrasing: Phrasing
    weights: dict[str, float]
    norm2: float
    vector: np.ndarray | None = None


def _item(p: Phrasing, spec: _Specificity) -> _Item:
    weights = {w: pos * spec(w) for w, pos in _words(p.text)}
    return _Item(p, weights, math.sqrt(sum(v * v for v in weights.values())))


def similarity(a: _Item, b: _Item) -> float:
    """Cosine of weighted content words; the embedding cosine when they share a specific word."""
    if a.phrasing.norm == b.phrasing.norm:
        return 1.0
    if not a.norm2 or not b.norm2:
        return 0.0
    shared = a.weights.keys() & b.weights.keys()
    if not shared:
        return 0.0
    lexical = sum(a.weights[w] * b.weights[w] for w in shared) / (a.norm2 * b.norm2)
    if (lexical >= EMBED_LEXICAL_FLOOR and a.vector is not None and b.vector is not None
            and any(min(a.weights[w], b.weights[w]) >= SHARED_WORD_MIN for w in shared)):
        cos = float(a.vector @ b.vector)
        # Map the embedding threshold onto the lexical one so a single cut-off applies.
        if cos >= EMBED_THRESHOLD:
            return max(lexical, LEXICAL_THRESHOLD + (cos - EMBED_THRESHOLD))
    return lexical


def _embed(items: list[_Item], use_embeddings: bool | None) -> None:
    """Attach sentence vectors (cached on disk) when embeddings are wanted and work."""
    from faq.embed import Embedder, EmbeddingUnavailable, package_version

    if use_embeddings is False or (use_embeddings is None and package_version() is None) or not items:
        return
    try:
        vecs = Embedder.shared().encode_cached([clean(i.phrasing.text) for i in items], service.EMBEDDING_CACHE_DIR)
    except EmbeddingUnavailable as exc:
        log.warning("review clusters are lexical-only: %s", exc)
        return
    matrix = np.asarray(vecs, dtype=np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)
    for item, vec in zip(items, matrix):
        item.vector = vec


def group_phrasings(phrasings: Sequence[Phrasing], entries: Sequence[Any] = (),
                    seeds: Sequence[tuple[int, Sequence[Phrasing]]] = (), *,
                    use_embeddings: bool | None = None) -> tuple[list[Cluster], dict[int, list[Phrasing]]]:
    """Greedy clustering: each phrasing (most asked first) joins the most similar cluster, or starts one.

    `seeds` are (decision id, member phrasings) of out-of-scope decisions: phrasings joining
    them are returned separately, keyed by decision id, instead of as clusters.
    """
    spec = _Specificity.of(entries)
    ordered = sorted(phrasings, key=lambda p: (-p.count, -(p.last_seen.timestamp() if p.last_seen else 0), p.norm))
    items = [_item(p, spec) for p in ordered]
    seed_items = [(decision_id, [_item(p, spec) for p in members]) for decision_id, members in seeds]
    _embed(items + [i for _, members in seed_items for i in members], use_embeddings)

    groups: list[list[_Item]] = []
    owner: list[int | None] = []  # decision id of seeded groups
    by_word: dict[str, set[int]] = {}
    by_norm: dict[str, int] = {}

    def join(g: int, item: _Item) -> None:
        groups[g].append(item)
        by_norm.setdefault(item.phrasing.norm, g)
        for w in item.weights:
            by_word.setdefault(w, set()).add(g)

    for decision_id, members in seed_items:
        groups.append([])
        owner.append(decision_id)
        for item in members:
            join(len(groups) - 1, item)
    joined: dict[int, list[Phrasing]] = {}
    for item in items:
        g_exact = by_norm.get(item.phrasing.norm)
        best, best_score = (g_exact, 1.0) if g_exact is not None else (None, 0.0)
        if best is None:
            candidates = sorted({g for w in item.weights for g in by_word.get(w, ())})
            for g in candidates:
                score = max(similarity(item, m) for m in groups[g][:MAX_COMPARED])
                if score > best_score:
                    best, best_score = g, score
        if best is None or best_score < LEXICAL_THRESHOLD:
            groups.append([])
            owner.append(None)
            best = len(groups) - 1
        join(best, item)
        seeded_by = owner[best]
        if seeded_by is not None:
            joined.setdefault(seeded_by, []).append(item.phrasing)
    clusters = [Cluster([i.phrasing for i in g]) for g, o in zip(groups, owner) if o is None and g]
    return clusters, joined


# --- the queue --------------------------------------------------------------------------------------


def unanswered_phrasings(session: Session, municipality: str, since: dt.datetime,
                         limit: int = MAX_ROWS) -> tuple[list[Phrasing], int]:
    """The unanswered questions not yet dealt with, grouped by normalised text; and how many rows."""
    marked = exists(select(ReviewMark.log_id).where(ReviewMark.log_id == QuestionLog.id))
    rows = session.execute(
        select(QuestionLog.id, QuestionLog.asked_at, QuestionLog.masked_text, QuestionLog.decision,
               QuestionLog.topic, QuestionLog.is_helpful, QuestionLog.chosen_topic, QuestionLog.channel,
               QuestionLog.language)
        .where(
            QuestionLog.municipality == municipality,
            QuestionLog.asked_at >= since,
            or_(QuestionLog.decision == "unknown", QuestionLog.is_helpful.is_(False), QuestionLog.chosen_topic == ""),
            ~marked,
        )
        .order_by(QuestionLog.id.desc())
        .limit(limit)
    ).all()
    by_norm: dict[str, Phrasing] = {}
    for row in rows:
        norm = normalize(row.masked_text)
        if not norm:
            continue
        p = by_norm.get(norm)
        if p is None:
            p = by_norm[norm] = Phrasing(norm=norm, text=row.masked_text)
        p.count += 1
        p.log_ids.append(row.id)
        p.forms[row.masked_text] += 1
        p.channels[row.channel or "line"] += 1
        p.languages[row.language or "ja"] += 1
        p.first_seen = row.asked_at if p.first_seen is None else min(p.first_seen, row.asked_at)
        p.last_seen = row.asked_at if p.last_seen is None else max(p.last_seen, row.asked_at)
        reason = reason_of(row.decision, row.is_helpful, row.chosen_topic)
        p.reasons[reason] += 1
        if reason == "not_helpful" and row.topic:
            p.answered[row.topic] += 1
    for p in by_norm.values():
        p.text = p.forms.most_common(1)[0][0]
    return list(by_norm.values()), len(rows)


def _seed_phrasings(decision: ReviewDecision) -> list[Phrasing]:
    out = []
    for text in decision.member_texts or []:
        norm = normalize(text)
        if norm:
            out.append(Phrasing(norm=norm, text=text))
    return out


def review_queue(session: Session, municipality: str, *, days: int = DEFAULT_DAYS, sort: str = "size",
                 use_embeddings: bool | None = None, now: dt.datetime | None = None) -> ReviewQueue:
    """The clusters of unanswered questions of the last `days` days, biggest (or newest) first."""
    since = (now or utcnow()) - dt.timedelta(days=max(days, 1))
    phrasings, total = unanswered_phrasings(session, municipality, since)
    entries = session.scalars(select(FaqEntry).where(FaqEntry.municipality == municipality)).all()
    decisions = session.scalars(
        select(ReviewDecision).where(ReviewDecision.municipality == municipality, ReviewDecision.kind == "out_of_scope",
                                     ReviewDecision.is_active.is_(True)).order_by(ReviewDecision.id)
    ).all()
    seeds = [(d.id, _seed_phrasings(d)) for d in decisions]
    clusters, joined = group_phrasings(phrasings, entries, seeds, use_embeddings=use_embeddings)
    if sort == "recent":
        clusters.sort(key=lambda c: (-c.last_seen.timestamp(), -c.count, c.key))
    else:
        clusters.sort(key=lambda c: (-c.count, -c.last_seen.timestamp(), c.key))
    return ReviewQueue(clusters, {d: sum(p.count for p in ps) for d, ps in joined.items()}, total, since)


def find_cluster(queue: ReviewQueue, key: str) -> Cluster | None:
    """The cluster holding the phrasing with this key (its representative may have changed)."""
    for cluster in queue.clusters:
        if cluster.key == key:
            return cluster
    for cluster in queue.clusters:
        if cluster.has(key):
            return cluster
    return None


# --- suggestions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """An entry the cluster's questions probably belong to."""

    entry_id: str
    title: str
    score: float  # mean matcher score over the cluster's questions (weighted by how often asked)
    top_hits: int  # questions for which it ranked first
    was_unhelpful: int  # times it was answered and residents said it did not help


def suggest_entries(session: Session, municipality: str, cluster: Cluster, limit: int = 5,
                    max_questions: int = 20) -> list[Suggestion]:
    """Rank the city's published entries by the matcher's scores summed over the cluster's questions."""
    index, by_id = service.INDEXES.get(session, municipality)
    if not index.ids:
        return []
    total = np.zeros(len(index.ids), dtype=np.float64)
    hits: Counter[int] = Counter()
    weight = 0
    for p in cluster.examples(max_questions):
        scores = np.asarray(index.scores(p.text), dtype=np.float64)
        if not scores.size:
            continue
        total += scores * p.count
        weight += p.count
        if scores.max() > 0:
            hits[int(scores.argmax())] += p.count
    if not weight:
        return []
    mean = total / weight
    order = sorted(range(len(mean)), key=lambda i: (-mean[i], index.ids[i]))[:limit]
    unhelpful = cluster.answered
    return [
        Suggestion(index.ids[i], by_id[index.ids[i]].title, round(float(mean[i]), 3), hits[i], unhelpful.get(index.ids[i], 0))
        for i in order if mean[i] > 0
    ]


# --- decisions --------------------------------------------------------------------------------------


def _decide(session: Session, municipality: str, cluster: Cluster, kind: str, actor: StaffUser | None, *,
            entry_id: str | None = None, reason: str = "") -> ReviewDecision:
    members = [p.text for p in cluster.examples(MAX_MEMBER_TEXTS)]
    decision = ReviewDecision(
        municipality=municipality, kind=kind, cluster_key=cluster.key, representative=cluster.representative.text,
        member_texts=members, examples=members[:5], question_count=cluster.count, entry_id=entry_id,
        reason=reason, is_active=True, decided_at=utcnow(),
        staff_user_id=actor.id if actor is not None else None,
        username=(actor.username if actor is not None else "(CLI)")[:64],
    )
    session.add(decision)
    session.flush()
    session.add_all(ReviewMark(log_id=log_id, decision_id=decision.id) for log_id in cluster.log_ids)
    session.flush()
    return decision


def mark_out_of_scope(session: Session, municipality: str, cluster: Cluster, reason: str,
                      actor: StaffUser | None) -> ReviewDecision:
    """Take the cluster out of the queue for good: later similar questions join it (reason required)."""
    reason = multi_line(reason)
    if not reason:
        raise ValueError("対象外にする理由を入力してください。")
    if len(reason) > 500:
        raise ValueError("理由は500文字以内にしてください。")
    return _decide(session, municipality, cluster, "out_of_scope", actor, reason=reason)


def mark_resolved(session: Session, municipality: str, cluster: Cluster, kind: str, entry_id: str,
                  actor: StaffUser | None) -> ReviewDecision:
    """Record that the cluster's questions now belong to an entry ("attached" or "created")."""
    if kind not in ("attached", "created"):
        raise ValueError(kind)
    return _decide(session, municipality, cluster, kind, actor, entry_id=entry_id)


def reopen(session: Session, decision: ReviewDecision) -> None:
    """Put an out-of-scope cluster's questions back in the queue."""
    decision.is_active = False
    session.execute(delete(ReviewMark).where(ReviewMark.decision_id == decision.id))
    session.flush()


def decisions(session: Session, municipality: str, kind: str | None = None, limit: int = 200) -> list[ReviewDecision]:
    """Staff decisions, newest first."""
    query = select(ReviewDecision).where(ReviewDecision.municipality == municipality)
    if kind:
        query = query.where(ReviewDecision.kind == kind)
    return list(session.scalars(query.order_by(ReviewDecision.id.desc()).limit(limit)))
