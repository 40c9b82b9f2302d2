"""The dispatch table: LINE event type -> handler."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from handlers.context import EventContext
from handlers.follow import handle_follow, handle_unfollow
from handlers.message import handle_message, prepare_message, prime_messages
from handlers.postback import handle_postback
from kpi.service import record_usage

log = logging.getLogger(__name__)


def handle_other(ctx: EventContext) -> None:
    """Events the bot has no use for (join, beacon, unsend, unknown types): recorded, ignored."""
    log.info("event ignored: type=%s event=%s", ctx.event_type[:64], ctx.webhook_event_id)
    record_usage(ctx.session, "ignored_event", None, event_type=ctx.event_type[:64])


DISPATCH = {
    "message": handle_message,
    "follow": handle_follow,
    "unfollow": handle_unfollow,
    "postback": handle_postback,
}


# Work done before the handler's write transaction, with a read-only session: on SQLite the
# write lock is global, so CPU-heavy work (matching a question) must not run while holding it.
PREPARERS = {
    "message": prepare_message,
}


def prepare_batch(events: list[dict[str, Any]], session: Session, config: dict[str, Any]) -> None:
    """Work the preparers of a batch share, done once before them: the questions' embeddings."""
    prime_messages([e for e in events if e.get("type") == "message"], session, config)


def handler_for(event_type: str):  # type: ignore[no-untyped-def]
    """The handler of an event type (handle_other for anything not in the table)."""
    return DISPATCH.get(event_type, handle_other)


def preparer_for(event_type: str):  # type: ignore[no-untyped-def]
    """The preparer of an event type, or None."""
    return PREPARERS.get(event_type)
