"""Survey services: build, open, attach to a notice, answer (once each, stop and resume), results,
CSV, per-segment breakdowns above the privacy floor, retention and deletion.

Plain functions over an explicit session (the caller commits). Free-text answers are masked before
they are stored, by the masker `bot.app` registers (faq's, the same as the question log's: surveys
may not import faq).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot import csvsafe
from bot.db import utcnow
from bot.i18n import N_, Translator
from broadcast.models import AWAITING_APPROVAL, SCHEDULED, Broadcast, BroadcastVersion
from segments.models import Resident
from surveys.models import KIND_LABELS, MULTIPLE, SCALE, SINGLE, TEXT, Survey, SurveyAnswer, SurveyQuestion, SurveyResponse

MAX_QUESTIONS = 20
MAX_CHOICES = 12  # quick replies: 13 items, one of them 「中断する」
MAX_CHOICE_CHARS = 20  # a quick-reply label
MAX_TEXT_ANSWER = 200
SCALE_VALUES = (1, 2, 3, 4, 5)

_masker: Callable[[str], str] | None = None


class SurveyError(ValueError):
    """A survey cannot be built or changed as asked; the message is Japanese, for staff."""


def set_text_masker(masker: Callable[[str], str]) -> None:
    """The function that masks personal data in free-text answers (wired in bot.app: faq's)."""
    global _masker
    _masker = masker


def mask(text: str) -> str:
    """A free-text answer as stored: masked, at most 200 characters. Without a registered masker,
    every run of 4 or more digits is masked (the conservative part of the question log's rule)."""
    text = unicodedata.normalize("NFKC", text).strip()
    masked = _masker(text) if _masker is not None else re.sub(r"\d{4,}", "＊＊＊＊", text)
    return masked[:MAX_TEXT_ANSWER]


# --- building ------------------------------------------------------------------------------------


@dataclass
class QuestionDraft:
    """A question as staff typed it."""

    kind: str
    text: str
    choices: list[str] = field(default_factory=list)


def parse_choices(raw: str) -> list[str]:
    """Choices typed one per line."""
    return [line.strip() for line in raw.splitlines() if line.strip()]


def check_question(question: QuestionDraft, number: int) -> None:
    """A question staff can save; SurveyError naming the question otherwise."""
    where = f"質問{number}"
    if question.kind not in KIND_LABELS:
        raise SurveyError(f"{where}: 種類を選んでください。")
    if not question.text.strip():
        raise SurveyError(f"{where}: 質問文を入力してください。")
    if len(question.text) > 200:
        raise SurveyError(f"{where}: 質問文は200文字以内にしてください。")
    if question.kind in (SINGLE, MULTIPLE):
        if not 2 <= len(question.choices) <= MAX_CHOICES:
            raise SurveyError(f"{where}: 選択肢は2〜{MAX_CHOICES}個にしてください（1行に1つ）。")
        long = [c for c in question.choices if len(c) > MAX_CHOICE_CHARS]
        if long:
            raise SurveyError(f"{where}: 選択肢は{MAX_CHOICE_CHARS}文字以内にしてください（LINEのボタンに入る長さ）：「{long[0]}」")
        if len(set(question.choices)) != len(question.choices):
            raise SurveyError(f"{where}: 同じ選択肢が2つあります。")
    elif question.choices:
        question.choices = []


def create_survey(
    session: Session, *, title: str, intro: str, is_anonymous: bool, closes_at: dt.datetime | None,
    questions: list[QuestionDraft], created_by: int | None = None, now: dt.datetime | None = None,
) -> Survey:
    """Validate and store a survey (open for answers at once; flushed, not committed)."""
    now = now or utcnow()
    title = title.strip()
    if not title:
        raise SurveyError("アンケートの題名を入力してください。")
    if len(title) > 100:
        raise SurveyError("題名は100文字以内にしてください。")
    if len(intro) > 500:
        raise SurveyError("はじめの説明は500文字以内にしてください。")
    if closes_at is not None and closes_at <= now:
        raise SurveyError("締め切りは今より後の日時にしてください。")
    if not questions:
        raise SurveyError("質問を1つ以上入力してください。")
    if len(questions) > MAX_QUESTIONS:
        raise SurveyError(f"質問は{MAX_QUESTIONS}個までです。")
    for number, question in enumerate(questions, start=1):
        check_question(question, number)
    survey = Survey(title=title, intro=intro.strip(), is_anonymous=is_anonymous, closes_at=closes_at, is_open=True,
                    created_by=created_by, created_at=now)
    session.add(survey)
    session.flush()
    for seq, question in enumerate(questions):
        session.add(SurveyQuestion(survey_id=survey.id, seq=seq, kind=question.kind, text=question.text.strip(),
                                   choices=list(question.choices)))
    session.flush()
    return survey


def get_survey(session: Session, survey_id: Any) -> Survey | None:
    """A survey by id (None for anything else)."""
    if not isinstance(survey_id, int) or isinstance(survey_id, bool):
        return None
    return session.get(Survey, survey_id)


def questions_of(session: Session, survey_id: int) -> list[SurveyQuestion]:
    """The survey's questions in order."""
    return list(session.scalars(select(SurveyQuestion).where(SurveyQuestion.survey_id == survey_id).order_by(SurveyQuestion.seq)))


def is_accepting(survey: Survey, now: dt.datetime | None = None) -> bool:
    """True while residents may answer."""
    now = now or utcnow()
    return survey.is_open and (survey.closes_at is None or now < survey.closes_at)


def close_survey(session: Session, survey: Survey) -> None:
    """Stop accepting answers."""
    survey.is_open = False
    session.flush()


def start_data(survey_id: int) -> dict[str, Any]:
    """The postback data that starts (or resumes) a survey: for a notice's button or a rich-menu area."""
    return {"a": "survey", "s": survey_id}


# The invitation a notice carries, in the language of the notice's version (the title is the staff's).
INVITATION = N_("アンケート「{title}」にご協力ください。")
INVITATION_ALT = N_("アンケートのお願い：{title}")
ANSWER_BUTTON = N_("アンケートに答える")


def start_message(survey: Survey, language: str | None = None) -> dict[str, Any]:
    """The message a notice carries for the survey: a button that starts it (a LINE buttons template,
    like the notice's own messages built by broadcast.messages), in the language of the version it
    goes with (Japanese for the notice's own messages)."""
    import json

    t = Translator(language)
    body = t.label(INVITATION, title=survey.title)
    if len(body) > 160:
        body = body[:159] + "…"
    answer = t.label(ANSWER_BUTTON)[:20]
    return {
        "type": "template",
        "altText": t.label(INVITATION_ALT, title=survey.title)[:400],
        "template": {"type": "buttons", "text": body, "actions": [{
            "type": "postback", "label": answer, "displayText": answer,
            "data": json.dumps(start_data(survey.id), separators=(",", ":")),
        }]},
    }


def attach_to_notice(session: Session, survey: Survey, broadcast_id: int) -> Broadcast:
    """Add the survey's start button to a notice not yet sent (awaiting approval or scheduled), and
    to each of its versions in that version's language, with room for one more message (LINE: 5
    per request)."""
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None:
        raise SurveyError(f"お知らせ #{broadcast_id} はありません。")
    if broadcast.status not in (AWAITING_APPROVAL, SCHEDULED) or broadcast.last_run_at is not None:
        raise SurveyError("まだ送っていない（承認待ち・予約済みの）お知らせにだけ付けられます。")
    if survey.broadcast_id is not None:
        raise SurveyError(f"このアンケートは既にお知らせ #{survey.broadcast_id} に付いています。")
    versions = list(session.scalars(select(BroadcastVersion).where(BroadcastVersion.broadcast_id == broadcast.id)
                                    .order_by(BroadcastVersion.id)))
    if len(broadcast.messages) >= 5 or any(len(v.messages) >= 5 for v in versions):
        raise SurveyError("このお知らせはメッセージが5つあるため、アンケートのボタンを付けられません。")
    broadcast.messages = [*broadcast.messages, start_message(survey)]
    for version in versions:  # each language's version gets the button in its language
        version.messages = [*version.messages, start_message(survey, version.language)]
    survey.broadcast_id = broadcast.id
    session.flush()
    return broadcast


# --- answering -----------------------------------------------------------------------------------


def respondent_key(secret: str, survey_id: int, line_user_id: str) -> str:
    """Who answered, without their LINE user id: an HMAC keyed by the app's secret."""
    return hmac.new(secret.encode(), f"{survey_id}:{line_user_id}".encode(), hashlib.sha256).hexdigest()


def response_for(session: Session, survey: Survey, key: str, resident_id: int | None, *, create: bool) -> SurveyResponse | None:
    """The resident's response (created when asked): one per resident and survey."""
    found = session.scalar(select(SurveyResponse).where(SurveyResponse.survey_id == survey.id, SurveyResponse.respondent_key == key))
    if found is not None or not create:
        return found
    found = SurveyResponse(survey_id=survey.id, respondent_key=key, resident_id=None if survey.is_anonymous else resident_id,
                           next_seq=0, pending=[], is_waiting_text=False)
    session.add(found)
    session.flush()
    return found


def current_question(session: Session, response: SurveyResponse) -> SurveyQuestion | None:
    """The question to ask next (None: all answered)."""
    return session.scalar(select(SurveyQuestion).where(
        SurveyQuestion.survey_id == response.survey_id, SurveyQuestion.seq == response.next_seq))


def _store(session: Session, response: SurveyResponse, question: SurveyQuestion, **values: Any) -> None:
    session.add(SurveyAnswer(response_id=response.id, question_id=question.id, **values))
    response.next_seq = question.seq + 1
    response.pending = []
    response.is_waiting_text = False
    response.updated_at = utcnow()
    if current_question(session, response) is None:
        response.completed_at = response.updated_at
    session.flush()


def answer_choice(session: Session, response: SurveyResponse, question: SurveyQuestion, choice: Any) -> bool:
    """A tap on a choice: stored (single), ticked or unticked (multiple); False if it does not fit."""
    if not isinstance(choice, int) or isinstance(choice, bool) or not 0 <= choice < len(question.choices):
        return False
    if question.kind == SINGLE:
        _store(session, response, question, choices=[choice])
        return True
    if question.kind == MULTIPLE:
        ticked = set(response.pending or [])
        ticked ^= {choice}
        response.pending = sorted(ticked)
        session.flush()
        return True
    return False


def finish_multiple(session: Session, response: SurveyResponse, question: SurveyQuestion) -> bool:
    """「次へ」 on a multiple-choice question: stores what is ticked (none ticked is an answer too)."""
    if question.kind != MULTIPLE:
        return False
    _store(session, response, question, choices=sorted(response.pending or []))
    return True


def answer_scale(session: Session, response: SurveyResponse, question: SurveyQuestion, value: Any) -> bool:
    """A tap on 1-5."""
    if question.kind != SCALE or value not in SCALE_VALUES or isinstance(value, bool):
        return False
    _store(session, response, question, scale=int(value))
    return True


def answer_text(session: Session, response: SurveyResponse, question: SurveyQuestion, text: str | None) -> bool:
    """A free-text answer (masked, ≤ 200 characters) or None for 「回答しない」."""
    if question.kind != TEXT:
        return False
    _store(session, response, question, text=mask(text) if text else None)
    return True


def waiting_text(session: Session, key_of: Callable[[int], str]) -> tuple[SurveyResponse, SurveyQuestion] | None:
    """The response whose free-text question waits for this resident's next message, if any
    (`key_of(survey_id)`: the resident's key for a survey)."""
    rows = session.scalars(select(SurveyResponse).where(
        SurveyResponse.is_waiting_text.is_(True), SurveyResponse.completed_at.is_(None)
    ).order_by(SurveyResponse.updated_at.desc())).all()
    for response in rows:
        if response.respondent_key == key_of(response.survey_id):
            question = current_question(session, response)
            if question is not None and question.kind == TEXT:
                return response, question
    return None


def stop(session: Session, response: SurveyResponse) -> None:
    """「中断する」: nothing more is asked until the resident taps the start button again."""
    response.is_waiting_text = False
    response.updated_at = utcnow()
    session.flush()


# --- results -------------------------------------------------------------------------------------


@dataclass
class QuestionResult:
    """Counts of one question."""

    question: SurveyQuestion
    answered: int = 0
    counts: list[tuple[str, int]] = field(default_factory=list)  # (label, count): choices or 1-5
    average: float | None = None
    texts: list[str] = field(default_factory=list)


def results(session: Session, survey: Survey) -> tuple[int, int, list[QuestionResult]]:
    """(completed responses, started but unfinished, per-question results over completed responses)."""
    completed_ids = select(SurveyResponse.id).where(SurveyResponse.survey_id == survey.id, SurveyResponse.completed_at.is_not(None))
    completed = int(session.scalar(select(func.count()).select_from(completed_ids.subquery())) or 0)
    started = int(session.scalar(select(func.count(SurveyResponse.id)).where(SurveyResponse.survey_id == survey.id)) or 0)
    answers: dict[int, list[SurveyAnswer]] = {}
    for answer in session.scalars(select(SurveyAnswer).where(SurveyAnswer.response_id.in_(completed_ids)).order_by(SurveyAnswer.id)):
        answers.setdefault(answer.question_id, []).append(answer)
    out = []
    for question in questions_of(session, survey.id):
        rows = answers.get(question.id, [])
        result = QuestionResult(question, answered=len(rows))
        if question.kind in (SINGLE, MULTIPLE):
            tally = Counter(index for row in rows for index in row.choices or [])
            result.counts = [(label, tally[index]) for index, label in enumerate(question.choices)]
        elif question.kind == SCALE:
            tally = Counter(row.scale for row in rows if row.scale is not None)
            result.counts = [(str(value), tally[value]) for value in SCALE_VALUES]
            values = [row.scale for row in rows if row.scale is not None]
            result.average = sum(values) / len(values) if values else None
        else:
            result.texts = [row.text for row in rows if row.text]
            result.answered = len(result.texts)
        out.append(result)
    return completed, started - completed, out


BREAKDOWNS = {"age_band": "年代", "area": "地域"}


def breakdown(session: Session, survey: Survey, question: SurveyQuestion, by: str, floor: int) -> dict[str, Any]:
    """Counts of a choice or 1-5 question per age band or area, for named surveys only; a group with
    fewer completed respondents than the privacy floor is not shown (merged into 「その他」, itself
    hidden if still below the floor)."""
    if survey.is_anonymous:
        return {"available": False, "reason": "無記名のアンケートのため、属性別の集計はありません。"}
    if by not in BREAKDOWNS:
        raise SurveyError("集計する属性を選んでください。")
    column = Resident.age_band if by == "age_band" else Resident.area
    rows = session.execute(
        select(column, SurveyAnswer.choices, SurveyAnswer.scale)
        .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
        .join(Resident, Resident.id == SurveyResponse.resident_id)
        .where(SurveyAnswer.question_id == question.id, SurveyResponse.completed_at.is_not(None))
    ).all()
    options = question.choices if question.kind in (SINGLE, MULTIPLE) else [str(v) for v in SCALE_VALUES]
    groups: dict[str, Counter[int]] = {}
    sizes: Counter[str] = Counter()
    for value, choices, scale in rows:
        key = str(value) if value else "未登録"
        sizes[key] += 1
        picked = list(choices or []) if question.kind in (SINGLE, MULTIPLE) else ([scale - 1] if scale else [])
        groups.setdefault(key, Counter()).update(picked)
    shown, other, other_size = [], Counter[int](), 0
    for key in sorted(groups, key=lambda k: -sizes[k]):
        if sizes[key] >= floor:
            shown.append((key, sizes[key], [groups[key][i] for i in range(len(options))]))
        else:
            other.update(groups[key])
            other_size += sizes[key]
    hidden = 0
    if other_size >= floor:
        shown.append(("その他", other_size, [other[i] for i in range(len(options))]))
    else:
        hidden = other_size
    return {"available": True, "label": BREAKDOWNS[by], "options": options, "groups": shown, "hidden": hidden, "floor": floor}


def results_csv(session: Session, survey: Survey) -> str:
    """One row per completed response (no resident id), one column per question; cells escaped
    against spreadsheet formulas (bot.csvsafe)."""
    questions = questions_of(session, survey.id)
    out = io.StringIO()
    writer = csvsafe.writer(out)
    writer.writerow(["回答番号", "回答日時", *[f"Q{q.seq + 1} {q.text}" for q in questions]])
    responses = session.scalars(select(SurveyResponse).where(
        SurveyResponse.survey_id == survey.id, SurveyResponse.completed_at.is_not(None)).order_by(SurveyResponse.completed_at)).all()
    answers: dict[tuple[int, int], SurveyAnswer] = {
        (a.response_id, a.question_id): a
        for a in session.scalars(select(SurveyAnswer).where(SurveyAnswer.response_id.in_([r.id for r in responses])))
    } if responses else {}
    from broadcast.schedule import format_jst

    for number, response in enumerate(responses, start=1):
        cells: list[Any] = [number, format_jst(response.completed_at)]
        for question in questions:
            answer = answers.get((response.id, question.id))
            if answer is None:
                cells.append("")
            elif question.kind in (SINGLE, MULTIPLE):
                cells.append(" / ".join(question.choices[i] for i in answer.choices or [] if 0 <= i < len(question.choices)))
            elif question.kind == SCALE:
                cells.append(answer.scale if answer.scale is not None else "")
            else:
                cells.append(answer.text or "")
        writer.writerow(cells)
    return out.getvalue()


def list_surveys(session: Session) -> list[Survey]:
    """Surveys, newest first."""
    return list(session.scalars(select(Survey).order_by(Survey.id.desc())).all())


def response_counts(session: Session, survey_ids: list[int]) -> dict[int, int]:
    """Completed responses per survey."""
    if not survey_ids:
        return {}
    rows = session.execute(select(SurveyResponse.survey_id, func.count()).where(
        SurveyResponse.survey_id.in_(survey_ids), SurveyResponse.completed_at.is_not(None)).group_by(SurveyResponse.survey_id)).all()
    return {int(sid): int(n) for sid, n in rows}


# --- retention and deletion ----------------------------------------------------------------------


def forget_resident(session: Session, resident_id: int | None) -> int:
    """Unfollow or 「登録情報を削除」: delete the resident's answers to named surveys (anonymous ones
    hold no resident id). Returns how many responses were deleted."""
    if resident_id is None:
        return 0
    result = session.execute(delete(SurveyResponse).where(SurveyResponse.resident_id == resident_id))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def purge_old_responses(session: Session, retention_days: int, now: dt.datetime | None = None) -> int:
    """Delete responses (and their answers) started more than `retention_days` ago."""
    cutoff = (now or utcnow()) - dt.timedelta(days=max(retention_days, 1))
    old = select(SurveyResponse.id).where(SurveyResponse.started_at < cutoff)
    session.execute(delete(SurveyAnswer).where(SurveyAnswer.response_id.in_(old)))
    result = session.execute(delete(SurveyResponse).where(SurveyResponse.started_at < cutoff))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def run_retention(app: Any) -> int:
    """The maintenance job (the dispatcher's clock): SURVEY_RETENTION_DAYS."""
    from bot.db import get_db

    with get_db(app).session() as session:
        deleted = purge_old_responses(session, int(app.config["SURVEY_RETENTION_DAYS"]))
        session.commit()
    return deleted

