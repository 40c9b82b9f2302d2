#!/usr/bin/env python3
"""Split the evaluation question sets into a study half and a held-out half (stdlib only).

Rule, for both sets: rows are grouped into strata; within a stratum they are ordered by the
SHA-1 of the UTF-8 question text; rows at even positions go to the study half, odd ones to the
held-out half. The split depends only on the combined file, so re-running it gives the same
halves. Tune on the study half only; the held-out half is for reporting.

- resident-questions: strata are (city, in scope or must-not-answer); each half keeps the
  combined file's row order.
- kosodate-paraphrases: one stratum; each half is in SHA-1 order.

    python3 tests/data/split_halves.py            # rewrite the halves of both sets
    python3 tests/data/split_halves.py --check    # exit 1 if a half on disk differs
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class QuestionSet:
    """One combined file and how it is split."""

    name: str  # files are NAME-all.tsv, NAME-study.tsv, NAME-heldout.tsv
    header: tuple[str, ...]
    stratum: Callable[[list[str]], tuple[str, ...]]
    keep_order: bool  # halves in the combined file's order (else in SHA-1 order)

    def path(self, part: str) -> Path:
        return HERE / f"{self.name}-{part}.tsv"


SETS = (
    QuestionSet("resident-questions", ("city", "question", "expected", "style"),
                lambda row: (row[0], str(row[2] == "-")), keep_order=True),
    QuestionSet("kosodate-paraphrases", ("question", "expected"), lambda row: (), keep_order=False),
)


def read_rows(qs: QuestionSet, path: Path) -> list[list[str]]:
    """The rows of a TSV of this set; refuses a wrong header, a wrong field count, empty fields."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != qs.header:
        raise SystemExit(f"{path.name}: first line must be {chr(9).join(qs.header)!r}")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(qs.header) or not all(p.strip() for p in parts):
            raise SystemExit(f"{path.name}:{n}: expected {len(qs.header)} non-empty tab-separated fields")
        rows.append(parts)
    question = qs.header.index("question")
    if len({r[question] for r in rows}) != len(rows):
        raise SystemExit(f"{path.name}: duplicate questions")
    return rows


def split(qs: QuestionSet, rows: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """(study, held-out) by the rule above."""
    question = qs.header.index("question")
    strata: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        strata.setdefault(qs.stratum(row), []).append(i)
    halves: tuple[list[int], list[int]] = ([], [])
    for key in sorted(strata):
        ordered = sorted(strata[key], key=lambda i: hashlib.sha1(rows[i][question].encode("utf-8")).hexdigest())
        for pos, i in enumerate(ordered):
            halves[pos % 2].append(i)
    if qs.keep_order:
        return [rows[i] for i in sorted(halves[0])], [rows[i] for i in sorted(halves[1])]
    return [rows[i] for i in halves[0]], [rows[i] for i in halves[1]]


def render(qs: QuestionSet, rows: list[list[str]]) -> str:
    return "".join("\t".join(r) + "\n" for r in [list(qs.header), *rows])


def stale_halves() -> list[str]:
    """Names of the half files that differ from a fresh split of their combined file."""
    stale = []
    for qs in SETS:
        study, heldout = split(qs, read_rows(qs, qs.path("all")))
        for part, rows in (("study", study), ("heldout", heldout)):
            path = qs.path(part)
            if not path.exists() or path.read_text(encoding="utf-8") != render(qs, rows):
                stale.append(path.name)
    return stale


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_halves()
        print("differ from a split of the combined file: " + ", ".join(stale) if stale else "halves up to date")
        return 1 if stale else 0
    for qs in SETS:
        study, heldout = split(qs, read_rows(qs, qs.path("all")))
        qs.path("study").write_text(render(qs, study), encoding="utf-8")
        qs.path("heldout").write_text(render(qs, heldout), encoding="utf-8")
        print(f"{qs.name}: study {len(study)}, held-out {len(heldout)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
