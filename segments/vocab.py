"""What residents may declare: the choices offered in the chat and used by segment rules."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from bot.config import ROOT

AGE_BANDS = ("10代", "20代", "30代", "40代", "50代", "60代", "70代", "80代以上", "回答しない")
GENDERS = ("男性", "女性", "その他", "回答しない")
INTERESTS = ("防災", "子育て", "健康・福祉", "ごみ・環境", "イベント・観光", "税・手続き")
# A resident may decline any single question; the answer is stored as this value, so staff can
# tell "declined" from "never asked" and rules can include or exclude it like any other value.
NO_ANSWER = "回答しない"
INTEREST_BITS = {name: 1 << i for i, name in enumerate(INTERESTS)}
CITY_DIR = ROOT / "faq" / "kb" / "cities"


@functools.lru_cache(maxsize=8)
def areas_for(municipality: str, city_dir: Path = CITY_DIR) -> tuple[str, ...]:
    """The city's districts (from its city.yaml, the same file the knowledge base uses)."""
    path = city_dir / municipality / "city.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return tuple(str(d) for d in data.get("districts") or ())


def area_choices(municipality: str) -> tuple[str, ...]:
    """What a resident may answer for area: the city's districts, or 回答しない."""
    return (*areas_for(municipality), NO_ANSWER)


def interests_to_mask(names: list[str] | tuple[str, ...] | frozenset[str]) -> int:
    """Interest names to the stored bit mask (unknown names raise ValueError)."""
    mask = 0
    for name in names:
        if name not in INTEREST_BITS:
            raise ValueError(f"unknown interest {name!r}")
        mask |= INTEREST_BITS[name]
    return mask


def mask_to_interests(mask: int) -> list[str]:
    """The stored bit mask back to interest names, in the standard order."""
    return [name for name, bit in INTEREST_BITS.items() if mask & bit]
