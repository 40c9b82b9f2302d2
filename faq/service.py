"""The FAQ service interface used by the message handler (placeholder until the FAQ issue)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class FaqReply:
    """What the bot should say to a question, and how it decided."""

    decision: str  # "answer" | "clarify" | "unknown" | "smalltalk"
    text: str
    topic: str | None = None
    quick_replies: list[dict[str, Any]] = field(default_factory=list)


def answer_question(session: Session, text: str, config: dict[str, Any]) -> FaqReply:
    """Answer a resident's question (placeholder: the knowledge base arrives with the FAQ issue)."""
    return FaqReply(
        decision="unknown",
        text="お問い合わせありがとうございます。ただいま回答の準備中です。お急ぎの場合は市役所へお問い合わせください。",
    )
