"""Database: SQLAlchemy 2 engine and sessions bound to the Flask app, declarative base."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    """Current time, UTC-aware."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC, so SQLite and PostgreSQL behave alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use bot.db.utcnow()")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so several processes can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself (below) so claims can use BEGIN IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # No checkpoints inside commits: a checkpoint writes and syncs the database file, and
            # whoever commits at that moment (a webhook acknowledgement) would wait for it.
            # Database's checkpointer thread does them instead (see _Checkpointer).
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "")
            if mode != "IMMEDIATE":
                conn.exec_driver_sql("BEGIN")
                return
            _begin_immediate(conn.connection.dbapi_connection)

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def reading(engine: Engine) -> Engine:
    """The engine for reading only: a plain BEGIN even where the engine given takes the write lock."""
    return engine.execution_options(sqlite_begin="")


def _begin_immediate(dbapi_conn: Any, deadline_seconds: float = 30.0) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock in short steps.

    SQLite's own busy handler sleeps in steps of up to 100 ms, which under a steady stream of
    short transactions (webhook inserts, inbox claims) turns microseconds of waiting into
    hundreds of milliseconds. All waiting of a write transaction happens here, at BEGIN.
    """
    deadline = time.monotonic() + deadline_seconds
    delay = 0.0002
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=0")
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.005)
    finally:
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()


class _Checkpointer:
    """A thread that copies SQLite's write-ahead log into the database file every second.

    Connections do not checkpoint when they commit (see make_engine), so the syncing happens
    here, off every request's path. PASSIVE: it never blocks readers or writers. One per
    process that writes; a checkpoint by any process serves all of them.
    """

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self._pid: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        """Start the thread in this process if it is not running (cheap; safe after fork)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._stop.clear()
                threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True).start()

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint (also run by the thread)."""
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
        finally:
            raw.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.checkpoint()
            except Exception:  # noqa: BLE001 - e.g. the file removed under a test; try again later
                log.debug("WAL checkpoint failed", exc_info=True)

    def stop(self) -> None:
        """Stop the thread and checkpoint once more, so the log is not left to grow."""
        self._stop.set()
        self._pid = None
        try:
            self.checkpoint()
        except Exception:  # noqa: BLE001
            log.debug("final WAL checkpoint failed", exc_info=True)


class Database:
    """The app's engine and session factory (stored in app.extensions['db'])."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._checkpointer = _Checkpointer(self.engine) if self.engine.dialect.name == "sqlite" else None
        # SQLite: take the write lock at BEGIN. A deferred transaction that reads and then
        # writes fails at once with "database is locked" when another writer got there first
        # (SQLite cannot wait in that case); IMMEDIATE waits for busy_timeout instead.
        self._write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE") if url.startswith("sqlite") else self.engine
        self.sessionmaker = sessionmaker(self._write_engine, expire_on_commit=False)
        self._read_sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    def ensure_checkpointer(self) -> None:
        """SQLite: make sure this process's WAL checkpoint thread runs (called before writing)."""
        if self._checkpointer is not None:
            self._checkpointer.ensure_running()

    @property
    def is_postgres(self) -> bool:
        """True when the database is PostgreSQL."""
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for background work: commits on success, rolls back on error."""
        self.ensure_checkpointer()
        s = self.sessionmaker()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reading only: takes no write lock on SQLite; always rolled back."""
        s = self._read_sessionmaker()
        try:
            yield s
        finally:
            s.rollback()
            s.close()

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in a write transaction (BEGIN IMMEDIATE on SQLite), committed on exit."""
        self.ensure_checkpointer()
        with self._write_engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        """Close pooled connections (tests, shutdown)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()


def init_app(app: Flask) -> Database:
    """Bind a Database to the app and close the request session at teardown."""
    database = Database(app.config["DATABASE_URL"])
    app.extensions["db"] = database

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        s: Session | None = g.pop("db_session", None)
        if s is not None:
            if exc is not None:
                s.rollback()
            s.close()

    return database


def get_db(app: Flask | None = None) -> Database:
    """The current app's Database."""
    return (app or current_app).extensions["db"]  # type: ignore[no-any-return]


def get_session() -> Session:
    """The request-scoped session (closed at app-context teardown)."""
    if "db_session" not in g:
        database = get_db()
        database.ensure_checkpointer()
        g.db_session = database.sessionmaker()
    return g.db_session  # type: ignore[no-any-return]
