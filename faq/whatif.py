"""What-if: replay past questions against an edited knowledge base before the edit is saved.

The edited entry set is indexed in memory (nothing is committed); the last N logged questions,
the city's evaluation set and any extra questions (a cluster's) are answered by the current index
and by the edited one, and the differences are reported: answers gained, lost and changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import ROOT
from faq import service
from faq.evaluation import EvalCase, EvalResult, evaluate, parse_eval_tsv
from faq.kb import KB_DIR, KBEntry
from faq.matcher import MAX_QUERY_CHARS, Decision, MatcherIndex
from faq.models import FaqEntry, QuestionLog
from faq.normalize import clean

DEFAULT_RECENT = 300
MAX_RECENT = 5000
SHARED_EVAL = ROOT.parent / "shared" / "eval" / "dev-questions.tsv"
SOURCE_LABELS = {"log": "最近の質問", "eval": "評価セット", "extra": "このクラスタ"}


def eval_file(municipality: str, config: Mapping[str, Any]) -> Path | None:
    """The city's evaluation set: FAQ_EVAL_FILE, else faq/kb/cities/<city>/eval.tsv, else the shared dev set."""
    configured = config.get("FAQ_EVAL_FILE")
    candidates = [Path(configured)] if configured else [KB_DIR / "cities" / municipality / "eval.tsv", SHARED_EVAL]
    return next((p for p in candidates if p.is_file()), None)


def recent_setting(config: Mapping[str, Any]) -> int:
    """How many recent logged questions a what-if replays by default (FAQ_WHATIF_RECENT)."""
    try:
        return min(max(int(config.get("FAQ_WHATIF_RECENT") or DEFAULT_RECENT), 0), MAX_RECENT)
    except (TypeError, ValueError):
        return DEFAULT_RECENT


@dataclass(frozen=True)
class ReplayQuestion:
    """A question to replay; `expected` is known for the evaluation set and for labelled log rows."""

    text: str
    source: str  # "log" | "eval" | "extra"
    expected: frozenset[str] | None = None
    count: int = 1


def _top(decision: Decision) -> str | None:
    return decision.candidates[0].entry_id if decision.candidates else None


@dataclass(frozen=True)
class Outcome:
    """One question answered before and after the edit."""

    question: ReplayQuestion
    before: Decision
    after: Decision

    @property
    def kind(self) -> str:
        """gained | lost | changed | other (clarify/unknown shifts) | same."""
        b, a = self.before, self.after
        if b.kind == "answer" and a.kind == "answer":
            return "same" if b.entry_id == a.entry_id else "changed"
        if a.kind == "answer":
            return "gained"
        if b.kind == "answer":
            return "lost"
        return "same" if (b.kind, _top(b)) == (a.kind, _top(a)) else "other"

    def verdict(self, decision: Decision) -> str | None:
        """For labelled questions: "right" / "wrong" answer, else None."""
        expected = self.question.expected
        if expected is None or decision.kind != "answer":
            return None
        if not expected:
            return "wrong"  # should not have been answered
        return "right" if decision.entry_id in expected else "wrong"


@dataclass
class WhatIfReport:
    """What the edit would change."""

    outcomes: list[Outcome] = field(default_factory=list)
    recent: int = 0
    eval_cases: int = 0
    eval_path: str = ""
    eval_before: EvalResult | None = None
    eval_after: EvalResult | None = None

    def of(self, kind: str) -> list[Outcome]:
        """Outcomes of one kind."""
        return [o for o in self.outcomes if o.kind == kind]

    @property
    def gained(self) -> list[Outcome]:
        """Questions the edit makes the bot answer."""
        return self.of("gained")

    @property
    def lost(self) -> list[Outcome]:
        """Questions the bot answers now and would no longer answer."""
        return self.of("lost")

    @property
    def changed(self) -> list[Outcome]:
        """Questions that would be answered with another entry."""
        return self.of("changed")

    @property
    def other(self) -> list[Outcome]:
        """「もしかして」/「わからない」 shifts."""
        return self.of("other")

    @property
    def questions(self) -> int:
        """How many distinct questions were replayed."""
        return len(self.outcomes)

    def from_source(self, source: str) -> int:
        """How many distinct questions came from one source (log, eval, extra)."""
        return sum(1 for o in self.outcomes if o.question.source == source)


def replay_questions(session: Session, municipality: str, recent: int, eval_path: Path | None,
                     extra: Sequence[str] = ()) -> tuple[list[ReplayQuestion], list[EvalCase]]:
    """The last `recent` logged questions (labelled where residents confirmed an answer), the evaluation set, extras."""
    questions: dict[str, ReplayQuestion] = {}
    for text in extra:
        if text.strip():
            questions.setdefault(text, ReplayQuestion(text, "extra"))
    if recent > 0:
        rows = session.execute(
            select(QuestionLog.masked_text, QuestionLog.decision, QuestionLog.topic, QuestionLog.is_helpful,
                   QuestionLog.chosen_topic)
            .where(QuestionLog.municipality == municipality)
            .order_by(QuestionLog.id.desc()).limit(recent)
        ).all()
        for row in rows:
            label: frozenset[str] | None = None
            if row.chosen_topic:
                label = frozenset({row.chosen_topic})
            elif row.decision == "answer" and row.is_helpful is True and row.topic:
                label = frozenset({row.topic})
            known = questions.get(row.masked_text)
            if known is None:
                questions[row.masked_text] = ReplayQuestion(row.masked_text, "log", label)
            elif known.source == "log":
                questions[row.masked_text] = ReplayQuestion(known.text, "log", known.expected or label, known.count + 1)
    cases: list[EvalCase] = []
    if eval_path is not None:
        try:
            cases = parse_eval_tsv(eval_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cases = []
        for case in cases:
            known = questions.get(case.question)
            if known is None:
                questions[case.question] = ReplayQuestion(case.question, "eval", case.expected)
            elif known.expected is None:
                questions[case.question] = dataclasses.replace(known, expected=case.expected)
    return list(questions.values()), cases


class _PrecomputedQueries:
    """Stands in for the edited index's embedder: the replayed questions are embedded in one batch
    (several times faster than one call per question); anything else goes to the real embedder."""

    def __init__(self, embedder: Any, texts: Sequence[str]) -> None:
        self.embedder = embedder
        keys = list(dict.fromkeys(clean(t[:MAX_QUERY_CHARS]) for t in texts))
        self.vectors: dict[str, np.ndarray] = {}
        for lo in range(0, len(keys), 256):
            chunk = keys[lo : lo + 256]
            self.vectors.update(zip(chunk, embedder.encode(chunk)))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of the texts (the real embedder's, computed in advance when possible)."""
        rows = [self.vectors.get(t) for t in texts]
        if texts and all(r is not None for r in rows):
            return np.stack(rows)  # type: ignore[arg-type]
        return self.embedder.encode(texts)  # type: ignore[no-any-return]


def _query_vectors(index: MatcherIndex, texts: Sequence[str]) -> _PrecomputedQueries | None:
    """The replayed questions embedded in one go with the index's embedder (None: lexical-only index)."""
    from faq.embed import EmbeddingUnavailable

    embedder = getattr(index, "embedder", None)
    if embedder is None or getattr(index, "embeddings", None) is None or not texts:
        return None
    try:
        return _PrecomputedQueries(embedder, texts)
    except EmbeddingUnavailable:
        return None  # the matcher embeds (or falls back) per question as usual


def _using(index: MatcherIndex, vectors: _PrecomputedQueries | None) -> MatcherIndex:
    """A shallow copy of the index that takes query vectors from `vectors` (the shared index is never changed)."""
    if vectors is None or getattr(index, "embeddings", None) is None:
        return index
    try:
        return dataclasses.replace(index, embedder=vectors)
    except (TypeError, ValueError):  # the index is no longer a plain dataclass: just use it
        return index


def published_entries(session: Session, municipality: str) -> list[KBEntry]:
    """The city's published entries as the matcher sees them."""
    rows = session.scalars(
        select(FaqEntry).where(FaqEntry.municipality == municipality, FaqEntry.is_published.is_(True)).order_by(FaqEntry.entry_id)
    ).all()
    return [service.to_kb_entry(r) for r in rows]


def apply_changes(entries: Sequence[KBEntry], changes: Mapping[str, KBEntry | None]) -> list[KBEntry]:
    """The entry set after replacing/adding (KBEntry) or withdrawing (None) entries by id."""
    out = [changes.get(e.id, e) for e in entries]
    present = {e.id for e in entries}
    out.extend(e for i, e in changes.items() if i not in present and e is not None)
    return sorted((e for e in out if e is not None), key=lambda e: e.id)


def what_if(session: Session, municipality: str, changes: Mapping[str, KBEntry | None], config: Mapping[str, Any], *,
            recent: int | None = None, extra_questions: Sequence[str] = (), eval_path: Path | None = None,
            use_eval: bool = True) -> WhatIfReport:
    """Replay questions against the knowledge base with `changes` applied (in memory only)."""
    recent = recent_setting(config) if recent is None else min(max(recent, 0), MAX_RECENT)
    path = (eval_path or eval_file(municipality, config)) if use_eval else None
    questions, cases = replay_questions(session, municipality, recent, path, extra_questions)
    current, _ = service.INDEXES.get(session, municipality)
    thresholds = service.thresholds_from(dict(config), current.default_thresholds)
    proposed = MatcherIndex.build(apply_changes(published_entries(session, municipality), changes),
                                  cache_dir=service.EMBEDDING_CACHE_DIR,
                                  place_names_known=service._place_names(municipality))
    vectors = _query_vectors(proposed, [q.text for q in questions])
    current, proposed = _using(current, vectors), _using(proposed, vectors)
    before: dict[str, Decision] = {}
    after: dict[str, Decision] = {}
    report = WhatIfReport(recent=recent, eval_cases=len(cases), eval_path=str(path) if path else "")
    for q in questions:
        before[q.text] = current.match(q.text, thresholds)
        after[q.text] = proposed.match(q.text, thresholds)
        report.outcomes.append(Outcome(q, before[q.text], after[q.text]))
    if cases:
        report.eval_before = evaluate(cases, lambda text: before.get(text) or current.match(text, thresholds))
        report.eval_after = evaluate(cases, lambda text: after.get(text) or proposed.match(text, thresholds))
    return report
