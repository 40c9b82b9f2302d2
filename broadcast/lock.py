"""One dispatcher at a time: a PostgreSQL advisory lock, or a file lock beside the SQLite database.

A second `flask broadcast run-scheduler` waits here until the first exits (or dies: the operating
system drops a dead process's file lock, PostgreSQL a dead connection's advisory lock). The
retry keys would keep even two dispatchers from delivering twice; the lock keeps them from
racing at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url

from bot.db import Database

log = logging.getLogger(__name__)

# pg_advisory_lock key: an arbitrary 63-bit constant naming "the notice dispatcher".
ADVISORY_KEY = 0x6C696E6562630001
POLL_SECONDS = 1.0


def default_lock_file(database_url: str) -> Path:
    """`<database file>.dispatcher.lock` for SQLite files (a temporary directory for in-memory databases)."""
    url = make_url(database_url)
    database = url.database or ""
    if not database or database == ":memory:":
        return Path("/tmp") / "linebot-broadcast-dispatcher.lock"
    return Path(database + ".dispatcher.lock")


class DispatcherLock:
    """Held for the life of the dispatcher; `acquire` polls until it is free (or gives up)."""

    def __init__(self, db: Database, lock_file: str | os.PathLike[str] | None = None) -> None:
        self.db = db
        self.lock_file = Path(lock_file) if lock_file else default_lock_file(db.url)
        self._conn: Connection | None = None
        self._file: IO[Any] | None = None

    @property
    def is_held(self) -> bool:
        """True while this object holds the lock."""
        return self._conn is not None or self._file is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        if self.is_held:
            return True
        return self._try_postgres() if self.db.is_postgres else self._try_file()

    def acquire(
        self,
        timeout: float | None = None,
        stop: threading.Event | None = None,
        on_wait: Callable[[], None] | None = None,
        poll: float = POLL_SECONDS,
    ) -> bool:
        """Wait for the lock; False if `timeout` passed or `stop` was set first. `on_wait` is called once, when waiting starts."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = False
        while True:
            if self.try_acquire():
                if waited:
                    log.info("dispatcher lock acquired after waiting")
                return True
            if not waited:
                waited = True
                log.warning("another dispatcher holds the lock; waiting")
                if on_wait is not None:
                    on_wait()
            if deadline is not None and time.monotonic() >= deadline:
                return False
            delay = poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic()))
            if stop is not None:
                if stop.wait(delay):
                    return False
            else:
                time.sleep(delay)

    def still_held(self) -> bool:
        """Check the lock is really still ours (a lost PostgreSQL connection loses it)."""
        if self._file is not None:
            return True
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :key"
                ),
                {"key": ADVISORY_KEY},
            ).scalar()
        except Exception:  # noqa: BLE001 - the connection is gone, and the lock with it
            log.warning("lost the dispatcher lock's database connection")
            self._drop_connection()
            return False
        return bool(held)

    def release(self) -> None:
        """Let the next dispatcher in."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            except Exception:  # noqa: BLE001 - closing the connection releases it anyway
                log.debug("advisory unlock failed", exc_info=True)
            self._drop_connection()
        if self._file is not None:
            import fcntl

            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None

    def __enter__(self) -> DispatcherLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    # ---- backends -------------------------------------------------------------------------------

    def _try_postgres(self) -> bool:
        # A connection of its own, in autocommit: it holds the lock without holding a transaction open.
        conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}).scalar())
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None

    def _try_file(self) -> bool:
        import fcntl  # POSIX only; imported here so the module imports anywhere

        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_file, "a+")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True
