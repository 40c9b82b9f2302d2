"""`flask backup create` / `flask backup restore`: a populated database, backed up while the bot runs and
restored into an empty one, answers residents and keeps the KPI and the notice history; restores that
must not happen are refused with a clear message. SQLite always; PostgreSQL when TEST_DATABASE_URL is one
(fresh source and target databases are created on that server and dropped at the end)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from werkzeug.security import generate_password_hash

from bot import auth
from bot.backup import KEY_TABLES, _pg_connection, backup_kind, summarize
from bot.cli import upgrade_database
from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from faq.store import load_repo_kb
from kpi.metrics import Month
from tests.conftest import Chat
from tests.test_broadcast import add_residents, run_dispatcher, schedule_notice

PASSWORD = "backup-test-password-1234"
QUESTION = "戸籍謄本をコンビニで取りたいのですが"


def _postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL", "")
    return url if url.startswith("postgresql") else None


class Databases:
    """Fresh, empty databases of one kind: SQLite files, or databases on the test PostgreSQL server."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.tmp = tmp
        self.created: list[str] = []

    def new(self, label: str) -> str:
        """The URL of a new empty database."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp / (label + '.sqlite3')}"
        admin = _postgres_url()
        assert admin is not None
        name = f"backup_{label}_{uuid.uuid4().hex[:8]}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(admin).set(database=name).render_as_string(hide_password=False)

    def _admin(self, statement: str) -> None:
        engine = create_engine(_postgres_url() or "", isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def drop_all(self) -> None:
        for name in self.created:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    if request.param == "postgresql" and _postgres_url() is None:
        pytest.skip("PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://… (the PostgreSQL run of .ci/run)")
    dbs = Databases(request.param, tmp_path)
    yield dbs
    dbs.drop_all()


def cli(app: Flask, *args: str) -> Result:
    """`bin/flask ARGS` against this app."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args), input=f"{PASSWORD}\n{PASSWORD}\n")


def table_rows(database_url: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table, in id order."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
    finally:
        engine.dispose()


def notice_tables(database_url: str) -> list[str]:
    """The notice history: broadcasts and every table of theirs (runs, chunks, deliveries, ...)."""
    engine = create_engine(database_url)
    try:
        return sorted(t for t in inspect(engine).get_table_names() if t.startswith("broadcast"))
    finally:
        engine.dispose()


def kpi_csv(app: Flask) -> str:
    """The month's KPI report as CSV (`bin/flask kpi report --month …`)."""
    result = cli(app, "kpi", "report", "--month", Month.of(dt.datetime.now(dt.UTC)).key, "--format", "csv")
    assert result.exit_code == 0, result.output
    return result.output


def populate(app: Flask, fake: FakeLinePlatform) -> None:
    """A city at work: the knowledge base, a staff user, residents asking questions, a notice sent."""
    with get_db(app).session() as session:
        load_repo_kb(session, app.config["MUNICIPALITY"])
    created = cli(app, "users", "create", "tanaka", "--role", "pr")
    assert created.exit_code == 0, created.output
    for n in range(3):
        resident = Chat(app.test_client(), fake, f"U{n + 1:032x}")
        resident.follows(expect=1)
        resident.says(QUESTION, expect=2)  # the answer, and 「この回答は役に立ちましたか？」
    add_residents(app, 12, start=100)
    schedule_notice(app, "【お知らせ】バックアップの確認")
    run_dispatcher(app)


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap password hashes (the users CLI hashes the new password)."""
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


def test_a_restored_database_answers_and_keeps_the_kpi_and_the_notice_history(
    databases: Databases, make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path, fast_hashing: None
) -> None:
    source_url, target_url = databases.new("source"), databases.new("target")
    upgrade_database(source_url)
    source = make_app(empty=False, DATABASE_URL=source_url, MUNICIPALITY="joso")
    populate(source, fake_line)
    kpi_before = kpi_csv(source)
    notices_before = {table: table_rows(source_url, table) for table in notice_tables(source_url)}
    assert notices_before["broadcast_deliveries"] and notices_before["broadcasts"] and notices_before["broadcast_runs"]
    counts_before = summarize(source_url).rows
    assert counts_before["faq_question_log"] >= 3 and counts_before["staff_users"] == 1
    assert counts_before["usage_events"] > 0 and counts_before["broadcast_deliveries"] == 12  # residents who consented to notices

    backup = tmp_path / "linebot.backup"
    made = cli(source, "backup", "create", str(backup))  # the source app's inbox workers are running
    assert made.exit_code == 0, made.output
    kind_name = "SQLite" if databases.kind == "sqlite" else "PostgreSQL"
    assert made.output.startswith(f"{kind_name} のバックアップを {backup} に書きました（")
    assert f"  {KEY_TABLES['broadcast_deliveries']}（broadcast_deliveries）: 12行" in made.output
    assert backup_kind(backup) == databases.kind
    assert cli(source, "backup", "create", str(backup)).exit_code == 1  # never overwrites

    target = make_app(empty=False, DATABASE_URL=target_url, MUNICIPALITY="joso")
    restored = cli(target, "backup", "restore", str(backup))
    assert restored.exit_code == 0, restored.output
    assert f"{backup}（{kind_name}、" in restored.output and "表の数:" in restored.output
    assert "スキーマを最新にしました" not in restored.output  # the backup was already current

    assert summarize(target_url).rows == counts_before
    assert kpi_csv(target) == kpi_before
    assert {table: table_rows(target_url, table) for table in notice_tables(target_url)} == notices_before

    # The bot on the restored database answers a resident.
    newcomer = Chat(target.test_client(), fake_line, "U" + "e" * 32)
    answer, _ask = newcomer.says(QUESTION, expect=2)
    assert "コンビニ" in answer["text"]


def test_an_older_backup_is_brought_to_the_current_schema(
    databases: Databases, make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    source_url, target_url = databases.new("old"), databases.new("new")
    upgrade_database(source_url, "0001")
    backup = tmp_path / "old.backup"
    app = make_app(empty=False, DATABASE_URL=source_url)
    assert cli(app, "backup", "create", str(backup)).exit_code == 0
    restored = cli(make_app(empty=False, DATABASE_URL=target_url), "backup", "restore", str(backup))
    assert restored.exit_code == 0, restored.output
    assert "バックアップが古い版だったため、スキーマを最新にしました" in restored.output
    current = databases.new("current")
    upgrade_database(current)
    assert summarize(target_url).revisions == summarize(current).revisions != ["0001"]


def test_restore_refuses_a_database_that_is_not_empty(
    databases: Databases, make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    url = databases.new("busy")
    upgrade_database(url)
    app = make_app(empty=False, DATABASE_URL=url)
    add_residents(app, 2)
    backup = tmp_path / "busy.backup"
    assert cli(app, "backup", "create", str(backup)).exit_code == 0
    refused = cli(app, "backup", "restore", str(backup))
    assert refused.exit_code == 1
    assert "は空ではありません。上書きはしません。" in refused.output
    advice = "sqlite:///instance/restored.sqlite3" if databases.kind == "sqlite" else "createdb -O"
    assert advice in refused.output and "Traceback" not in refused.output
    assert summarize(url).rows["residents"] == 2


def test_garbage_truncated_and_other_kinds_of_file_are_refused(
    databases: Databases, make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    source_url, target_url = databases.new("src"), databases.new("dst")
    upgrade_database(source_url)
    source = make_app(empty=False, DATABASE_URL=source_url)
    add_residents(source, 300)
    good = tmp_path / "good.backup"
    assert cli(source, "backup", "create", str(good)).exit_code == 0
    target = make_app(empty=False, DATABASE_URL=target_url)

    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty.backup"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    other = tmp_path / "other.backup"
    if databases.kind == "sqlite":
        other.write_bytes(b"PGDMP" + os.urandom(2048))  # what pg_dump --format=custom starts with
        other_message = "は PostgreSQL のバックアップです。SQLite のデータベースには復元できません"
    else:
        sqlite_url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
        upgrade_database(sqlite_url)
        assert cli(make_app(empty=False, DATABASE_URL=sqlite_url), "backup", "create", str(other)).exit_code == 0
        other_message = "は SQLite のバックアップです。PostgreSQL のデータベースには復元できません"

    cases = {
        garbage: "はこのボットのバックアップ（SQLite のファイル、または pg_dump の custom 形式）ではありません。",
        empty: "は空のファイルです。バックアップではありません。",
        truncated: "壊れているか、途中で切れています",
        other: other_message,
        tmp_path / "missing.backup": "がありません。",
    }
    for path, message in cases.items():
        result = cli(target, "backup", "restore", str(path))
        assert result.exit_code == 1, (path.name, result.output)
        assert message in result.output and "Traceback" not in result.output, (path.name, result.output)
        assert summarize(target_url).tables == 0, path.name  # nothing was written

    assert cli(target, "backup", "restore", str(good)).exit_code == 0
    assert summarize(target_url).rows["residents"] == 300


def test_pg_dump_gets_the_password_in_its_environment_not_its_arguments() -> None:
    conninfo, env = _pg_connection(make_url("postgresql+psycopg://linebot:s3cret@db.example:5433/linebot?sslmode=require"))
    assert "s3cret" not in conninfo and env["PGPASSWORD"] == "s3cret"
    assert all(part in conninfo for part in ("dbname=linebot", "user=linebot", "host=db.example", "port=5433", "sslmode=require"))


def test_a_backup_is_readable_by_its_owner_only_and_its_folder_is_made(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    upgrade_database(url)
    backup = tmp_path / "backups" / "daily" / "linebot.backup"
    assert cli(make_app(empty=False, DATABASE_URL=url), "backup", "create", str(backup)).exit_code == 0
    assert backup.stat().st_mode & 0o777 == 0o600 and backup.parent.stat().st_mode & 0o777 == 0o700


def test_the_operations_guide_backup_commands_work(
    make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path
) -> None:
    """docs/operations.md 5, every bin/flask command of its sh blocks as shown, in order, on SQLite: backup/ and
    instance/ are folders under tmp; the service's database is a populated one, and `bin/flask backup restore`
    without DATABASE_URL restores into that database emptied (moved aside, as the guide says)."""
    from tests.test_docs import DOCS, sh_blocks, split_env

    text_ = (DOCS / "operations.md").read_text(encoding="utf-8")
    first = text_[: text_.index("## 5. バックアップと復元")].count("\n")
    last = text_[: text_.index("## 6. ")].count("\n")
    commands = [command for block in sh_blocks(DOCS / "operations.md") if first < block.line < last
                for _, command in block.commands()]
    assert any(c.startswith("bin/flask backup restore ") for c in commands)
    assert any(c.startswith("DATABASE_URL=") and " backup restore " in c for c in commands)

    live_url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    upgrade_database(live_url)
    apps: dict[str, Flask] = {}

    def app_for(url: str) -> Flask:
        if url not in apps:
            apps[url] = make_app(empty=False, DATABASE_URL=url)
        return apps[url]

    with get_db(app_for(live_url)).session() as session:
        load_repo_kb(session, "nasukarasuyama")
    add_residents(app_for(live_url), 20)
    outputs: list[tuple[list[str], str]] = []
    for command in commands:
        env, words = split_env(command)
        assert words[0] == "bin/flask" and set(env) <= {"DATABASE_URL"}, command
        args = [str(tmp_path / w) if w.startswith(("backup/", "instance/")) else w for w in words[1:]]
        url = env.get("DATABASE_URL", live_url).replace("sqlite:///instance/", f"sqlite:///{tmp_path}/instance/")
        if args[:2] == ["backup", "restore"] and "DATABASE_URL" not in env:
            # Steps 1 and 2: the service stopped, its database file (with -wal, -shm) moved aside.
            live = app_for(live_url)
            live.extensions["inbox"].stop()
            get_db(live).dispose()
            for suffix in ("", "-wal", "-shm"):
                if (tmp_path / f"live.sqlite3{suffix}").exists():
                    (tmp_path / f"live.sqlite3{suffix}").rename(tmp_path / f"moved-aside.sqlite3{suffix}")
        result = cli(app_for(url), *args)
        assert result.exit_code == 0, f"{command}\n{result.output}"
        outputs.append((args, result.output))

    restored_test = f"sqlite:///{tmp_path}/instance/restore-test.sqlite3"
    assert summarize(restored_test).rows["residents"] == 20 == summarize(live_url).rows["residents"]
    ask = next(out for args, out in outputs if args[:2] == ["faq", "ask"])
    assert "コンビニ" in ask
    (kpi_args, kpi_out) = next((args, out) for args, out in outputs if args[:2] == ["kpi", "report"])
    original = cli(app_for(f"sqlite:///{tmp_path / 'moved-aside.sqlite3'}"), *kpi_args)
    assert original.exit_code == 0 and kpi_out == original.output and "友だち" in kpi_out
