"""What reports says to residents on its own (the status pushes), as Japanese msgids sent through
bot.i18n in the resident's language. The chat's texts are in handlers/report_chat.py.

A category the city configured itself (REPORT_CATEGORIES beyond the shipped ones) and the reason
staff type for 対象外 are Japanese: a resident of another language gets them with the note of
handlers.japanese_note on top of the push."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.i18n import N_, label, translate

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from reports.models import Report

# The shipped categories (bot.config REPORT_CATEGORIES' default), in every catalog.
DEFAULT_CATEGORIES = (N_("道路"), N_("公園"), N_("街灯"), N_("ごみの不法投棄"), N_("動物の死骸"), N_("その他"))
# A place given as a point only (no typed place, no address from LINE).
COORDINATES = N_("緯度 {latitude}、経度 {longitude}")

# The national road line for roads the city does not manage (国道・県道): 国土交通省's
# 道路緊急ダイヤル #9910, which also takes reports through LINE since 2024.
ROAD_GUIDANCE = N_("国道や県道など、市が管理していない道路の損傷は、国土交通省の「道路緊急ダイヤル」（#9910）に通報できます。"
                   "道路緊急ダイヤルはLINEでの通報も受け付けています。")
STATUS_TEXTS = {
    "in_progress": N_("通報（{number}・{category}）について、市の担当者が対応を始めました。"),
    "done": N_("通報（{number}・{category}）について、市の対応が終わりました。ご協力ありがとうございました。"),
    "rejected": N_("通報（{number}・{category}）は、市では対応しない内容でした。\n理由：{reason}"),
}


def status_message(report: Report, status: str, language: str | None, city_categories: list[str],
                   session: Session | None = None, municipality: str = "") -> str:
    """The push for a status change, in the resident's language at send time (a rejected road report
    gets the #9910 line); with a session, Japanese city text in it (a category of the city's own, the
    reason staff wrote) gets the note on top for a resident of another language."""
    reason = report.reject_reason or "" if status == "rejected" else ""
    text = translate(STATUS_TEXTS[status], language, number=report.number or "",
                     category=label(report.category or "", language), reason=reason)
    if status == "rejected" and report.category == "道路":
        text += "\n" + translate(ROAD_GUIDANCE, language)
    if session is not None:
        from bot import japanese_note

        text = japanese_note.with_note(text, session, municipality, language,
                                       japanese_note.untranslated((report.category, reason), language))
    return text
