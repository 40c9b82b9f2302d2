"""A per-process cache of one value per (database, city), kept fresh by a cheap stamp query."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.db import reading

T = TypeVar("T")
log = logging.getLogger(__name__)

# How long a process serves a cached value before checking the database for other processes' edits.
STAMP_CHECK_SECONDS = 1.0
# How long after a rebuild starts callers wait for it before serving the value they have: a small
# knowledge base is rebuilt by then, even on a busy machine, so an edit still shows at once.
BUILD_WAIT_SECONDS = 10.0
# Once a city's rebuild took longer than this (a large knowledge base), nobody waits for the next.
LONG_BUILD_SECONDS = 30.0


@dataclass(frozen=True)
class _Known(Generic[T]):
    db: int  # id() of the bind: a new engine on the same URL (tests) builds anew
    stamp: tuple[Any, ...] | None
    checked: float
    edits: int
    value: T


class StampedCache(Generic[T]):
    """The value for a city, rebuilt when its stamp (count, newest change, ...) changes.

    The stamp is checked at most every STAMP_CHECK_SECONDS, and at once after touch() (a change
    made in this process), so a staff edit reaches this worker at once and the others within a
    second, while a resident's message costs no query at all most of the time.

    A rebuild never makes residents wait long: when a value is already there, the new one is
    built in a background thread (one at a time per city) and the old one is served meanwhile;
    callers wait for it until BUILD_WAIT_SECONDS after it started (a small knowledge base is
    rebuilt by then, so an edit still shows at once), and not at all for a stamp `quick` says
    is slow to build, or once a rebuild of the city took longer than LONG_BUILD_SECONDS. A stamp of None means "hold what you have" (an import
    is being published: faq.importer).
    """

    def __init__(self, stamp: Callable[[Session, str], tuple[Any, ...] | None], build: Callable[[Session, str], T],
                 quick: Callable[[tuple[Any, ...] | None], bool] = lambda stamp: True) -> None:
        self._stamp = stamp
        self._build = build
        self._quick = quick  # whether a value of this stamp builds quickly enough to wait for
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], _Known[T]] = {}
        self._building: dict[tuple[str, str], tuple[threading.Event, float]] = {}
        self._took: dict[tuple[str, str], float] = {}  # seconds the last build of each key took
        self._edits = 0

    def touch(self) -> None:
        """Something was changed in this process: check the stamps again on next use."""
        self._edits += 1

    def get(self, session: Session, code: str) -> T:
        """The city's current value (or, while its new value is being built, the previous one)."""
        bind = session.get_bind()
        key = (str(bind.url), code)
        now, edits = time.monotonic(), self._edits
        known = self._known.get(key)
        same_db = known is not None and known.db == id(bind)
        if same_db and known.edits == edits and now - known.checked < STAMP_CHECK_SECONDS:  # type: ignore[union-attr]
            return known.value  # type: ignore[union-attr]
        stamp = self._stamp(session, code)
        if same_db and (stamp is None or known.stamp == stamp):  # type: ignore[union-attr]
            self._known[key] = _Known(known.db, known.stamp, now, edits, known.value)  # type: ignore[union-attr]
            return known.value  # type: ignore[union-attr]
        if not same_db or not isinstance(bind, Engine):
            return self._build_now(session, key, bind, stamp, now, edits)
        with self._lock:
            building = self._building.get(key)
            if building is None:
                building = self._building[key] = (threading.Event(), now)
                threading.Thread(target=self._build_later, args=(key, bind, code, stamp, edits, building[0]),
                                 name=f"rebuild-{code}", daemon=True).start()
            elif self._known.get(key) is known:  # serve the old value a second more without asking again
                self._known[key] = _Known(known.db, known.stamp, now, edits, known.value)  # type: ignore[union-attr]
        done, started = building
        if self._quick(stamp) and self._took.get(key, 0.0) <= LONG_BUILD_SECONDS:
            done.wait(max(0.0, started + BUILD_WAIT_SECONDS - time.monotonic()))
        return self._known[key].value

    def _build_now(self, session: Session, key: tuple[str, str], bind: Any, stamp: tuple[Any, ...] | None,
                   now: float, edits: int) -> T:
        """Nothing to serve meanwhile: build in this thread (one at a time; the others wait and share it)."""
        with self._lock:
            known = self._known.get(key)
            if known is not None and known.db == id(bind) and known.stamp == stamp:
                return known.value  # built by the thread this one waited for
            started = time.monotonic()
            value = self._build(session, key[1])
            self._known[key] = _Known(id(bind), stamp, now, edits, value)
            self._took[key] = time.monotonic() - started
            return value

    def _build_later(self, key: tuple[str, str], bind: Engine, code: str, stamp: tuple[Any, ...] | None,
                     edits: int, done: threading.Event) -> None:
        """Build in a session of its own (reading only: no write lock) and swap the value in."""
        started = time.monotonic()
        try:
            with Session(reading(bind)) as session:
                value = self._build(session, code)
                session.rollback()
            with self._lock:
                self._known[key] = _Known(id(bind), stamp, time.monotonic(), edits, value)
                self._took[key] = time.monotonic() - started
        except Exception:  # noqa: BLE001 - the old value stays; the next stamp check tries again
            log.exception("rebuilding the cached value of %s failed", code)
        finally:
            with self._lock:
                self._building.pop(key, None)
            done.set()
