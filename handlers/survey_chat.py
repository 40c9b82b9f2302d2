"""Surveys in the LINE chat: a notice's button (or a rich-menu area) with postback
{"a": "survey", "s": <id>} starts or resumes a survey; each question comes with quick replies
(choices, 1-5, 「次へ」 for multiple choice, 「回答しない」 for free text) and 「中断する」; free
text is the resident's next message. A resident answers each survey once.

The surveys are written by city staff in Japanese; the words around them are in the resident's
language (the message catalogs), and a message carrying the staff's Japanese (the title and intro,
a question and its choices) starts with the note of handlers.japanese_note for a resident whose
language is neither Japanese nor やさしい日本語.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.i18n import N_, Translator
from bot import japanese_note
from handlers.context import EventContext
from handlers.replies import postback_button, text
from surveys import service
from surveys.models import MULTIPLE, SCALE, SINGLE, TEXT, Survey, SurveyQuestion, SurveyResponse

log = logging.getLogger(__name__)
START, STEP = "survey", "sv"
CLOSED = N_("このアンケートは締め切りました。ご協力ありがとうございました。")
DONE_ALREADY = N_("このアンケートには回答済みです。ご協力ありがとうございました。")
THANKS = N_("アンケートは以上です。ご回答ありがとうございました。")
STOPPED = N_("アンケートを中断しました。お知らせの「アンケートに答える」ボタンから、いつでも続きに戻れます。")
STALE = N_("このボタンは使えなくなっています。")
TEXT_PROMPT = N_("自由にご記入ください（200文字まで）。個人が特定できる情報は書かないでください。")
STOP = N_("中断する")
NEXT = N_("次へ")
SKIP = N_("回答しない")
MULTIPLE_HINT = N_("（いくつでも選べます。選び終わったら「次へ」）")
TICKED = N_("選択中：{choices}")
SCALE_HINT = N_("（1：そう思わない 〜 5：そう思う）")
ANONYMOUS = N_("（無記名のアンケートです）")
TITLE = N_("アンケート「{title}」")


def _key(ctx: EventContext, survey_id: int) -> str:
    return service.respondent_key(str(ctx.config["SECRET_KEY"] or ""), survey_id, ctx.user_id or "")


def _stop_button(t: Translator, survey_id: int) -> dict[str, Any]:
    return postback_button(t.label(STOP), {"a": STEP, "s": survey_id, "x": 1}, t.label(STOP))


def question_message(survey: Survey, question: SurveyQuestion, response: SurveyResponse, total: int,
                     t: Translator | None = None) -> dict[str, Any]:
    """The question with its quick replies, the words around it in the resident's language (`t`);
    the question and its choices are the staff's Japanese."""
    t = t or Translator()
    head = f"（{question.seq + 1}/{total}）{question.text}"
    data = {"a": STEP, "s": survey.id, "q": question.id}
    items: list[dict[str, Any]] = []
    if question.kind == SINGLE:
        items = [postback_button(choice, {**data, "c": i}, choice) for i, choice in enumerate(question.choices)]
    elif question.kind == MULTIPLE:
        ticked = set(response.pending or [])
        items = [postback_button(("✓" if i in ticked else "") + choice, {**data, "c": i}, choice) for i, choice in enumerate(question.choices)]
        items = items[:11] + [postback_button(t.label(NEXT), {**data, "n": 1}, t.label(NEXT))]
        head += "\n" + t(MULTIPLE_HINT)
        if ticked:
            head += "\n" + t(TICKED, choices="、".join(question.choices[i] for i in sorted(ticked) if i < len(question.choices)))
    elif question.kind == SCALE:
        items = [postback_button(str(v), {**data, "v": v}, str(v)) for v in service.SCALE_VALUES]
        head += "\n" + t(SCALE_HINT)
    else:
        items = [postback_button(t.label(SKIP), {**data, "k": 1}, t.label(SKIP))]
        head += "\n" + t(TEXT_PROMPT)
    return text(head, [*items, _stop_button(t, survey.id)])


def _noted(ctx: EventContext, message: dict[str, Any]) -> dict[str, Any]:
    """A message with the staff's Japanese in it, with the note on top for a resident who needs it."""
    message["text"] = text(japanese_note.with_note(message["text"], ctx.session, str(ctx.config["MUNICIPALITY"]),
                                                   ctx.language))["text"]
    return message


def _ask_next(ctx: EventContext, survey: Survey, response: SurveyResponse, prefix: list[dict[str, Any]] | None = None) -> None:
    """Ask the current question, or thank the resident when all are answered."""
    messages = list(prefix or [])
    question = service.current_question(ctx.session, response)
    if question is None:
        ctx.reply(*messages, text(ctx.t(THANKS)))
        return
    if question.kind == TEXT:
        response.is_waiting_text = True
        ctx.session.flush()
    total = len(service.questions_of(ctx.session, survey.id))
    ctx.reply(*messages, _noted(ctx, question_message(survey, question, response, total, ctx.t)))


def _survey_and_response(ctx: EventContext, data: dict[str, Any], resident_id: int | None, create: bool) -> tuple[Survey, SurveyResponse] | None:
    survey = service.get_survey(ctx.session, data.get("s"))
    if survey is None or not ctx.user_id:
        ctx.reply(text(ctx.t(STALE)))
        return None
    response = service.response_for(ctx.session, survey, _key(ctx, survey.id), resident_id, create=False)
    if response is not None and response.completed_at is not None:
        ctx.reply(text(ctx.t(DONE_ALREADY)))
        return None
    if not service.is_accepting(survey):
        ctx.reply(text(ctx.t(CLOSED)))
        return None
    if response is None and create:
        response = service.response_for(ctx.session, survey, _key(ctx, survey.id), resident_id, create=True)
    if response is None:
        ctx.reply(text(ctx.t(STALE)))
        return None
    return survey, response


def start(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「アンケートに答える」: start, or resume where the resident stopped."""
    found = _survey_and_response(ctx, data, resident_id, create=True)
    if found is None:
        return
    survey, response = found
    intro: list[dict[str, Any]] = []
    if response.next_seq == 0 and not response.pending:
        note = ctx.t.label(ANONYMOUS) if survey.is_anonymous else ""
        intro = [_noted(ctx, text(f"{ctx.t.label(TITLE, title=survey.title)}{note}\n{survey.intro}".strip()))]
    _ask_next(ctx, survey, response, intro)


def step(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """A tap on a question's quick reply (or 「中断する」)."""
    found = _survey_and_response(ctx, data, resident_id, create=False)
    if found is None:
        return
    survey, response = found
    if data.get("x") == 1:
        service.stop(ctx.session, response)
        ctx.reply(text(ctx.t(STOPPED)))
        return
    question = service.current_question(ctx.session, response)
    if question is None or data.get("q") != question.id:
        _ask_next(ctx, survey, response)  # an earlier question's button: ask the current one again
        return
    if "c" in data:
        ok = service.answer_choice(ctx.session, response, question, data.get("c"))
    elif data.get("n") == 1:
        ok = service.finish_multiple(ctx.session, response, question)
    elif "v" in data:
        ok = service.answer_scale(ctx.session, response, question, data.get("v"))
    elif data.get("k") == 1:
        ok = service.answer_text(ctx.session, response, question, None)
    else:
        ok = False
    if not ok:
        log.info("survey %s: a tap that does not fit question %s ignored", survey.id, question.id)
    _ask_next(ctx, survey, response)


def handle_text(ctx: EventContext, resident_id: int | None, message: str) -> bool:
    """The resident's answer to a free-text question they were asked; False when none waits."""
    if not ctx.user_id:
        return False
    found = service.waiting_text(ctx.session, lambda survey_id: _key(ctx, survey_id))
    if found is None:
        return False
    response, question = found
    survey = ctx.session.get(Survey, response.survey_id)
    if survey is None or not service.is_accepting(survey):
        response.is_waiting_text = False
        return False
    service.answer_text(ctx.session, response, question, message)
    _ask_next(ctx, survey, response)
    return True


def forget(ctx: EventContext, resident_id: int | None) -> None:
    """Unfollow or 「登録情報を削除」: the resident's answers to named surveys are deleted."""
    service.forget_resident(ctx.session, resident_id)


POSTBACK_ACTIONS = {START: start, STEP: step}
