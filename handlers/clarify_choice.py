"""「もしかして」 answered: a tapped button, or the number of the entry sent as text.

Quick replies don't show on LINE for PC and vanish after a newer message, so the clarify text
numbers its entries and the resident may send 「2」 (also 「２」「2番」「２です」, 「0」 for
「どれでもない」). A number counts only while the resident's 「もしかして」 is open
(faq.service.pending_clarify); otherwise it is an ordinary message.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy.orm import Session

from bot.i18n import N_
from faq import service
from faq.translations import localize_views
from handlers.context import EventContext
from handlers.faq_replies import CLARIFY_CHOICES, answer_messages, choice_out_of_range_messages, unknown_messages
from handlers.replies import text
from kpi.service import record_usage
from segments.service import get_resident

# After NFKC (１→1, ①→1) and without spaces and punctuation: 「2」「2番」「2番目」「2です」「2でお願いします」.
_NUMBER = re.compile(r"(\d{1,2})(?:番目?|ばんめ?)?(?:です|でーす|で|を|にします|でお願いします|をお願いします|お願いします)?")
_IGNORED = re.compile(r"[\s\u3000。、．.,，!！?？「」『』()（）ー〜~]")
GONE = N_("その項目は現在ご案内できません。お手数ですが、もう一度質問を送ってください。")


def parse_choice(message: str) -> int | None:
    """The number in a message that is only a number (「1」「１」「1番」「１です」「0」), else None."""
    if len(message) > 20:
        return None
    match = _NUMBER.fullmatch(_IGNORED.sub("", unicodedata.normalize("NFKC", message)))
    return int(match.group(1)) if match else None


def _window(config: dict[str, Any]) -> float:
    return float(config.get("FAQ_CHOICE_WINDOW_MINUTES") or 0)


def is_choice(event: dict[str, Any], message: str, session: Session, config: dict[str, Any]) -> bool:
    """True if this message picks from the sender's open 「もしかして」 (read-only; for the prepare step,
    so a number is not matched as a question). handle_message decides again in its transaction."""
    if parse_choice(message) is None:
        return False
    user_id = (event.get("source") or {}).get("userId")
    resident = get_resident(session, user_id) if isinstance(user_id, str) and user_id else None
    if resident is None:
        return False
    return service.pending_clarify(session, resident.id, config["MUNICIPALITY"], _window(config)) is not None


def choose(ctx: EventContext, log_id: Any, chosen: Any, resident_id: int | None, stale: str) -> None:
    """Store the choice on the question's log row and answer it: the entry's answer with
    「役に立ちましたか？」, or for 「どれでもない」 ("") the honest don't-know; `stale` when the row is
    not this resident's open 「もしかして」 or the entry is gone."""
    municipality = ctx.config["MUNICIPALITY"]
    t = ctx.t
    if not isinstance(chosen, str) or not service.record_choice(ctx.session, log_id, resident_id, chosen):
        ctx.reply(text(t(stale)))
        return
    record_usage(ctx.session, "clarify_choice", resident_id, topic=chosen or None, question=log_id)
    if not chosen:
        name, contact = service.city_name(municipality), service.main_contact(ctx.session, municipality)
        reply = service.FaqReply("unknown", categories=service.categories(ctx.session, municipality),
                                 city_name=name, contact=contact)
        ctx.reply(*unknown_messages(reply, t))
        return
    entry = service.get_entry(ctx.session, municipality, chosen)
    if entry is None:
        ctx.reply(text(t(stale)))
        return
    (entry,) = localize_views(ctx.session, municipality, [entry], ctx.language)
    ctx.reply(*answer_messages(entry, log_id, t))


def answer_number(ctx: EventContext, message: str, resident_id: int | None) -> bool:
    """Handle a number sent while the resident's 「もしかして」 is open; False if the message is not one."""
    number = parse_choice(message)
    if number is None:
        return False
    pending = service.pending_clarify(ctx.session, resident_id, ctx.config["MUNICIPALITY"], _window(ctx.config))
    if pending is None:
        return False
    offered = pending.topics[:CLARIFY_CHOICES]
    if number == 0:
        choose(ctx, pending.log_id, "", resident_id, GONE)
    elif number <= len(offered):
        choose(ctx, pending.log_id, offered[number - 1], resident_id, GONE)
    else:
        ctx.reply(*choice_out_of_range_messages(len(offered), ctx.t))
    return True
