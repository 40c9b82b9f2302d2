"""Load the knowledge base shipped in the repo as YAML (base entries + a city's overlay)."""

from __future__ import annotations

import datetime
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KB_DIR = Path(__file__).resolve().parent / "kb"
MUNICIPALITIES = ("nasukarasuyama", "nasushiobara", "joso", "ohtawara")

# Limits from FORMAT.md; the title limit is also LINE's quick-reply label limit.
TITLE_MAX = 20
ANSWER_MAX = 1000
MIN_ALTERNATES = 8

_REQUIRED = ("id", "category", "title", "question", "alternates", "keywords", "answer", "source", "reviewed_at")
_OVERLAY_ONLY = ("alternates_extra", "keywords_extra")
_LIST_FIELDS = ("alternates", "keywords", "alternates_extra", "keywords_extra")
_CITY_FIELDS = ("code", "name", "vars", "districts")


class KBError(ValueError):
    """Invalid knowledge-base data; the message names the file and the entry id."""

    def __init__(self, message: str, *, file: Path | str | None = None, entry_id: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.entry_id = entry_id
        where = []
        if file is not None:
            where.append(str(file))
        if entry_id is not None:
            where.append(f"entry {entry_id!r}")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


@dataclass(frozen=True)
class KBEntry:
    """One FAQ entry as loaded for a city, answer already formatted with the city's vars."""

    id: str
    category: str
    title: str
    question: str
    alternates: tuple[str, ...]
    keywords: tuple[str, ...]
    answer: str
    source: str
    municipality: str
    reviewed_at: datetime.date
    # Key of the first {section_*} placeholder of the raw answer ("tax" for {section_tax}), "" if none:
    # the section whose お問い合わせ line ends the answer (faq.directory).
    section: str = ""


@dataclass(frozen=True)
class City:
    """A city's facts from city.yaml."""

    code: str
    name: str
    vars: dict[str, str]
    districts: tuple[str, ...]


def _read_yaml(path: Path) -> Any:
    """Parse one YAML file, turning parser errors into KBError."""
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise KBError(f"cannot read YAML: {exc}", file=path) from exc


def _check_code(code: str) -> None:
    """Refuse unknown city codes early (they also end up in file paths)."""
    if code not in MUNICIPALITIES:
        raise KBError(f"unknown municipality code {code!r}; expected one of {', '.join(MUNICIPALITIES)}")


def load_city(code: str, kb_dir: Path = KB_DIR) -> City:
    """Load cities/<code>/city.yaml."""
    _check_code(code)
    path = Path(kb_dir) / "cities" / code / "city.yaml"
    if not path.is_file():
        raise KBError("file not found", file=path)
    data = _read_yaml(path)
    if not isinstance(data, Mapping):
        raise KBError("city.yaml must be a mapping", file=path)
    missing = [k for k in _CITY_FIELDS if k not in data]
    if missing:
        raise KBError(f"missing keys: {', '.join(missing)}", file=path)
    if data["code"] != code:
        raise KBError(f"code {data['code']!r} does not match directory {code!r}", file=path)
    if not isinstance(data["name"], str) or not data["name"].strip():
        raise KBError("name must be a non-empty string", file=path)
    raw_vars = data["vars"]
    if not isinstance(raw_vars, Mapping):
        raise KBError("vars must be a mapping", file=path)
    city_vars: dict[str, str] = {}
    for key, value in raw_vars.items():
        # Flat string keys only: str.format_map with dotted/indexed keys would be a trap.
        if not isinstance(key, str) or not key.isidentifier():
            raise KBError(f"vars key {key!r} must be a plain identifier", file=path)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise KBError(f"vars.{key} must be a string", file=path)
        city_vars[key] = str(value)
    districts = data["districts"]
    if not isinstance(districts, list) or not all(isinstance(d, str) and d.strip() for d in districts):
        raise KBError("districts must be a list of non-empty strings", file=path)
    # {section_<key>} placeholders default to the names in the city's directory (checked by faq.directory).
    sections = data.get("sections")
    for key, section in sections.items() if isinstance(sections, Mapping) else ():
        if isinstance(key, str) and key.isidentifier() and isinstance(section, Mapping) and section.get("name"):
            city_vars.setdefault(f"section_{key}", str(section["name"]).strip())
    return City(code=code, name=data["name"].strip(), vars=city_vars, districts=tuple(d.strip() for d in districts))


def _entries_of(path: Path) -> list[Mapping[str, Any]]:
    """Read a YAML file holding a list of entry mappings."""
    data = _read_yaml(path)
    if data is None:
        return []
    if not isinstance(data, list):
        raise KBError("must be a YAML list of entries", file=path)
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise KBError(f"item #{i + 1} is not a mapping", file=path)
        entry_id = item.get("id")
        if not isinstance(entry_id, str) or not entry_id.strip():
            raise KBError(f"item #{i + 1} has no string id", file=path)
    return data


def _check_fields(item: Mapping[str, Any], path: Path, *, overlay: bool) -> None:
    """Check field names and types of one raw (possibly partial) entry."""
    entry_id = item["id"]
    allowed = set(_REQUIRED) | (set(_OVERLAY_ONLY) if overlay else set())
    unknown = sorted(set(item) - allowed)
    if unknown:
        # Catches typos such as `alternate:` that would otherwise be silently ignored.
        raise KBError(f"unknown fields: {', '.join(map(str, unknown))}", file=path, entry_id=entry_id)
    for key, value in item.items():
        if key in _LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise KBError(f"{key} must be a list of non-empty strings", file=path, entry_id=entry_id)
        elif key == "reviewed_at":
            if isinstance(value, datetime.datetime) or not isinstance(value, (datetime.date, str)):
                raise KBError("reviewed_at must be a date YYYY-MM-DD", file=path, entry_id=entry_id)
            if isinstance(value, str):
                try:
                    datetime.date.fromisoformat(value)
                except ValueError as exc:
                    raise KBError("reviewed_at must be a date YYYY-MM-DD", file=path, entry_id=entry_id) from exc
        elif not isinstance(value, str) or not value.strip():
            raise KBError(f"{key} must be a non-empty string", file=path, entry_id=entry_id)


def _format_answer(answer: str, city_vars: Mapping[str, str], path: Path, entry_id: str) -> str:
    """Fill {placeholders} from the city's vars, refusing unknown or non-flat ones."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(answer) if f is not None]
    except ValueError as exc:  # unbalanced braces
        raise KBError(f"bad braces in answer ({exc}); literal braces must be doubled", file=path, entry_id=entry_id) from exc
    for field in fields:
        if field == "" or not field.isidentifier():
            raise KBError(f"placeholder {{{field}}} is not a flat name", file=path, entry_id=entry_id)
        if field not in city_vars:
            raise KBError(f"placeholder {{{field}}} is not defined in city.yaml vars", file=path, entry_id=entry_id)
    raw_lines = answer.split("\n")
    lines = [line.format_map(city_vars) for line in raw_lines]
    # A line that held only placeholders rendering nothing (`contact: ""`) goes instead of staying blank.
    return "\n".join(new for raw, new in zip(raw_lines, lines, strict=True) if new.strip() or not raw.strip())


def _first_section(answer: str) -> str:
    """The key of the first {section_*} placeholder of a raw (already checked) answer, "" if none."""
    for _, name, _, _ in string.Formatter().parse(answer):
        if name and name.startswith("section_"):
            return name.removeprefix("section_")
    return ""


def _dedupe(items: list[str]) -> tuple[str, ...]:
    """Strip and drop duplicate strings, keeping first-seen order."""
    seen: dict[str, None] = {}
    for s in items:
        seen.setdefault(s.strip(), None)
    return tuple(seen)


def load_kb(code: str, kb_dir: Path = KB_DIR) -> list[KBEntry]:
    """Load base entries merged with the city's overlay, answers formatted with city vars."""
    kb_dir = Path(kb_dir)
    city = load_city(code, kb_dir)
    merged: dict[str, dict[str, Any]] = {}
    # File each field last came from, so an error names the file that holds the bad value.
    origin: dict[str, dict[str, Path]] = {}

    base_files = sorted((kb_dir / "base").glob("*.yaml"))
    for path in base_files:
        for item in _entries_of(path):
            _check_fields(item, path, overlay=False)
            entry_id = item["id"]
            if entry_id in merged:
                raise KBError(f"duplicate id (also in {origin[entry_id]['id']})", file=path, entry_id=entry_id)
            missing = [k for k in _REQUIRED if k not in item]
            if missing:
                raise KBError(f"missing fields: {', '.join(missing)}", file=path, entry_id=entry_id)
            merged[entry_id] = dict(item)
            origin[entry_id] = dict.fromkeys(_REQUIRED, path)

    overlay_files = sorted(p for p in (kb_dir / "cities" / code).glob("*.yaml") if p.name != "city.yaml")
    for path in overlay_files:
        for item in _entries_of(path):
            _check_fields(item, path, overlay=True)
            entry_id = item["id"]
            if entry_id in merged:
                # Patch: given fields replace, *_extra lists are appended.
                target = merged[entry_id]
                for key, value in item.items():
                    if key == "alternates_extra":
                        target["alternates"] = list(target["alternates"]) + list(value)
                    elif key == "keywords_extra":
                        target["keywords"] = list(target["keywords"]) + list(value)
                    else:
                        target[key] = value
            else:
                missing = [k for k in _REQUIRED if k not in item]
                if missing:
                    raise KBError(
                        f"new city-only entry is missing fields: {', '.join(missing)}", file=path, entry_id=entry_id
                    )
                new = {k: v for k, v in item.items() if k not in _OVERLAY_ONLY}
                new["alternates"] = list(item["alternates"]) + list(item.get("alternates_extra", []))
                new["keywords"] = list(item["keywords"]) + list(item.get("keywords_extra", []))
                merged[entry_id] = new
                origin[entry_id] = dict.fromkeys(_REQUIRED, path)
            for key in item:
                field = {"alternates_extra": "alternates", "keywords_extra": "keywords"}.get(key, key)
                origin[entry_id][field] = path

    entries: list[KBEntry] = []
    for entry_id, raw in merged.items():
        where = origin[entry_id]
        title = raw["title"].strip()
        if len(title) > TITLE_MAX:
            raise KBError(f"title is {len(title)} characters (max {TITLE_MAX})", file=where["title"], entry_id=entry_id)
        alternates = _dedupe(raw["alternates"])
        if len(alternates) < MIN_ALTERNATES:
            raise KBError(
                f"{len(alternates)} distinct alternates (at least {MIN_ALTERNATES})",
                file=where["alternates"],
                entry_id=entry_id,
            )
        answer = _format_answer(raw["answer"].strip(), city.vars, where["answer"], entry_id)
        if len(answer) > ANSWER_MAX:
            raise KBError(
                f"answer is {len(answer)} characters (max {ANSWER_MAX})", file=where["answer"], entry_id=entry_id
            )
        reviewed = raw["reviewed_at"]
        if isinstance(reviewed, str):
            reviewed = datetime.date.fromisoformat(reviewed)
        entries.append(
            KBEntry(
                id=entry_id,
                category=raw["category"].strip(),
                title=title,
                question=raw["question"].strip(),
                alternates=alternates,
                keywords=_dedupe(raw["keywords"]),
                answer=answer,
                source=raw["source"].strip(),
                municipality=code,
                reviewed_at=reviewed,
                section=_first_section(raw["answer"]),
            )
        )
    return entries


def city_places(code: str, kb_dir: Path = KB_DIR) -> tuple[str, ...]:
    """Places a city's residents may name without asking about another town: the city's
    name and districts (empty for a city without city.yaml, such as an imported-only one)."""
    try:
        city = load_city(code, kb_dir)
    except KBError:
        return ()
    return (city.name, *city.districts)
