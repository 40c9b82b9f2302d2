"""The one-line note over a message that carries Japanese text the city wrote (a garbage item's
notes, a survey's questions, a report category of the city's own, a reason staff typed): we cannot
translate it, so a resident whose language is neither Japanese nor やさしい日本語 is told, in their
language, that those parts are Japanese and how to reach the city (as a Japanese FAQ answer is,
faq.translations.JAPANESE_ANSWER_NOTE). Once per message, at its top.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from bot.i18n import DEFAULT_LANGUAGE, N_, Translator, lookup, normalize

EASY = "ja-easy"
JAPANESE_DATA_NOTE = N_("日本語の部分は、市が日本語だけで書いたものです。わからないときは、市役所に聞いてください：{contact}")


def needs_note(language: str | None) -> bool:
    """True for a resident who reads neither Japanese nor やさしい日本語."""
    return normalize(language) not in (DEFAULT_LANGUAGE, EASY)


def untranslated(texts: Iterable[str | None], language: str | None) -> bool:
    """True when one of the texts (city data) has no translation in the resident's catalog."""
    return needs_note(language) and any(t and lookup(t, language) is None for t in texts)


# The city's main contact (faq.directory), wired by bot.app: garbage and reports, which send this
# note in pushes, may not import faq.
_contact: Callable[[Session, str], str] = lambda _session, _municipality: ""


def set_contact_source(source: Callable[[Session, str], str]) -> None:
    """Where the note's contact comes from (bot.app: the FAQ directory's main contact)."""
    global _contact
    _contact = source


def note(session: Session, municipality: str, language: str | None) -> str:
    """The note in the resident's language, with the city's main contact."""
    return Translator(language)(JAPANESE_DATA_NOTE, contact=_contact(session, municipality))


def with_note(body: str, session: Session, municipality: str, language: str | None, has_japanese: bool = True) -> str:
    """The body with the note at its top when it carries Japanese city text and the resident needs it."""
    if not has_japanese or not needs_note(language):
        return body
    return f"{note(session, municipality, language)}\n\n{body}"
