"""Shelters: staff open and close them; residents get the nearest open ones that suit a hazard.

The lookup is a pure function over an in-process index of the city's open shelters (numpy arrays,
haversine over all of them: 5,000 sites take well under a millisecond, bench/shelters). The index
is rebuilt when a cheap fingerprint of the open shelters changes, so every web process sees a
shelter opened or closed by staff at the next location a resident sends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db import utcnow
from disaster.hazards import HAZARDS, UNKNOWN
from disaster.models import Shelter

EARTH_RADIUS_KM = 6371.0088
NEAREST = 3
_BITS = {code: 1 << n for n, code in enumerate(HAZARDS)}


class ShelterError(ValueError):
    """Staff asked for something that cannot be done (Japanese message)."""


@dataclass(frozen=True)
class ShelterView:
    """What a resident is shown of one shelter."""

    id: int
    kind: str
    name: str
    address: str
    latitude: float
    longitude: float
    hazards: tuple[str, ...] | None


@dataclass(frozen=True)
class Nearby:
    """One shelter and how far it is (km, great-circle)."""

    shelter: ShelterView
    distance_km: float


@dataclass(frozen=True)
class NearestResult:
    """The nearest suitable open shelters, and how many are open at all (0: say so)."""

    found: tuple[Nearby, ...]
    open_count: int


class ShelterIndex:
    """The open shelters of one city as arrays, for nearest-first lookups."""

    def __init__(self, shelters: Sequence[ShelterView]) -> None:
        self.shelters = list(shelters)
        lat = np.radians(np.array([s.latitude for s in shelters], dtype=np.float64))
        self._lat = lat
        self._lon = np.radians(np.array([s.longitude for s in shelters], dtype=np.float64))
        self._cos_lat = np.cos(lat)
        self._mask = np.array([sum(_BITS[h] for h in s.hazards) if s.hazards is not None else 0 for s in shelters],
                              dtype=np.int64)

    def __len__(self) -> int:
        return len(self.shelters)

    def nearest(self, latitude: float, longitude: float, hazard: str = UNKNOWN, k: int = NEAREST) -> list[Nearby]:
        """The k nearest shelters designated for `hazard` (any shelter for UNKNOWN), nearest first."""
        if not self.shelters:
            return []
        if hazard == UNKNOWN:
            candidates = np.arange(len(self.shelters))
        else:
            candidates = np.flatnonzero(self._mask & _BITS[hazard])
        if candidates.size == 0:
            return []
        lat0, lon0 = np.radians(latitude), np.radians(longitude)
        lat, lon = self._lat[candidates], self._lon[candidates]
        a = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat0) * self._cos_lat[candidates] * np.sin((lon - lon0) / 2) ** 2
        distance = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        take = min(k, distance.size)
        best = np.argpartition(distance, take - 1)[:take] if distance.size > take else np.arange(distance.size)
        best = best[np.argsort(distance[best], kind="stable")]
        return [Nearby(self.shelters[int(candidates[i])], float(distance[i])) for i in best]


def _view(row: Shelter) -> ShelterView:
    return ShelterView(row.id, row.kind, row.name, row.address, row.latitude, row.longitude,
                       tuple(row.hazards) if row.hazards is not None else None)


def _open_stamp(session: Session, municipality: str) -> tuple[object, ...]:
    return tuple(session.execute(
        select(func.count(Shelter.id), func.max(Shelter.updated_at), func.sum(Shelter.id))
        .where(Shelter.municipality == municipality, Shelter.is_open.is_(True))
    ).one())


_CACHE: dict[tuple[str, str], tuple[tuple[object, ...], ShelterIndex]] = {}
_CACHE_LOCK = threading.Lock()


def open_index(session: Session, municipality: str) -> ShelterIndex:
    """The index of the city's open shelters now (rebuilt when one was opened, closed or imported)."""
    key = (str(session.get_bind().url), municipality)
    stamp = _open_stamp(session, municipality)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    rows = session.scalars(select(Shelter).where(Shelter.municipality == municipality, Shelter.is_open.is_(True))
                           .order_by(Shelter.id)).all()
    index = ShelterIndex([_view(r) for r in rows])
    with _CACHE_LOCK:
        _CACHE[key] = (stamp, index)
    return index


def nearest_open(session: Session, municipality: str, latitude: float, longitude: float,
                 hazard: str = UNKNOWN, k: int = NEAREST) -> NearestResult:
    """The k nearest open shelters for the hazard, and how many shelters are open."""
    index = open_index(session, municipality)
    return NearestResult(tuple(index.nearest(latitude, longitude, hazard, k)), len(index))


def has_shelters(session: Session, municipality: str) -> bool:
    """True when the city has imported any shelter."""
    return session.scalar(select(Shelter.id).where(Shelter.municipality == municipality).limit(1)) is not None


def centre(session: Session, municipality: str) -> tuple[float, float] | None:
    """The mean position of the city's imported shelters (None without any): where the chat
    simulator makes its preset points."""
    lat, lon = session.execute(select(func.avg(Shelter.latitude), func.avg(Shelter.longitude))
                               .where(Shelter.municipality == municipality)).one()
    return None if lat is None or lon is None else (float(lat), float(lon))


def list_shelters(session: Session, municipality: str, *, only_open: bool = False) -> list[Shelter]:
    """The city's shelters by kind and name (open ones only when asked)."""
    query = select(Shelter).where(Shelter.municipality == municipality)
    if only_open:
        query = query.where(Shelter.is_open.is_(True))
    return list(session.scalars(query.order_by(Shelter.kind, Shelter.id)))


def set_open(session: Session, municipality: str, ids: Iterable[int] | None, is_open: bool) -> list[Shelter]:
    """Open or close shelters by number (None: all of the city's); returns those that changed.

    ShelterError naming the numbers the city has no shelter for (then nothing changes)."""
    query = select(Shelter).where(Shelter.municipality == municipality)
    wanted = None if ids is None else sorted(set(ids))
    if wanted is not None:
        if not wanted:
            raise ShelterError("避難所の番号を指定してください。")
        query = query.where(Shelter.id.in_(wanted))
    rows = list(session.scalars(query.order_by(Shelter.id)))
    if wanted is not None:
        missing = sorted(set(wanted) - {r.id for r in rows})
        if missing:
            raise ShelterError(f"番号 {', '.join(map(str, missing))} の避難所はありません（`flask shelters list` で番号を確認してください）。")
    now = utcnow()
    changed = [r for r in rows if r.is_open != is_open]
    for row in changed:
        row.is_open = is_open
        row.opened_at = now if is_open else None
        row.updated_at = now
    session.flush()
    return changed
