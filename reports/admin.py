"""The staff inbox of residents' reports: /admin/reports (roles reports and admin).

A list with filters (category, status, dates), a detail page (photo through an authenticated
route, place with a map link, description, times in Japan time), the status (受付 → 対応中 → 完了,
or 対象外 with a reason) pushed to the resident once, an internal note, CSV export. Staff see the
report number, never the resident's LINE id. Every change is audited (without the texts).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from werkzeug.wrappers import Response

from bot import audit_text, auth, csvsafe
from bot.auth import audit, register_nav, require_role
from bot.db import get_session
from bot.models import AuditLog
from reports import photos, service
from reports.models import PHOTO_ATTACHED, PHOTO_FAILED, PHOTO_SKIPPED, STATUS_LABELS, SUBMITTED_STATUSES, Report

bp = Blueprint("reports_admin", __name__, url_prefix="/admin/reports", template_folder="templates")

ROLES = ("reports",)  # admin may open everything as well (bot.auth.has_role)
PAGE_SIZE = 100
CSV_MAX_ROWS = 50_000
AUDIT_LABELS = {
    "report_status": "通報の状況を変更",
    "report_note": "通報のメモを変更",
    "report_export": "通報のCSVを出力",
}
PHOTO_LABELS = {PHOTO_ATTACHED: "あり", PHOTO_FAILED: "LINEから受け取れず", PHOTO_SKIPPED: "なし"}


def _municipality() -> str:
    return str(current_app.config["MUNICIPALITY"])


def _date(name: str, errors: list[str]) -> dt.date | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors.append("日付は 2026-12-01 の形で入力してください。")
        return None


def _filters() -> tuple[service.ReportFilter, list[str]]:
    """The list's filters from the query string; unknown values are errors, not a 500."""
    errors: list[str] = []
    category = (request.args.get("category") or "").strip() or None
    status = (request.args.get("status") or "").strip() or None
    if status is not None and status not in SUBMITTED_STATUSES:
        errors.append("状況は一覧から選んでください。")
        status = None
    date_from, date_to = _date("from", errors), _date("to", errors)
    if date_from and date_to and date_from > date_to:
        errors.append("期間の始めが終わりより後になっています。")
    return service.ReportFilter(category, status, date_from, date_to), errors


def _report_or_404(number: str) -> Report:
    report = service.get_by_number(get_session(), _municipality(), number)
    if report is None:
        abort(404)
    return report


@bp.get("")
@require_role(*ROLES)
def index() -> Any:
    """The reports, newest first, with filters."""
    filters, errors = _filters()
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows, total = service.list_reports(get_session(), _municipality(), filters, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("reports/list.html", rows=rows, total=total, page=page, pages=max(1, -(-total // PAGE_SIZE)),
                           filters=filters, errors=errors, categories=service.categories(current_app.config),
                           statuses=[(s, STATUS_LABELS[s]) for s in SUBMITTED_STATUSES], labels=STATUS_LABELS,
                           place=service.place_label, args=args, photo_labels=PHOTO_LABELS), (400 if errors else 200)


@bp.get("/<number>")
@require_role(*ROLES)
def detail(number: str) -> str:
    """One report: photo, place with a map link, description, status and its pushes, the note."""
    report = _report_or_404(number)
    return render_template("reports/detail.html", report=report, labels=STATUS_LABELS, place=service.place_label(report),
                           map_url=service.map_url(report), next_statuses=service.TRANSITIONS.get(report.status, ()),
                           notices=service.notices_of(get_session(), report), photo_labels=PHOTO_LABELS,
                           has_photo=photos.path_of(current_app.config, report.photo_file) is not None,
                           max_reason=service.MAX_REASON, max_note=service.MAX_NOTE)


@bp.get("/<number>/photo")
@require_role(*ROLES)
def photo(number: str) -> Response:
    """The report's photo (metadata already removed), only to signed-in staff, never cached."""
    report = _report_or_404(number)
    path = photos.path_of(current_app.config, report.photo_file)
    if path is None:
        abort(404)
    response = send_file(path, mimetype=report.photo_type or "application/octet-stream", max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<number>/status")
@require_role(*ROLES)
def change_status(number: str) -> Response:
    """Move the report on; the resident is told once (the push is queued with the change, then sent)."""
    session = get_session()
    report = _report_or_404(number)
    status = request.form.get("status", "")
    old = report.status
    try:
        notice = service.change_status(session, report, status, request.form.get("reason"))
    except service.ReportError as exc:
        session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("reports_admin.detail", number=number))
    audit(session, "report_status", report.number or "", old=STATUS_LABELS.get(old, old), new=STATUS_LABELS[status])
    session.commit()
    if notice is None:
        flash(f"状況を「{STATUS_LABELS[status]}」にしました。住民とのつながりがないため、お知らせは送りません。", "success")
    elif service.send_notice(current_app._get_current_object(), notice.id):  # type: ignore[attr-defined]
        flash(f"状況を「{STATUS_LABELS[status]}」にし、住民にお知らせしました。", "success")
    else:
        flash(f"状況を「{STATUS_LABELS[status]}」にしました。住民へのお知らせはまだ送れていません（自動で送り直します）。", "error")
    return redirect(url_for("reports_admin.detail", number=number))


@bp.post("/<number>/note")
@require_role(*ROLES)
def save_note(number: str) -> Response:
    """The internal note (never sent to the resident)."""
    session = get_session()
    report = _report_or_404(number)
    try:
        service.set_note(report, request.form.get("note", ""))
    except service.ReportError as exc:
        session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("reports_admin.detail", number=number))
    audit(session, "report_note", report.number or "")
    session.commit()
    flash("メモを保存しました（住民には送りません）。", "success")
    return redirect(url_for("reports_admin.detail", number=number))


@bp.get("/csv")
@require_role(*ROLES)
def export() -> Any:
    """The filtered reports as CSV (UTF-8 with BOM, for Excel); formulas are escaped (bot.csvsafe)."""
    filters, errors = _filters()
    if errors:
        flash(" ".join(errors), "error")
        return redirect(url_for("reports_admin.index"))
    session = get_session()
    rows, total = service.list_reports(session, _municipality(), filters, CSV_MAX_ROWS)
    out = io.StringIO()
    writer = csvsafe.writer(out)
    writer.writerow(service.CSV_COLUMNS)
    writer.writerows(service.csv_row(r) for r in rows)
    audit(session, "report_export", "", rows=len(rows))
    session.commit()
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=9))).date()
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="reports-{today.isoformat()}.csv"'})


def _audit_sentence(row: AuditLog) -> str:
    detail = row.detail or {}
    if row.action == "report_status":
        return f"通報 {row.target} の状況を「{detail.get('old', '')}」から「{detail.get('new', '')}」に変更"
    if row.action == "report_note":
        return f"通報 {row.target} のメモを変更"
    return f"通報のCSVを出力（{detail.get('rows', 0)} 件）"


def init_app(app: Flask) -> None:
    """Register the pages, the navigation entry and the audit wording."""
    app.register_blueprint(bp)
    register_nav("住民からの通報", "reports_admin.index", list(ROLES), order=50)
    auth.AUDIT_ACTION_LABELS.update(AUDIT_LABELS)
    for action in AUDIT_LABELS:
        audit_text.register_audit_text(action, _audit_sentence)
