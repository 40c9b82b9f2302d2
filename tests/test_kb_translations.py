"""The shipped knowledge-base translations follow their Japanese entries and add nothing.

Translations live in faq/kb/translations/<lang>.yaml (base entries) and
faq/kb/cities/<code>/translations/<lang>.yaml (entries whose Japanese answer a city's overlay
replaced, and city-only entries). These checks read the YAML directly, without the loader:

- every item names a Japanese entry of base or of that city, and `follows` is that entry's
  current reviewed_at (so editing the Japanese answer flags the translation as stale);
- an answer uses only the Japanese answer's {placeholders} and no digit run (phone number, fee,
  time, date) that the Japanese answer lacks, and names no other city;
- every language (やさしい日本語, en, pt, vi, zh, fil) covers every entry of every city;
- titles fit their button limits, ja-easy has no honorific chains.
"""

from __future__ import annotations

import copy
import datetime
import functools
import re
import string
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

from faq.kb import KB_DIR, MUNICIPALITIES
from tests.test_kb_cities import CITY_NAMES

LANGS = ("ja-easy", "en", "pt", "vi", "zh", "fil")  # shipped (bot.i18n codes)
ALL_LANGS = ("ja-easy", "en", "pt", "vi", "zh", "fil")
TOP_LANGS = ("en", "pt", "vi", "zh", "fil")
TITLE_LIMIT = {"ja-easy": 20, "en": 40, "pt": 40, "vi": 40, "zh": 40, "fil": 40}
MIN_ALTERNATES = 5
ANSWER_MAX = 2000  # faq/kb/FORMAT.md, 「Translations」: Latin scripts run longer than the Japanese (<= 1000)
FIELDS = ("id", "follows", "title", "question", "answer", "alternates")
# Honorific chains the やさしい日本語 guideline asks to avoid.
EASY_FORBIDDEN = ("いただ", "ございま", "させていただ")

_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def _yaml_list(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    assert isinstance(data, list), f"{path}: a YAML list of items"
    return data


def _base_entries() -> dict[str, dict[str, Any]]:
    return copy.deepcopy(_base_entries_cached())


@functools.cache
def _base_entries_cached() -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted((KB_DIR / "base").glob("*.yaml")):
        for item in _yaml_list(path):
            entries[item["id"]] = dict(item)
    return entries


@functools.cache
def _city(code: str) -> tuple[dict[str, dict[str, Any]], set[str], dict[str, str]]:
    """(merged Japanese entries, ids whose answer the city gives itself, city vars); read-only."""
    merged = {k: dict(v) for k, v in _base_entries().items()}
    own_answer: set[str] = set()
    for path in sorted((KB_DIR / "cities" / code).glob("*.yaml")):
        if path.name == "city.yaml":
            continue
        for item in _yaml_list(path):
            target = merged.setdefault(item["id"], {})
            for key, value in item.items():
                if key.endswith("_extra"):
                    field = key.removesuffix("_extra")
                    target[field] = list(target.get(field, [])) + list(value)
                else:
                    target[key] = value
            if "answer" in item:
                own_answer.add(item["id"])
    city = yaml.safe_load((KB_DIR / "cities" / code / "city.yaml").read_text(encoding="utf-8"))
    vars_ = {k: str(v) for k, v in city["vars"].items()}
    vars_.update({f"section_{key}": str(section["name"]) for key, section in (city.get("sections") or {}).items()})
    return merged, own_answer, vars_


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _digits(text: str) -> set[str]:
    return set(re.findall(r"[0-9]+", unicodedata.normalize("NFKC", text).translate(_FULLWIDTH_DIGITS)))


def _files() -> list[tuple[str, str | None, Path]]:
    """(lang, city code or None for base, path) of every translation file in the repo."""
    found = []
    for path in sorted((KB_DIR / "translations").glob("*.yaml")):
        found.append((path.stem, None, path))
    for code in MUNICIPALITIES:
        for path in sorted((KB_DIR / "cities" / code / "translations").glob("*.yaml")):
            found.append((path.stem, code, path))
    return found


def _items(lang: str, code: str | None) -> dict[str, dict[str, Any]]:
    path = (KB_DIR / "translations" if code is None else KB_DIR / "cities" / code / "translations") / f"{lang}.yaml"
    if not path.exists():
        return {}
    return {item["id"]: item for item in _yaml_list(path)}


def _jp_text(entry: dict[str, Any]) -> str:
    return "\n".join([entry["title"], entry["question"], entry["answer"], *entry.get("alternates", []),
                      *entry.get("keywords", [])])


FILES = _files()


def test_translation_files_exist() -> None:
    langs = {lang for lang, _, _ in FILES}
    assert set(LANGS) <= langs, f"missing base translation files: {set(LANGS) - langs}"
    assert all(lang in ALL_LANGS for lang in langs), langs


@pytest.mark.parametrize(("lang", "code", "path"), FILES, ids=[str(p.relative_to(KB_DIR)) for _, _, p in FILES])
def test_items_follow_their_japanese_entry(lang: str, code: str | None, path: Path) -> None:
    problems = _problems(lang, code, _yaml_list(path))
    assert not problems, f"{path.relative_to(KB_DIR)}:\n" + "\n".join(problems)


def _problems(lang: str, code: str | None, items: list[dict[str, Any]]) -> list[str]:
    """What is wrong with these items of a <lang> file (base when code is None)."""
    base = _base_entries_cached()
    # A base file may also carry a city-only entry that needs no city text: find its city.
    cities = {c: _city(c) for c in MUNICIPALITIES}
    problems: list[str] = []
    seen: set[str] = set()
    for item in items:
        entry_id = item.get("id")
        where = f"{entry_id}"
        missing = [f for f in FIELDS if f not in item]
        if missing:
            problems.append(f"{where}: missing {missing}")
            continue
        if entry_id in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(entry_id)
        if code is None:
            owners = [c for c, (merged, _, _) in cities.items() if entry_id in merged and entry_id not in base]
            if entry_id in base:
                jp, city_codes = base[entry_id], list(MUNICIPALITIES)
            elif len(owners) == 1:
                jp, city_codes = cities[owners[0]][0][entry_id], owners
            else:
                problems.append(f"{where}: no Japanese entry with this id in base")
                continue
        else:
            merged = cities[code][0]
            if entry_id not in merged:
                problems.append(f"{where}: no Japanese entry with this id in base or {code}")
                continue
            jp, city_codes = merged[entry_id], [code]
        follows = item["follows"]
        if isinstance(follows, str):
            follows = datetime.date.fromisoformat(follows)
        if follows != jp["reviewed_at"]:
            problems.append(f"{where}: follows {follows}, but the Japanese entry was reviewed {jp['reviewed_at']}")
        for field in ("title", "question", "answer"):
            if not isinstance(item[field], str) or not item[field].strip():
                problems.append(f"{where}: empty {field}")
        title = item["title"].strip()
        if len(title) > TITLE_LIMIT[lang]:
            problems.append(f"{where}: title is {len(title)} characters (max {TITLE_LIMIT[lang]})")
        alternates = {a.strip() for a in item["alternates"] or [] if isinstance(a, str) and a.strip()}
        if len(alternates) < MIN_ALTERNATES:
            problems.append(f"{where}: {len(alternates)} distinct alternates (at least {MIN_ALTERNATES})")
        extra = _placeholders(item["answer"]) - _placeholders(jp["answer"])
        if extra:
            problems.append(f"{where}: placeholders {sorted(extra)} not in the Japanese answer")
        new_digits = _digits(item["answer"]) - _digits(jp["answer"])
        if new_digits:
            problems.append(f"{where}: answer has numbers {sorted(new_digits)} the Japanese answer lacks")
        other_text = "\n".join([item["title"], item["question"], *alternates])
        new_digits = _digits(other_text) - _digits(_jp_text(jp))
        if new_digits:
            problems.append(f"{where}: title/question/alternates have numbers {sorted(new_digits)} the entry lacks")
        for city_code in city_codes:
            vars_ = cities[city_code][2]
            try:
                rendered = item["answer"].strip().format_map(vars_)
            except (KeyError, ValueError, IndexError) as exc:
                problems.append(f"{where}: answer does not render for {city_code}: {exc!r}")
                continue
            if len(rendered) > ANSWER_MAX:
                problems.append(f"{where}: answer is {len(rendered)} characters for {city_code} (max {ANSWER_MAX})")
        text = "\n".join([item["title"], item["question"], item["answer"], *alternates])
        allowed = {code} if code is not None else set(city_codes) if entry_id not in base else set()
        for other, names in CITY_NAMES.items():
            if other in allowed:
                continue
            used = [n for n in names if n in text]
            if used:
                problems.append(f"{where}: names {used} of {other}")
        if lang == "ja-easy":
            bad = [w for w in EASY_FORBIDDEN if w in text]
            if bad:
                problems.append(f"{where}: honorific chain {bad} (やさしい日本語 uses plain です・ます)")
    return problems


@pytest.mark.parametrize("lang", ("ja-easy", *TOP_LANGS))
@pytest.mark.parametrize("code", MUNICIPALITIES)
def test_every_language_covers_every_entry_of_every_city(lang: str, code: str) -> None:
    """Every entry a city loads has a translation into every language that gives that city's answer:
    the city's own file where the city replaced the Japanese answer (or for a city-only entry),
    else the base file."""
    merged, own_answer, _ = _city(code)
    base_items, city_items = _items(lang, code=None), _items(lang, code)
    base = _base_entries()
    missing = []
    for entry_id in merged:
        if entry_id in own_answer:
            if entry_id not in city_items and not (entry_id not in base and entry_id in base_items):
                missing.append(f"{entry_id} (city answer: cities/{code}/translations/{lang}.yaml)")
        elif entry_id not in base_items:
            missing.append(f"{entry_id} (translations/{lang}.yaml)")
    assert not missing, f"{code}: no {lang} translation of " + ", ".join(missing)


def test_the_checks_catch_what_they_are_for() -> None:
    """A stale, padded or over-polite item is reported: the checks above can fail."""
    good = copy.deepcopy(_items("ja-easy", code=None)["konbini-certificates"])
    assert _problems("ja-easy", None, [good]) == []
    reviewed = _base_entries()["konbini-certificates"]["reviewed_at"]

    stale = {**good, "follows": reviewed - datetime.timedelta(days=1)}
    assert any("follows" in p for p in _problems("ja-easy", None, [stale]))
    fee = {**good, "answer": good["answer"] + "手数料は ３５０円です。\n"}  # full-width digits count too
    assert any("['350']" in p for p in _problems("ja-easy", None, [fee]))
    phone = {**good, "answer": good["answer"] + "{phone}\n"}
    assert any("placeholders ['phone']" in p for p in _problems("ja-easy", None, [phone]))
    polite = {**good, "answer": good["answer"] + "ご利用いただけます。\n"}
    assert any("honorific" in p for p in _problems("ja-easy", None, [polite]))
    other_city = {**good, "answer": good["answer"] + "常総市の ホームページ\n"}
    assert any("joso" in p for p in _problems("ja-easy", None, [other_city]))
    long_title = {**good, "title": "あ" * 21}
    assert any("title" in p for p in _problems("ja-easy", None, [long_title]))
    assert _problems("en", None, [{**good, "title": "a" * 40}]) == []
    unknown = {**good, "id": "no-such-entry"}
    assert any("no Japanese entry" in p for p in _problems("ja-easy", None, [unknown]))
    few = {**good, "alternates": good["alternates"][:4]}
    assert any("alternates" in p for p in _problems("ja-easy", None, [few]))
