"""Split kosodate-paraphrases-all.tsv into a study half and a held-out half (stdlib only).

Rule: order the rows by sha1(question, UTF-8) hex digest; rows at even positions go to
kosodate-paraphrases-study.tsv, rows at odd positions to kosodate-paraphrases-heldout.tsv.
The split depends only on the question text, so re-running it gives the same halves.
Tune on the study half only; the held-out half is for the final check.

    python3 tests/data/split_kosodate.py          # rewrite both halves
    python3 tests/data/split_kosodate.py --check  # exit 1 if the files on disk differ
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALL = HERE / "kosodate-paraphrases-all.tsv"
STUDY = HERE / "kosodate-paraphrases-study.tsv"
HELDOUT = HERE / "kosodate-paraphrases-heldout.tsv"
HEADER = "question\texpected"


def read_rows(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != HEADER:
        raise SystemExit(f"{path.name}: first line must be {HEADER!r}")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise SystemExit(f"{path.name}:{n}: expected 'question<TAB>expected'")
        rows.append((parts[0], parts[1]))
    return rows


def split(rows: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    ordered = sorted(rows, key=lambda r: (hashlib.sha1(r[0].encode("utf-8")).hexdigest(), r[0]))
    return ordered[0::2], ordered[1::2]


def render(rows: list[tuple[str, str]]) -> str:
    return "".join(f"{q}\t{e}\n" for q, e in [("question", "expected"), *rows])


def main(argv: list[str]) -> int:
    rows = read_rows(ALL)
    questions = [q for q, _ in rows]
    if len(set(questions)) != len(questions):
        raise SystemExit("duplicate questions in the combined file")
    study, heldout = split(rows)
    outputs = {STUDY: render(study), HELDOUT: render(heldout)}
    if "--check" in argv:
        stale = [p.name for p, text in outputs.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print("out of date: " + ", ".join(stale))
            return 1
        print(f"ok: {len(study)} study, {len(heldout)} held-out")
        return 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(study)} study rows and {len(heldout)} held-out rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
