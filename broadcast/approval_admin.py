"""Admin pages of the approval of notices (broadcast.approval): approve with a comment or return
with a reason (pr, admin), test send to staff's linked LINE accounts, link one's own LINE account
(pr, dept, admin), and the departments of department users (admin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from bot import auth
from bot.auth import audit, current_staff, register_nav, require_role
from bot.db import get_session
from bot.models import StaffUser
from bot.staff_link import LINK_CODE_MINUTES, LINK_WORD, issue_link_code, unlink
from broadcast import approval
from broadcast.errors import NoticeError
from broadcast.models import AWAITING_APPROVAL, RETURNED, Broadcast

bp = Blueprint("notice_approval", __name__, url_prefix="/admin")

AUDIT_LABELS = {
    "notice_approve": "お知らせ承認",
    "notice_return": "お知らせ差し戻し",
    "notice_test_send": "お知らせテスト送信",
    "staff_line_link": "職員のLINE連携",
    "staff_line_link_failed": "職員のLINE連携（コードの誤り）",
    "staff_line_unlink": "職員のLINE連携解除",
    "staff_department": "職員の部署の設定",
}


def _notice(broadcast_id: int) -> Broadcast:
    broadcast = get_session().get(Broadcast, broadcast_id)
    if broadcast is None or not approval.can_see(current_staff(), broadcast):
        abort(404)
    return broadcast


def _act_on_notice(broadcast_id: int, act: Callable[[Any], Any], success: Callable[[Any], str]) -> Response:
    """Run one approval step on a notice this user may see: commit and say what happened, or roll
    back and show the service's Japanese error; back to the notice's page either way."""
    session = get_session()
    _notice(broadcast_id)
    try:
        result = act(session)
    except NoticeError as exc:
        session.rollback()
        flash(str(exc), "error")
    else:
        session.commit()
        flash(success(result), "success")
    return redirect(url_for("broadcast_admin.detail", broadcast_id=broadcast_id))


@bp.post("/notices/<int:broadcast_id>/approve")
@require_role("pr")
def approve(broadcast_id: int) -> Response:
    """Approve a department's draft with a comment; it is scheduled (or sent now)."""
    return _act_on_notice(
        broadcast_id,
        lambda session: approval.approve(session, broadcast_id, current_staff(), request.form.get("comment", "")),
        lambda b: f"お知らせ #{b.id}「{b.title}」を承認しました。予定どおり配信します。")


@bp.post("/notices/<int:broadcast_id>/return")
@require_role("pr")
def return_draft(broadcast_id: int) -> Response:
    """Return a draft to its department with a reason; it is never sent."""
    return _act_on_notice(
        broadcast_id,
        lambda session: approval.return_draft(session, broadcast_id, current_staff(), request.form.get("reason", "")),
        lambda b: f"お知らせ #{b.id}「{b.title}」を差し戻しました。")


@bp.post("/notices/<int:broadcast_id>/test-send")
@require_role("pr", "dept")
def test_send(broadcast_id: int) -> Response:
    """Push the notice to the linked LINE accounts of staff who may see it."""
    return _act_on_notice(
        broadcast_id,
        lambda session: approval.send_test(session, current_app.extensions["line"], broadcast_id, current_staff()),
        lambda sent: f"職員 {sent} 人のLINEにテスト送信しました（住民には届いていません）。")


@bp.route("/line-link", methods=["GET", "POST"])
@require_role("pr", "dept")
def line_link() -> Any:
    """Link one's own LINE account: issue a one-time code to send to the bot, or unlink."""
    session = get_session()
    user = current_staff()
    assert user is not None
    code = None
    if request.method == "POST":
        if request.form.get("action") == "unlink":
            unlink(user)
            audit(session, "staff_line_unlink", user.username)
            session.commit()
            flash("LINEアカウントの連携を解除しました。", "success")
            return redirect(url_for("notice_approval.line_link"))
        code = issue_link_code(user)
        session.commit()
    return render_template(
        "broadcast/line_link.html", user=user, code=code, minutes=LINK_CODE_MINUTES, word=LINK_WORD,
    )


@bp.route("/departments", methods=["GET", "POST"])
@require_role("admin")
def departments() -> Any:
    """Set the department of department users (role dept)."""
    session = get_session()
    if request.method == "POST":
        user = session.get(StaffUser, request.form.get("user_id", type=int) or 0)
        name = " ".join(request.form.get("department", "").split())
        if user is None:
            abort(404)
        if len(name) > 64:
            flash("部署名は64文字以内にしてください。", "error")
        else:
            old = user.department or ""
            user.department = name or None
            audit(session, "staff_department", user.username, old=old, new=name)
            session.commit()
            flash(f"ユーザー「{user.username}」の部署を「{name or '（なし）'}」にしました。", "success")
        return redirect(url_for("notice_approval.departments"))
    users = session.scalars(select(StaffUser).where(StaffUser.role == approval.DEPT).order_by(StaffUser.username)).all()
    return render_template("broadcast/departments.html", users=users)


def approval_context() -> dict[str, Any]:
    """What the notice pages need to show approval: `approval_state(b)` for a notice."""

    def approval_state(broadcast: Broadcast) -> dict[str, Any]:
        user = current_staff()
        session = get_session()
        approver = session.get(StaffUser, broadcast.approved_by) if broadcast.approved_by else None
        return {
            "awaiting": broadcast.status == AWAITING_APPROVAL,
            "returned": broadcast.status == RETURNED,
            "is_approver": approval.is_approver(user),
            "can_review": broadcast.status == AWAITING_APPROVAL and approval.is_approver(user),
            "can_test": approval.can_see(user, broadcast),
            "linked": len(approval.test_recipients(session, broadcast)),
            "approver": approver.username if approver else None,
        }

    return {"approval_state": approval_state}


def init_app(app: Flask) -> None:
    """Register the pages, the navigation entries, the audit labels and the template helper."""
    app.register_blueprint(bp)
    app.context_processor(approval_context)
    register_nav("LINE連携（テスト送信）", "notice_approval.line_link", ["pr", "dept"], order=11)
    register_nav("部署の設定", "notice_approval.departments", ["admin"], order=95)
    auth.AUDIT_ACTION_LABELS.update(AUDIT_LABELS)
