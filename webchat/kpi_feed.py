"""Questions, decisions and votes per channel (LINE / ホームページ) for the KPI reports.

Counted from the question log (faq_question_log), which both channels write the same way, so the
two rows compare like with like. bot.app registers this as a section of the KPI dashboard, CSV
and monthly report (kpi may not import faq).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from faq.models import QuestionLog
from faq.review import CHANNEL_LABELS

SECTION_KEY = "channels"
SECTION_TITLE = "チャネル別の質問・回答・評価（LINE／ホームページ）"
COLUMNS = ("チャネル", "質問数", "回答", "「もしかして」", "お答えできなかった", "役に立った", "役に立たなかった")
NOTE = ("住民の質問の記録（質問ログ）から数えます。あいさつ・メニューの操作は含みません。"
        "質問ログは保存期間を過ぎると消えるため、古い月は少なく出ます。")


def channel_figures(session: Session, municipality: str, start: dt.datetime, end: dt.datetime,
                    limit: int = 0) -> Sequence[Sequence[Any]]:
    """One row per channel (LINE, then ホームページ): questions, each decision, はい, いいえ in [start, end)."""

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows = session.execute(
        select(QuestionLog.channel, func.count(QuestionLog.id), count(QuestionLog.decision == "answer"),
               count(QuestionLog.decision == "clarify"), count(QuestionLog.decision == "unknown"),
               count(QuestionLog.is_helpful.is_(True)), count(QuestionLog.is_helpful.is_(False)))
        .where(QuestionLog.municipality == municipality, QuestionLog.asked_at >= start, QuestionLog.asked_at < end)
        .group_by(QuestionLog.channel)
    ).all()
    found = {row[0] or "line": tuple(int(v or 0) for v in row[1:]) for row in rows}
    order = list(CHANNEL_LABELS) + sorted(set(found) - set(CHANNEL_LABELS))
    return [(CHANNEL_LABELS.get(ch, ch), *found.get(ch, (0,) * 6)) for ch in order]
