"""Large and broken FAQ CSVs: errors by line (never a 500), all or nothing, and residents answered meanwhile."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from bot.db import get_db
from faq import freshness, importer
from faq.models import FaqEntry, FaqImport, FaqImportRow, FaqRevision
from faq.store import load_repo_kb
from tests.conftest import Chat, wait_until
from tests.test_faq_workbench import fast_hashing, html_of, post, staff, upload  # noqa: F401 - fast_hashing is autouse

CITY = "nasukarasuyama"
KOSODATE = "ID,問い合わせ文,応答文,カテゴリ\n"


def rows(n: int, start: int = 0) -> str:
    return "".join(f"k{i},地区{i}の集会所の予約はどこでできますか,集会所{i}は地区の自治会長が受け付けています。,暮らし\n"
                   for i in range(start, start + n))


def count(app: Flask, model: Any = FaqEntry) -> int:
    with get_db(app).read_session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def kb_app(make_app: Callable[..., Flask]) -> Flask:
    """The city with its shipped knowledge base (62 entries), small import limits for the tests."""
    app = make_app(FAQ_IMPORT_MAX_ROWS=50, FAQ_IMPORT_MAX_FIELD_CHARS=300, FAQ_IMPORT_CHUNK_ROWS=7)
    with get_db(app).session() as s:
        load_repo_kb(s, CITY)
    return app


def cli_import(app: Flask, path: Path, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["faq", "import", str(path), *args])


# --- errors by line, never a 500 -----------------------------------------------------------------------

BROKEN: dict[str, tuple[bytes, int, str]] = {
    # name: (file, line reported, words of the message)
    "field over the setting": ((KOSODATE + rows(2) + "k9,質問," + "あ" * 301 + ",暮らし\n" + rows(1, 20)).encode(), 4,
                               "「応答文」が長すぎます（301 文字。1項目 300 文字まで）"),
    "field over csv's own limit": ((KOSODATE + rows(1) + "k9,質問," + "a" * 200_000 + ",暮らし\n").encode(), 3, "項目が長すぎます"),
    "unclosed quote": ((KOSODATE + rows(2) + 'k9,"質問,回答,暮らし\n' + rows(3, 20)).encode(), 4,
                       "ファイルの終わりまで閉じられていません"),
    "text after a closing quote": ((KOSODATE + rows(1) + 'k9,"質問"です,回答,暮らし\n').encode(), 3, "余分な文字"),
    "NUL": ((KOSODATE + rows(1) + "k9,質\x00問,回答,暮らし\n").encode(), 3, "NUL文字"),
    "broken UTF-8": ((KOSODATE + rows(3)).encode() + "k9,質問,回答".encode()[:-1] + b",\xff\n" + rows(2, 20).encode(), 5,
                     "文字コードを判別できません"),
    "UTF-16": ((KOSODATE + rows(1)).encode("utf-16"), 1, "UTF-16"),
    "rows over the limit": ((KOSODATE + rows(51)).encode(), 52, "行数が上限（50 行）を超えています"),
    "no data": (KOSODATE.encode(), 1, "データ行がありません"),
    "not a CSV of ours": (b"\x89PNG\r\n\x1a\n\x00\x00", 1, ""),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_file_is_an_error_of_its_line_in_the_cli_and_nothing_changes(kb_app: Flask, tmp_path: Path, name: str) -> None:
    body, line, words = BROKEN[name]
    path = tmp_path / "city.csv"
    path.write_bytes(body)
    result = cli_import(kb_app, path)
    assert result.exit_code == 1, result.output
    assert f"city.csv:{line}: " in result.output and words in result.output
    assert "データは変更していません" in result.output
    assert count(kb_app) == 62 and count(kb_app, FaqImport) == 0 and count(kb_app, FaqImportRow) == 0


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_upload_is_a_400_with_its_line(kb_app: Flask, name: str) -> None:
    body, line, words = BROKEN[name]
    faq = staff(kb_app, "yamada", "faq")
    token = faq.get("/admin/faq/import").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    import io

    response = faq.post("/admin/faq/import", data={"csrf_token": token, "file": (io.BytesIO(body), "city.csv")},
                        content_type="multipart/form-data")
    page = html_of(response)
    assert response.status_code == 400, page[:500]
    assert f'<tr data-line="{line}">' in page and words in page and "データは変更していません" in page


def test_shift_jis_with_crlf_and_a_bom_in_utf8_both_import(kb_app: Flask, tmp_path: Path) -> None:
    sjis = tmp_path / "sjis.csv"
    sjis.write_bytes((KOSODATE + rows(3)).replace("\n", "\r\n").encode("cp932"))
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (KOSODATE + rows(3, 10)).encode())
    for path in (sjis, bom):
        result = cli_import(kb_app, path)
        assert result.exit_code == 0 and "追加 3 件" in result.output, result.output
    assert count(kb_app) == 62 + 6


def test_every_bad_line_is_reported_not_only_the_first(kb_app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "city.csv"
    path.write_text(KOSODATE + rows(2) + "k0,dup,dup,暮らし\n" + ",,,\n" + rows(2, 10) + "k9,q," + "あ" * 400 + ",c\n",
                    encoding="utf-8")
    result = cli_import(kb_app, path)
    assert [line for line in result.output.splitlines() if line.startswith(str(path))] == [
        f"{path}:4: ID「k0」が 2 行目と重複しています",
        f"{path}:5: 必須項目が空です: ID、質問、回答、カテゴリ",
        f"{path}:8: 「応答文」が長すぎます（400 文字。1項目 300 文字まで）",
    ]


# --- all or nothing ----------------------------------------------------------------------------------------


def age(app: Flask) -> None:
    """Make every unfinished import look abandoned (its process died long ago)."""
    with get_db(app).session() as s:
        s.execute(update(FaqImport).values(heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))


def test_an_import_is_written_in_many_short_transactions(kb_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "city.csv"
    path.write_text(KOSODATE + rows(50), encoding="utf-8")
    transactions = []
    real = get_db(kb_app).write_connection

    def counted() -> Any:
        transactions.append(time.monotonic())
        return real()

    monkeypatch.setattr(get_db(kb_app), "write_connection", counted)
    result = cli_import(kb_app, path)
    assert result.exit_code == 0 and "追加 50 件" in result.output, result.output
    assert len(transactions) >= 2 * 50 // 7  # staged in chunks of 7, then published in chunks of 7
    with get_db(kb_app).read_session() as s:
        job = s.scalar(select(FaqImport))
        assert (job.state, job.rows, job.published, job.added) == ("done", 50, 50, 50)
        assert s.scalar(select(func.count()).select_from(FaqRevision).where(FaqRevision.action == "import")) == 50
    assert count(kb_app, FaqImportRow) == 0


def test_a_crash_before_the_commit_point_leaves_nothing_visible_and_is_cleaned_up(kb_app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "city.csv"
    path.write_text(KOSODATE + rows(40), encoding="utf-8")
    limits = importer.ImportLimits.from_config(kb_app.config)
    db = get_db(kb_app)
    # What a process killed while staging leaves: a job in "staging" with some of its rows.
    job_id = importer._create_job(db, CITY, "city.csv", None, "")
    entries = list(importer.entries(importer.CsvSource(path=path), CITY, limits))[:20]
    with db.write_connection() as conn:
        conn.execute(importer.insert(FaqImportRow), [{"import_id": job_id, "position": i, "line": line, "entry_id": e.id,
                                                      **importer._values(e)} for i, (line, e) in enumerate(entries)])
    assert count(kb_app) == 62
    busy = cli_import(kb_app, path)  # its heartbeat is fresh: it may still be running
    assert busy.exit_code == 1 and "ほかの取り込み（city.csv）が進行中です" in busy.output
    age(kb_app)
    result = cli_import(kb_app, path)
    assert result.exit_code == 0 and "追加 40 件" in result.output, result.output
    with db.read_session() as s:
        assert s.get(FaqImport, job_id).state == "discarded"
    assert count(kb_app) == 62 + 40 and count(kb_app, FaqImportRow) == 0


def test_a_crash_after_the_commit_point_is_finished_once_by_resume(kb_app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "city.csv"
    path.write_text(KOSODATE + rows(45), encoding="utf-8")
    limits = importer.ImportLimits.from_config(kb_app.config)
    db = get_db(kb_app)
    published = []

    def die_after_two_chunks(phase: str, done: int, total: int) -> None:
        if phase == "publish":
            published.append(done)
            if len(published) == 2:
                raise KeyboardInterrupt  # the process stops here: no handler of ours runs

    with pytest.raises(KeyboardInterrupt):
        importer.run_import(db, importer.CsvSource(path=path), CITY, limits, filename="city.csv", on_progress=die_after_two_chunks)
    assert count(kb_app) == 62 + 14
    with db.read_session() as s:
        assert importer.publishing(s, CITY)  # residents keep the index they had
    age(kb_app)
    with db.read_session() as s:
        assert not importer.publishing(s, CITY)
    page = html_of(staff(kb_app, "yamada", "faq").get("/admin/faq/import"))
    assert 'id="import-interrupted"' in page and "45 行のうち 14 行を反映済み" in page
    result = kb_app.test_cli_runner().invoke(args=["faq", "import", "--resume"])
    assert result.exit_code == 0 and "最後まで反映しました（追加 45 件" in result.output, result.output
    assert count(kb_app) == 62 + 45 and count(kb_app, FaqImportRow) == 0
    with db.read_session() as s:
        revisions = s.scalars(select(FaqRevision.entry_id).where(FaqRevision.action == "import")).all()
    assert sorted(revisions) == sorted(f"k{i}" for i in range(45))  # each entry once
    again = kb_app.test_cli_runner().invoke(args=["faq", "import", "--resume"])
    assert "途中で止まっている取り込みはありません" in again.output


def test_the_admin_page_finishes_an_interrupted_import(kb_app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "city.csv"
    path.write_text(KOSODATE + rows(30), encoding="utf-8")
    limits = importer.ImportLimits.from_config(kb_app.config)

    def die(phase: str, done: int, total: int) -> None:
        if phase == "publish":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        importer.run_import(get_db(kb_app), importer.CsvSource(path=path), CITY, limits, filename="city.csv", on_progress=die)
    age(kb_app)
    faq = staff(kb_app, "yamada", "faq")
    done = post(faq, "/admin/faq/import/resume", {}, "/admin/faq/import")
    assert done.status_code == 302
    assert "最後まで反映しました" in html_of(faq.get(done.location))
    assert count(kb_app) == 62 + 30


def test_a_staff_edit_during_the_import_is_not_lost_to_a_stale_plan(kb_app: Flask, tmp_path: Path) -> None:
    """A chunk is planned without the lock; an entry edited meanwhile is planned again under it."""
    path = tmp_path / "city.csv"
    path.write_text(KOSODATE + rows(3), encoding="utf-8")
    assert cli_import(kb_app, path).exit_code == 0
    path.write_text(KOSODATE + rows(3).replace("受け付けています", "受け付けます"), encoding="utf-8")
    db = get_db(kb_app)
    real_plan = importer._plan
    planned = []

    def plan_then_edit(conn: Any, job: Any, size: int) -> Any:
        plan = real_plan(conn, job, size)
        if not planned:  # a staff member saves k1 after the first plan was made
            with db.session() as s:
                s.execute(update(FaqEntry).where(FaqEntry.entry_id == "k1").values(
                    is_published=False, updated_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)))
        planned.append(plan)
        return plan

    importer._plan = plan_then_edit  # type: ignore[assignment]
    try:
        result = cli_import(kb_app, path)
    finally:
        importer._plan = real_plan  # type: ignore[assignment]
    assert result.exit_code == 0 and "更新 3 件" in result.output
    assert len(planned) >= 2  # planned again under the lock
    with db.read_session() as s:
        k1 = s.scalar(select(FaqEntry).where(FaqEntry.entry_id == "k1"))
        assert k1.answer.endswith("受け付けます。") and k1.is_published is False  # the edit and the import both kept
        revision = s.scalars(select(FaqRevision).where(FaqRevision.entry_id == "k1", FaqRevision.action == "import")
                             .order_by(FaqRevision.id.desc())).first()
        assert revision.before["is_published"] is False


# --- residents while an import runs -------------------------------------------------------------------------


def test_a_resident_is_answered_while_the_import_chunk_loop_runs(make_app: Callable[..., Flask], fake_line: Any,
                                                                 tmp_path: Path) -> None:
    app = make_app(FAQ_IMPORT_MAX_ROWS=5000, FAQ_IMPORT_CHUNK_ROWS=20)
    with get_db(app).session() as s:
        load_repo_kb(s, CITY)
    path = tmp_path / "city.csv"
    path.write_text(KOSODATE + rows(2000), encoding="utf-8")
    limits = importer.ImportLimits.from_config(app.config)
    publishing = threading.Event()
    finished: list[float] = []

    def slow(phase: str, done: int, total: int) -> None:
        if phase == "publish":
            publishing.set()
            time.sleep(0.01)  # the loop keeps going for a while on any machine

    def run() -> None:
        with app.app_context():
            importer.run_import(get_db(app), importer.CsvSource(path=path), CITY, limits, filename="city.csv", on_progress=slow)
        finished.append(time.monotonic())

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert publishing.wait(60)
        chat = Chat(app.test_client(), fake_line, "U" + "b" * 32)
        messages = chat.says("住民票の写しがほしい")
        answered = time.monotonic()
        assert messages and "住民票" in messages[0]["text"]
        with get_db(app).read_session() as s:
            job = s.scalar(select(FaqImport))
            assert job.state == "publishing" and 0 < job.published < job.rows  # still in the middle of it
        assert not finished or finished[0] > answered
    finally:
        worker.join(120)
    assert finished and count(app) == 62 + 2000


# --- the index while a knowledge base changes ----------------------------------------------------------------


def test_the_old_value_is_served_while_a_long_rebuild_runs(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freshness, "STAMP_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(freshness, "BUILD_WAIT_SECONDS", 0.2)  # the default waits for small bases
    stamp = ["v1"]
    release = threading.Event()
    builds: list[str] = []

    def build(session: Any, code: str) -> str:
        version = stamp[0]
        builds.append(version)
        if version != "v1":
            release.wait(10)  # a large knowledge base takes a while
        return version

    cache: freshness.StampedCache[str] = freshness.StampedCache(lambda s, c: (stamp[0],), build)
    db = get_db(app)
    with db.read_session() as s:
        assert cache.get(s, CITY) == "v1"  # nothing to serve yet: built at once
        stamp[0] = "v2"
        started = time.monotonic()
        assert cache.get(s, CITY) == "v1" and time.monotonic() - started < 2  # waited 0.2 s at most
        assert cache.get(s, CITY) == "v1" and builds == ["v1", "v2"]  # one rebuild at a time
        release.set()
        wait_until(lambda: cache.get(s, CITY) == "v2", message="the rebuilt value")


def test_a_held_stamp_keeps_the_value(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freshness, "STAMP_CHECK_SECONDS", 0.0)
    stamps: list[Any] = [("v1",)]
    cache: freshness.StampedCache[int] = freshness.StampedCache(lambda s, c: stamps[-1], lambda s, c: len(stamps))
    with get_db(app).read_session() as s:
        assert cache.get(s, CITY) == 1
        stamps.append(None)  # an import is publishing
        assert cache.get(s, CITY) == 1
        stamps.append(("v3",))
        wait_until(lambda: cache.get(s, CITY) == 3, message="the value after the import")


def test_one_line_fields_of_an_import_are_stored_on_one_line(app, tmp_path) -> None:
    from faq.models import FaqEntry

    path = tmp_path / "multi.csv"
    path.write_text("ID,問い合わせ文,応答文,カテゴリ\r\n"
                    "t-1,\"保育園の\r\n申し込み\",\"申込書を\r\n出してください\",\"子育て\r\n支援\"\r\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["faq", "import", str(path)])
    assert result.exit_code == 0, result.output
    with get_db(app).session() as s:
        entry = s.query(FaqEntry).filter(FaqEntry.entry_id.like("%t-1")).one()
        assert "\r" not in entry.answer and "\n" in entry.answer
        assert "\n" not in entry.category and "\r" not in entry.category
