"""Coordinates residents send (LINE location messages), checked once for every feature."""

from __future__ import annotations

import math
from typing import Any


def valid_coordinates(latitude: Any, longitude: Any) -> tuple[float, float] | None:
    """(lat, lon) when both are finite numbers in range, else None."""
    try:
        lat, lon = float(latitude), float(longitude)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon
