"""What a handler gets: the event, a session, settings, and a place to put its replies."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from bot.i18n import DEFAULT_LANGUAGE, Translator, city_languages
from segments.models import Resident
from segments.service import get_resident, preload_residents, record_follow


@dataclass
class EventContext:
    """One webhook event being handled; replies are collected and sent after commit."""

    event: dict[str, Any]
    session: Session
    config: dict[str, Any]
    webhook_event_id: str
    received_at: dt.datetime
    outgoing: list[dict[str, Any]] = field(default_factory=list)
    # What the event's preparer computed before the write transaction (see handlers.dispatch).
    prepared: Any = None
    # The language of this reply when not the resident's stored one (a question detected in another
    # language from a resident who chose none: handlers.message).
    language_override: str | None = None

    @property
    def event_type(self) -> str:
        """LINE's event type (message, follow, postback...)."""
        return str(self.event.get("type", ""))

    @property
    def user_id(self) -> str | None:
        """The LINE user id of the sender, if LINE gave one."""
        user_id = (self.event.get("source") or {}).get("userId")
        return user_id if isinstance(user_id, str) and user_id else None

    @property
    def is_direct_chat(self) -> bool:
        """True for a 1:1 chat with a resident (not a group or room)."""
        return (self.event.get("source") or {}).get("type") == "user" and self.user_id is not None

    def reply(self, *messages: dict[str, Any]) -> None:
        """Queue messages for the reply (sent after the database work is committed)."""
        self.outgoing.extend(messages)

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages the city offers (setting LANGUAGES)."""
        return city_languages(self.config)

    @property
    def language(self) -> str:
        """The language of the bot's messages to this sender: the one they chose (if the city still
        offers it), else Japanese; a per-message override wins."""
        if self.language_override:
            return self.language_override
        resident = get_resident(self.session, self.user_id) if self.user_id else None
        chosen = resident.language if resident is not None else None
        return chosen if chosen and chosen in self.languages else DEFAULT_LANGUAGE

    @property
    def t(self) -> Translator:
        """Messages in the sender's language: `ctx.t("…")`, `ctx.t.label("…")` (bot.i18n)."""
        return Translator(self.language)

    def resident(self) -> Resident | None:
        """The sending resident, created on first contact (a follower from before the bot)."""
        if not self.user_id:
            return None
        return get_resident(self.session, self.user_id) or record_follow(self.session, self.user_id)


def preload(session: Session, events: list[dict[str, Any]]) -> None:
    """Load what the handlers of a batch of events look up (the senders), in one query."""
    senders = {(e.get("source") or {}).get("userId") for e in events}
    preload_residents(session, {s for s in senders if isinstance(s, str) and s})
