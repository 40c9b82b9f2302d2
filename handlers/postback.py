"""Postback events: the buttons the bot offered (feedback, 「もしかして」, menus)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.i18n import N_
from faq import service
from faq.translations import localize_views
from handlers import disaster, garbage_chat, report_chat, settings
from handlers import survey_chat
from handlers.clarify_choice import choose
from handlers.context import EventContext
from handlers.faq_replies import answer_messages, category_pages, entry_list_messages, menu_messages
from handlers.replies import parse_postback_data, text
from kpi.service import record_usage

log = logging.getLogger(__name__)
STALE = N_("このボタンは使えなくなっています。お手数ですが、もう一度質問を送ってください。")


def _feedback(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    helpful = data.get("v") in (1, True)
    t = ctx.t
    if data.get("v") not in (0, 1, True, False) or not service.record_feedback(ctx.session, data.get("q"), resident_id, helpful):
        ctx.reply(text(t(STALE)))
        return
    record_usage(ctx.session, "feedback", resident_id, helpful=helpful, question=data.get("q"))
    if helpful:
        ctx.reply(text(t("ご回答ありがとうございます。お役に立ててうれしいです。")))
    else:
        ctx.reply(text(t("ご回答ありがとうございます。職員が内容を見直します。"
                         "言い方を変えて質問していただくと、見つかることもあります。")))


def _pick(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    choose(ctx, data.get("q"), data.get("t"), resident_id, STALE)


def _menu(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    page = data.get("p", 0)
    cats = service.categories(ctx.session, ctx.config["MUNICIPALITY"])
    if not isinstance(page, int) or isinstance(page, bool) or not 0 <= page < category_pages(len(cats)):
        ctx.reply(text(ctx.t(STALE)))
        return
    ctx.reply(*menu_messages(cats, page, ctx.t))


def _category(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    labels = dict(service.categories(ctx.session, ctx.config["MUNICIPALITY"]))
    category = data.get("c")
    if not isinstance(category, str) or category not in labels:
        ctx.reply(text(ctx.t(STALE)))
        return
    entries = service.entries_in_category(ctx.session, ctx.config["MUNICIPALITY"], category)
    page = data.get("p", 0)
    if not isinstance(page, int) or isinstance(page, bool) or not 0 <= page < category_pages(len(entries)):
        ctx.reply(text(ctx.t(STALE)))
        return
    entries = localize_views(ctx.session, ctx.config["MUNICIPALITY"], entries, ctx.language, answers=False)
    ctx.reply(*entry_list_messages(entries, labels[category], category, page, ctx.t))


def _show(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    entry_id = data.get("t")
    entry = service.get_entry(ctx.session, ctx.config["MUNICIPALITY"], entry_id) if isinstance(entry_id, str) else None
    if entry is None:
        ctx.reply(text(ctx.t(STALE)))
        return
    record_usage(ctx.session, "menu_choice", resident_id, topic=entry_id)
    (entry,) = localize_views(ctx.session, ctx.config["MUNICIPALITY"], [entry], ctx.language)
    ctx.reply(*answer_messages(entry, None, ctx.t))


POSTBACK_ACTIONS: dict[str, Callable[[EventContext, dict[str, Any], int | None], None]] = {
    "fb": _feedback,
    "pick": _pick,
    "menu": _menu,
    "cat": _category,
    "show": _show,
    **settings.POSTBACK_ACTIONS,
    **report_chat.POSTBACK_ACTIONS,
    **disaster.POSTBACK_ACTIONS,
    **survey_chat.POSTBACK_ACTIONS,
    **garbage_chat.POSTBACK_ACTIONS,
}


def handle_postback(ctx: EventContext) -> None:
    """Route a button tap by its action; stale or forged data gets a polite message."""
    data = parse_postback_data(str((ctx.event.get("postback") or {}).get("data", "")))
    resident = ctx.resident()
    resident_id = resident.id if resident else None
    action = data.get("a") if data else None
    record_usage(ctx.session, "postback", resident_id, action=action if isinstance(action, str) else None)
    handler = POSTBACK_ACTIONS.get(action) if isinstance(action, str) else None
    if handler is None:
        log.info("postback with data that is not ours ignored: event=%s", ctx.webhook_event_id)
        if ctx.is_direct_chat:
            ctx.reply(text(ctx.t(STALE)))
        return
    handler(ctx, data or {}, resident_id)
