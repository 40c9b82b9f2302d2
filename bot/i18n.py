"""Residents' languages: the codes, the city's list, and the bot's messages from Babel catalogs.

Messages to residents are Japanese in the code (the msgid) and translated from
bot/translations/<lang>/LC_MESSAGES/messages.po, read with Babel once at first use (no compile
step). A message a catalog lacks is sent in Japanese with a one-line note in the resident's
language (never empty). Language "ja" and None (not chosen) are Japanese.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Every language the bot can speak, in the order residents see them offered; the name is how the
# language calls itself (what the quick-reply button shows).
LANGUAGES: dict[str, str] = {
    "ja": "日本語",
    "ja-easy": "やさしい日本語",
    "en": "English",
    "pt": "Português",
    "vi": "Tiếng Việt",
    "zh": "中文",
    "fil": "Filipino",
}
DEFAULT_LANGUAGE = "ja"
DEFAULT_LANGUAGES = ",".join(LANGUAGES)
TRANSLATED = tuple(code for code in LANGUAGES if code != DEFAULT_LANGUAGE)
CATALOG_DIR = Path(__file__).resolve().parent / "translations"


def parse_languages(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The city's setting LANGUAGES ("ja,en,pt") as codes in the order given, ja always included.

    Raises ValueError naming an unknown code.
    """
    if value is None:
        value = DEFAULT_LANGUAGES
    items = value.split(",") if isinstance(value, str) else list(value)
    codes: list[str] = []
    for raw in items:
        code = raw.strip()
        if not code:
            continue
        if code not in LANGUAGES:
            raise ValueError(f"unknown language {code!r}; expected some of {', '.join(LANGUAGES)}")
        if code not in codes:
            codes.append(code)
    if DEFAULT_LANGUAGE not in codes:
        codes.insert(0, DEFAULT_LANGUAGE)
    return tuple(codes)


def city_languages(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The languages this city offers (config LANGUAGES, checked at start by bot.config)."""
    return parse_languages(config.get("LANGUAGES"))


def normalize(code: str | None) -> str:
    """A stored language code as one the bot speaks ("ja" for None or an unknown code)."""
    return code if code in LANGUAGES else DEFAULT_LANGUAGE
