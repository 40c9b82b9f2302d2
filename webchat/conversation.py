"""The homepage chat's conversation: the faq service's outcomes as this channel's JSON.

The same service calls and decisions as LINE (handlers/message.py, handlers/postback.py,
handlers/clarify_choice.py): answer with 「役に立ちましたか？」, numbered 「もしかして」, an honest
「お答えできません」 with the city's contact and the category menu. Questions are logged masked with
channel "web" and the hash of the anonymous session instead of a resident.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db import utcnow
from bot.i18n import JAPANESE, Translator, city_languages, detect_language
from faq import service
from faq.models import QuestionLog
from faq.translations import localize_reply, localize_views
from webchat import texts

CHANNEL = "web"
CLARIFY_CHOICES = 3  # as on LINE: the top three, numbered 1..3, 0 = 「どれでもない」
SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# A message that is only a number picks from an open 「もしかして」 (as handlers/clarify_choice.py).
_NUMBER = re.compile(r"(\d{1,2})(?:番目?|ばんめ?)?(?:です|でーす|で|を|にします|でお願いします|をお願いします|お願いします)?")
_IGNORED = re.compile(r"[\s\u3000。、．.,，!！?？「」『』()（）ー〜~]")

EntryUrl = Callable[[str], str]
Payload = dict[str, Any]


class ChatError(Exception):
    """A request the chat cannot carry out; `message` is Japanese and shown to the resident."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def session_hash(session_id: str) -> str:
    """What the question log keeps of the browser's random session id."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def parse_choice(message: str) -> int | None:
    """The number of a message that is only a number (「2」「２番」「0」), else None."""
    if len(message) > 20:
        return None
    match = _NUMBER.fullmatch(_IGNORED.sub("", unicodedata.normalize("NFKC", message)))
    return int(match.group(1)) if match else None


def _numbers(count: int) -> str:
    return "1" if count <= 1 else f"1〜{count}"


def _city(name: str, t: Translator) -> str:
    return name or t.label(texts.CITY_FALLBACK)


def _categories(cats: tuple[tuple[str, str], ...], t: Translator) -> list[dict[str, str]]:
    return [{"id": cat, "title": t.label(label)} for cat, label in cats]


def _payload(decision: str, messages: list[dict[str, Any]], t: Translator, *, choices: list[dict[str, str]] | None = None,
             log_id: int | None = None, feedback: bool = False,
             categories: tuple[tuple[str, str], ...] = ()) -> Payload:
    payload: Payload = {"decision": decision, "messages": messages, "choices": choices or [], "log_id": log_id,
                        "feedback": feedback, "categories": _categories(categories, t), "language": t.language}
    if feedback:
        payload["labels"] = {"yes": t.label(texts.YES), "no": t.label(texts.NO)}
    return payload


def answer_payload(entry: service.EntryView, log_id: int | None, entry_url: EntryUrl, t: Translator = JAPANESE) -> Payload:
    """The entry's answer; with a logged question, 「役に立ちましたか？」 after it."""
    messages: list[dict[str, Any]] = [{"kind": "answer", "text": entry.answer,
                                       "entry": {"id": entry.entry_id, "title": entry.title, "url": entry_url(entry.entry_id)}}]
    if log_id is not None:
        messages.append({"kind": "feedback", "text": t(texts.ASK_FEEDBACK)})
    return _payload("answer", messages, t, log_id=log_id, feedback=log_id is not None)


def unknown_payload(reply: service.FaqReply, log_id: int | None, t: Translator = JAPANESE) -> Payload:
    """Say plainly that the bot does not know; the city's contact and the category menu."""
    contact = "\n" + t(texts.UNKNOWN_CONTACT, contact=reply.contact) if reply.contact else ""
    text = t(texts.UNKNOWN) + f"{contact}\n" + t(texts.UNKNOWN_MENU)
    return _payload("unknown", [{"kind": "unknown", "text": text}], t, log_id=log_id, categories=reply.categories)


def clarify_payload(reply: service.FaqReply, t: Translator = JAPANESE) -> Payload:
    """「もしかして」: the top entries numbered in the text and as choices, then 「どれでもない」 (id "")."""
    offered = reply.candidates[:CLARIFY_CHOICES]
    lines = "\n".join(f"{n}. {c.title}" for n, c in enumerate(offered, 1))
    choices = [{"id": c.entry_id, "title": c.title} for c in offered] + [{"id": "", "title": t.label(texts.NONE_OF_THESE)}]
    text = t(texts.CLARIFY, lines=lines, numbers=_numbers(len(offered)))
    return _payload("clarify", [{"kind": "clarify", "text": text}], t, choices=choices, log_id=reply.log_id)


def reply_payload(reply: service.FaqReply, entry_url: EntryUrl, t: Translator = JAPANESE) -> Payload:
    """The web messages of one outcome of the faq service, in the language of `t`."""
    if reply.decision == "answer" and reply.entry is not None:
        return answer_payload(reply.entry, reply.log_id, entry_url, t)
    if reply.decision == "clarify" and reply.candidates:
        return clarify_payload(reply, t)
    if reply.decision == "smalltalk":
        # Not a question to the city: nothing is logged. "unknown" as in `flask faq ask --json`.
        city = _city(reply.city_name, t)
        if reply.smalltalk == "menu":
            text = t(texts.MENU)
        elif reply.smalltalk == "help":
            text = t(texts.HELP, city=city)
        else:
            text = t(texts.SMALLTALK[reply.smalltalk or "greeting"], city=city)
        payload = _payload("unknown", [{"kind": "info", "text": text}], t, categories=reply.categories)
        payload["smalltalk"] = reply.smalltalk
        return payload
    return unknown_payload(reply, reply.log_id, t)


def _own_row(session: Session, log_id: Any, web_session: str, municipality: str) -> QuestionLog:
    if not isinstance(log_id, int) or isinstance(log_id, bool):
        raise ChatError(400, texts.ERR_LOG_ID)
    row = session.get(QuestionLog, log_id) if 0 < log_id < 2**63 else None
    # Another session's question is "not found" too: nothing tells a guesser it exists.
    if row is None or row.channel != CHANNEL or row.web_session != web_session or row.municipality != municipality:
        raise ChatError(404, texts.ERR_LOG_NOT_FOUND)
    return row


def _pending_clarify(session: Session, web_session: str, municipality: str, window_minutes: float) -> QuestionLog | None:
    """The session's latest question, if it is a 「もしかして」 not chosen yet, asked within the window."""
    if window_minutes <= 0:
        return None
    row = session.scalars(
        select(QuestionLog).where(QuestionLog.web_session == web_session, QuestionLog.channel == CHANNEL,
                                  QuestionLog.municipality == municipality)
        .order_by(QuestionLog.id.desc()).limit(1)
    ).first()
    if row is None or row.decision != "clarify" or row.chosen_topic is not None:
        return None
    if row.asked_at < utcnow() - dt.timedelta(minutes=window_minutes):
        return None
    return row


def ask(session: Session, text: str, config: dict[str, Any], web_session: str, entry_url: EntryUrl,
        prepared: service.PreparedAnswer | None = None) -> Payload:
    """A resident's question typed in the chat (or the number of an open 「もしかして」); answered in the
    language it is written in, as LINE answers a resident who has not chosen one."""
    municipality = config["MUNICIPALITY"]
    number = parse_choice(text)
    if number is not None:
        pending = _pending_clarify(session, web_session, municipality, float(config.get("FAQ_CHOICE_WINDOW_MINUTES") or 0))
        if pending is not None:
            offered = [str(c["topic"]) for c in pending.candidates or [] if isinstance(c, dict) and c.get("topic")]
            offered = offered[:CLARIFY_CHOICES]
            if number == 0:
                return choose(session, config, web_session, pending.id, "", entry_url)
            if number <= len(offered):
                return choose(session, config, web_session, pending.id, offered[number - 1], entry_url)
            t = Translator(pending.language)
            wrong = (t(texts.CHOICE_OUT_OF_RANGE_ONE) if len(offered) <= 1
                     else t(texts.CHOICE_OUT_OF_RANGE, numbers=_numbers(len(offered))))
            return _payload("clarify", [{"kind": "info", "text": wrong}], t, log_id=pending.id)
    language = detect_language(text, city_languages(config))
    reply = service.answer_question(session, text, config, None, prepared=prepared, channel=CHANNEL,
                                    web_session=web_session, language=language)
    reply = localize_reply(session, municipality, reply, language)
    return reply_payload(reply, entry_url, Translator(language))


def choose(session: Session, config: dict[str, Any], web_session: str, log_id: Any, choice: Any,
           entry_url: EntryUrl) -> Payload:
    """An entry chosen after 「もしかして」 ("" = 「どれでもない」): its answer, or the honest don't-know."""
    municipality = config["MUNICIPALITY"]
    if not isinstance(choice, str):
        raise ChatError(400, texts.ERR_CHOICE_TYPE)
    row = _own_row(session, log_id, web_session, municipality)
    t = Translator(row.language)  # the language the question was asked in
    if not service.record_choice(session, row.id, None, choice, web_session=web_session):
        raise ChatError(409, texts.ERR_CHOICE_NOT_OFFERED)
    if not choice:
        reply = service.FaqReply("unknown", categories=service.categories(session, municipality),
                                 city_name=service.city_name(municipality), contact=service.main_contact(session, municipality))
        return unknown_payload(reply, row.id, t)
    entry = service.get_entry(session, municipality, choice)
    if entry is None:
        raise ChatError(409, texts.ERR_CHOICE_NOT_OFFERED)
    (entry,) = localize_views(session, municipality, [entry], t.language)
    return answer_payload(entry, row.id, entry_url, t)


def feedback(session: Session, config: dict[str, Any], web_session: str, log_id: Any, helpful: Any) -> Payload:
    """「役に立ちましたか？」 answered with はい (true) or いいえ (false)."""
    if not isinstance(helpful, bool):
        raise ChatError(400, texts.ERR_HELPFUL_TYPE)
    row = _own_row(session, log_id, web_session, config["MUNICIPALITY"])
    if not service.record_feedback(session, row.id, None, helpful, web_session=web_session):
        raise ChatError(409, texts.ERR_NO_FEEDBACK)
    t = Translator(row.language)
    text = t(texts.THANKS_HELPFUL) if helpful else t(texts.THANKS_NOT_HELPFUL)
    return {"messages": [{"kind": "info", "text": text}], "log_id": row.id, "helpful": helpful, "language": t.language}


def menu_payload(session: Session, municipality: str, t: Translator = JAPANESE) -> Payload:
    """The category menu."""
    return _payload("unknown", [{"kind": "info", "text": t(texts.MENU)}], t, categories=service.categories(session, municipality))


def category_payload(session: Session, municipality: str, category: str, t: Translator = JAPANESE) -> Payload | None:
    """A category's entries as choices to show (None for a category the city does not have)."""
    labels = dict(service.categories(session, municipality))
    if category not in labels:
        return None
    entries = localize_views(session, municipality, service.entries_in_category(session, municipality, category),
                             t.language, answers=False)
    text = t(texts.CATEGORY, label=t.label(labels[category]), where="") if entries else t(texts.CATEGORY_EMPTY)
    return {"messages": [{"kind": "info", "text": text}], "entries": [{"id": e.entry_id, "title": e.title} for e in entries],
            "language": t.language}


def entry_payload(session: Session, municipality: str, entry_id: str, entry_url: EntryUrl,
                  t: Translator = JAPANESE) -> Payload | None:
    """An entry picked from the menu: its answer (nothing logged, as on LINE)."""
    entry = service.get_entry(session, municipality, entry_id)
    if entry is None:
        return None
    (entry,) = localize_views(session, municipality, [entry], t.language)
    return answer_payload(entry, None, entry_url, t)
