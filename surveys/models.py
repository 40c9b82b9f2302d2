"""Surveys, their questions, residents' responses and answers.

One response per resident and survey (`respondent_key`, unique per survey), so each resident answers
once and can stop and resume (`next_seq`: the question to ask next). An anonymous survey keeps no
resident id on its responses, only the key (an HMAC of the LINE user id, for once-each); a named one
keeps the resident id, used for per-segment breakdowns and deleted with the resident's data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow

SINGLE, MULTIPLE, SCALE, TEXT = "single", "multiple", "scale", "text"
KIND_LABELS = {SINGLE: "ひとつ選ぶ", MULTIPLE: "いくつでも選ぶ", SCALE: "5段階（1〜5）", TEXT: "自由記述（200文字まで）"}


class Survey(Base):
    """A survey staff built in /admin."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    intro: Mapped[str] = mapped_column(String(500), default="")
    is_anonymous: Mapped[bool] = mapped_column(default=True)
    closes_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    is_open: Mapped[bool] = mapped_column(default=False)  # residents may answer (until closes_at)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id", ondelete="SET NULL"))  # the notice it rides on
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))


class SurveyQuestion(Base):
    """One question: its kind, text and choices (single / multiple)."""

    __tablename__ = "survey_questions"
    __table_args__ = (UniqueConstraint("survey_id", "seq", name="uq_survey_questions_survey_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(String(200))
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)


class SurveyResponse(Base):
    """A resident's progress through a survey and, once complete, their finished response."""

    __tablename__ = "survey_responses"
    __table_args__ = (UniqueConstraint("survey_id", "respondent_key", name="uq_survey_responses_survey_respondent"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    respondent_key: Mapped[str] = mapped_column(String(64))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"), index=True)  # None: anonymous
    next_seq: Mapped[int] = mapped_column(default=0)
    pending: Mapped[list[int]] = mapped_column(JSON, default=list)  # choices ticked so far (multiple choice)
    is_waiting_text: Mapped[bool] = mapped_column(default=False)  # the next text message is the answer
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SurveyAnswer(Base):
    """The answer to one question (choices by index, a 1-5 value, or masked free text)."""

    __tablename__ = "survey_answers"
    __table_args__ = (UniqueConstraint("response_id", "question_id", name="uq_survey_answers_response_question"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id", ondelete="CASCADE"), index=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("survey_questions.id", ondelete="CASCADE"), index=True)
    choices: Mapped[list[int]] = mapped_column(JSON, default=list)
    scale: Mapped[int | None] = mapped_column()
    text: Mapped[str | None] = mapped_column(String(200))


def as_list(value: Any) -> list[Any]:
    """A JSON list column's value (None -> [])."""
    return list(value or [])
