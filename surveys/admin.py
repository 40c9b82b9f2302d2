"""Admin pages of surveys (role pr): build, list, results with charts and per-segment breakdowns
above the privacy floor, CSV, attach to a notice not yet sent, close. Every change audit-logged."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from bot import auth
from bot.auth import audit, current_staff, register_nav, require_role
from bot.db import get_session
from broadcast.models import AWAITING_APPROVAL, SCHEDULED, Broadcast
from broadcast.schedule import format_jst, parse_local_datetime
from kpi.charts import hbar_chart
from surveys import service
from surveys.models import KIND_LABELS, MULTIPLE, SINGLE, Survey

bp = Blueprint("surveys_admin", __name__, url_prefix="/admin/surveys")

FORM_SLOTS = 5  # blank questions on a new form; 「質問を増やす」 adds five more
AUDIT_LABELS = {"survey_create": "アンケート作成", "survey_attach": "アンケートをお知らせに追加", "survey_close": "アンケート締め切り",
                "survey_csv": "アンケート結果のCSV"}


def _questions_from(form: Any) -> tuple[list[dict[str, str]], list[service.QuestionDraft]]:
    """The question blocks as typed (to re-render) and the non-empty ones as drafts."""
    rows, drafts = [], []
    slots = max(int(form.get("slots", FORM_SLOTS) or FORM_SLOTS), FORM_SLOTS)
    for n in range(min(slots, service.MAX_QUESTIONS)):
        row = {"kind": form.get(f"q{n}_kind", SINGLE), "text": form.get(f"q{n}_text", ""), "choices": form.get(f"q{n}_choices", "")}
        rows.append(row)
        if row["text"].strip() or row["choices"].strip():
            drafts.append(service.QuestionDraft(row["kind"], row["text"].strip(), service.parse_choices(row["choices"])))
    return rows, drafts


def _form(values: dict[str, Any], rows: list[dict[str, str]], error: str | None = None) -> str:
    return render_template("surveys/new.html", values=values, rows=rows, kinds=KIND_LABELS, error=error,
                           max_questions=service.MAX_QUESTIONS)


@bp.get("")
@require_role("pr")
def index() -> str:
    """Surveys with their completed responses."""
    session = get_session()
    surveys = service.list_surveys(session)
    counts = service.response_counts(session, [s.id for s in surveys])
    return render_template("surveys/list.html", surveys=surveys, counts=counts, format_jst=format_jst, accepting=service.is_accepting)


@bp.route("/new", methods=["GET", "POST"])
@require_role("pr")
def new() -> Any:
    """Build a survey: title, intro, anonymous or not, closing date, questions."""
    if request.method == "GET":
        return _form({"is_anonymous": "1"}, [{"kind": SINGLE, "text": "", "choices": ""} for _ in range(FORM_SLOTS)])
    form = request.form
    values = {name: form.get(name, "") for name in ("title", "intro", "is_anonymous", "closes_at")}
    rows, drafts = _questions_from(form)
    if form.get("step") == "more":
        rows += [{"kind": SINGLE, "text": "", "choices": ""} for _ in range(FORM_SLOTS)]
        return _form(values, rows[: service.MAX_QUESTIONS])
    session = get_session()
    staff = current_staff()
    try:
        closes_at = parse_local_datetime(values["closes_at"]) if values["closes_at"] else None
        survey = service.create_survey(
            session, title=values["title"], intro=values["intro"], is_anonymous=values["is_anonymous"] == "1",
            closes_at=closes_at, questions=drafts, created_by=staff.id if staff else None,
        )
    except (service.SurveyError, ValueError) as exc:
        session.rollback()
        return _form(values, rows, str(exc)), 400
    audit(session, "survey_create", f"アンケート #{survey.id}", title=survey.title, questions=len(drafts), anonymous=survey.is_anonymous)
    session.commit()
    flash(f"アンケート #{survey.id}「{survey.title}」を作成しました。お知らせに付けるか、リッチメニューのボタンに設定してください。", "success")
    return redirect(url_for("surveys_admin.detail", survey_id=survey.id))


def _survey(survey_id: int) -> Survey:
    survey = get_session().get(Survey, survey_id)
    if survey is None:
        abort(404)
    return survey


@bp.get("/<int:survey_id>")
@require_role("pr")
def detail(survey_id: int) -> str:
    """Results: counts and charts per question, free texts (masked), breakdowns, how to start it."""
    session = get_session()
    survey = _survey(survey_id)
    completed, unfinished, results = service.results(session, survey)
    charts = {
        r.question.id: hbar_chart(f"survey-q{r.question.id}", r.question.text, [label for label, _ in r.counts],
                                  [count for _, count in r.counts], unit="人", empty_note="まだ回答がありません")
        for r in results if r.counts
    }
    by = request.args.get("by", "")
    floor = int(current_app.config["SEGMENT_PRIVACY_FLOOR"])
    breakdowns = {}
    if by:
        if by not in service.BREAKDOWNS:
            abort(400)
        for r in results:
            if r.counts:
                breakdowns[r.question.id] = service.breakdown(session, survey, r.question, by, floor)
    notices = [] if survey.broadcast_id else session.scalars(
        select(Broadcast).where(Broadcast.status.in_((AWAITING_APPROVAL, SCHEDULED)), Broadcast.last_run_at.is_(None))
        .order_by(Broadcast.id.desc()).limit(50)
    ).all()
    return render_template(
        "surveys/detail.html", survey=survey, completed=completed, unfinished=unfinished, results=results, charts=charts,
        kinds=KIND_LABELS, by=by, breakdown_labels=service.BREAKDOWNS, breakdowns=breakdowns, floor=floor, notices=notices,
        start_data=json.dumps(service.start_data(survey.id), separators=(",", ":")), format_jst=format_jst,
        accepting=service.is_accepting(survey), MULTIPLE=MULTIPLE,
    )


@bp.get("/<int:survey_id>/results.csv")
@require_role("pr")
def results_csv(survey_id: int) -> Response:
    """Completed responses as CSV (UTF-8 with BOM for Excel), cells escaped against formulas."""
    session = get_session()
    survey = _survey(survey_id)
    body = service.results_csv(session, survey)
    audit(session, "survey_csv", f"アンケート #{survey.id}")
    session.commit()
    return Response("\ufeff" + body, mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename=survey-{survey.id}.csv"})


@bp.post("/<int:survey_id>/attach")
@require_role("pr")
def attach(survey_id: int) -> Response:
    """Add the survey's start button to a notice not yet sent."""
    session = get_session()
    survey = _survey(survey_id)
    try:
        notice = service.attach_to_notice(session, survey, request.form.get("broadcast_id", type=int) or 0)
    except service.SurveyError as exc:
        session.rollback()
        flash(str(exc), "error")
    else:
        audit(session, "survey_attach", f"アンケート #{survey.id}", notice=f"#{notice.id}")
        session.commit()
        flash(f"お知らせ #{notice.id}「{notice.title}」に「アンケートに答える」ボタンを付けました。", "success")
    return redirect(url_for("surveys_admin.detail", survey_id=survey_id))


@bp.post("/<int:survey_id>/close")
@require_role("pr")
def close(survey_id: int) -> Response:
    """Stop accepting answers."""
    session = get_session()
    survey = _survey(survey_id)
    service.close_survey(session, survey)
    audit(session, "survey_close", f"アンケート #{survey.id}")
    session.commit()
    flash("アンケートを締め切りました。", "success")
    return redirect(url_for("surveys_admin.detail", survey_id=survey_id))


def init_app(app: Flask) -> None:
    """Register the pages, the navigation entry and the audit labels."""
    app.register_blueprint(bp)
    register_nav("アンケート", "surveys_admin.index", ["pr"], order=12)
    auth.AUDIT_ACTION_LABELS.update(AUDIT_LABELS)
