"""Evaluation of the matcher on a TSV of questions (columns `question`, `expected`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from faq.matcher import Decision


@dataclass(frozen=True)
class EvalCase:
    """One question and the acceptable entry ids (empty: it should not be answered)."""

    question: str
    expected: frozenset[str]


@dataclass(frozen=True)
class EvalResult:
    """Figures of one evaluation run."""

    in_scope: int
    off_topic: int
    top1: float
    top3: float
    answer_rate: float
    precision: float
    wrong_answer_rate: float
    off_topic_answered: int
    off_topic_answered_rate: float
    misses: tuple[tuple[str, str, str], ...]  # (question, expected, got) for in-scope top-1 misses

    def lines(self) -> list[str]:
        """Human-readable lines (the `faq eval` output)."""
        return [
            f"questions: {self.in_scope} in scope, {self.off_topic} off-topic",
            f"top-1: {self.top1:.1%}",
            f"top-3: {self.top3:.1%}",
            f"answer rate: {self.answer_rate:.1%}",
            f"precision of direct answers: {self.precision:.1%}",
            f"wrong-answer rate: {self.wrong_answer_rate:.1%}",
            f"off-topic answered: {self.off_topic_answered}/{self.off_topic} ({self.off_topic_answered_rate:.1%})",
        ]


def parse_eval_tsv(text: str) -> list[EvalCase]:
    """Read `question<TAB>expected` rows (header required; expected `a|b`, or `-`)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter="\t", quoting=csv.QUOTE_NONE)
    if not reader.fieldnames or not {"question", "expected"} <= set(reader.fieldnames):
        raise ValueError("TSV needs a header with the columns question and expected")
    cases = []
    for row in reader:
        question = (row.get("question") or "").strip()
        expected = (row.get("expected") or "").strip()
        if not question:
            continue
        ids = frozenset() if expected in ("", "-") else frozenset(e.strip() for e in expected.split("|") if e.strip())
        cases.append(EvalCase(question, ids))
    return cases


def evaluate(cases: Sequence[EvalCase], decide: Callable[[str], Decision]) -> EvalResult:
    """Run every case through `decide` and compute the figures."""
    in_scope = [c for c in cases if c.expected]
    off = [c for c in cases if not c.expected]
    top1 = top3 = answered = answered_right = answered_wrong = off_answered = 0
    misses = []
    for case in cases:
        d = decide(case.question)
        ids = [c.entry_id for c in d.candidates]
        if case.expected:
            if ids[:1] and ids[0] in case.expected:
                top1 += 1
            else:
                misses.append((case.question, "|".join(sorted(case.expected)), ids[0] if ids else "-"))
            if any(i in case.expected for i in ids[:3]):
                top3 += 1
        if d.kind == "answer":
            if case.expected:
                answered += 1
            if d.entry_id in case.expected:
                answered_right += 1
            else:
                answered_wrong += 1
                if not case.expected:
                    off_answered += 1
    n, total_answers = max(len(in_scope), 1), answered_right + answered_wrong
    return EvalResult(
        in_scope=len(in_scope), off_topic=len(off),
        top1=top1 / n, top3=top3 / n, answer_rate=answered / n,
        precision=answered_right / total_answers if total_answers else 1.0,
        wrong_answer_rate=answered_wrong / total_answers if total_answers else 0.0,
        off_topic_answered=off_answered, off_topic_answered_rate=off_answered / max(len(off), 1),
        misses=tuple(misses),
    )
