#!/usr/bin/env python3
"""Split the resident evaluation questions into a study half and a held-out half.

Reproducible from the combined file, standard library only:

    python3 tests/data/split_questions.py            # writes the two halves
    python3 tests/data/split_questions.py --check    # exits 1 if the halves on disk differ

Method: rows are grouped into strata by (city, in-scope or must-not-answer).
Within each stratum rows are sorted by the SHA-1 of the UTF-8 question text;
rows at even positions go to the study half, odd positions to the held-out
half.  Each half keeps the combined file's row order and header.
"""
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALL = HERE / "resident-questions-all.tsv"
STUDY = HERE / "resident-questions-study.tsv"
HELDOUT = HERE / "resident-questions-heldout.tsv"
HEADER = "city\tquestion\texpected\tstyle"


def read_rows(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != HEADER:
        raise SystemExit(f"{path}: bad or missing header")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 4 or not all(p.strip() for p in parts):
            raise SystemExit(f"{path}:{n}: expected 4 non-empty tab-separated fields")
        rows.append(parts)
    return rows


def split(rows):
    strata = {}
    for i, (city, question, expected, _style) in enumerate(rows):
        key = (city, expected == "-")
        strata.setdefault(key, []).append(i)
    study_idx, heldout_idx = set(), set()
    for key in sorted(strata):
        ordered = sorted(strata[key],
                         key=lambda i: hashlib.sha1(rows[i][1].encode("utf-8")).hexdigest())
        for pos, i in enumerate(ordered):
            (study_idx if pos % 2 == 0 else heldout_idx).add(i)
    study = [r for i, r in enumerate(rows) if i in study_idx]
    heldout = [r for i, r in enumerate(rows) if i in heldout_idx]
    return study, heldout


def render(rows):
    return "\n".join([HEADER] + ["\t".join(r) for r in rows]) + "\n"


def main(argv):
    rows = read_rows(ALL)
    study, heldout = split(rows)
    outputs = {STUDY: render(study), HELDOUT: render(heldout)}
    if "--check" in argv:
        bad = [p.name for p, text in outputs.items()
               if not p.exists() or p.read_text(encoding="utf-8") != text]
        if bad:
            print("differs from split of combined file:", ", ".join(bad))
            return 1
        print("halves match the combined file")
        return 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    print(f"study {len(study)}, held-out {len(heldout)} (of {len(rows)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
