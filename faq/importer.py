"""Importing a city's FAQ CSV in short transactions: all or nothing for staff, no stall for residents.

1. Read. The encoding is found from the bytes (UTF-8 with or without BOM, else Shift_JIS as
   Excel writes it) and the CSV is parsed as a stream, one record at a time: memory holds one
   record and the ids seen, however large the file.
2. Validate every row of the file before anything is written, errors by line: broken encoding,
   broken CSV (an unclosed quote, text after a closing quote, NUL), a field longer than
   FAQ_IMPORT_MAX_FIELD_CHARS, more than FAQ_IMPORT_MAX_ROWS rows, the row checks of
   faq.store. One error and nothing is written.
3. Stage. The rows are copied to faq_import_rows under a job row (faq_imports, "staging") in
   chunks of FAQ_IMPORT_CHUNK_ROWS rows, one short transaction each. Nobody sees staged rows.
4. Commit point: one short transaction sets the job to "publishing". From here the import
   happens, whatever happens to this process.
5. Publish. The staged rows are applied to faq_entries in chunks, each one short transaction
   that also writes the history (faq_revisions), deletes the staged rows it applied and moves
   the job's progress. Meanwhile residents keep being answered from the index built before the
   import (faq.service holds the index while a job publishes), and then from the whole new one.
6. Done.

After each transaction the importer pauses at least as long as the transaction took, so on
SQLite the webhook's inserts and the inbox's handler transactions take the one write lock in
between: the import never holds it for more than one chunk.

A crash (killed process, lost power) leaves a job whose heartbeat (moved by every chunk) stops.
Before the commit point that is staged rows nobody sees: the next import of the city deletes
them, as if the import had never started. After it, a partly published import: the next import
of the city, `flask faq import --resume` or the admin page's 「続きを反映する」 finishes it
(applying a staged row again changes nothing). Either way staff see the whole file or none of it.
"""

from __future__ import annotations

import dataclasses

import codecs
import csv
import datetime as dt
import io
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from bot.db import Database, utcnow
from bot.csvsafe import unescape_cell
from bot.text import multi_line, single_line
from faq import workbench
from faq.kb import KBEntry
from faq.models import FaqEntry, FaqImport, FaqImportRow, FaqRevision
from faq.store import KOSODATE_COLUMNS, PROJECT_COLUMNS, ImportError_, _row_to_entry

# An import whose heartbeat is older than this is taken for dead (each chunk moves it; a chunk
# waits at most 30 s for SQLite's write lock).
STALE_SECONDS = 60.0
# Reporting more errors than this helps nobody: the file needs fixing as a whole.
MAX_REPORTED_ERRORS = 1000
# Between transactions the importer rests at least this long (a writer waiting for SQLite's lock
# retries every ≤ 5 ms: bot.db._begin_immediate), and at least as long as the transaction took.
MIN_PAUSE_SECONDS = 0.006
ENTRY_VALUES = ("category", "title", "question", "alternates", "keywords", "answer", "source", "reviewed_at")

Progress = Callable[[str, int, int], None]  # (phase "stage" | "publish", rows done, rows in all)


@dataclass(frozen=True)
class ImportLimits:
    """How large an import may be, and how many rows one transaction writes (settings FAQ_IMPORT_*)."""

    max_rows: int = 20_000
    max_field_chars: int = 10_000
    chunk_rows: int = 100

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ImportLimits:
        """The limits set for the app."""
        return cls(int(config["FAQ_IMPORT_MAX_ROWS"]), int(config["FAQ_IMPORT_MAX_FIELD_CHARS"]),
                   max(1, int(config["FAQ_IMPORT_CHUNK_ROWS"])))


@dataclass(frozen=True)
class ImportResult:
    """What an import changed."""

    import_id: int
    filename: str
    rows: int
    added: int
    updated: int
    unchanged: int

    def summary(self) -> str:
        """One Japanese line for the CLI and the admin UI (as faq.store.LoadReport says it)."""
        return f"追加 {self.added} 件、更新 {self.updated} 件、変更なし {self.unchanged} 件"


class ImportBusy(ImportError_):
    """Another import of the city is running: nothing was changed."""


# --- reading ----------------------------------------------------------------------------------------


class CsvSource:
    """A CSV's bytes on disk or in memory (or text already decoded), opened afresh for each pass."""

    def __init__(self, *, path: Path | None = None, data: bytes | None = None, text: str | None = None) -> None:
        self.path, self.data, self.text = path, data, text
        self._encoding: str | None = None

    def _raw(self) -> BinaryIO:
        if self.path is not None:
            return open(self.path, "rb")  # noqa: SIM115 - closed by the TextIOWrapper that wraps it
        return io.BytesIO(self.data or b"")

    @property
    def encoding(self) -> str:
        """The file's encoding (found once, by decoding the whole file in slices); raises ImportError_."""
        if self._encoding is None:
            with self._raw() as raw:
                self._encoding = detect_encoding(raw)
        return self._encoding

    def open(self) -> TextIO:
        """The file as text, for csv (newline="" so quoted line breaks stay in their cells)."""
        if self.text is not None:
            return io.StringIO(self.text.removeprefix("\ufeff"), newline="")
        return io.TextIOWrapper(self._raw(), encoding=self.encoding, newline="")


_UNREADABLE = "文字コードを判別できません（UTF-8 または Shift_JIS で保存してください）。この行に、どちらとしても読めない文字があります"


def detect_encoding(raw: BinaryIO) -> str:
    """"utf-8-sig" or "cp932": the first that decodes the whole file; else ImportError_ at the line
    where the likelier one (the one that read further) failed."""
    if raw.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise ImportError_([(1, "UTF-16（Unicode テキスト）で保存されたファイルは読めません。"
                                "Excel では「CSV UTF-8（コンマ区切り）」か「CSV（コンマ区切り）」で保存してください")])
    failed_at: list[int] = []
    for encoding in ("utf-8-sig", "cp932"):
        raw.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        line = 1
        try:
            while chunk := raw.read(1 << 20):
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    line += chunk[: max(0, exc.start - pending)].count(b"\n")
                    raise
                line += chunk.count(b"\n")
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            failed_at.append(line)
            continue
        return encoding
    raise ImportError_([(max(failed_at), _UNREADABLE)])


def _csv_problem(exc: csv.Error, limits: ImportLimits) -> str:
    """Python's csv error in words staff can act on."""
    message = str(exc)
    if "field larger than field limit" in message:
        return f"項目が長すぎます（1項目 {limits.max_field_chars:,} 文字まで）。「\"」の閉じ忘れがないかも確かめてください"
    if "unexpected end of data" in message or "EOF" in message:
        return "「\"」で始まった項目が、ファイルの終わりまで閉じられていません"
    if "expected after" in message:
        return "「\"」で囲んだ項目の後ろに、区切りの「,」の前の余分な文字があります（項目の中の「\"」は「\"\"」と2つ重ねます）"
    return f"CSVとして読めません（{message}）"


@dataclass(frozen=True)
class ScannedRow:
    """One data record: its first line, and the entry or why it cannot be one."""

    line: int
    entry: KBEntry | None
    error: str | None = None


def scan(source: CsvSource, municipality: str, limits: ImportLimits) -> Iterator[ScannedRow]:
    """Every data record of the file in order, checked on its own (not against the others).

    Raises ImportError_ for what stops reading altogether (encoding, header); a record csv cannot
    read, or one past the row limit, is yielded as an error and ends the scan.
    """
    if csv.field_size_limit() <= limits.max_field_chars:
        csv.field_size_limit(limits.max_field_chars + 1)  # past ours, csv's own limit (131,072) stops reading
    today = dt.date.today()
    with source.open() as stream:
        reader = csv.reader(stream, strict=True)
        header: tuple[str, ...] | None = None
        kind = ""
        rows = 0
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if header is None:
                    raise ImportError_([(line, _csv_problem(exc, limits))]) from None
                yield ScannedRow(line, None, _csv_problem(exc, limits) + "。この行より後は読んでいません")
                return
            if not cells:
                continue  # a blank line
            if header is None:
                header = tuple(c.strip().lstrip("\ufeff") for c in cells)
                if set(KOSODATE_COLUMNS) <= set(header):
                    kind = "kosodate"
                elif set(PROJECT_COLUMNS) <= set(header):
                    kind = "project"
                else:
                    raise ImportError_([(line, "見出し行が不正です。次のどちらかの列が必要です: "
                                               f"{', '.join(PROJECT_COLUMNS)} または {', '.join(KOSODATE_COLUMNS)}")])
                continue
            rows += 1
            if rows > limits.max_rows:
                yield ScannedRow(line, None, f"行数が上限（{limits.max_rows:,} 行）を超えています。"
                                             "ファイルを分けて取り込んでください。この行より後は読んでいません")
                return
            yield _check(line, header, cells, kind, municipality, limits, today)


def _check(line: int, header: tuple[str, ...], cells: list[str], kind: str, municipality: str,
           limits: ImportLimits, today: dt.date) -> ScannedRow:
    if len(cells) > len(header):
        return ScannedRow(line, None, "列の数が見出し行より多くなっています")
    for name, value in zip(header, cells):
        if len(value) > limits.max_field_chars:
            return ScannedRow(line, None, f"「{name}」が長すぎます（{len(value):,} 文字。1項目 {limits.max_field_chars:,} 文字まで）")
        if "\x00" in value:
            return ScannedRow(line, None, f"「{name}」にNUL文字（0x00）が含まれています。CSVとして保存し直してください")
    # LF line breaks, as the forms store them; a cell our own export escaped (bot.csvsafe) comes back as it was.
    row = {name: multi_line(unescape_cell(value)) for name, value in zip(header, cells)}
    try:
        entry = _row_to_entry(row, kind, municipality, today)
        # One-line fields as the edit form stores them, so the next untouched save changes nothing.
        entry = dataclasses.replace(entry, category=single_line(entry.category), title=single_line(entry.title),
                                    source=single_line(entry.source))
        return ScannedRow(line, entry)
    except ValueError as exc:
        return ScannedRow(line, None, str(exc))


def validate(source: CsvSource, municipality: str, limits: ImportLimits) -> int:
    """Check the whole file (nothing is written); returns its number of rows, or raises ImportError_ with every bad line."""
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    rows = 0
    for row in scan(source, municipality, limits):
        if row.entry is None:
            errors.append((row.line, row.error or ""))
        elif row.entry.id in seen:
            errors.append((row.line, f"ID「{row.entry.id}」が {seen[row.entry.id]} 行目と重複しています"))
        else:
            seen[row.entry.id] = row.line
            rows += 1
        if len(errors) >= MAX_REPORTED_ERRORS:
            errors.append((row.line, f"誤りが {MAX_REPORTED_ERRORS:,} 件を超えたため、この行より後は検査していません"))
            break
    if not rows and not errors:
        errors.append((1, "データ行がありません"))
    if errors:
        raise ImportError_(errors)
    return rows


def entries(source: CsvSource, municipality: str, limits: ImportLimits) -> Iterator[tuple[int, KBEntry]]:
    """(line, entry) of a file that passed validate(); raises ImportError_ if it reads differently now."""
    for row in scan(source, municipality, limits):
        if row.entry is None:
            raise ImportError_([(row.line, row.error or "")])
        yield row.line, row.entry


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- preview -----------------------------------------------------------------------------------------


@dataclass
class ImportPreview:
    """What importing a (valid) file would change: counts, and the first few of each kind."""

    rows: int = 0
    n_added: int = 0
    n_updated: int = 0
    n_unchanged: int = 0
    overwritten: int = 0  # staff-edited entries the file would overwrite
    added: list[KBEntry] = field(default_factory=list)
    updated: list[tuple[KBEntry, FaqEntry, list[str]]] = field(default_factory=list)


def _values(entry: KBEntry) -> dict[str, Any]:
    values = {name: getattr(entry, name) for name in ENTRY_VALUES}
    values["alternates"], values["keywords"] = list(entry.alternates), list(entry.keywords)
    return values


def _changed(row: FaqEntry, values: Mapping[str, Any]) -> list[str]:
    return [name for name, value in values.items() if getattr(row, name) != value]


def preview(db: Database, source: CsvSource, municipality: str, limits: ImportLimits, examples: int = 200) -> ImportPreview:
    """Validate the file, then compare it with the stored entries chunk by chunk (reads only, no write lock)."""
    plan = ImportPreview(rows=validate(source, municipality, limits))
    for chunk in _chunks(entries(source, municipality, limits), max(limits.chunk_rows, 500)):
        with db.read_session() as session:
            stored = {r.entry_id: r for r in session.scalars(select(FaqEntry).where(
                FaqEntry.municipality == municipality, FaqEntry.entry_id.in_([e.id for _, e in chunk])))}
            session.expunge_all()  # kept for the page after the session ends
        for _, entry in chunk:
            row = stored.get(entry.id)
            if row is None:
                plan.n_added += 1
                if len(plan.added) < examples:
                    plan.added.append(entry)
                continue
            fields = _changed(row, _values(entry))
            if not fields:
                plan.n_unchanged += 1
                continue
            plan.n_updated += 1
            plan.overwritten += bool(row.is_staff_edited)
            if len(plan.updated) < examples:
                plan.updated.append((entry, row, fields))
    return plan


# --- writing -----------------------------------------------------------------------------------------


def _pause(started: float) -> None:
    """Rest as long as the transaction that started at `started` took (at least MIN_PAUSE_SECONDS)."""
    time.sleep(max(MIN_PAUSE_SECONDS, time.monotonic() - started))


def _is_stale(job: FaqImport, now: dt.datetime) -> bool:
    return job.heartbeat_at < now - dt.timedelta(seconds=STALE_SECONDS)


def unfinished(db: Database, municipality: str) -> list[FaqImport]:
    """The city's imports that are staging or publishing (running, or interrupted)."""
    with db.read_session() as session:
        jobs = list(session.scalars(select(FaqImport).where(
            FaqImport.municipality == municipality, FaqImport.state.in_(("staging", "publishing"))).order_by(FaqImport.id)))
        session.expunge_all()
        return jobs


def is_interrupted(job: FaqImport, now: dt.datetime | None = None) -> bool:
    """True for an unfinished import whose heartbeat stopped."""
    return job.state in ("staging", "publishing") and _is_stale(job, now or utcnow())


def _busy(job: FaqImport) -> ImportBusy:
    who = f"、{job.username}" if job.username else ""
    return ImportBusy([(0, f"ほかの取り込み（{job.filename}{who}）が進行中です。終わってから、もう一度お試しください")])


def recover(db: Database, municipality: str, limits: ImportLimits, on_progress: Progress | None = None) -> list[ImportResult]:
    """Finish the city's interrupted imports that passed their commit point; discard the others' staged rows.

    Raises ImportBusy while another import of the city is running. Returns the finished imports.
    """
    finished = []
    for job in unfinished(db, municipality):
        if not is_interrupted(job):
            raise _busy(job)
        if job.state == "staging":
            _discard(db, job.id, limits)
        else:
            finished.append(_publish(db, job.id, limits, on_progress))
    return finished


def run_import(db: Database, source: CsvSource, municipality: str, limits: ImportLimits, *, filename: str,
               staff_user_id: int | None = None, username: str = "", on_progress: Progress | None = None) -> ImportResult:
    """Validate the whole file, stage it, pass the commit point, publish it: see the module's docstring.

    Raises ImportError_ (errors by line; nothing was changed) or ImportBusy.
    """
    recover(db, municipality, limits, on_progress)
    rows = validate(source, municipality, limits)
    job_id = _create_job(db, municipality, filename[:200], staff_user_id, username[:64])
    try:
        _stage(db, job_id, source, municipality, limits, rows, on_progress)
        with db.session() as session:
            session.execute(update(FaqImport).where(FaqImport.id == job_id, FaqImport.state == "staging")
                            .values(state="publishing", heartbeat_at=utcnow()))
    except BaseException:
        _discard(db, job_id, limits)  # before the commit point: as if it had never started
        raise
    return _publish(db, job_id, limits, on_progress)


def _create_job(db: Database, municipality: str, filename: str, staff_user_id: int | None, username: str) -> int:
    """A new job in state "staging", unless another import of the city is unfinished (ImportBusy)."""
    with db.session() as session:
        if db.is_postgres:  # SQLite's BEGIN IMMEDIATE already serialises this transaction
            session.execute(text("LOCK TABLE faq_imports IN SHARE ROW EXCLUSIVE MODE"))
        other = session.scalar(select(FaqImport).where(
            FaqImport.municipality == municipality, FaqImport.state.in_(("staging", "publishing"))))
        if other is not None:
            raise _busy(other)
        job = FaqImport(municipality=municipality, state="staging", filename=filename, staff_user_id=staff_user_id,
                        username=username, created_at=utcnow(), heartbeat_at=utcnow())
        session.add(job)
        session.flush()
        return job.id


def _stage(db: Database, job_id: int, source: CsvSource, municipality: str, limits: ImportLimits, rows: int,
           on_progress: Progress | None) -> None:
    position = 0
    for chunk in _chunks(entries(source, municipality, limits), limits.chunk_rows):
        values = [{"import_id": job_id, "position": position + i, "line": line, "entry_id": e.id, **_values(e)}
                  for i, (line, e) in enumerate(chunk)]
        started = time.monotonic()
        with db.write_connection() as conn:
            conn.execute(insert(FaqImportRow), values)
            conn.execute(update(FaqImport).where(FaqImport.id == job_id)
                         .values(rows=position + len(chunk), heartbeat_at=utcnow()))
        position += len(chunk)
        if on_progress:
            on_progress("stage", position, rows)
        _pause(started)
    if position != rows:
        raise ImportError_([(0, "取り込み中にファイルの内容が変わりました。もう一度お試しください")])


def _discard(db: Database, job_id: int, limits: ImportLimits) -> None:
    """Delete a job's staged rows chunk by chunk, then mark it discarded."""
    while True:
        started = time.monotonic()
        with db.write_connection() as conn:
            positions = list(conn.scalars(select(FaqImportRow.position).where(FaqImportRow.import_id == job_id)
                                          .order_by(FaqImportRow.position).limit(limits.chunk_rows)))
            if not positions:
                conn.execute(update(FaqImport).where(FaqImport.id == job_id, FaqImport.state.in_(("staging", "discarded")))
                             .values(state="discarded", finished_at=utcnow()))
                return
            conn.execute(delete(FaqImportRow).where(FaqImportRow.import_id == job_id,
                                                    FaqImportRow.position <= positions[-1]))
            conn.execute(update(FaqImport).where(FaqImport.id == job_id).values(heartbeat_at=utcnow()))
        _pause(started)


def _publish(db: Database, job_id: int, limits: ImportLimits, on_progress: Progress | None) -> ImportResult:
    """Apply a job's staged rows chunk by chunk until none is left; the job is then "done".

    Each chunk is planned from a read (no lock), then written with Core statements in one short
    write transaction, which first checks that nothing it planned against has moved meanwhile
    (another publisher, a staff edit) and plans again under the lock if it has.
    """
    jobs = FaqImport.__table__
    while True:
        with db.read_session() as session:
            job = session.execute(select(jobs).where(jobs.c.id == job_id)).one()
            plan = _plan(session.connection(), job, limits.chunk_rows) if job.state == "publishing" else None
        started = time.monotonic()
        with db.write_connection() as conn:
            query = select(jobs).where(jobs.c.id == job_id)
            job = conn.execute(query.with_for_update() if db.is_postgres else query).one()  # one publisher at a time
            if job.state == "publishing":
                if plan is None or plan.first != job.published or _versions(conn, job.municipality, plan.seen) != plan.seen:
                    plan = _plan(conn, job, limits.chunk_rows)
                _write(conn, job, plan)
            job = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
        if job.state != "publishing":
            return ImportResult(job.id, job.filename, job.rows, job.added, job.updated, job.unchanged)
        if on_progress:
            on_progress("publish", job.published, job.rows)
        _pause(started)


@dataclass
class _Plan:
    """What publishing the next chunk of staged rows writes."""

    first: int  # position of the chunk's first staged row
    last: int
    seen: dict[str, tuple[int, Any]]  # stored entries the plan was made against: entry_id -> (id, updated_at)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    revisions: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0


def _snapshot(entry_id: str, values: Mapping[str, Any], is_published: bool) -> dict[str, Any]:
    """What a revision records of an entry (faq.workbench.snapshot), from plain values."""
    return workbench.EntryDraft(
        entry_id=entry_id, category=values["category"], title=values["title"], question=values["question"],
        alternates=tuple(values["alternates"] or ()), keywords=tuple(values["keywords"] or ()),
        answer=values["answer"], source=values["source"] or "", is_published=is_published).snapshot()


def _versions(conn: Connection, municipality: str, seen: Mapping[str, tuple[int, Any]]) -> dict[str, tuple[int, Any]]:
    """(id, updated_at) now of those of the chunk's entries that are stored."""
    entries = FaqEntry.__table__
    return {r.entry_id: (r.id, r.updated_at) for r in conn.execute(
        select(entries.c.entry_id, entries.c.id, entries.c.updated_at).where(
            entries.c.municipality == municipality, entries.c.entry_id.in_(list(seen) or [""])))}


def _plan(conn: Connection, job: Any, size: int) -> _Plan | None:
    """The next `size` staged rows of the job compared with the stored entries (None: nothing left)."""
    staged_t, entries = FaqImportRow.__table__, FaqEntry.__table__
    staged = conn.execute(select(staged_t).where(staged_t.c.import_id == job.id)
                          .order_by(staged_t.c.position).limit(size)).all()
    if not staged:
        return None
    ids = [s.entry_id for s in staged]
    stored = {r.entry_id: r for r in conn.execute(select(entries).where(
        entries.c.municipality == job.municipality, entries.c.entry_id.in_(ids)))}
    plan = _Plan(staged[0].position, staged[-1].position, {e: (r.id, r.updated_at) for e, r in stored.items()})
    # Every id in the chunk, stored or not: a row a staff member creates meanwhile changes the versions.
    plan.seen.update({e: (0, None) for e in ids if e not in stored})
    now = utcnow()
    revision = {"municipality": job.municipality, "action": "import", "at": now, "staff_user_id": job.staff_user_id,
                "username": job.username, "note": f"CSV取り込み: {job.filename}"}
    for s in staged:
        values = {name: getattr(s, name) for name in ENTRY_VALUES}
        row = stored.get(s.entry_id)
        if row is None:
            plan.inserts.append({"municipality": job.municipality, "entry_id": s.entry_id, "origin": "import",
                                 "is_published": True, "is_staff_edited": False, "section": "", "updated_at": now, **values})
            plan.revisions.append({**revision, "entry_id": s.entry_id, "before": None,
                                   "after": _snapshot(s.entry_id, values, True)})
        elif all(getattr(row, name) == value for name, value in values.items()):
            plan.unchanged += 1
        else:
            plan.updates.append({"b_id": row.id, "updated_at": now, **values})
            plan.revisions.append({**revision, "entry_id": s.entry_id, "before": _snapshot(s.entry_id, row._mapping, row.is_published),
                                   "after": _snapshot(s.entry_id, values, row.is_published)})
    return plan


def _write(conn: Connection, job: Any, plan: _Plan | None) -> None:
    """Write one planned chunk and move the job's progress (the caller's transaction); no plan: the job is done."""
    jobs, entries = FaqImport.__table__, FaqEntry.__table__
    now = utcnow()
    if plan is None:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(state="done", finished_at=now, heartbeat_at=now))
        return
    if plan.inserts:
        conn.execute(insert(entries), plan.inserts)
    if plan.updates:
        conn.execute(update(entries).where(entries.c.id == bindparam("b_id")), plan.updates)  # SET: the other keys
    if plan.revisions:
        conn.execute(insert(FaqRevision.__table__), plan.revisions)
    conn.execute(delete(FaqImportRow.__table__).where(FaqImportRow.import_id == job.id, FaqImportRow.position <= plan.last))
    conn.execute(update(jobs).where(jobs.c.id == job.id).values(
        published=plan.last + 1, heartbeat_at=now, added=jobs.c.added + len(plan.inserts),
        updated=jobs.c.updated + len(plan.updates), unchanged=jobs.c.unchanged + plan.unchanged))


def publishing(session: Session, municipality: str) -> bool:
    """True while an import of the city is publishing (and alive): residents keep the index they have."""
    since = utcnow() - dt.timedelta(seconds=STALE_SECONDS)
    return bool(session.scalar(select(func.count(FaqImport.id)).where(
        FaqImport.municipality == municipality, FaqImport.state == "publishing", FaqImport.heartbeat_at > since)))
