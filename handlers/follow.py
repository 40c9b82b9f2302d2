"""Follow and unfollow events."""

from __future__ import annotations

from handlers import replies
from handlers.context import EventContext
from kpi.service import record_usage
from segments.service import record_follow, record_unfollow

GREETING = (
    "友だち追加ありがとうございます。\n"
    "市の公式LINEです。手続きや暮らしのことを、文章で気軽に質問してください。"
    "（例：「住民票をコンビニで取りたい」「ごみの出し方」）\n"
    "「メニュー」と送ると、よくある質問の分類を表示します。"
)


def handle_follow(ctx: EventContext) -> None:
    """Greet a new (or returning) friend; nothing beyond the user id and time is stored."""
    if not ctx.user_id:
        return
    resident = record_follow(ctx.session, ctx.user_id)
    record_usage(ctx.session, "follow", resident.id)
    ctx.reply(replies.text(GREETING))


def handle_unfollow(ctx: EventContext) -> None:
    """The resident blocked the account: mark them gone and delete what they declared."""
    if not ctx.user_id:
        return
    resident = record_unfollow(ctx.session, ctx.user_id)
    record_usage(ctx.session, "unfollow", resident.id)
