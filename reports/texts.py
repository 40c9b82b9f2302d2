"""What reports says to residents on its own (the status pushes), as Japanese msgids sent through
bot.i18n in the resident's language. The chat's texts are in handlers/reports.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.i18n import N_, translate

if TYPE_CHECKING:
    from reports.models import Report

# The national road line for roads the city does not manage (国道・県道): 国土交通省's
# 道路緊急ダイヤル #9910, which also takes reports through LINE since 2024.
ROAD_GUIDANCE = N_("国道や県道など、市が管理していない道路の損傷は、国土交通省の「道路緊急ダイヤル」（#9910）に通報できます。"
                   "道路緊急ダイヤルはLINEでの通報も受け付けています。")
STATUS_TEXTS = {
    "in_progress": N_("通報（{number}・{category}）について、市の担当者が対応を始めました。"),
    "done": N_("通報（{number}・{category}）について、市の対応が終わりました。ご協力ありがとうございました。"),
    "rejected": N_("通報（{number}・{category}）は、市では対応しない内容でした。\n理由：{reason}"),
}


def status_message(report: Report, status: str, language: str | None, city_categories: list[str]) -> str:
    """The push for a status change, in the resident's language (a rejected road report gets the #9910 line)."""
    text = translate(STATUS_TEXTS[status], language, number=report.number or "", category=report.category or "",
                     reason=report.reject_reason or "")
    if status == "rejected" and report.category == "道路":
        text += "\n" + translate(ROAD_GUIDANCE, language)
    return text
