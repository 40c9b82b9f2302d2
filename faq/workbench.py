"""The knowledge-base workbench: staff edits of entries, their history, and warnings about overlaps.

Plain services over an explicit session (the admin views and the CLI are thin over these).
Every change writes a FaqRevision (who, when, the entry before and after). Changed entries get a
new `updated_at`, which changes the cheap stamp faq.service checks before every answer, so the
next resident message in every worker is answered from the new knowledge base.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.db import utcnow
from bot.i18n import TRANSLATED
from bot.models import StaffUser
from bot.staff_languages import language_order
from bot.text import multi_line, single_line
from faq.kb import ANSWER_MAX, TITLE_MAX, KBEntry
from faq.models import FaqEntry, FaqRevision, FaqTranslation
from faq.translations import ANSWER_MAX as TRANSLATION_ANSWER_MAX
from faq.translations import TITLE_MAX as TRANSLATION_TITLE_MAX
from faq.translations import TITLE_MAX_OTHER as TRANSLATION_TITLE_MAX_OTHER
from faq.normalize import normalize as _normalize

# What a revision records of an entry (and what "revert" restores, except publication).
SNAPSHOT_FIELDS = ("title", "category", "question", "alternates", "keywords", "answer", "source", "is_published")
CONTENT_FIELDS = SNAPSHOT_FIELDS[:-1]
FIELD_LABELS = {
    "entry_id": "ID",
    "title": "タイトル",
    "category": "カテゴリ",
    "question": "質問",
    "alternates": "言い換え",
    "keywords": "キーワード",
    "answer": "回答",
    "source": "出典",
    "is_published": "公開",
    "reviewed_at": "確認日",
}
ACTION_LABELS = {
    "create": "作成",
    "edit": "編集",
    "publish": "公開",
    "unpublish": "非公開",
    "revert": "版を戻す",
    "attach": "言い換えを追加",
    "import": "CSV取り込み",
}
ORIGIN_LABELS = {"repo": "同梱", "import": "CSV取り込み", "staff": "職員作成"}

LIST_SEPARATOR = "|"  # between alternates or keywords in a CSV cell (faq.store), and in the form
ENTRY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Imports accept answers up to this (LINE allows 5000 characters in a text message).
ANSWER_LIMIT = ANSWER_MAX * 5
PHRASE_MAX = 200  # one alternate or keyword
LIST_MAX = 300  # alternates or keywords per entry
CATEGORY_MAX = 64
# A category staff add is named in Japanese; the name is the category menu's button on LINE.
CATEGORY_NAME_MAX = TITLE_MAX
QUESTION_MAX = 1000
SOURCE_MAX = 1000

# Overlap warnings: phrasings this similar (rapidfuzz ratio on normalised text) are "the same".
COLLISION_SCORE = 94.0
DUPLICATE_SCORE = 94.0
FUZZY_MIN_CHARS = 6  # shorter phrasings are compared exactly only (ごみ vs ごみ袋)
FUZZY_MAX_PHRASINGS = 6000  # beyond this only exact collisions are looked for (cost grows n^2)


# Entries are compared again on every page: remember the normalised form of each phrasing.
normalize = functools.lru_cache(maxsize=100_000)(_normalize)


class EntryValidationError(ValueError):
    """An edit was refused; `errors` are Japanese messages for staff."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(" / ".join(errors))
        self.errors = errors


class StaleEditError(ValueError):
    """The entry changed since the form was opened (another staff member saved first)."""


@dataclass(frozen=True)
class EntryDraft:
    """An entry as staff typed it (not yet validated)."""

    entry_id: str
    category: str
    title: str
    question: str
    alternates: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    answer: str = ""
    source: str = ""
    is_published: bool = True

    @classmethod
    def from_row(cls, row: FaqEntry) -> EntryDraft:
        """The current values of a stored entry."""
        return cls(
            entry_id=row.entry_id, category=row.category, title=row.title, question=row.question,
            alternates=tuple(row.alternates or ()), keywords=tuple(row.keywords or ()), answer=row.answer,
            source=row.source or "", is_published=row.is_published,
        )

    def normalized(self) -> EntryDraft:
        """The draft as it is stored: LF line breaks (browsers send CRLF), one-line fields on one line,
        list items one phrasing each, trimmed and without repeats. An untouched form equals the row."""
        return dataclasses.replace(
            self, entry_id=self.entry_id.strip(), category=single_line(self.category), title=single_line(self.title),
            question=multi_line(self.question), answer=multi_line(self.answer), source=single_line(self.source),
            alternates=split_lines("\n".join(self.alternates)), keywords=split_lines("\n".join(self.keywords)),
        )

    def snapshot(self) -> dict[str, Any]:
        """The fields a revision records."""
        return {
            "title": self.title, "category": self.category, "question": self.question,
            "alternates": list(self.alternates), "keywords": list(self.keywords), "answer": self.answer,
            "source": self.source, "is_published": self.is_published,
        }

    def to_kb_entry(self, municipality: str, reviewed_at: dt.date | None = None) -> KBEntry:
        """The draft as the matcher's entry (for what-if replays)."""
        return KBEntry(
            id=self.entry_id, category=self.category, title=self.title, question=self.question,
            alternates=self.alternates, keywords=self.keywords, answer=self.answer, source=self.source,
            municipality=municipality, reviewed_at=reviewed_at or utcnow().date(),
        )


def new_category_errors(name: str) -> list[str]:
    """Japanese messages for the name of a category staff add (empty: it may be used)."""
    if not name:
        return ["新しいカテゴリの名前を入力してください。"]
    errors = []
    if len(name) > CATEGORY_NAME_MAX:
        errors.append(f"新しいカテゴリの名前は{CATEGORY_NAME_MAX}文字以内にしてください（現在{len(name)}文字）。"
                      "LINEの分類ボタンに表示されます。")
    if any(ch.isspace() for ch in name):
        errors.append("新しいカテゴリの名前に空白は使えません。")
    if not any(ch.isalnum() for ch in name):
        errors.append("新しいカテゴリの名前には文字か数字を入れてください。")
    return errors


def split_lines(text: str) -> tuple[str, ...]:
    """One item per line (also `|`-separated, as in the CSV), stripped, without duplicates."""
    seen: dict[str, None] = {}
    for line in (text or "").splitlines():
        for part in line.split(LIST_SEPARATOR):
            part = part.strip()
            if part:
                seen.setdefault(part, None)
    return tuple(seen)


def as_phrasing(text: str) -> str:
    """One text (a resident's question, maybe of several lines) as one list item: no line breaks, no `|`."""
    return single_line(text.replace(LIST_SEPARATOR, " "))


def dedupe_phrasings(items: Iterable[str], also_exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """The items as phrasings (as_phrasing), without those equal after normalisation to an earlier
    one or to one of also_exclude."""
    taken = {normalize(x) for x in also_exclude}
    out: list[str] = []
    for item in items:
        item = as_phrasing(item)
        key = normalize(item)
        if key and key not in taken:
            taken.add(key)
            out.append(item)
    return tuple(out)


def snapshot(row: FaqEntry) -> dict[str, Any]:
    """The fields of a stored entry a revision records."""
    return EntryDraft.from_row(row).snapshot()


def version_of(row: FaqEntry) -> str:
    """A short fingerprint of the entry's current content, for detecting concurrent edits."""
    raw = json.dumps(snapshot(row), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def validate_draft(session: Session, municipality: str, draft: EntryDraft, *, is_new: bool) -> list[str]:
    """Japanese messages for every problem of the draft (empty: it may be saved)."""
    errors: list[str] = []
    if is_new:
        if not draft.entry_id:
            errors.append("IDを入力してください。")
        elif not ENTRY_ID_RE.match(draft.entry_id):
            errors.append("IDは半角英数字と「. _ -」の128文字以内で、英数字で始めてください。")
        elif get_entry_row(session, municipality, draft.entry_id) is not None:
            errors.append(f"ID「{draft.entry_id}」は既に使われています。")
    if not draft.title:
        errors.append("タイトルを入力してください。")
    elif len(draft.title) > TITLE_MAX:
        errors.append(f"タイトルは{TITLE_MAX}文字以内にしてください（現在{len(draft.title)}文字）。LINEのボタンに表示されます。")
    if not draft.category:
        errors.append("カテゴリを選んでください。")
    elif len(draft.category) > CATEGORY_MAX or any(ch.isspace() for ch in draft.category):
        errors.append(f"カテゴリは空白を含まない{CATEGORY_MAX}文字以内にしてください。")
    if not draft.question:
        errors.append("質問を入力してください。")
    elif len(draft.question) > QUESTION_MAX:
        errors.append(f"質問は{QUESTION_MAX}文字以内にしてください。")
    if not draft.answer:
        errors.append("回答を入力してください。")
    elif len(draft.answer) > ANSWER_LIMIT:
        errors.append(f"回答は{ANSWER_LIMIT}文字以内にしてください（現在{len(draft.answer)}文字）。")
    if len(draft.source) > SOURCE_MAX:
        errors.append(f"出典は{SOURCE_MAX}文字以内にしてください。")
    for name, items in (("言い換え", draft.alternates), ("キーワード", draft.keywords)):
        if len(items) > LIST_MAX:
            errors.append(f"{name}は{LIST_MAX}件以内にしてください（現在{len(items)}件）。")
        long = [x for x in items if len(x) > PHRASE_MAX]
        if long:
            errors.append(f"{name}の1件は{PHRASE_MAX}文字以内にしてください（「{long[0][:20]}…」）。")
    return errors


def get_entry_row(session: Session, municipality: str, entry_id: str) -> FaqEntry | None:
    """The stored entry of the city by its stable id."""
    return session.scalar(select(FaqEntry).where(FaqEntry.municipality == municipality, FaqEntry.entry_id == entry_id))


def _record(session: Session, row: FaqEntry, action: str, before: dict[str, Any] | None,
            actor: StaffUser | None, note: str = "") -> FaqRevision:
    revision = FaqRevision(
        municipality=row.municipality, entry_id=row.entry_id, action=action, at=utcnow(),
        staff_user_id=actor.id if actor is not None else None,
        username=(actor.username if actor is not None else "(CLI)")[:64],
        before=before, after=snapshot(row), note=note[:2000],
    )
    session.add(revision)
    return revision


def _apply(row: FaqEntry, draft: EntryDraft) -> None:
    content_changed = False
    for name in CONTENT_FIELDS:
        value = getattr(draft, name)
        value = list(value) if isinstance(value, tuple) else value
        if getattr(row, name) != value:
            setattr(row, name, value)
            content_changed = True
    row.is_published = draft.is_published
    if content_changed:
        row.is_staff_edited = True  # so `faq load` keeps the staff member's version
    row.updated_at = utcnow()


def create_entry(session: Session, municipality: str, draft: EntryDraft, actor: StaffUser | None,
                 note: str = "") -> FaqEntry:
    """Validate and add a new entry written by staff (flushed, not committed)."""
    draft = draft.normalized()
    errors = validate_draft(session, municipality, draft, is_new=True)
    if errors:
        raise EntryValidationError(errors)
    row = FaqEntry(municipality=municipality, entry_id=draft.entry_id, origin="staff", reviewed_at=utcnow().date())
    _apply(row, draft)
    session.add(row)
    session.flush()
    _record(session, row, "create", None, actor, note)
    session.flush()
    return row


def update_entry(session: Session, row: FaqEntry, draft: EntryDraft, actor: StaffUser | None, *,
                 expected_version: str | None = None, action: str = "edit", note: str = "") -> bool:
    """Validate and apply staff's edit; False when nothing changed (no revision is written)."""
    if expected_version is not None and expected_version != version_of(row):
        raise StaleEditError("この項目は、画面を開いた後に他の操作で更新されました。最新の内容を確認してからやり直してください。")
    draft = dataclasses.replace(draft, entry_id=row.entry_id).normalized()
    errors = validate_draft(session, row.municipality, draft, is_new=False)
    if errors:
        raise EntryValidationError(errors)
    before = snapshot(row)
    if draft.snapshot() == before:
        return False
    _apply(row, draft)
    row.reviewed_at = utcnow().date()
    _record(session, row, action, before, actor, note)
    session.flush()
    return True


def set_published(session: Session, row: FaqEntry, published: bool, actor: StaffUser | None) -> bool:
    """Publish or unpublish an entry; False when it already was."""
    if row.is_published == published:
        return False
    before = snapshot(row)
    row.is_published = published
    row.updated_at = utcnow()
    _record(session, row, "publish" if published else "unpublish", before, actor)
    session.flush()
    return True


def add_alternates(session: Session, row: FaqEntry, texts: Sequence[str], actor: StaffUser | None,
                   note: str = "") -> list[str]:
    """Append phrasings the entry does not have yet; returns those added (maybe none)."""
    existing = [row.question, row.title, *(row.alternates or [])]
    new = [t[:PHRASE_MAX] for t in dedupe_phrasings(texts, also_exclude=existing)]
    room = max(LIST_MAX - len(row.alternates or []), 0)
    new = new[:room]
    if not new:
        return []
    before = snapshot(row)
    row.alternates = [*(row.alternates or []), *new]
    row.is_staff_edited = True
    row.updated_at = utcnow()
    _record(session, row, "attach", before, actor, note)
    session.flush()
    return new


def history(session: Session, municipality: str, entry_id: str) -> list[FaqRevision]:
    """The entry's revisions, newest first."""
    return list(session.scalars(
        select(FaqRevision).where(FaqRevision.municipality == municipality, FaqRevision.entry_id == entry_id)
        .order_by(FaqRevision.id.desc())
    ))


def revert_entry(session: Session, row: FaqEntry, revision: FaqRevision, which: str,
                 actor: StaffUser | None) -> bool:
    """Restore the content the entry had after (or before) a revision; publication is left as it is."""
    if revision.entry_id != row.entry_id or revision.municipality != row.municipality:
        raise ValueError("この履歴は別の項目のものです。")
    target = revision.after if which == "after" else revision.before
    if not target:
        raise ValueError("この履歴には戻せる内容がありません。")
    values: dict[str, Any] = {}
    for name in CONTENT_FIELDS:
        if name in target:
            value = target[name]
            values[name] = tuple(value) if isinstance(value, list) else value
    draft = dataclasses.replace(EntryDraft.from_row(row), **values)
    label = "変更後" if which == "after" else "変更前"
    return update_entry(session, row, draft, actor, action="revert",
                        note=f"履歴 #{revision.id}（{ACTION_LABELS.get(revision.action, revision.action)}）の{label}の内容に戻しました")


@dataclass(frozen=True)
class FieldChange:
    """One field that differs between two snapshots."""

    name: str
    label: str
    before: Any
    after: Any
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def snippets(self) -> tuple[str, str]:
        """The changed part of a text field with a little context (long answers differ in a few words)."""
        return changed_part(str(self.before if self.before is not None else ""), str(self.after if self.after is not None else ""))


def changed_part(old: str, new: str, context: int = 15) -> tuple[str, str]:
    """Both texts cut down to where they differ, plus `context` characters each side."""
    prefix = 0
    while prefix < min(len(old), len(new)) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(old), len(new)) - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    start = max(prefix - context, 0)
    keep = max(suffix - context, 0)

    def cut(text: str) -> str:
        middle = text[start : len(text) - keep]
        return ("…" if start else "") + middle + ("…" if keep else "")

    return cut(old), cut(new)


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[FieldChange]:
    """Field-by-field differences (list fields also as added/removed items)."""
    before = before or {}
    after = after or {}
    changes = []
    for name in SNAPSHOT_FIELDS:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        added: tuple[str, ...] = ()
        removed: tuple[str, ...] = ()
        if isinstance(old, list) or isinstance(new, list):
            old_list, new_list = list(old or []), list(new or [])
            added = tuple(x for x in new_list if x not in old_list)
            removed = tuple(x for x in old_list if x not in new_list)
        changes.append(FieldChange(name, FIELD_LABELS[name], old, new, added, removed))
    return changes


# --- overlap warnings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlap:
    """A phrasing of one entry that (nearly) equals a phrasing of another entry."""

    kind: str  # "duplicate": the entries' questions/titles are the same; "collision": an alternate is
    entry_id: str
    text: str
    other_entry_id: str
    other_text: str
    score: float


OVERLAP_LABELS = {"duplicate": "重複の疑い", "collision": "言い換えの衝突"}


@dataclass
class OverlapReport:
    """Overlaps per entry id."""

    by_entry: dict[str, list[Overlap]] = field(default_factory=dict)
    fuzzy: bool = True  # False when there were too many phrasings to compare approximately

    def of(self, entry_id: str) -> list[Overlap]:
        """The overlaps of one entry."""
        return self.by_entry.get(entry_id, [])

    def kinds(self, entry_id: str) -> set[str]:
        """Which kinds of overlap the entry has."""
        return {o.kind for o in self.of(entry_id)}


@dataclass(frozen=True)
class _Phrasing:
    entry: int
    role: str  # "q" question, "t" title, "a" alternate
    text: str
    norm: str


def _phrasings(entries: Sequence[Any]) -> list[_Phrasing]:
    out: list[_Phrasing] = []
    for i, e in enumerate(entries):
        seen: set[str] = set()
        for role, text in (("q", e.question), ("t", e.title), *(("a", a) for a in (e.alternates or ()))):
            norm = normalize(text)
            if norm and norm not in seen:  # within one entry, repeats are harmless
                seen.add(norm)
                out.append(_Phrasing(i, role, text, norm))
    return out


def find_overlaps(entries: Sequence[Any]) -> OverlapReport:
    """Near-duplicate entries and alternates colliding with another entry's phrasings.

    `entries` need `entry_id` or `id`, `title`, `question`, `alternates`. Exact (normalised)
    collisions are always found; approximate ones while the knowledge base is of ordinary size.
    """
    ids = [str(getattr(e, "entry_id", None) or e.id) for e in entries]
    phr = _phrasings(entries)
    report = OverlapReport(fuzzy=len(phr) <= FUZZY_MAX_PHRASINGS)
    found: dict[tuple[str, str, str, str], Overlap] = {}

    def add(a: _Phrasing, b: _Phrasing, score: float) -> None:
        if a.entry == b.entry:
            return
        kind = "duplicate" if a.role in "qt" and b.role in "qt" else "collision"
        for x, y in ((a, b), (b, a)):
            key = (ids[x.entry], x.norm, ids[y.entry], y.norm)
            if key not in found or found[key].score < score:
                found[key] = Overlap(kind, ids[x.entry], x.text, ids[y.entry], y.text, score)

    by_norm: dict[str, list[_Phrasing]] = {}
    for p in phr:
        by_norm.setdefault(p.norm, []).append(p)
    for group in by_norm.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                add(a, b, 100.0)
    if report.fuzzy:
        longer = [p for p in phr if len(p.norm) >= FUZZY_MIN_CHARS]
        norms = [p.norm for p in longer]
        cutoff = min(COLLISION_SCORE, DUPLICATE_SCORE)
        step = 512  # rows at a time keeps the score matrix small
        for lo in range(0, len(longer), step):
            matrix = process.cdist(norms[lo : lo + step], norms, scorer=fuzz.ratio, score_cutoff=cutoff, workers=1)
            rows, cols = (matrix > 0).nonzero()
            for r, c in zip(rows.tolist(), cols.tolist()):
                a, b = longer[lo + r], longer[c]
                if lo + r >= c or a.norm == b.norm:
                    continue
                score = float(matrix[r, c])
                both_questions = a.role in "qt" and b.role in "qt"
                if score >= (DUPLICATE_SCORE if both_questions else COLLISION_SCORE):
                    add(a, b, score)
    for overlap in sorted(found.values(), key=lambda o: (o.entry_id, -o.score, o.other_entry_id, o.text)):
        report.by_entry.setdefault(overlap.entry_id, []).append(overlap)
    return report


class _OverlapCache:
    """The overlap report of the latest few knowledge-base versions in this process."""

    def __init__(self, size: int = 4) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._reports: OrderedDict[str, OverlapReport] = OrderedDict()

    def get(self, entries: Sequence[FaqEntry]) -> OverlapReport:
        """The report for these rows (computed once per content)."""
        digest = hashlib.sha256()
        for e in entries:
            digest.update(repr((e.entry_id, e.title, e.question, e.alternates)).encode())
        key = digest.hexdigest()
        with self._lock:
            if key in self._reports:
                self._reports.move_to_end(key)
                return self._reports[key]
        report = find_overlaps(entries)
        with self._lock:
            self._reports[key] = report
            while len(self._reports) > self._size:
                self._reports.popitem(last=False)
        return report


OVERLAPS = _OverlapCache()


def city_entries(session: Session, municipality: str) -> list[FaqEntry]:
    """Every entry of the city, published or not, by id."""
    return list(session.scalars(select(FaqEntry).where(FaqEntry.municipality == municipality).order_by(FaqEntry.entry_id)))


def overlaps_for_draft(session: Session, municipality: str, draft: EntryDraft) -> list[Overlap]:
    """How the draft's phrasings overlap other entries of the city (warnings shown before saving)."""
    others = [e for e in city_entries(session, municipality) if e.entry_id != draft.entry_id]
    report = find_overlaps([*others, draft])
    return report.of(draft.entry_id)


def search_entries(rows: Sequence[FaqEntry], query: str = "", category: str = "", status: str = "",
                   origin: str = "", flagged: bool = False, overlaps: OverlapReport | None = None) -> list[FaqEntry]:
    """Filter entries by a free-text query (kana/width-insensitive) and the list's filters."""
    needle = normalize(query) if query.strip() else ""
    out = []
    for row in rows:
        if category and row.category != category:
            continue
        if status == "published" and not row.is_published:
            continue
        if status == "unpublished" and row.is_published:
            continue
        if status == "edited" and not row.is_staff_edited:
            continue
        if origin and row.origin != origin:
            continue
        if flagged and (overlaps is None or not overlaps.of(row.entry_id)):
            continue
        if needle:
            hay = normalize(" ".join([row.entry_id, row.title, row.question, row.answer, row.category,
                                      *(row.alternates or []), *(row.keywords or [])]))
            if not all(part in hay for part in needle.split()):
                continue
        out.append(row)
    return out


# --- translations (issue 17) ---------------------------------------------------------------------
#
# A translation follows one review of its Japanese entry (`follows` = the entry's reviewed_at when it
# was written). Saving the Japanese entry sets a new reviewed_at, so every translation written before
# is then older than its Japanese answer: the workbench flags it 「翻訳が古い」 until staff update it.

TRANSLATION_ALTERNATES_MAX = LIST_MAX


@dataclass(frozen=True)
class TranslationDraft:
    """A translation as staff typed it on the side-by-side page."""

    title: str
    question: str
    answer: str
    alternates: tuple[str, ...]

    @classmethod
    def from_row(cls, row: FaqTranslation | None) -> TranslationDraft:
        """The stored translation (empty fields when there is none yet)."""
        if row is None:
            return cls("", "", "", ())
        return cls(row.title, row.question, row.answer, tuple(row.alternates or ()))


def is_stale(translation: FaqTranslation, entry: FaqEntry) -> bool:
    """True when the translation follows an older review than the Japanese entry's (「翻訳が古い」)."""
    if entry.reviewed_at is None:
        return False
    return translation.follows is None or translation.follows < entry.reviewed_at


def translations_of_entry(session: Session, row: FaqEntry) -> dict[str, FaqTranslation]:
    """The entry's translations by language."""
    found = session.scalars(select(FaqTranslation).where(FaqTranslation.entry_id == row.id))
    return {t.language: t for t in found}


def stale_languages(session: Session, municipality: str) -> dict[str, list[str]]:
    """{entry id: languages whose translation is older than the Japanese answer} of the city's entries."""
    rows = session.execute(
        select(FaqEntry.entry_id, FaqTranslation.language)
        .join(FaqTranslation, FaqTranslation.entry_id == FaqEntry.id)
        .where(
            FaqEntry.municipality == municipality,
            FaqEntry.reviewed_at.is_not(None),
            or_(FaqTranslation.follows.is_(None), FaqTranslation.follows < FaqEntry.reviewed_at),
        )
        .order_by(FaqEntry.entry_id)
    ).all()
    out: dict[str, list[str]] = {}
    for entry_id, language in rows:
        out.setdefault(entry_id, []).append(language)
    return {entry_id: sorted(codes, key=language_order) for entry_id, codes in out.items()}


def validate_translation(draft: TranslationDraft, language: str) -> list[str]:
    """Japanese messages for what is wrong with a translation (empty: it can be saved)."""
    errors = []
    limit = TRANSLATION_TITLE_MAX.get(language, TRANSLATION_TITLE_MAX_OTHER)
    if language not in TRANSLATED:
        errors.append(f"「{language}」の翻訳は作れません。")
    if not draft.title.strip():
        errors.append("見出しを入力してください。")
    elif len(draft.title.strip()) > limit:
        errors.append(f"見出しは{limit}文字以内にしてください（いま {len(draft.title.strip())} 文字。ボタンに表示されます）。")
    if not draft.question.strip():
        errors.append("代表的な質問を入力してください。")
    if len(draft.answer) > TRANSLATION_ANSWER_MAX:
        errors.append(f"回答は{TRANSLATION_ANSWER_MAX}文字以内にしてください。")
    if "{" in draft.answer or "}" in draft.answer:
        errors.append("回答に { や } は使えません（連絡先などは日本語の回答と同じ内容を、そのまま書いてください）。")
    if len(draft.alternates) > TRANSLATION_ALTERNATES_MAX:
        errors.append(f"言い換えは{TRANSLATION_ALTERNATES_MAX}件までにしてください。")
    return errors


def save_translation(session: Session, row: FaqEntry, language: str, draft: TranslationDraft) -> FaqTranslation | None:
    """Store staff's translation of an entry: marked staff-edited (kept by `faq load`) and following
    the Japanese entry's current review. None when nothing changed (and the translation was not stale).
    Raises EntryValidationError with Japanese messages."""
    draft = TranslationDraft(
        single_line(draft.title).strip(), single_line(draft.question).strip(), multi_line(draft.answer).strip(),
        dedupe_phrasings(draft.alternates, also_exclude=(draft.question, draft.title)),
    )
    errors = validate_translation(draft, language)
    if errors:
        raise EntryValidationError(errors)
    translation = translations_of_entry(session, row).get(language)
    if translation is None:
        translation = FaqTranslation(entry_id=row.id, language=language, title="", question="", answer="", alternates=[])
        session.add(translation)
    elif TranslationDraft.from_row(translation) == draft and not is_stale(translation, row):
        return None  # saving it unchanged only confirms a stale one still follows the Japanese answer
    translation.title = draft.title
    translation.question = draft.question
    translation.answer = draft.answer
    translation.alternates = list(draft.alternates)
    translation.follows = row.reviewed_at
    translation.is_staff_edited = True
    translation.updated_at = utcnow()
    session.flush()
    return translation
