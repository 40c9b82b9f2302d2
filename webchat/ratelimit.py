"""A sliding-window rate limit kept in the web process (the homepage chat's JSON API).

Keys are an address or a session hash, never stored anywhere else. Each web process keeps its
own counts (with GUNICORN_WORKERS=2 a client that lands on both may send up to twice the limit);
memory stays bounded: idle keys are dropped, and at most MAX_KEYS are kept.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_KEYS = 50_000


class RateLimiter:
    """At most `limit` hits per key in any `window` seconds."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Count a request of `key`; 0 when allowed, else the seconds until it would be (not counted)."""
        if self.limit <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
            self._hits.move_to_end(key)
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(0.001, hits[0] + self.window - now)
            hits.append(now)
            self._trim(now)
            return 0.0

    def _trim(self, now: float) -> None:
        """Drop the least recently seen keys that are idle, and any beyond MAX_KEYS."""
        while self._hits:
            key, hits = next(iter(self._hits.items()))
            if len(self._hits) > MAX_KEYS or not hits or hits[-1] <= now - self.window:
                self._hits.popitem(last=False)
            else:
                break


def retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header (at least 1)."""
    return max(1, math.ceil(seconds))
