"""The eight hazards the national shelter data names, with their codes and Japanese labels."""

from __future__ import annotations

from bot.i18n import N_

# code -> (label residents see on a button, translated where it is sent; the column name in the open-data layouts)
HAZARDS: dict[str, tuple[str, str]] = {
    "flood": (N_("洪水"), "洪水"),
    "landslide": (N_("土砂災害"), "崖崩れ、土石流及び地滑り"),
    "storm_surge": (N_("高潮"), "高潮"),
    "earthquake": (N_("地震"), "地震"),
    "tsunami": (N_("津波"), "津波"),
    "fire": (N_("大規模な火事"), "大規模な火事"),
    "inland_flood": (N_("内水氾濫"), "内水氾濫"),
    "volcano": (N_("火山"), "火山現象"),
}
# The order residents are asked in (quick replies), as the brief lists them.
ASKED_ORDER = ("flood", "landslide", "earthquake", "tsunami", "fire", "storm_surge", "inland_flood", "volcano")
UNKNOWN = "any"  # 「わからない」: every open shelter, suitability not filtered


def label(code: str) -> str:
    """The Japanese label of a hazard code (「わからない」 for any)."""
    return HAZARDS[code][0] if code in HAZARDS else "わからない"


def is_hazard(code: object) -> bool:
    """True for one of the eight codes or UNKNOWN."""
    return code == UNKNOWN or (isinstance(code, str) and code in HAZARDS)
