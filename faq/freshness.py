"""A per-process cache of one value per (database, city), kept fresh by a cheap stamp query."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")

# How long a process serves a cached value before checking the database for other processes' edits.
STAMP_CHECK_SECONDS = 1.0


class StampedCache(Generic[T]):
    """The value for a city, rebuilt when its stamp (count, newest change, ...) changes.

    The stamp is checked at most every STAMP_CHECK_SECONDS, and at once after touch() (a change
    made in this process), so a staff edit reaches this worker at once and the others within a
    second, while a resident's message costs no query at all most of the time."""

    def __init__(self, stamp: Callable[[Session, str], tuple[Any, ...]], build: Callable[[Session, str], T]) -> None:
        self._stamp = stamp
        self._build = build
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], tuple[int, tuple[Any, ...], float, int, T]] = {}
        self._edits = 0

    def touch(self) -> None:
        """Something was changed in this process: check the stamps again on next use."""
        self._edits += 1

    def get(self, session: Session, code: str) -> T:
        """The city's current value."""
        bind = session.get_bind()
        key = (str(bind.url), code)
        now, edits = time.monotonic(), self._edits
        known = self._known.get(key)
        same_db = known is not None and known[0] == id(bind)
        if same_db and known[3] == edits and now - known[2] < STAMP_CHECK_SECONDS:  # type: ignore[index]
            return known[4]  # type: ignore[index]
        stamp = self._stamp(session, code)
        if same_db and known[1] == stamp:  # type: ignore[index]
            value = known[4]  # type: ignore[index]
        else:
            with self._lock:
                value = self._build(session, code)
        self._known[key] = (id(bind), stamp, now, edits, value)
        return value
