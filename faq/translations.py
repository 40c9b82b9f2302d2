"""Translations of knowledge-base entries: the repo's YAML files, checked, and their rows in the database.

Files (faq/kb/FORMAT.md, 「Translations」):
- `faq/kb/translations/<lang>.yaml`: translations of base entries, and of city-only entries that need
  no city text;
- `faq/kb/cities/<code>/translations/<lang>.yaml`: a city's translations of its entries whose Japanese
  answer its overlay replaced, and of its city-only entries.

A base translation gives the answer for a city only when that city's Japanese answer is the base
answer; otherwise the city's own file must give it, else the answer falls back to やさしい日本語 /
Japanese (the row is kept with answer "" so its title and alternates still count for matching).
"""

from __future__ import annotations

import datetime
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.i18n import N_, TRANSLATED
from faq.kb import KB_DIR, MUNICIPALITIES, KBError, KBEntry, _entries_of, _format_answer, load_city
from faq.models import FaqEntry, FaqTranslation

FIELDS = ("id", "follows", "title", "question", "answer", "alternates")
TITLE_MAX = {"ja-easy": 20}  # a button label; other languages TITLE_MAX_OTHER
TITLE_MAX_OTHER = 40
ANSWER_MAX = 2000  # Latin scripts are longer than the Japanese answer (<= 1000)
MIN_ALTERNATES = 5


@dataclass(frozen=True)
class Translation:
    """One entry's translation into one language as loaded for a city (answer formatted, or "")."""

    entry_id: str
    language: str
    title: str
    question: str
    answer: str
    alternates: tuple[str, ...]
    follows: datetime.date


@dataclass
class TranslationReport:
    """What `faq load` changed in the faq_translations table."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_staff_edits: int = 0
    removed: int = 0
    languages: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One Japanese line for the CLI."""
        langs = "、".join(f"{code} {n}" for code, n in self.languages.items()) or "なし"
        return (f"翻訳（{langs}）: 追加 {self.added} 件、更新 {self.updated} 件、変更なし {self.unchanged} 件"
                + (f"、職員の編集を保持 {self.kept_staff_edits} 件" if self.kept_staff_edits else "")
                + (f"、削除 {self.removed} 件" if self.removed else ""))


def _placeholders(text: str, path: Path, entry_id: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise KBError(f"bad braces in answer ({exc}); literal braces must be doubled", file=path, entry_id=entry_id) from exc


def _language_of(path: Path) -> str:
    language = path.stem
    if path.suffix != ".yaml" or language not in TRANSLATED:
        raise KBError(f"unknown language {language!r} in the file name; expected <lang>.yaml with lang one of "
                      f"{', '.join(TRANSLATED)}", file=path)
    return language


def _translation_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    for path in files:
        _language_of(path)
    return files


def _check_item(item: Mapping[str, Any], path: Path, language: str) -> dict[str, Any]:
    """Field names, types and limits of one translation item; returns it cleaned."""
    entry_id = item["id"]
    unknown = sorted(set(map(str, item)) - set(FIELDS))
    if unknown:
        raise KBError(f"unknown fields: {', '.join(unknown)}", file=path, entry_id=entry_id)
    missing = [k for k in FIELDS if k not in item]
    if missing:
        raise KBError(f"missing fields: {', '.join(missing)}", file=path, entry_id=entry_id)
    for key in ("title", "question", "answer"):
        if not isinstance(item[key], str) or not item[key].strip():
            raise KBError(f"{key} must be a non-empty string", file=path, entry_id=entry_id)
    alternates = item["alternates"]
    if not isinstance(alternates, list) or not all(isinstance(a, str) and a.strip() for a in alternates):
        raise KBError("alternates must be a list of non-empty strings", file=path, entry_id=entry_id)
    distinct = tuple(dict.fromkeys(a.strip() for a in alternates))
    if len(distinct) < MIN_ALTERNATES:
        raise KBError(f"{len(distinct)} distinct alternates (at least {MIN_ALTERNATES})", file=path, entry_id=entry_id)
    follows = item["follows"]
    if isinstance(follows, str):
        try:
            follows = datetime.date.fromisoformat(follows)
        except ValueError:
            follows = None
    if not isinstance(follows, datetime.date) or isinstance(follows, datetime.datetime):
        raise KBError("follows must be a date YYYY-MM-DD (the Japanese entry's reviewed_at)", file=path, entry_id=entry_id)
    title = item["title"].strip()
    limit = TITLE_MAX.get(language, TITLE_MAX_OTHER)
    if len(title) > limit:
        raise KBError(f"title is {len(title)} characters (max {limit} for {language})", file=path, entry_id=entry_id)
    return {"title": title, "question": item["question"].strip(), "answer": item["answer"].strip(),
            "alternates": distinct, "follows": follows}


def _raw_answers(code: str, kb_dir: Path) -> tuple[dict[str, str], set[str], set[str], frozenset[str]]:
    """The city's raw Japanese answers by id, the ids whose answer is the base one, every id any
    city loads (base and all city-only entries), and the base ids."""
    answers: dict[str, str] = {}
    for path in sorted((kb_dir / "base").glob("*.yaml")):
        for item in _entries_of(path):
            if isinstance(item.get("answer"), str):
                answers[item["id"]] = item["answer"]
    from_base = set(answers)
    known = set(answers)
    base_ids = frozenset(answers)
    for city in MUNICIPALITIES:
        city_dir = kb_dir / "cities" / city
        if not city_dir.is_dir():
            continue
        for path in sorted(p for p in city_dir.glob("*.yaml") if p.name != "city.yaml"):
            for item in _entries_of(path):
                known.add(item["id"])
                if city == code and "answer" in item and isinstance(item["answer"], str):
                    answers[item["id"]] = item["answer"]
                    from_base.discard(item["id"])
    return answers, from_base, known, base_ids


def load_translations(code: str, entries: Iterable[KBEntry], kb_dir: Path = KB_DIR) -> list[Translation]:
    """The translations the city loads, checked; raises KBError naming the file and the item."""
    kb_dir = Path(kb_dir)
    city = load_city(code, kb_dir)
    city_ids = {e.id for e in entries}
    raw_answers, from_base, known, base_ids = _raw_answers(code, kb_dir)
    merged: dict[tuple[str, str], dict[str, Any]] = {}

    def read(path: Path, *, city_file: bool) -> None:
        language = _language_of(path)
        seen: set[str] = set()
        for item in _entries_of(path):
            entry_id = item["id"]
            if entry_id in seen:
                raise KBError("duplicate id in this file", file=path, entry_id=entry_id)
            seen.add(entry_id)
            values = _check_item(item, path, language)
            if entry_id not in (city_ids if city_file else known):
                where = f"{city.name}の知識ベース" if city_file else "the knowledge base (base or any city)"
                raise KBError(f"unknown entry id: not in {where}", file=path, entry_id=entry_id)
            if entry_id not in city_ids:
                continue  # another city's own entry
            used = placeholders = _placeholders(values["answer"], path, entry_id)
            undefined = sorted(p for p in placeholders if not p or p not in city.vars)
            if undefined:
                raise KBError(f"placeholder {{{undefined[0]}}} is not defined in city.yaml vars", file=path, entry_id=entry_id)
            # A base translation answers unless the city replaced the base entry's Japanese answer.
            gives_answer = city_file or entry_id in from_base or entry_id not in base_ids
            japanese = _placeholders(raw_answers.get(entry_id, ""), path, entry_id)
            if gives_answer and not used <= japanese:  # adds no fact; {contact}/{homepage} may go
                raise KBError(f"placeholder {{{sorted(used - japanese)[0]}}} is not in the Japanese answer "
                              f"(it has {', '.join(sorted(japanese)) or 'none'})", file=path, entry_id=entry_id)
            answer = _format_answer(values["answer"], city.vars, path, entry_id) if gives_answer else ""
            if len(answer) > ANSWER_MAX:
                raise KBError(f"answer is {len(answer)} characters (max {ANSWER_MAX})", file=path, entry_id=entry_id)
            key = (entry_id, language)
            previous = merged.get(key)
            new = dict(values, answer=answer)
            if previous is not None:  # the city's file wins; the base alternates still count
                new["alternates"] = tuple(dict.fromkeys(new["alternates"] + previous["alternates"]))
            merged[key] = new

    for path in _translation_files(kb_dir / "translations"):
        read(path, city_file=False)
    for path in _translation_files(kb_dir / "cities" / code / "translations"):
        read(path, city_file=True)
    return [Translation(entry_id=eid, language=lang, **values) for (eid, lang), values in merged.items()]


def upsert_translations(session: Session, municipality: str, translations: Iterable[Translation]) -> TranslationReport:
    """Write the city's translations to faq_translations; staff-edited rows are kept, rows of repo
    entries the files no longer hold are removed."""
    report = TranslationReport()
    entries = {r.entry_id: r for r in session.scalars(select(FaqEntry).where(FaqEntry.municipality == municipality))}
    existing = {
        (row.entry_id, row.language): row
        for row in session.scalars(select(FaqTranslation).join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id)
                                   .where(FaqEntry.municipality == municipality))
    }
    shipped: set[tuple[int, str]] = set()
    for t in translations:
        entry = entries.get(t.entry_id)
        if entry is None:
            continue
        report.languages[t.language] = report.languages.get(t.language, 0) + 1
        key = (entry.id, t.language)
        shipped.add(key)
        values = {"title": t.title, "question": t.question, "answer": t.answer,
                  "alternates": list(t.alternates), "follows": t.follows}
        row = existing.get(key)
        if row is None:
            session.add(FaqTranslation(entry_id=entry.id, language=t.language, **values))
            report.added += 1
        elif row.is_staff_edited:
            report.kept_staff_edits += 1
        elif all(getattr(row, k) == v for k, v in values.items()):
            report.unchanged += 1
        else:
            for k, v in values.items():
                setattr(row, k, v)
            report.updated += 1
    repo_entries = {e.id for e in entries.values() if e.origin == "repo"}
    for key, row in existing.items():
        if key not in shipped and not row.is_staff_edited and row.entry_id in repo_entries:
            session.delete(row)
            report.removed += 1
    session.flush()
    return report


def translations_of(session: Session, municipality: str, language: str | None = None) -> list[tuple[str, FaqTranslation]]:
    """(entry id, translation row) of the city's published entries, optionally of one language."""
    query = (select(FaqEntry.entry_id, FaqTranslation).join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id)
             .where(FaqEntry.municipality == municipality, FaqEntry.is_published.is_(True)))
    if language is not None:
        query = query.where(FaqTranslation.language == language)
    return [(eid, row) for eid, row in session.execute(query.order_by(FaqEntry.entry_id, FaqTranslation.language))]


# --- answering in the resident's language ----------------------------------------------------------

EASY = "ja-easy"
# The one-line note over a Japanese answer sent to a resident of another language (bot catalogs).
JAPANESE_ANSWER_NOTE = N_("この回答は日本語だけです。わからないときは、市役所に聞いてください：{contact}")
CONTACT_LABEL = N_("お問い合わせ：")


def _rows(session: Session, municipality: str, entry_ids: Iterable[str], languages: tuple[str, ...]) -> dict[tuple[str, str], FaqTranslation]:
    ids = set(entry_ids)
    if not ids or not languages:
        return {}
    query = (select(FaqEntry.entry_id, FaqTranslation).join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id)
             .where(FaqEntry.municipality == municipality, FaqEntry.entry_id.in_(ids),
                    FaqTranslation.language.in_(languages)))
    return {(eid, row.language): row for eid, row in session.execute(query)}


def _chain(language: str) -> tuple[str, ...]:
    """Where an answer may come from, best first (Japanese is the last resort, not listed)."""
    return (language,) if language == EASY else (language, EASY)


def localize_views(session: Session, municipality: str, views: Iterable[Any], language: str | None,
                   *, answers: bool = True) -> list[Any]:
    """faq.service EntryViews in the resident's language: titles from the resident's language, else
    やさしい日本語, else Japanese; answers (unless `answers` is False) likewise, the お問い合わせ line
    labelled in that language, and a Japanese answer sent to a resident of another language starts
    with a one-line note (in their language) saying so and how to reach the city."""
    from dataclasses import replace

    from bot.i18n import DEFAULT_LANGUAGE, Translator, normalize
    from faq import service  # faq.service builds the views (and imports this module's loader)
    from faq.directory import LINE_LABEL, current_directory

    views = list(views)
    language = normalize(language)
    if language == DEFAULT_LANGUAGE or not views:
        return views
    rows = _rows(session, municipality, (v.entry_id for v in views), _chain(language))
    t = Translator(language)
    directory = current_directory(session, municipality) if answers else None
    out = []
    for v in views:
        found = [rows[(v.entry_id, code)] for code in _chain(language) if (v.entry_id, code) in rows]
        title = found[0].title if found else v.title
        if not answers:
            out.append(replace(v, title=title))
            continue
        answered = next((row for row in found if row.answer.strip()), None)
        if answered is not None:
            raw = service.get_kb_entry(session, municipality, v.entry_id)
            body = answered.answer
            if directory is not None and raw is not None:
                body = directory.finish_answer(body, raw.section, raw.category)
                head, sep, contact = body.rpartition("\n" + LINE_LABEL)
                if sep:
                    body = f"{head}\n{Translator(answered.language).label(CONTACT_LABEL)}{contact}"
            out.append(replace(v, title=title, answer=body))
        else:
            note = t(JAPANESE_ANSWER_NOTE, contact=directory.main_text() if directory else "")
            out.append(replace(v, title=title, answer=f"{note}\n\n{v.answer}"))
    return out


def localize_reply(session: Session, municipality: str, reply: Any, language: str | None) -> Any:
    """A faq.service FaqReply with its entry (answer) and 「もしかして」 candidates in the language."""
    from dataclasses import replace

    from bot.i18n import DEFAULT_LANGUAGE, normalize

    if normalize(language) == DEFAULT_LANGUAGE:
        return reply
    entry = localize_views(session, municipality, [reply.entry], language)[0] if reply.entry is not None else None
    candidates = tuple(localize_views(session, municipality, reply.candidates, language, answers=False))
    return replace(reply, entry=entry, candidates=candidates)
