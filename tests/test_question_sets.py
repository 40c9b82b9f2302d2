"""The evaluation question sets: well formed, labelled with real ids, split as tests/data/README.md says."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from faq.kb import MUNICIPALITIES
from tests.conftest import SHARED
from tests.data import split_halves
from tests.data.split_halves import SETS, QuestionSet, read_rows, split

DATA = Path(split_halves.__file__).resolve().parent


def ids_of(expected: str) -> set[str]:
    return set() if expected == "-" else set(expected.split("|"))


def test_the_halves_on_disk_are_the_split_of_the_combined_files() -> None:
    assert split_halves.stale_halves() == []
    done = subprocess.run([sys.executable, str(DATA / "split_halves.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("qs", SETS, ids=lambda qs: qs.name)
def test_the_halves_are_disjoint_and_cover_the_combined_file(qs: QuestionSet) -> None:
    combined = read_rows(qs, qs.path("all"))
    study, heldout = read_rows(qs, qs.path("study")), read_rows(qs, qs.path("heldout"))
    q = qs.header.index("question")
    assert not {r[q] for r in study} & {r[q] for r in heldout}
    assert sorted(map(tuple, study + heldout)) == sorted(map(tuple, combined))
    assert abs(len(study) - len(heldout)) <= len({qs.stratum(r) for r in combined})


def test_the_resident_split_halves_every_city_and_the_must_not_answer_questions() -> None:
    qs = SETS[0]
    study, heldout = (read_rows(qs, qs.path(p)) for p in ("study", "heldout"))
    count = lambda rows: Counter(qs.stratum(r) for r in rows)  # noqa: E731
    for key in count(study) | count(heldout):
        assert abs(count(study)[key] - count(heldout)[key]) <= 1, key


def test_resident_questions_name_real_topics_and_cities() -> None:
    with (SHARED / "faq-topics.tsv").open(encoding="utf-8") as f:
        topics = {r["id"] for r in csv.DictReader(f, delimiter="\t")}
    rows = read_rows(SETS[0], SETS[0].path("all"))
    assert {r[0] for r in rows} == set(MUNICIPALITIES)
    assert all(ids_of(r[2]) <= topics for r in rows)
    covered = Counter(t for r in rows for t in ids_of(r[2]))
    assert set(covered) == topics and min(covered.values()) >= 5  # every topic, at least 5 times
    assert sum(1 for r in rows if r[2] == "-") >= 100 and sum(1 for r in rows if r[2] != "-") >= 400


def test_kosodate_paraphrases_name_entries_of_the_sample() -> None:
    with (SHARED / "samples" / "kosodate-faq.csv").open(encoding="utf-8-sig") as f:
        sample = {r["ID"]: r["問い合わせ文"] for r in csv.DictReader(f)}
    rows = read_rows(SETS[1], SETS[1].path("all"))
    assert len(rows) >= 400
    assert all(ids_of(e) <= set(sample) for _, e in rows)
    assert not {q for q, _ in rows} & set(sample.values())  # paraphrases, never the original question


def test_split_is_deterministic_and_by_question_text_only() -> None:
    qs = SETS[1]
    rows = [["質問" + str(i), str(i)] for i in range(10)]
    assert split(qs, rows) == split(qs, list(reversed(rows)))
