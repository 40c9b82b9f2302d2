"""Follow and unfollow events."""

from __future__ import annotations

from handlers import garbage_chat, report_chat
from handlers import survey_chat
from handlers.context import EventContext
from handlers.settings import follow_messages
from kpi.service import record_usage
from segments.service import record_follow, record_unfollow


def handle_follow(ctx: EventContext) -> None:
    """Greet a new (or returning) friend and offer registration; only the user id and time are stored."""
    if not ctx.user_id:
        return
    resident = record_follow(ctx.session, ctx.user_id)
    record_usage(ctx.session, "follow", resident.id)
    ctx.reply(*follow_messages(ctx.config["MUNICIPALITY"], ctx.t, ctx.languages))


def handle_unfollow(ctx: EventContext) -> None:
    """The resident blocked the account: mark them gone and delete what they declared."""
    if not ctx.user_id:
        return
    resident = record_unfollow(ctx.session, ctx.user_id)
    record_usage(ctx.session, "unfollow", resident.id)
    report_chat.forget(ctx, resident.id)  # their draft goes; sent reports lose the link to them
    survey_chat.forget(ctx, resident.id)  # their answers to named surveys
    garbage_chat.forget(ctx, resident.id)  # their garbage area and reminder
