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
from faq import service
from faq.models import QuestionLog
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


def _city(name: str) -> str:
    return name or texts.CITY_FALLBACK


def _categories(cats: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"id": cat, "title": label} for cat, label in cats]


def _payload(decision: str, messages: list[dict[str, Any]], *, choices: list[dict[str, str]] | None = None,
             log_id: int | None = None, feedback: bool = False,
             categories: tuple[tuple[str, str], ...] = ()) -> Payload:
    return {"decision": decision, "messages": messages, "choices": choices or [], "log_id": log_id,
            "feedback": feedback, "categories": _categories(categories)}


def answer_payload(entry: service.EntryView, log_id: int | None, entry_url: EntryUrl) -> Payload:
    """The entry's answer; with a logged question, 「役に立ちましたか？」 after it."""
    messages: list[dict[str, Any]] = [{"kind": "answer", "text": entry.answer,
                                       "entry": {"id": entry.entry_id, "title": entry.title, "url": entry_url(entry.entry_id)}}]
    if log_id is not None:
        messages.append({"kind": "feedback", "text": texts.ASK_FEEDBACK})
    return _payload("answer", messages, log_id=log_id, feedback=log_id is not None)


def unknown_payload(reply: service.FaqReply, log_id: int | None) -> Payload:
    """Say plainly that the bot does not know; the city's contact and the category menu."""
    contact = texts.UNKNOWN_CONTACT.format(contact=reply.contact) if reply.contact else ""
    return _payload("unknown", [{"kind": "unknown", "text": texts.UNKNOWN.format(contact=contact)}],
                    log_id=log_id, categories=reply.categories)


def clarify_payload(reply: service.FaqReply) -> Payload:
    """「もしかして」: the top entries numbered in the text and as choices, then 「どれでもない」 (id "")."""
    offered = reply.candidates[:CLARIFY_CHOICES]
    lines = "\n".join(f"{n}. {c.title}" for n, c in enumerate(offered, 1))
    choices = [{"id": c.entry_id, "title": c.title} for c in offered] + [{"id": "", "title": texts.NONE_OF_THESE}]
    text = texts.CLARIFY.format(lines=lines, numbers=_numbers(len(offered)))
    return _payload("clarify", [{"kind": "clarify", "text": text}], choices=choices, log_id=reply.log_id)


def reply_payload(reply: service.FaqReply, entry_url: EntryUrl) -> Payload:
    """The web messages of one outcome of the faq service."""
    if reply.decision == "answer" and reply.entry is not None:
        return answer_payload(reply.entry, reply.log_id, entry_url)
    if reply.decision == "clarify" and reply.candidates:
        return clarify_payload(reply)
    if reply.decision == "smalltalk":
        # Not a question to the city: nothing is logged. "unknown" as in `flask faq ask --json`.
        city = _city(reply.city_name)
        if reply.smalltalk == "menu":
            text = texts.MENU
        elif reply.smalltalk == "help":
            text = texts.HELP.format(city=city)
        else:
            text = texts.SMALLTALK[reply.smalltalk or "greeting"].format(city=city)
        payload = _payload("unknown", [{"kind": "info", "text": text}], categories=reply.categories)
        payload["smalltalk"] = reply.smalltalk
        return payload
    return unknown_payload(reply, reply.log_id)


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
    """A resident's question typed in the chat (or the number of an open 「もしかして」)."""
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
            numbers = "「1」" if len(offered) <= 1 else f"{_numbers(len(offered))}の番号"
            return _payload("clarify", [{"kind": "info", "text": texts.CHOICE_OUT_OF_RANGE.format(numbers=numbers)}],
                            log_id=pending.id)
    reply = service.answer_question(session, text, config, None, prepared=prepared, channel=CHANNEL, web_session=web_session)
    return reply_payload(reply, entry_url)


def choose(session: Session, config: dict[str, Any], web_session: str, log_id: Any, choice: Any,
           entry_url: EntryUrl) -> Payload:
    """An entry chosen after 「もしかして」 ("" = 「どれでもない」): its answer, or the honest don't-know."""
    municipality = config["MUNICIPALITY"]
    if not isinstance(choice, str):
        raise ChatError(400, texts.ERR_CHOICE_TYPE)
    row = _own_row(session, log_id, web_session, municipality)
    if not service.record_choice(session, row.id, None, choice, web_session=web_session):
        raise ChatError(409, texts.ERR_CHOICE_NOT_OFFERED)
    if not choice:
        reply = service.FaqReply("unknown", categories=service.categories(session, municipality),
                                 city_name=service.city_name(municipality), contact=service.main_contact(session, municipality))
        return unknown_payload(reply, row.id)
    entry = service.get_entry(session, municipality, choice)
    if entry is None:
        raise ChatError(409, texts.ERR_CHOICE_NOT_OFFERED)
    return answer_payload(entry, row.id, entry_url)


def feedback(session: Session, config: dict[str, Any], web_session: str, log_id: Any, helpful: Any) -> Payload:
    """「役に立ちましたか？」 answered with はい (true) or いいえ (false)."""
    if not isinstance(helpful, bool):
        raise ChatError(400, texts.ERR_HELPFUL_TYPE)
    row = _own_row(session, log_id, web_session, config["MUNICIPALITY"])
    if not service.record_feedback(session, row.id, None, helpful, web_session=web_session):
        raise ChatError(409, texts.ERR_NO_FEEDBACK)
    text = texts.THANKS_HELPFUL if helpful else texts.THANKS_NOT_HELPFUL
    return {"messages": [{"kind": "info", "text": text}], "log_id": row.id, "helpful": helpful}


def menu_payload(session: Session, municipality: str) -> Payload:
    """The category menu."""
    return _payload("unknown", [{"kind": "info", "text": texts.MENU}], categories=service.categories(session, municipality))


def category_payload(session: Session, municipality: str, category: str) -> Payload | None:
    """A category's entries as choices to show (None for a category the city does not have)."""
    labels = dict(service.categories(session, municipality))
    if category not in labels:
        return None
    entries = service.entries_in_category(session, municipality, category)
    text = texts.CATEGORY.format(label=labels[category]) if entries else texts.CATEGORY_EMPTY
    return {"messages": [{"kind": "info", "text": text}], "entries": [{"id": e.entry_id, "title": e.title} for e in entries]}


def entry_payload(session: Session, municipality: str, entry_id: str, entry_url: EntryUrl) -> Payload | None:
    """An entry picked from the menu: its answer (nothing logged, as on LINE)."""
    entry = service.get_entry(session, municipality, entry_id)
    return answer_payload(entry, None, entry_url) if entry is not None else None
