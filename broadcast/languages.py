"""Notices in several languages: which version each resident gets, and what each group is sent.

A notice's Japanese text is its own `content`; staff may add a version per language the city offers
(`BroadcastVersion`). A resident gets the version in their declared language, else the やさしい日本語
version, else the Japanese text — with a one-line note in their language that it is in Japanese
(bot.i18n), the same order of preference as answers. Residents who chose no language (NULL) or
日本語 get the Japanese text. Recipients are grouped by what they get (the delivery language) and
each group goes out in its own chunks, so one multicast call carries one set of messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot import i18n
from bot.staff_languages import staff_label

EASY = "ja-easy"
# What a version per language may say differently from the Japanese notice (form fields text_pt, ...).
VERSION_FIELDS = ("text", "card_title", "button_label")
CARD_FIELDS = ("card_title", "button_label")


def group_label(language: str | None, versions: Iterable[str]) -> str:
    """A delivery group as staff read it: 「ポルトガル語（Português）」, or 「…：日本語の本文＋案内」 without a version."""
    if is_note_group(language, versions):
        return f"{staff_label(language)}：日本語の本文＋案内"
    return staff_label(language)


def version_languages(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The languages a notice may have a version in: the city's languages except Japanese."""
    return tuple(code for code in i18n.city_languages(config) if code != i18n.DEFAULT_LANGUAGE)


def delivery_language(resident_language: str | None, versions: Iterable[str]) -> str | None:
    """What a resident gets: the key of their group (None: the Japanese text as it is).

    A language with a version: that version. Else やさしい日本語 if there is a version in it. Else the
    Japanese text, with a note in the resident's language unless that is Japanese.
    """
    code = resident_language if resident_language in i18n.LANGUAGES else None
    if code is None or code == i18n.DEFAULT_LANGUAGE:
        return None
    available = set(versions)
    if code in available:
        return code
    if EASY in available:
        return EASY
    return code


def is_note_group(language: str | None, versions: Iterable[str]) -> bool:
    """True when the group gets the Japanese text with a note (no version in its language)."""
    return language is not None and language not in set(versions)


# What the note says when bot.i18n has no catalog text for it (its own last resort too).
LAST_RESORT_NOTE = "(Japanese only)"


def japanese_note(language: str) -> dict[str, Any]:
    """The one-line note, in the resident's language, that the notice is in Japanese: bot.i18n's
    message for Japanese-only text (MISSING_NOTE through translate), as answers carry it."""
    translate, msgid = getattr(i18n, "translate", None), getattr(i18n, "MISSING_NOTE", None)
    # Until bot.i18n's catalogs are in place (issue 17), the note is the last resort alone.
    text = translate(msgid, language) if translate is not None and msgid is not None else LAST_RESORT_NOTE
    return {"type": "text", "text": text}


def messages_for(
    language: str | None, japanese: list[dict[str, Any]], versions: Mapping[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The LINE messages one group is sent (`versions`: the notice's messages per language)."""
    if language is None:
        return list(japanese)
    if language in versions:
        return list(versions[language])
    return [*japanese, japanese_note(language)]


def group_counts(counts: Mapping[str | None, int], versions: Iterable[str], order: Iterable[str]) -> list[tuple[str | None, int]]:
    """Residents per delivery group from residents per declared language; Japanese first, then `order`."""
    available = set(versions)
    out: dict[str | None, int] = {}
    for language, count in counts.items():
        key = delivery_language(language, available)
        out[key] = out.get(key, 0) + count
    rank = {code: n for n, code in enumerate(order)}
    return sorted(out.items(), key=lambda item: (item[0] is not None, rank.get(item[0] or "", len(rank)), item[0] or ""))


__all__ = [
    "CARD_FIELDS", "EASY", "VERSION_FIELDS", "delivery_language", "group_counts", "group_label", "is_note_group",
    "japanese_note", "messages_for", "staff_label", "version_languages",
]
