"""The text functions item lookup uses, set by bot.app from the FAQ's normaliser (garbage may not
import faq): `normalize` (NFKC, variants, kana folded to hiragana) and `reading` (the hiragana
reading of kanji, so 「でんち」 meets 「電池」). Until set, a plain NFKC + kana fold and no reading."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

_KATAKANA_TO_HIRAGANA = {code: code - 0x60 for code in range(0x30A1, 0x30F7)}


def _plain_normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().translate(_KATAKANA_TO_HIRAGANA).strip()


_functions: dict[str, Callable[[str], str] | None] = {"normalize": _plain_normalize, "reading": None}


def set_text_functions(normalize: Callable[[str], str], reading: Callable[[str], str] | None) -> None:
    """Wire the normaliser and the reading function (bot.app: faq.normalize's)."""
    _functions["normalize"] = normalize
    _functions["reading"] = reading


def normalize(text: str) -> str:
    """The comparable form of a text."""
    function = _functions["normalize"]
    assert function is not None
    return function(text)


def reading(text: str) -> str:
    """The hiragana reading of a text ("" when no reading function is wired)."""
    function = _functions["reading"]
    return function(text) if function is not None else ""
