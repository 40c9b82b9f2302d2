"""The city's directory (連絡先): its sections with phone, 受付時間 and URL, and the お問い合わせ line.

`main` and `sections` of faq/kb/cities/<code>/city.yaml are copied into the `faq_directory` table by
`flask faq load` (rows staff edited are kept); staff with the role admin edit them at
/admin/directory (faq.directory_admin). Every answer a resident receives ends with ONE line

    お問い合わせ：市民課　電話 0287-00-0000（平日8:30〜17:15）　https://…

built from the entry's section (the first {section_*} placeholder of its repo answer, else the
default of its category, else the city as a whole) with only the parts that are set: the city's
main number when the section has none, and the city's homepage when there is neither a number
nor a URL, so the line is never empty.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from faq.freshness import StampedCache
from faq.kb import KB_DIR, KBError, load_city
from faq.models import DirectoryContact

MAIN_KEY = "main"
FIELDS = ("name", "phone", "hours", "url")
FIELD_LABELS = {"name": "名称", "phone": "電話番号", "hours": "受付時間", "url": "URL"}
NAME_MAX = 60
HOURS_MAX = 100
URL_MAX = 300
LINE_LABEL = "お問い合わせ："
SECTION_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

# The section of an entry whose answer names none, by category (None: the city as a whole).
CATEGORY_SECTIONS: dict[str, str | None] = {
    "certificates": "citizen",
    "mynumber": "citizen",
    "counters": "citizen",
    "online": "digital",
    "channels": "digital",
    "digital-divide": "digital",
    "bot": "digital",
    "payments": "tax",
    "children": "children",
    "health": "health",
    "welfare": "welfare",
    "disaster": "disaster",
    "environment": "environment",
    "reporting": "roads",
    "tourism": "tourism",
    "facilities": None,
    "transport": None,
    "community": None,
    "business": None,
}

# What each key covers, for staff (keys not listed show as themselves).
SECTION_LABELS = {
    MAIN_KEY: "市役所全体（代表）",
    "citizen": "住民票・戸籍・証明書・マイナンバーカード",
    "tax": "税",
    "health": "健康・検診・予防接種",
    "welfare": "福祉・介護",
    "children": "子育て・教育",
    "disaster": "防災・防犯",
    "environment": "ごみ・環境",
    "digital": "デジタル・オンライン申請・このLINE",
    "tourism": "観光",
    "roads": "道路・街灯",
    "water": "上下水道",
    "council": "市議会",
}

MSG_NAME_EMPTY = "名称を入力してください。"
MSG_NAME_LONG = f"名称は{NAME_MAX}文字以内で入力してください。"
MSG_PHONE = "電話番号は半角数字とハイフンで入力してください（例：0287-00-0000）。"
MSG_PHONE_DIGITS = "電話番号は市外局番から10桁または11桁で入力してください（例：0287-00-0000）。"
MSG_HOURS_LONG = f"受付時間は{HOURS_MAX}文字以内で入力してください。"
MSG_URL = "URLは http:// または https:// で始まる形で入力してください（例：https://www.city.example.lg.jp/）。"
MSG_URL_LONG = f"URLは{URL_MAX}文字以内で入力してください。"

_PHONE_RE = re.compile(r"^0[0-9]*(?:-[0-9]+)*$")
_URL_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?$")


@dataclass(frozen=True)
class Contact:
    """One line of the directory; "" = 未設定."""

    key: str
    name: str
    phone: str = ""
    hours: str = ""
    url: str = ""

    @property
    def is_empty(self) -> bool:
        """Nothing but the name is set."""
        return not (self.phone or self.hours or self.url)


# --- validation (city.yaml and the staff form) ------------------------------------------------------


def clean_values(values: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The fields as stored (full-width digits and hyphens made half-width, spaces trimmed) and the
    Japanese messages of what is wrong with them (none: valid)."""
    cleaned = {f: " ".join(str(values.get(f) or "").split()) for f in FIELDS}
    errors: list[str] = []
    if not cleaned["name"]:
        errors.append(MSG_NAME_EMPTY)
    elif len(cleaned["name"]) > NAME_MAX:
        errors.append(MSG_NAME_LONG)
    phone = unicodedata.normalize("NFKC", cleaned["phone"]).replace(" ", "")
    phone = re.sub(r"[‐‑‒–—―−ー－]", "-", phone)  # hyphen look-alikes staff type in Japanese input
    cleaned["phone"] = phone
    if phone:
        if not _PHONE_RE.match(phone):
            errors.append(MSG_PHONE)
        elif not 10 <= sum(ch.isdigit() for ch in phone) <= 11:
            errors.append(MSG_PHONE_DIGITS)
    if len(cleaned["hours"]) > HOURS_MAX:
        errors.append(MSG_HOURS_LONG)
    url = cleaned["url"]
    if url:
        if len(url) > URL_MAX:
            errors.append(MSG_URL_LONG)
        elif not _URL_RE.match(url):
            errors.append(MSG_URL)
    return cleaned, errors


# --- the directory as answers use it ----------------------------------------------------------------

_HEADING_RE = re.compile(r"^\s*(?:【\s*お?問い?合わ?せ(?:先)?\s*】|お?問い?合わ?せ(?:先)?\s*[：:])\s*(.*?)\s*$")
_URL_LINE_RE = re.compile(r"^\s*(?:【[^】]{1,20}】|[^\s：:]{1,20}[：:])?\s*(https?://\S+)\s*$")
# The old {contact} text (「○○市役所（…各課の電話番号は市ホームページに掲載されています）」) still in
# answers stored before the directory, or in staff-edited copies of them.
_LEGACY_MARK = "各課の電話番号は市ホームページに掲載"
_LEGACY_CONTACT = r"役所（[^）]*各課の電話番号は市ホームページに掲載[^）]*）"
# A heading left dangling by {contact} rendering nothing: 「お子さんの学校、または」.
_DANGLING = ("または", "又は", "、", "・", "か")


@dataclass(frozen=True)
class Directory:
    """A city's directory: the city as a whole (`main`) and its sections by key."""

    city_name: str
    homepage: str
    main: Contact
    sections: Mapping[str, Contact] = field(default_factory=dict)

    def section_for(self, section: str | None, category: str | None = None) -> Contact | None:
        """The entry's section: its own, else its category's default, else None (the city)."""
        if section and section in self.sections:
            return self.sections[section]
        default = CATEGORY_SECTIONS.get(category or "")
        return self.sections.get(default) if default else None

    def contact_text(self, contact: Contact | None = None) -> str:
        """「市民課　電話 0287-…（平日8:30〜17:15）　https://…」 with only what is set (None: the city)."""
        is_main = contact is None or contact.key == MAIN_KEY
        c = self.main if contact is None else contact
        name = c.name or self.main.name or f"{self.city_name}役所"
        phone, hours, note = c.phone, c.hours, ""
        if not phone and not is_main and self.main.phone:
            phone, hours, note = self.main.phone, c.hours or self.main.hours, "代表"
        parts = [name]
        if phone:
            detail = "・".join(p for p in (note, hours) if p)
            parts.append(f"電話 {phone}" + (f"（{detail}）" if detail else ""))
        elif hours:
            parts.append(f"受付時間 {hours}")
        url = c.url
        if not url and (is_main or not phone):
            url = self.main.url or self.homepage
        if url:
            parts.append(url)
        return "　".join(parts)

    def main_text(self) -> str:
        """How to reach the city as a whole (the 「お答えできません」 message, the お問い合わせ command)."""
        return self.contact_text(None)

    def finish_answer(self, answer: str, section: str | None, category: str | None = None) -> str:
        """The answer as residents receive it: ending with one お問い合わせ line from the directory.

        The section is the entry's own (its answer's first {section_*} placeholder), else the one
        its closing heading names (「【お問い合わせ】交通防犯課」), else its category's default, else
        the city. That heading and a homepage line the new line repeats are replaced by the line;
        another closing heading stays as 「担当：…」; any text left of the old {contact} is removed.
        """
        legacy = re.compile(re.escape(self.city_name) + _LEGACY_CONTACT) if self.city_name else None
        lines = [rest for line in answer.rstrip().split("\n") if (rest := _without_legacy(line, legacy)) is not None]
        tail: list[str] = []
        while lines and (not lines[-1].strip() or _HEADING_RE.match(lines[-1]) or _URL_LINE_RE.match(lines[-1])):
            tail.insert(0, lines.pop())
        while lines and not lines[-1].strip():
            lines.pop()
        prefix, kept, headings = "", [], []
        for line in tail:
            heading = _HEADING_RE.match(line)
            if heading is None:
                if line.strip():
                    kept.append(line)
            elif heading.group(1).endswith(_DANGLING):  # 「お子さんの学校、または」 + the old {contact}
                prefix = heading.group(1)
            elif heading.group(1):
                headings.append(heading.group(1))
        contact = self.sections.get(section) if section else None
        if contact is None and len(headings) == 1:
            by_name = {c.name: c for c in self.sections.values()}
            contact = by_name.get(headings[0], Contact(key="", name=headings[0]))
        if contact is None:
            contact = self.section_for(None, category)
        target = contact.name if contact is not None else self.main.name
        body = prefix + self.contact_text(contact)
        kept = [line for line in kept if (m := _URL_LINE_RE.match(line)) is None or m.group(1) not in body]
        closing = [f"担当：{h}" for h in headings if h != target] + kept + [LINE_LABEL + body]
        return "\n".join([*lines, *closing])


def _without_legacy(line: str, legacy: re.Pattern[str] | None) -> str | None:
    """The line without the old {contact} text; None when nothing else was on it."""
    if _LEGACY_MARK not in line:
        return line
    rest = legacy.sub("", line) if legacy is not None else ""
    if _LEGACY_MARK in rest or not rest.strip():
        return None
    return rest


# --- city.yaml -----------------------------------------------------------------------------------------


def _contact_from_yaml(key: str, raw: Any, path: Path) -> Contact:
    if not isinstance(raw, Mapping):
        raise KBError(f"{key} must be a mapping with {', '.join(FIELDS)}", file=path)
    unknown = sorted(set(map(str, raw)) - set(FIELDS))
    if unknown:
        raise KBError(f"{key}: unknown fields: {', '.join(unknown)}", file=path)
    if not all(isinstance(raw.get(f) or "", str) for f in FIELDS):
        raise KBError(f"{key}: {', '.join(FIELDS)} must be strings (quote phone numbers)", file=path)
    cleaned, errors = clean_values(raw)
    if errors:
        raise KBError(f"{key}: {' '.join(errors)}", file=path)
    return Contact(key=key, **cleaned)


def read_repo_directory(code: str, kb_dir: Path = KB_DIR) -> Directory:
    """The directory shipped in cities/<code>/city.yaml (`main` and `sections`), validated."""
    city = load_city(code, kb_dir)
    path = Path(kb_dir) / "cities" / code / "city.yaml"
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    raw_main = data.get("main") or {"name": f"{city.name}役所"}
    main = _contact_from_yaml(MAIN_KEY, raw_main, path)
    raw_sections = data.get("sections") or {}
    if not isinstance(raw_sections, Mapping):
        raise KBError("sections must be a mapping of section keys", file=path)
    sections: dict[str, Contact] = {}
    for key, raw in raw_sections.items():
        if not isinstance(key, str) or not SECTION_KEY_RE.match(key) or key == MAIN_KEY:
            raise KBError(f"section key {key!r} must be lower-case letters, digits and _ (not {MAIN_KEY!r})", file=path)
        sections[key] = _contact_from_yaml(key, raw, path)
    return Directory(city_name=city.name, homepage=city.vars.get("homepage", ""), main=main, sections=sections)


@functools.lru_cache(maxsize=8)
def repo_directory(code: str) -> Directory:
    """read_repo_directory of the shipped knowledge base, once per process."""
    return read_repo_directory(code)


def _fallback_directory(code: str) -> Directory:
    """The shipped directory, or just the city's name for a city without a readable city.yaml."""
    try:
        return repo_directory(code)
    except (KBError, OSError):
        return Directory(city_name="", homepage="", main=Contact(key=MAIN_KEY, name="市役所"))


# --- the database --------------------------------------------------------------------------------------


@dataclass
class SeedReport:
    """What `faq load` did to the directory."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_staff_edits: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One Japanese phrase for the CLI."""
        return (f"連絡先 追加 {len(self.added)} 件、更新 {len(self.updated)} 件"
                + (f"、職員の編集を保持 {len(self.kept_staff_edits)} 件" if self.kept_staff_edits else ""))


def seed_directory(session: Session, code: str, directory: Directory | None = None) -> SeedReport:
    """Copy the shipped directory into the database; rows staff edited are left as they are."""
    directory = directory or read_repo_directory(code)
    report = SeedReport()
    rows = {r.key: r for r in session.scalars(select(DirectoryContact).where(DirectoryContact.municipality == code))}
    for position, contact in enumerate([directory.main, *directory.sections.values()]):
        values = {"position": position, **{f: getattr(contact, f) for f in FIELDS}}
        row = rows.get(contact.key)
        if row is None:
            session.add(DirectoryContact(municipality=code, key=contact.key, **values))
            report.added.append(contact.key)
        elif row.is_staff_edited:
            report.kept_staff_edits.append(contact.key)
        elif all(getattr(row, k) == v for k, v in values.items()):
            report.unchanged.append(contact.key)
        else:
            for k, v in values.items():
                setattr(row, k, v)
            report.updated.append(contact.key)
    session.flush()
    return report


def directory_rows(session: Session, code: str) -> list[DirectoryContact]:
    """The city's rows, main first, then in city.yaml's order."""
    return list(session.scalars(
        select(DirectoryContact).where(DirectoryContact.municipality == code)
        .order_by(DirectoryContact.position, DirectoryContact.key)
    ))


def load_directory(session: Session, code: str) -> Directory:
    """The city's directory from the database; what it lacks comes from city.yaml."""
    repo = _fallback_directory(code)
    rows = {r.key: r for r in directory_rows(session, code)}

    def contact(key: str, default: Contact | None) -> Contact | None:
        row = rows.get(key)
        if row is None:
            return default
        return Contact(key=key, name=row.name, phone=row.phone or "", hours=row.hours or "", url=row.url or "")

    main = contact(MAIN_KEY, repo.main) or repo.main
    keys = list(repo.sections) + [k for k in rows if k not in repo.sections and k != MAIN_KEY]
    sections = {k: c for k in keys if (c := contact(k, repo.sections.get(k))) is not None}
    return Directory(city_name=repo.city_name, homepage=repo.homepage, main=main, sections=sections)


def _directory_stamp(session: Session, code: str) -> tuple[Any, ...]:
    """A cheap fingerprint of the city's directory rows (count, newest change, ids)."""
    return tuple(session.execute(
        select(func.count(DirectoryContact.id), func.max(DirectoryContact.updated_at), func.sum(DirectoryContact.id))
        .where(DirectoryContact.municipality == code)
    ).one())


# Each city's directory in this process, with the same freshness rule as the FAQ index.
DIRECTORIES: StampedCache[Directory] = StampedCache(_directory_stamp, load_directory)
for _when in ("after_insert", "after_update", "after_delete"):
    event.listen(DirectoryContact, _when, lambda *_args: DIRECTORIES.touch())


def current_directory(session: Session, code: str) -> Directory:
    """The city's directory as answers use it now (cached per process)."""
    return DIRECTORIES.get(session, code)


# --- staff edits (faq.directory_admin) -----------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryLine:
    """One line of the staff page: what answers use now, and where it comes from."""

    key: str
    label: str
    contact: Contact
    is_staff_edited: bool
    shipped: Contact | None  # the value in city.yaml (None: a key city.yaml no longer has)


def staff_lines(session: Session, code: str) -> list[DirectoryLine]:
    """Every key of the city's directory, main first, as answers use it now."""
    repo = _fallback_directory(code)
    current = load_directory(session, code)
    edited = {r.key for r in directory_rows(session, code) if r.is_staff_edited}
    shipped = {MAIN_KEY: repo.main, **repo.sections}
    return [
        DirectoryLine(c.key, SECTION_LABELS.get(c.key, c.key), c, c.key in edited, shipped.get(c.key))
        for c in [current.main, *current.sections.values()]
    ]


def staff_line(session: Session, code: str, key: str) -> DirectoryLine | None:
    """One key of the city's directory, or None if it has no such key."""
    return next((line for line in staff_lines(session, code) if line.key == key), None)


def _row_for(session: Session, code: str, key: str) -> DirectoryContact:
    """The key's row, created from city.yaml's value if `faq load` has not copied it yet."""
    row = session.scalar(select(DirectoryContact).where(DirectoryContact.municipality == code,
                                                        DirectoryContact.key == key))
    if row is None:
        line = staff_line(session, code, key)
        if line is None:
            raise KeyError(key)
        keys = [line.key for line in staff_lines(session, code)]
        row = DirectoryContact(municipality=code, key=key, position=keys.index(key),
                               **{f: getattr(line.contact, f) for f in FIELDS})
        session.add(row)
    return row


def save_contact(session: Session, code: str, key: str, values: Mapping[str, str]) -> dict[str, list[str]]:
    """Store already-cleaned values (clean_values) as a staff edit, kept by `faq load`;
    returns the changed fields as {field: [before, after]} (empty: nothing changed, nothing written)."""
    row = _row_for(session, code, key)
    changes = {f: [getattr(row, f) or "", values[f]] for f in FIELDS if (getattr(row, f) or "") != values[f]}
    if changes:
        for f, (_before, after) in changes.items():
            setattr(row, f, after)
        row.is_staff_edited = True
    session.flush()
    return changes


def reset_contact(session: Session, code: str, key: str) -> dict[str, list[str]]:
    """Back to city.yaml's value; `faq load` updates the key again. Returns the changed fields."""
    line = staff_line(session, code, key)
    if line is None or line.shipped is None:
        raise KeyError(key)
    row = _row_for(session, code, key)
    changes = {f: [getattr(row, f) or "", getattr(line.shipped, f)] for f in FIELDS
               if (getattr(row, f) or "") != getattr(line.shipped, f)}
    for f, (_before, after) in changes.items():
        setattr(row, f, after)
    row.is_staff_edited = False
    session.flush()
    return changes
