"""The shipped knowledge base keeps each city to its own: base = what every city shares.

A topic of one city only is an entry with a new id in that city's overlay
(faq/kb/cities/<code>/part*.yaml); see faq/kb/FORMAT.md.
"""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest
import yaml

from faq.kb import KB_DIR, MUNICIPALITIES, KBEntry, load_kb
from tests.conftest import SHARED

# Topics the seeds give for one city only, and the city that has them.
CITY_ONLY = {
    "certificate-kiosk": "nasushiobara",  # seed 001:124-132, 002:358-385
    "tourism-passport": "nasushiobara",  # seed 002:1669-1695
    "michinoeki-joso": "joso",  # seed 003:889-895
}

# Names that belong to one city: the city itself and its own services. No other city's
# knowledge base may use them, and base (shared by all) may use none. (まちコミメール is a
# commercial school-mail service used in many towns, so it is not one city's name.)
CITY_NAMES = {
    "nasukarasuyama": ("那須烏山", "なすからすやま", "なすから"),
    "nasushiobara": ("那須塩原", "なすしおばら", "ゆータク", "ゆーバス", "みるメール", "どこでも窓口", "スマート公民館"),
    "joso": ("常総", "じょうそう", "いばらき", "茨城", "ふれあい号", "きぬっこ", "千姫", "みえる通訳",
             "外国人総合案内"),
    "ohtawara": ("大田原", "おおたわら", "よいちメール"),
}


def _base_ids() -> set[str]:
    ids: set[str] = set()
    for path in sorted((KB_DIR / "base").glob("*.yaml")):
        ids |= {item["id"] for item in yaml.safe_load(path.read_text(encoding="utf-8")) or []}
    return ids


@pytest.fixture(scope="module")
def kbs() -> dict[str, dict[str, KBEntry]]:
    """Every city's loaded knowledge base, by entry id."""
    return {code: {e.id: e for e in load_kb(code)} for code in MUNICIPALITIES}


def test_every_city_has_every_shared_topic(kbs: dict[str, dict[str, KBEntry]]) -> None:
    """Each base entry is loaded for each city."""
    base = _base_ids()
    assert base
    for code, entries in kbs.items():
        assert base - set(entries) == set(), f"{code} lacks shared topics"


def test_no_city_has_another_citys_only_topic(kbs: dict[str, dict[str, KBEntry]]) -> None:
    """A city-only topic is loaded for its city and for no other."""
    base = _base_ids()
    only = {code: set(entries) - base for code, entries in kbs.items()}
    for code, ids in only.items():
        for other, entries in kbs.items():
            if other != code:
                assert ids & set(entries) == set(), f"{other} has {code}'s own topics"
    for topic, city in CITY_ONLY.items():
        assert topic not in base, f"{topic} must not be shared"
        assert [c for c, entries in kbs.items() if topic in entries] == [city]


def test_seed_topics_are_shared_or_some_citys_own(kbs: dict[str, dict[str, KBEntry]]) -> None:
    """Every topic of faq-topics.tsv is in base, or is one city's own topic."""
    topics_file = SHARED / "faq-topics.tsv"
    if not topics_file.is_file():
        pytest.skip(f"{topics_file} not found (set SHARED_DIR)")
    with topics_file.open(encoding="utf-8", newline="") as f:
        topics = {row["id"] for row in csv.DictReader(f, delimiter="\t")}
    base = _base_ids()
    assert topics - base == set(CITY_ONLY)
    for topic in topics - base:
        assert any(topic in entries for entries in kbs.values()), topic


def test_base_names_no_city() -> None:
    """Base entries (every city loads them) show residents no city's name or service names."""
    shown = ("title", "question", "alternates", "keywords", "answer")  # `source` may cite any seed
    for path in sorted((KB_DIR / "base").glob("*.yaml")):
        items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        text = json.dumps([{k: item.get(k) for k in shown} for item in items], ensure_ascii=False)
        for code, names in CITY_NAMES.items():
            used = [n for n in names if n in text]
            assert not used, f"{path.name} uses {code}'s names {used}: move them to cities/{code}/"


@pytest.mark.parametrize("code", MUNICIPALITIES)
def test_city_kb_names_no_other_city(code: str, kbs: dict[str, dict[str, KBEntry]]) -> None:
    """A city's loaded entries never speak of another city's services."""
    for entry in kbs[code].values():
        text = "\n".join((entry.title, entry.question, entry.answer, *entry.alternates, *entry.keywords))
        for other, names in CITY_NAMES.items():
            if other == code:
                continue
            used = [n for n in names if n in text and not any(n in own for own in CITY_NAMES[code])]
            assert not used, f"{code} entry {entry.id} uses {other}'s names {used}"


ENTRY = """\
- id: {id}
  category: test
  title: {id}
  question: {id}ですか
  alternates: [a1, a2, a3, a4, a5, a6, a7, a8]
  keywords: [k1]
  answer: "{id}です"
  source: general national fact
  reviewed_at: 2025-01-01
"""


def test_overlay_entry_with_a_new_id_is_that_citys_alone(tmp_path: Path) -> None:
    """The mechanism on a throwaway knowledge base: base for all, a new overlay id for one city."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "part1.yaml").write_text(ENTRY.format(id="shared"), encoding="utf-8")
    for code in ("joso", "ohtawara"):
        city = tmp_path / "cities" / code
        city.mkdir(parents=True)
        (city / "city.yaml").write_text(
            textwrap.dedent(
                f"""\
                code: {code}
                name: 市
                vars: {{city_name: 市, contact: 市役所}}
                districts: [地区]
                """
            ),
            encoding="utf-8",
        )
    (tmp_path / "cities" / "joso" / "part1.yaml").write_text(ENTRY.format(id="joso-own"), encoding="utf-8")
    assert [e.id for e in load_kb("joso", tmp_path)] == ["shared", "joso-own"]
    assert [e.id for e in load_kb("ohtawara", tmp_path)] == ["shared"]
