"""Putting knowledge-base entries into the database: repo files, a city's CSV, and export."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import csvsafe
from faq.directory import SeedReport, read_repo_directory, seed_directory
from faq.kb import ANSWER_MAX, TITLE_MAX, KBEntry, load_kb
from faq.models import FaqEntry
from faq.translations import TranslationReport, load_translations, upsert_translations

PROJECT_COLUMNS = ("id", "category", "title", "question", "alternates", "keywords", "answer", "source", "reviewed_at")
KOSODATE_COLUMNS = ("ID", "問い合わせ文", "応答文", "カテゴリ")
LIST_SEPARATOR = "|"
ENTRY_FIELDS = ("category", "title", "question", "alternates", "keywords", "answer", "source", "reviewed_at")


class ImportError_(ValueError):
    """An import was refused; `errors` lists (line number, message) and nothing was changed."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(f"{line}行目: {msg}" for line, msg in errors[:20]))
        self.errors = errors


@dataclass
class LoadReport:
    """What a load or import changed."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_staff_edits: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)  # `faq load`: repo entries the repo no longer ships
    directory: SeedReport | None = None  # `faq load` only: the city's directory (faq.directory)
    translations: TranslationReport | None = None  # `faq load` only: faq.translations

    def summary(self) -> str:
        """One Japanese line for the CLI and the admin UI."""
        return (f"追加 {len(self.added)} 件、更新 {len(self.updated)} 件、変更なし {len(self.unchanged)} 件"
                + (f"、職員の編集を保持 {len(self.kept_staff_edits)} 件" if self.kept_staff_edits else "")
                + (f"、公開を停止 {len(self.retired)} 件（リポジトリにない項目）" if self.retired else "")
                + (f"。{self.directory.summary()}" if self.directory is not None else "")
                + (f"。{self.translations.summary()}" if self.translations is not None else ""))


def _values(entry: KBEntry) -> dict[str, Any]:
    return {
        "category": entry.category, "title": entry.title, "question": entry.question,
        "alternates": list(entry.alternates), "keywords": list(entry.keywords), "answer": entry.answer,
        "source": entry.source, "reviewed_at": entry.reviewed_at,
    }


def upsert_entries(session: Session, municipality: str, entries: Iterable[KBEntry], origin: str,
                   overwrite_staff_edits: bool = False) -> LoadReport:
    """Insert or update entries by (municipality, id); staff-edited repo entries are kept."""
    report = LoadReport()
    existing = {r.entry_id: r for r in session.scalars(select(FaqEntry).where(FaqEntry.municipality == municipality))}
    for entry in entries:
        values = _values(entry)
        if origin == "repo":  # a CSV has no section: an imported answer keeps the one it had (faq.directory)
            values["section"] = entry.section
        row = existing.get(entry.id)
        if row is None:
            session.add(FaqEntry(municipality=municipality, entry_id=entry.id, origin=origin, **values))
            report.added.append(entry.id)
            continue
        if row.is_staff_edited and not overwrite_staff_edits:
            report.kept_staff_edits.append(entry.id)
            continue
        if all(getattr(row, k) == v for k, v in values.items()):
            report.unchanged.append(entry.id)
            continue
        for key, value in values.items():
            setattr(row, key, value)
        report.updated.append(entry.id)
    session.flush()
    return report


def load_repo_kb(session: Session, municipality: str) -> LoadReport:
    """Load the knowledge base shipped in faq/kb for the city, and its directory (idempotent)."""
    directory = read_repo_directory(municipality)  # checked before anything is written
    entries = load_kb(municipality)
    translations = load_translations(municipality, entries)  # checked before anything is written too
    report = upsert_entries(session, municipality, entries, origin="repo")
    # An entry the repo no longer ships for this city (say another city's own topic that an
    # older base carried) stops being published, unless staff edited it and so made it theirs.
    shipped = {e.id for e in entries}
    for row in session.scalars(select(FaqEntry).where(
            FaqEntry.municipality == municipality, FaqEntry.origin == "repo", FaqEntry.is_published.is_(True))):
        if row.entry_id not in shipped and not row.is_staff_edited:
            row.is_published = False
            report.retired.append(row.entry_id)
    report.directory = seed_directory(session, municipality, directory)
    report.translations = upsert_translations(session, municipality, translations)
    return report


def _split_list(value: str) -> tuple[str, ...]:
    parts = [p.strip() for chunk in value.splitlines() for p in chunk.split(LIST_SEPARATOR)]
    seen: dict[str, None] = {}
    for p in parts:
        if p:
            seen.setdefault(p, None)
    return tuple(seen)


def _short_title(question: str) -> str:
    question = " ".join(question.split())
    return question if len(question) <= TITLE_MAX else question[: TITLE_MAX - 1] + "…"


def parse_csv(text: str, municipality: str) -> list[KBEntry]:
    """Parse either CSV format, validating every row; raises ImportError_ listing every bad line.

    The reading and the checks are faq.importer's (the one CSV reader); this keeps a small file's
    entries in a list, for callers that write them in one transaction (tests, import_csv).
    """
    from faq import importer  # it builds on this module's row checks

    source, limits = importer.CsvSource(text=text), importer.ImportLimits()
    importer.validate(source, municipality, limits)
    return [entry for _line, entry in importer.entries(source, municipality, limits)]


def _row_to_entry(row: dict[str, Any], kind: str, municipality: str, today: dt.date) -> KBEntry:
    if kind == "kosodate":
        entry_id, question, answer, category = (row.get(c, "") for c in KOSODATE_COLUMNS)
        title, alternates, keywords, source, reviewed = _short_title(question), (), (), "子育てオープンデータ協議会『汎用FAQ』形式の取り込み", today
    else:
        entry_id, category, title, question, answer = (row.get(c, "") for c in ("id", "category", "title", "question", "answer"))
        alternates, keywords = _split_list(row.get("alternates", "")), _split_list(row.get("keywords", ""))
        source = row.get("source", "")
        raw_date = row.get("reviewed_at", "")
        try:
            reviewed = dt.date.fromisoformat(raw_date) if raw_date else today
        except ValueError:
            raise ValueError(f"reviewed_at「{raw_date}」は YYYY-MM-DD 形式ではありません") from None
        title = title or _short_title(question)
    missing = [name for name, value in (("ID", entry_id), ("質問", question), ("回答", answer), ("カテゴリ", category)) if not value]
    if missing:
        raise ValueError("必須項目が空です: " + "、".join(missing))
    if len(entry_id) > 128 or any(ch.isspace() for ch in entry_id):
        raise ValueError(f"ID「{entry_id[:40]}」は空白を含まない128文字以内にしてください")
    if len(title) > TITLE_MAX:
        raise ValueError(f"タイトルは{TITLE_MAX}文字以内です（{len(title)}文字）")
    if len(answer) > ANSWER_MAX * 5:
        raise ValueError(f"回答が長すぎます（{len(answer)}文字）")
    if len(category) > 64:
        raise ValueError("カテゴリは64文字以内です")
    return KBEntry(id=entry_id, category=category, title=title, question=question, alternates=tuple(alternates),
                   keywords=tuple(keywords), answer=answer, source=source, municipality=municipality, reviewed_at=reviewed)


def import_csv(session: Session, municipality: str, text: str) -> LoadReport:
    """Validate the whole file, then upsert it (the caller's transaction: all or nothing)."""
    entries = parse_csv(text, municipality)
    return upsert_entries(session, municipality, entries, origin="import", overwrite_staff_edits=True)


def export_csv(session: Session, municipality: str, kind: str = "project") -> str:
    """The city's entries as CSV in the project's columns or the 子育て協議会 columns."""
    rows: Sequence[FaqEntry] = session.scalars(
        select(FaqEntry).where(FaqEntry.municipality == municipality).order_by(FaqEntry.entry_id)
    ).all()
    out = io.StringIO()
    writer = csvsafe.writer(out, lineterminator="\n")  # cells never start a spreadsheet formula
    if kind == "kosodate":
        writer.writerow(KOSODATE_COLUMNS)
        for r in rows:
            writer.writerow([r.entry_id, r.question, r.answer, r.category])
    else:
        writer.writerow(PROJECT_COLUMNS)
        for r in rows:
            writer.writerow([r.entry_id, r.category, r.title, r.question, LIST_SEPARATOR.join(r.alternates or []),
                             LIST_SEPARATOR.join(r.keywords or []), r.answer, r.source,
                             r.reviewed_at.isoformat() if r.reviewed_at else ""])
    return out.getvalue()


def read_text(path: Path) -> str:
    """A CSV file as text (UTF-8 with or without BOM; Shift_JIS as Excel writes it)."""
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportError_([(1, "文字コードを判別できません（UTF-8 または Shift_JIS で保存してください）")])
