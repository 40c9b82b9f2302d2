"""Admin pages: disaster mode (switch with a confirmation page) and shelters (open / close).

Roles admin and pr. Every switch and every opening or closing is audited. Views are thin over
disaster.mode and disaster.shelters.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from bot import audit_text, auth
from bot.admin import jst
from bot.auth import audit, current_staff, register_nav, require_role
from bot.db import get_db, get_session
from bot.models import AuditLog
from disaster import mode, shelters
from disaster.hazards import HAZARDS, label
from disaster.models import KIND_LABELS
from segments.models import Resident

bp = Blueprint("disaster_admin", __name__, url_prefix="/admin", template_folder="templates")

ROLES = ("admin", "pr")
MAX_MESSAGE = 2000
AUDIT_LABELS = {
    "disaster_on": "災害モード開始",
    "disaster_off": "災害モード終了",
    "shelter_open": "避難所の開設",
    "shelter_close": "避難所の閉鎖",
    "shelters_import": "避難所データの取り込み",
}


def _municipality() -> str:
    return str(current_app.config["MUNICIPALITY"])


def _followers() -> int:
    return int(get_session().scalar(select(func.count(Resident.id)).where(Resident.is_following.is_(True))) or 0)


def _form() -> tuple[str, str | None, str | None]:
    """(on|off, message or None, hazard or None) from the posted form."""
    state = request.form.get("state", "")
    message = (request.form.get("message") or "").strip() or None
    hazard = request.form.get("hazard") or None
    return state, message, hazard


@bp.get("/disaster")
@require_role(*ROLES)
def index() -> str:
    """The mode now, and the form to switch it."""
    session = get_session()
    state = mode.get_state(session, _municipality())
    open_count = len(shelters.list_shelters(session, _municipality(), only_open=True))
    return render_template("disaster/mode.html", state=state, status=mode.status_text(state, jst), hazards=HAZARDS,
                           open_count=open_count, followers=_followers(), max_message=MAX_MESSAGE, errors=[])


@bp.post("/disaster/confirm")
@require_role(*ROLES)
def confirm() -> Any:
    """What the switch will do, before it is done."""
    session = get_session()
    state_name, message, hazard = _form()
    current = mode.get_state(session, _municipality())
    errors = []
    if state_name not in ("on", "off"):
        errors.append("操作を選んでください。")
    if hazard is not None and hazard not in HAZARDS:
        errors.append("災害の種類を一覧から選んでください。")
    if message is not None and len(message) > MAX_MESSAGE:
        errors.append(f"緊急のお知らせは{MAX_MESSAGE}文字以内にしてください。")
    if message is not None and state_name == "off":
        errors.append("緊急のお知らせは災害モードを始めるときだけ送れます。")
    if errors:
        return render_template("disaster/mode.html", state=current, status=mode.status_text(current, jst), hazards=HAZARDS,
                               open_count=0, followers=_followers(), max_message=MAX_MESSAGE, errors=errors), 400
    return render_template("disaster/confirm.html", state_name=state_name, message=message, hazard=hazard,
                           hazard_label=label(hazard) if hazard else None, followers=_followers(),
                           already=bool(current and current.is_on) == (state_name == "on"))


@bp.post("/disaster/switch")
@require_role(*ROLES)
def switch() -> Response:
    """Switch, as confirmed; the result (or LINE's failure) is shown on the mode page."""
    state_name, message, hazard = _form()
    if state_name not in ("on", "off") or (hazard is not None and hazard not in HAZARDS):
        flash("操作を読み取れませんでした。もう一度お試しください。", "error")
        return redirect(url_for("disaster_admin.index"))
    actor = current_staff()
    get_session().commit()  # the switch writes in its own transactions (SQLite has one write lock)
    try:
        result = mode.switch(get_db(), current_app.extensions["line"], _municipality(), state_name == "on",
                             actor=actor, message=message, hazard=hazard,
                             sender=mode.emergency_sender(current_app))
    except mode.DisasterModeError as exc:
        flash(str(exc), "error")
        return redirect(url_for("disaster_admin.index"))
    if not result.changed:
        flash("すでにその状態です（変更はありません）。", "info")
    elif result.is_on:
        notice = f"緊急のお知らせ #{result.broadcast_id} を友だち全員に送ります。" if result.broadcast_id else ""
        flash("災害モードにしました。全員のメニューを災害時メニューにしました。" + notice, "success")
    else:
        flash("災害モードを終えました。通常のメニューに戻しました。", "success")
    return redirect(url_for("disaster_admin.index"))


@bp.get("/shelters")
@require_role(*ROLES)
def shelter_list() -> str:
    """Every shelter of the city with its state and an open / close button."""
    rows = shelters.list_shelters(get_session(), _municipality())
    return render_template("disaster/shelters.html", rows=rows, kinds=KIND_LABELS, label=label,
                           open_count=sum(1 for r in rows if r.is_open))


@bp.post("/shelters/<int:shelter_id>/<any(open, close):action>")
@require_role(*ROLES)
def shelter_set(shelter_id: int, action: str) -> Response:
    """Open or close one shelter (audited)."""
    is_open = action == "open"
    session = get_session()
    try:
        changed = shelters.set_open(session, _municipality(), [shelter_id], is_open)
    except shelters.ShelterError as exc:
        flash(str(exc), "error")
        return redirect(url_for("disaster_admin.shelter_list"))
    for row in changed:
        audit(session, "shelter_open" if is_open else "shelter_close", f"{row.id} {row.name}"[:256], count=1)
        flash(f"{row.name} を{'開設' if is_open else '閉鎖'}しました。", "success")
    session.commit()
    return redirect(url_for("disaster_admin.shelter_list"))


def _audit_sentence(row: AuditLog) -> str:
    detail = row.detail or {}
    if row.action == "disaster_on":
        notice = f"、緊急のお知らせ #{detail['notice']}" if detail.get("notice") else "、緊急のお知らせなし"
        return f"災害モードを開始（{row.target}、災害の種類: {detail.get('hazard', 'なし')}{notice}）"
    if row.action == "disaster_off":
        return f"災害モードを終了（{row.target}）"
    if row.action in ("shelter_open", "shelter_close"):
        return f"避難所を{'開設' if row.action == 'shelter_open' else '閉鎖'}: {row.target}"
    return (f"避難所データを取り込み（{row.target}: 追加 {detail.get('added', 0)} 件、更新 {detail.get('updated', 0)} 件、"
            f"削除 {detail.get('removed', 0)} 件）")


def init_app(app: Flask) -> None:
    """Register the pages, the navigation entries and the audit wording."""
    app.register_blueprint(bp)
    register_nav("災害モード", "disaster_admin.index", list(ROLES), order=55)
    register_nav("避難所", "disaster_admin.shelter_list", list(ROLES), order=56)
    auth.AUDIT_ACTION_LABELS.update(AUDIT_LABELS)
    for action in AUDIT_LABELS:
        audit_text.register_audit_text(action, _audit_sentence)
