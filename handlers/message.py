"""Message events: text goes to the FAQ service; other kinds are recorded and ignored."""

from __future__ import annotations

import logging

from faq.service import answer_question
from handlers import replies
from handlers.context import EventContext
from kpi.service import record_usage

log = logging.getLogger(__name__)


def handle_message(ctx: EventContext) -> None:
    """Answer a resident's text; stickers, images and the like are only counted."""
    message = ctx.event.get("message") or {}
    resident = ctx.resident()
    resident_id = resident.id if resident else None
    kind = message.get("type")
    record_usage(ctx.session, "message", resident_id, message_type=kind)
    if kind != "text" or not ctx.is_direct_chat:
        return
    text = str(message.get("text", ""))[: int(ctx.config["MAX_TEXT_CHARS"])]
    answer = answer_question(ctx.session, text, ctx.config)
    record_usage(ctx.session, "decision", resident_id, decision=answer.decision, topic=answer.topic)
    ctx.reply(replies.text(answer.text, answer.quick_replies or None))
