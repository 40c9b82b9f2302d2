"""Message events: text goes to the FAQ service; other kinds get a short hint."""

from __future__ import annotations

import logging
import unicodedata

from typing import Any

from sqlalchemy.orm import Session

from faq.service import answer_question, prepare_answer, prime_questions
from handlers import clarify_choice, settings
from handlers.context import EventContext
from handlers.faq_replies import faq_reply_messages
from handlers.replies import text
from kpi.service import record_usage

log = logging.getLogger(__name__)
NOT_TEXT_HINT = "スタンプや画像ありがとうございます。ご質問は文章で送ってください。「メニュー」で分類から探すこともできます。"


def normalize_command(text: str) -> str:
    """Text as matched against settings commands: NFKC, no surrounding spaces or punctuation."""
    return unicodedata.normalize("NFKC", text).strip().strip("。!！?？「」")


def _question(event: dict[str, Any], config: dict[str, Any]) -> str | None:
    message = event.get("message") or {}
    if message.get("type") != "text" or (event.get("source") or {}).get("type") != "user":
        return None
    return str(message.get("text", ""))[: int(config["MAX_TEXT_CHARS"])]


def _question_to_match(event: dict[str, Any], config: dict[str, Any]) -> str | None:
    """The text the FAQ matcher is to answer (None for non-text and for settings commands)."""
    question = _question(event, config)
    if question is None or normalize_command(question) in settings.TEXT_COMMANDS:
        return None
    return question


def prepare_message(event: dict[str, Any], session: Session, config: dict[str, Any]) -> Any:
    """Match the question before the write transaction (None for commands, non-text, and a number
    that picks from the sender's open 「もしかして」)."""
    question = _question_to_match(event, config)
    if question is None or clarify_choice.is_choice(event, question, session, config):
        return None
    return prepare_answer(session, question, config)


def prime_messages(events: list[dict[str, Any]], session: Session, config: dict[str, Any]) -> None:
    """Before a batch's prepare_message calls: embed all its questions in one model call."""
    questions = [q for q in (_question_to_match(e, config) for e in events) if q is not None]
    prime_questions(session, questions, config)


def handle_message(ctx: EventContext) -> None:
    """Answer a resident's text; stickers, images and the like are counted and get a hint."""
    message = ctx.event.get("message") or {}
    resident = ctx.resident()
    resident_id = resident.id if resident else None
    kind = message.get("type")
    record_usage(ctx.session, "message", resident_id, message_type=kind)
    if not ctx.is_direct_chat:
        return
    if kind != "text":
        if kind in ("sticker", "image", "video", "audio", "file", "location"):
            ctx.reply(text(NOT_TEXT_HINT))
        return
    question = str(message.get("text", ""))[: int(ctx.config["MAX_TEXT_CHARS"])]
    command = settings.TEXT_COMMANDS.get(normalize_command(question))
    if command is not None:
        record_usage(ctx.session, "command", resident_id, command=normalize_command(question))
        command(ctx, resident_id)
        return
    if clarify_choice.answer_number(ctx, question, resident_id):  # 「2」 after 「もしかして」
        return
    reply = answer_question(ctx.session, question, ctx.config, resident_id, prepared=ctx.prepared)
    record_usage(ctx.session, "decision", resident_id, decision=reply.decision, topic=reply.topic, question=reply.log_id)
    ctx.reply(*faq_reply_messages(reply))
