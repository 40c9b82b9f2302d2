"""`flask backup create FILE` / `flask backup restore FILE`: backups that restore.

SQLite is copied with SQLite's online backup API (a consistent snapshot while the bot writes);
PostgreSQL with `pg_dump --format=custom` (the password in PGPASSWORD, never on the command
line). A file says what it is by its first bytes (`SQLite format 3\\0`, `PGDMP`), so a backup is
restored only into the kind of database it came from, and only into an empty one; the schema is
then brought to the current migration.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

from bot.cli import upgrade_database

SQLITE, POSTGRESQL = "sqlite", "postgresql"
KIND_NAMES = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL"}
MAGIC = {SQLITE: b"SQLite format 3\x00", POSTGRESQL: b"PGDMP"}
# Tables whose row counts are printed (what a city would miss first), with their Japanese names.
KEY_TABLES = {
    "residents": "友だち（住民）",
    "staff_users": "職員のアカウント",
    "faq_entries": "FAQ の項目",
    "faq_question_log": "質問の記録",
    "usage_events": "KPI の利用記録",
    "broadcasts": "お知らせ",
    "broadcast_deliveries": "お知らせの配信記録",
}
PG_SEARCH = ("/usr/lib/postgresql/{major}/bin", "/usr/pgsql-{major}/bin")
PG_TIMEOUT_SECONDS = 6 * 3600


class BackupError(Exception):
    """A backup or restore that cannot be done; the message is Japanese and says what to do."""


@dataclass
class Summary:
    """What a database (or a backup of one) holds: table count, rows of the key tables, schema revision."""

    tables: int
    rows: dict[str, int] = field(default_factory=dict)
    revisions: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Japanese lines for the terminal."""
        out = [f"表の数: {self.tables}"]
        out += [f"  {KEY_TABLES[name]}（{name}）: {count:,}行" for name, count in self.rows.items()]
        if self.revisions:
            out.append(f"スキーマの版: {', '.join(self.revisions)}")
        return out


@dataclass
class BackupResult:
    """What create or restore did."""

    kind: str
    path: Path
    size: int
    summary: Summary
    upgraded: bool = False


def database_kind(database_url: str) -> str:
    """sqlite or postgresql, from DATABASE_URL."""
    backend = make_url(database_url).get_backend_name()
    if backend not in (SQLITE, POSTGRESQL):
        raise BackupError(f"このデータベース（{backend}）のバックアップには対応していません。SQLite か PostgreSQL を使ってください。")
    return backend


def backup_kind(path: Path) -> str:
    """sqlite or postgresql, from the file's first bytes; a clear error for anything else."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        raise BackupError(f"バックアップのファイル {path} がありません。") from None
    except OSError as exc:
        raise BackupError(f"バックアップのファイル {path} を読めません（{exc.strerror}）。") from None
    for kind, magic in MAGIC.items():
        if head.startswith(magic):
            return kind
    if not head:
        raise BackupError(f"{path} は空のファイルです。バックアップではありません。")
    raise BackupError(f"{path} はこのボットのバックアップ（SQLite のファイル、または pg_dump の custom 形式）ではありません。")


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupError("メモリー上の SQLite はバックアップできません。DATABASE_URL にファイルを指定してください。")
    return Path(database)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("バイト", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f}{unit}" if unit == "バイト" else f"{value:,.1f}{unit}"
        value /= 1024
    return f"{size}バイト"  # pragma: no cover


def summarize(database_url: str) -> Summary:
    """Tables, rows of the key tables and the Alembic revisions of a database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            rows = {name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
                    for name in KEY_TABLES if name in names}
            revisions = sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) \
                if "alembic_version" in names else []
    finally:
        engine.dispose()
    return Summary(len(names), rows, revisions)


# --------------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------------


def _sqlite_backup(source: Path, target: Path) -> None:
    """Copy a live SQLite database with the online backup API (the WAL's committed pages included)."""
    if not source.is_file():
        raise BackupError(f"データベースのファイル {source} がありません。DATABASE_URL を確かめてください。")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            # All pages in one step: one read transaction, so one consistent snapshot; in WAL mode it
            # does not hold writers up (copying in steps would restart whenever the bot commits).
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
    finally:
        src.close()


def _sqlite_check_backup(path: Path) -> None:
    """Refuse a damaged or truncated SQLite backup before anything is written."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='alembic_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"バックアップ {path} は壊れているか、途中で切れています（{exc}）。別のバックアップを使ってください。") from None
    if not result or result[0] != "ok":
        raise BackupError(f"バックアップ {path} は壊れています（整合性の確認: {result[0] if result else '不明'}）。別のバックアップを使ってください。")
    if not tables or tables[0] == 0:
        raise BackupError(f"{path} は SQLite のファイルですが、このボットのデータベースではありません（alembic_version の表がありません）。")


def _sqlite_is_empty(path: Path) -> bool:
    """True when the target file is missing, empty or holds no tables (and no -wal waits beside it)."""
    wal = Path(f"{path}-wal")
    if not path.exists() or path.stat().st_size == 0:
        return not (wal.exists() and wal.stat().st_size > 0)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        count = conn.execute("SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view')").fetchone()[0]
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()
    return int(count) == 0


def _sqlite_restore(backup: Path, target: Path) -> None:
    """Copy the backup into the (empty) target database file with the backup API."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{backup}?mode=ro&immutable=1", uri=True)
    try:
        dst = sqlite3.connect(target, timeout=30)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


# --------------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------------


def _pg_connection(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment carrying it."""
    from psycopg.conninfo import make_conninfo

    params: dict[str, Any] = {"dbname": url.database, "user": url.username, "host": url.host, "port": url.port}
    params.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    conninfo = make_conninfo(**{k: v for k, v in params.items() if v not in (None, "")})
    env = {**os.environ}
    env.pop("PGPASSWORD", None)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return conninfo, env


def _server_major(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    except Exception as exc:  # noqa: BLE001 - any connection failure is the operator's to fix
        raise BackupError(f"PostgreSQL に接続できません（{type(exc).__name__}）。DATABASE_URL とサーバーが動いているかを確かめてください。") from None
    finally:
        engine.dispose()


def _tool_major(path: str) -> int | None:
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"(\d+)(?:\.\d+)?", result.stdout)
    return int(match.group(1)) if match else None


def pg_tool(name: str, server_major: int) -> str:
    """pg_dump / pg_restore of the server's major version (Debian keeps each version's in its own dir)."""
    for pattern in PG_SEARCH:
        candidate = Path(pattern.format(major=server_major)) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} がありません。PostgreSQL {server_major} のクライアント（Debian・Ubuntu では "
                          f"postgresql-client-{server_major}）を入れてください。")
    major = _tool_major(found)
    if major is None or major < server_major:
        raise BackupError(f"{found} は PostgreSQL {major} のものです。サーバー（{server_major}）と同じか新しい版の {name} が必要です"
                          f"（postgresql-client-{server_major} を入れてください）。")
    return found


def _run_pg(argv: list[str], env: dict[str, str], failed: str) -> None:
    """Run pg_dump / pg_restore; BackupError starting with `failed` and the tool's last lines if it fails."""
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{failed}: {PG_TIMEOUT_SECONDS // 3600} 時間で終わりませんでした。") from None
    if result.returncode != 0:
        message = " ".join(result.stderr.strip().splitlines()[-3:])[:500]
        raise BackupError(f"{failed}: {message}")


def _pg_is_empty(database_url: str) -> bool:
    """True when the database has no tables, views or sequences outside the system schemas."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            count = conn.execute(text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
            )).scalar_one()
    except Exception as exc:  # noqa: BLE001
        raise BackupError(f"PostgreSQL に接続できません（{type(exc).__name__}）。DATABASE_URL と、データベースが作られているかを確かめてください。") from None
    finally:
        engine.dispose()
    return int(count) == 0


# --------------------------------------------------------------------------------------------------
# The two operations
# --------------------------------------------------------------------------------------------------


def create_backup(database_url: str, path: Path) -> BackupResult:
    """Back up the database to path (refuses to overwrite a file; creates its folder); what was written."""
    kind = database_kind(database_url)
    if path.exists():
        raise BackupError(f"{path} はすでにあります。上書きはしません。別の名前を指定してください。")
    # Backups hold residents' data: a new folder and the file are readable by this user only.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        if kind == SQLITE:
            _sqlite_backup(_sqlite_path(database_url), partial)
        else:
            url = make_url(database_url)
            conninfo, env = _pg_connection(url)
            pg_dump = pg_tool("pg_dump", _server_major(database_url))
            _run_pg([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={partial}", f"--dbname={conninfo}"],
                    env, "pg_dump によるバックアップに失敗しました")
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(kind, path, path.stat().st_size, summarize(database_url))


def empty_database_advice(kind: str, database_url: str) -> str:
    """How to get an empty database of this kind (Japanese)."""
    url = make_url(database_url)
    if kind == SQLITE:
        return ("DATABASE_URL に、まだないファイルを指定してください（例: DATABASE_URL=sqlite:///instance/restored.sqlite3）。"
                " 今のファイルを使うときは、Web と配信プロセスを止めて、ファイル（と -wal、-shm）を別の場所に移してから実行してください。")
    name = url.database or "linebot"
    return (f"空のデータベースを作り、DATABASE_URL をそこに向けてください（例: createdb -O {url.username or 'linebot'} {name}_restored）。"
            f" 今のデータベースに戻すときは、Web と配信プロセスを止めて、dropdb {name} と createdb -O {url.username or 'linebot'} {name} で作り直してから実行してください。")


def restore_backup(database_url: str, path: Path) -> BackupResult:
    """Restore path into the empty database of DATABASE_URL, then migrate it to the current schema."""
    kind = database_kind(database_url)
    found = backup_kind(path)
    if found != kind:
        raise BackupError(f"{path} は {KIND_NAMES[found]} のバックアップです。{KIND_NAMES[kind]} のデータベースには復元できません"
                          f"（DATABASE_URL が {KIND_NAMES[found]} のデータベースを指すようにしてください）。")
    if kind == SQLITE:
        target = _sqlite_path(database_url)
        _sqlite_check_backup(path)
        if not _sqlite_is_empty(target):
            raise BackupError(f"復元先のデータベース（{target}）は空ではありません。上書きはしません。" + empty_database_advice(kind, database_url))
        _sqlite_restore(path, target)
    else:
        server_major = _server_major(database_url)
        if not _pg_is_empty(database_url):
            raise BackupError(f"復元先のデータベース（{make_url(database_url).database}）は空ではありません。上書きはしません。"
                              + empty_database_advice(kind, database_url))
        conninfo, env = _pg_connection(make_url(database_url))
        pg_restore = pg_tool("pg_restore", server_major)
        _run_pg([pg_restore, "--list", str(path)], env,
                f"バックアップ {path} を読めません。壊れているか、途中で切れています。別のバックアップを使ってください")
        _run_pg([pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                 f"--dbname={conninfo}", str(path)], env,
                f"バックアップ {path} を復元できませんでした（壊れているか、途中で切れています。復元先には何も書き込んでいません）")
    before = summarize(database_url).revisions
    upgrade_database(database_url)
    summary = summarize(database_url)
    return BackupResult(kind, path, path.stat().st_size, summary, upgraded=summary.revisions != before)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

backup_cli = AppGroup("backup", help="Back up the database to a file, or restore one into an empty database.")


@backup_cli.command("create")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def create_command(file: Path) -> None:
    """Back up the database of DATABASE_URL to FILE (SQLite online backup, or pg_dump custom format); safe while the bot runs."""
    try:
        result = create_backup(current_app.config["DATABASE_URL"], file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{KIND_NAMES[result.kind]} のバックアップを {result.path} に書きました（{_human_size(result.size)}）。")
    for line in result.summary.lines():
        click.echo(line)


@backup_cli.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def restore_command(file: Path) -> None:
    """Restore FILE into the EMPTY database of DATABASE_URL, then migrate it to the current schema."""
    try:
        result = restore_backup(current_app.config["DATABASE_URL"], file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{result.path}（{KIND_NAMES[result.kind]}、{_human_size(result.size)}）をデータベースに復元しました。")
    if result.upgraded:
        click.echo("バックアップが古い版だったため、スキーマを最新にしました（bin/flask db upgrade と同じ）。")
    for line in result.summary.lines():
        click.echo(line)
