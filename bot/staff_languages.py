"""Residents' languages as city staff read them: 「ポルトガル語（Português）」 (notices, KPI, workbench)."""

from __future__ import annotations

from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES

# Japanese names for staff screens (bot.i18n.LANGUAGES holds how each language calls itself).
STAFF_NAMES = {
    "ja": "日本語",
    "ja-easy": "やさしい日本語",
    "en": "英語",
    "pt": "ポルトガル語",
    "vi": "ベトナム語",
    "zh": "中国語（簡体字）",
    "fil": "フィリピノ語",
}


def staff_label(language: str | None) -> str:
    """「ポルトガル語（Português）」; None (not chosen, not detected) is 日本語."""
    code = language or DEFAULT_LANGUAGE
    name = STAFF_NAMES.get(code, code)
    native = LANGUAGES.get(code)
    return name if not native or native == name else f"{name}（{native}）"


def language_order(language: str | None) -> int:
    """Sort key: Japanese first, then the languages in the order residents are offered them."""
    codes = list(LANGUAGES)
    code = language or DEFAULT_LANGUAGE
    return codes.index(code) if code in codes else len(codes)
