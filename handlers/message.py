"""Message events: text goes to the FAQ service; other kinds get a short hint."""

from __future__ import annotations

import logging
import unicodedata
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.i18n import LANGUAGES, N_, city_languages, command_msgid, detect_language
from bot.staff_link import link_from_message
from faq.service import answer_question, prepare_answer, prime_questions
from faq.translations import localize_reply
from handlers import clarify_choice, disaster, garbage_chat, report_chat, settings, survey_chat
from handlers.context import EventContext
from handlers.faq_replies import faq_reply_messages
from handlers.replies import MAX_QUICK_REPLY_ITEMS, postback_button, text
from kpi.models import UsageEvent
from kpi.service import record_usage
from segments.service import get_resident

log = logging.getLogger(__name__)
NOT_TEXT_HINT = N_("スタンプや画像ありがとうございます。ご質問は文章で送ってください。「メニュー」で分類から探すこともできます。")
LANGUAGE_OFFERED = "language_offered"  # usage event: the offer of a detected language was made (once)


def normalize_command(text: str) -> str:
    """Text as matched against settings commands: NFKC, no surrounding spaces or punctuation; a
    command in a resident's language (「Settings」, 「Configurações」) as its Japanese word."""
    command = unicodedata.normalize("NFKC", text).strip().strip("。!！?？「」")
    if command and command not in settings.TEXT_COMMANDS and len(command) <= 40:
        return command_msgid(command, settings.TRANSLATED_COMMANDS) or command
    return command


def _offer_language(ctx: EventContext, resident_id: int | None, language: str) -> list[dict[str, Any]]:
    """「Português で受け取りますか？」 once per resident: for one who chose no language and wrote in one."""
    if resident_id is None or ctx.session.scalar(select(UsageEvent.id).where(
            UsageEvent.resident_id == resident_id, UsageEvent.kind == LANGUAGE_OFFERED).limit(1)) is not None:
        return []
    record_usage(ctx.session, LANGUAGE_OFFERED, resident_id)
    name = LANGUAGES[language]
    label = ctx.t.label("{language}で受け取る", language=name)  # in the language written, as the question
    return [text(ctx.t("これからのメッセージを{language}で受け取りますか？", language=name),
                 [postback_button(label, {"a": "lang", "l": language}, name)])]


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
    that picks from the sender's open 「もしかして」); an image for a report's photo step is fetched here."""
    photo = report_chat.prepare_photo(event, session, config)
    if photo is not None:
        return photo
    question = _question_to_match(event, config)
    if question is None or clarify_choice.is_choice(event, question, session, config):
        return None
    return prepare_answer(session, question, config, _chosen_language(event, question, session, config))


def _chosen_language(event: dict[str, Any], question: str, session: Session, config: dict[str, Any]) -> str | None:
    """The language the sender chose (stored with consent), for a question whose own is unclear;
    None without a look-up when the question's language is clear (most messages)."""
    if detect_language(question, city_languages(config)) is not None:
        return None
    user_id = (event.get("source") or {}).get("userId")
    resident = get_resident(session, user_id) if isinstance(user_id, str) else None
    return resident.language if resident is not None else None


def prime_messages(events: list[dict[str, Any]], session: Session, config: dict[str, Any]) -> None:
    """Before a batch's prepare_message calls: embed all its questions in one model call."""
    questions = [q for q in (_question_to_match(e, config) for e in events) if q is not None]
    prime_questions(session, questions, config)


def _shelter_search_is_newer(ctx: EventContext, resident_id: int | None) -> bool:
    """Whether a location goes to the shelter search: the step the resident entered last decides,
    so 「避難所を探す」 tapped after the latest step of a report in progress (or with none) takes it,
    and a report started or moved on after 「避難所を探す」 keeps it."""
    asked = disaster.search_asked_at(ctx, resident_id)
    if asked is None:
        return False
    touched = report_chat.last_step_at(ctx, resident_id)
    return touched is None or asked > touched


def handle_message(ctx: EventContext) -> None:
    """Answer a resident's text; stickers, images and the like are counted and get a hint."""
    message = ctx.event.get("message") or {}
    resident = ctx.resident()
    resident_id = resident.id if resident else None
    kind = message.get("type")
    record_usage(ctx.session, "message", resident_id, message_type=kind)
    if not ctx.is_direct_chat:
        return
    if kind == "location" and _shelter_search_is_newer(ctx, resident_id):  # 「避難所を探す」 asked for it last
        disaster.handle_location(ctx, resident_id)
        return
    if kind in ("image", "location") and report_chat.handle_message(ctx, resident_id, kind):  # a report in progress
        return
    if kind != "text":
        if kind == "location" and disaster.claims_location(ctx, resident_id):  # no other flow took it
            disaster.handle_location(ctx, resident_id)
            return
        if kind in ("sticker", "image", "video", "audio", "file", "location"):
            ctx.reply(text(ctx.t(NOT_TEXT_HINT)))
        return
    question = str(message.get("text", ""))[: int(ctx.config["MAX_TEXT_CHARS"])]
    linked = link_from_message(ctx.session, ctx.user_id, question)  # 「職員連携 123456」 from a staff member
    if linked is not None:
        ctx.reply(text(linked))
        return
    if survey_chat.handle_text(ctx, resident_id, question):  # the free-text answer a survey asked for
        return
    if normalize_command(question) in disaster.TEXT_WORDS:  # 「避難所」: the shelter search
        disaster.start_search(ctx, resident_id)
        return
    command = settings.TEXT_COMMANDS.get(normalize_command(question))
    if command is not None:
        record_usage(ctx.session, "command", resident_id, command=normalize_command(question))
        command(ctx, resident_id)
        return
    if normalize_command(question) in report_chat.TEXT_WORDS:  # 「通報」: a report of a problem in town
        report_chat.start(ctx, resident_id)
        return
    if report_chat.handle_message(ctx, resident_id, "text", question):  # the step of a report in progress
        return
    if clarify_choice.answer_number(ctx, question, resident_id):  # 「2」 after 「もしかして」
        return
    if garbage_chat.handle_text(ctx, resident_id, question):  # 「電池は何ごみ？」, 「次のごみの日」 (before the FAQ)
        return
    detected = detect_language(question, ctx.languages) or (resident.language if resident is not None else None)
    offer: list[dict[str, Any]] = []
    if resident is not None and resident.language is None and detected not in (None, "ja"):
        ctx.language_override = detected  # answered in the language written; offered to keep it
        offer = _offer_language(ctx, resident_id, detected)
    query = command if (command := normalize_command(question)) in settings.TRANSLATED_COMMANDS else question
    reply = answer_question(ctx.session, query, ctx.config, resident_id, prepared=ctx.prepared if query == question else None,
                            language=detected)
    record_usage(ctx.session, "decision", resident_id, decision=reply.decision, topic=reply.topic, question=reply.log_id)
    reply = localize_reply(ctx.session, ctx.config["MUNICIPALITY"], reply, ctx.language)
    messages = disaster.with_info_line(ctx, faq_reply_messages(reply, ctx.t))
    last = messages[-1] if messages else {}
    if offer and "quickReply" in last and len(last["quickReply"]["items"]) < MAX_QUICK_REPLY_ITEMS:
        # Only the last message's buttons show: the offer joins them instead of hiding them.
        last["quickReply"]["items"].append(offer[0]["quickReply"]["items"][0])
        offer = []
    ctx.reply(*messages, *offer)
