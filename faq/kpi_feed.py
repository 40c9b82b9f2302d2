"""Plain functions `bot.app` plugs into the KPI reports (faq may not import kpi, nor kpi faq)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.staff_languages import language_order, staff_label
from faq.models import FaqEntry, QuestionLog
from faq.review import group_phrasings, unanswered_phrasings
from faq.service import CATEGORY_LABELS


def topic_catalog(session: Session, municipality: str) -> Mapping[str, tuple[str, str]]:
    """{entry id: (title, category label)} of the city's entries."""
    rows = session.execute(
        select(FaqEntry.entry_id, FaqEntry.title, FaqEntry.category).where(FaqEntry.municipality == municipality)
    )
    return {entry_id: (title, CATEGORY_LABELS.get(category, category)) for entry_id, title, category in rows}


def unanswered_clusters(session: Session, municipality: str, start: dt.datetime, end: dt.datetime,
                        limit: int) -> Sequence[Sequence[Any]]:
    """(representative masked question, times asked, last asked date) of the period's biggest clusters."""
    phrasings, _ = unanswered_phrasings(session, municipality, start)
    in_period = [p for p in phrasings if p.first_seen is None or p.first_seen < end]
    clusters, _ = group_phrasings(in_period, use_embeddings=False)
    clusters.sort(key=lambda c: (-c.count, c.representative.text))
    return [(c.representative.text, c.count, c.last_seen.date().isoformat()) for c in clusters[:limit]]


def questions_by_language(session: Session, municipality: str, start: dt.datetime, end: dt.datetime,
                          limit: int) -> Sequence[Sequence[Any]]:
    """(language detected, questions, answered, 「もしかして」, not answered) of the period's logged questions.

    Questions whose language was not detected (Japanese, and those asked before detection) count as 日本語."""
    rows = session.execute(
        select(QuestionLog.language, QuestionLog.decision, func.count(QuestionLog.id))
        .where(QuestionLog.municipality == municipality, QuestionLog.asked_at >= start, QuestionLog.asked_at < end)
        .group_by(QuestionLog.language, QuestionLog.decision)
    ).all()
    totals: dict[str, dict[str, int]] = {}
    for language, decision, count in rows:
        per = totals.setdefault(language or "ja", {})
        per[decision] = per.get(decision, 0) + int(count)
    return [
        (staff_label(code), sum(per.values()), per.get("answer", 0), per.get("clarify", 0), per.get("unknown", 0))
        for code, per in sorted(totals.items(), key=lambda item: language_order(item[0]))
    ][:limit]
