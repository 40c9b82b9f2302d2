"""Draft, approve, send: departments draft notices, PR approves or returns them, only approved ones go out.

* A user of role `dept` (with a department on their staff user) drafts notices for their own
  department and sees only those; a draft waits as 承認待ち and is never scheduled.
* `pr` or `admin` approves it with a comment (it is then scheduled: a 「今すぐ送信」 notice goes out
  at approval) or returns it with a reason (差し戻し, final: the department drafts again).
* PR's and admins' own notices are approved by their author as they are scheduled.
* The dispatcher starts only SCHEDULED notices with `approved_at` set (broadcast.dispatcher), so a
  notice nobody approved is never sent, whatever a page or a script did.
* Before approving, staff may send a test to their own LINE accounts (bot.staff_link): a push to the
  linked accounts of staff who may see the notice, never to residents.
Every step is audit-logged by the functions here (the caller commits).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.auth import audit
from bot.db import utcnow
from bot.line import LineError, LineGateway, new_retry_key
from bot.models import StaffUser
from bot.staff_link import linked_staff
from broadcast.errors import NoticeError
from broadcast.models import AWAITING_APPROVAL, RETURNED, SCHEDULED, Broadcast
from broadcast.schedule import Schedule
from broadcast.service import CreatedNotice, create_broadcast, first_run_at, get_broadcast

DEPT = "dept"
APPROVERS = ("pr", "admin")
TEST_HEADER = "【テスト送信】職員の確認用です。住民には届いていません。"
MAX_NOTE = 500


def is_approver(user: StaffUser | None) -> bool:
    """PR and admins approve, return, schedule and send."""
    return user is not None and user.role in APPROVERS


def can_see(user: StaffUser | None, broadcast: Broadcast) -> bool:
    """PR and admins see every notice; a department user only its department's."""
    if user is None:
        return False
    if is_approver(user):
        return True
    return user.role == DEPT and bool(user.department) and broadcast.department == user.department


def visible(user: StaffUser | None, rows: list[Broadcast]) -> list[Broadcast]:
    """The notices of `rows` the user may see."""
    return [row for row in rows if can_see(user, row)]


def create_notice(actor: StaffUser | None, session: Session, **kwargs: Any) -> CreatedNotice:
    """Create a notice (service.create_broadcast's arguments) as `actor`: a department user's is a draft awaiting approval for their
    department; PR's, an admin's or the CLI's (None) is approved as it is scheduled."""
    if actor is not None and actor.role == DEPT:
        if not actor.department:
            raise NoticeError("部署が設定されていないため、お知らせを作成できません。管理者に部署の設定を依頼してください。")
        kwargs["override"] = None  # only an admin overrides the privacy floor
        return create_broadcast(session, department=actor.department, awaiting_approval=True, **kwargs)
    if actor is not None and not is_approver(actor):
        raise NoticeError("お知らせを作成する権限がありません。")
    return create_broadcast(session, **kwargs)


def _locked_awaiting(session: Session, broadcast_id: int, actor: StaffUser | None) -> Broadcast:
    if not is_approver(actor):
        raise NoticeError("承認・差し戻しは広報担当または管理者だけができます。")
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True, populate_existing=True)
    if broadcast is None:
        raise NoticeError(f"お知らせ #{broadcast_id} はありません。")
    if broadcast.status != AWAITING_APPROVAL:
        raise NoticeError(f"お知らせ #{broadcast.id} は承認待ちではありません。")
    return broadcast


def approve(session: Session, broadcast_id: int, actor: StaffUser | None, comment: str = "", now: dt.datetime | None = None) -> Broadcast:
    """Approve a draft and schedule it (a 「今すぐ送信」 draft goes out now); audit-logged."""
    now = now or utcnow()
    broadcast = _locked_awaiting(session, broadcast_id, actor)
    comment = comment.strip()
    if len(comment) > MAX_NOTE:
        raise NoticeError(f"コメントは{MAX_NOTE}文字以内にしてください。")
    schedule = Schedule.from_dict(broadcast.schedule)
    if schedule.immediate:
        schedule = Schedule.once(now, immediate=True)
        broadcast.schedule = schedule.to_dict()
    try:
        broadcast.next_run_at = first_run_at(schedule, now)
    except NoticeError as exc:
        raise NoticeError(f"{exc} 差し戻して、配信日時を直してもらってください。") from None
    broadcast.status = SCHEDULED
    broadcast.approved_at = now
    broadcast.approved_by = actor.id if actor is not None else None
    broadcast.review_note = comment or None
    audit(session, "notice_approve", f"#{broadcast.id}", actor=actor, title=broadcast.title, department=broadcast.department or "",
          comment=comment)
    session.flush()
    return broadcast


def return_draft(session: Session, broadcast_id: int, actor: StaffUser | None, reason: str) -> Broadcast:
    """Return a draft to its department with a reason (required); it is never sent; audit-logged."""
    broadcast = _locked_awaiting(session, broadcast_id, actor)
    reason = reason.strip()
    if not reason:
        raise NoticeError("差し戻す理由を入力してください（作成した部署に表示されます）。")
    if len(reason) > MAX_NOTE:
        raise NoticeError(f"理由は{MAX_NOTE}文字以内にしてください。")
    broadcast.status = RETURNED
    broadcast.next_run_at = None
    broadcast.review_note = reason
    audit(session, "notice_return", f"#{broadcast.id}", actor=actor, title=broadcast.title, department=broadcast.department or "",
          reason=reason)
    session.flush()
    return broadcast


def test_recipients(session: Session, broadcast: Broadcast) -> list[StaffUser]:
    """Linked staff who may see the notice: PR and admins, and users of its department."""
    candidates = linked_staff(session)
    return [user for user in candidates if can_see(user, broadcast)]


def send_test(session: Session, gateway: LineGateway, broadcast_id: int, actor: StaffUser | None) -> int:
    """Push the notice to the linked LINE accounts of staff who may see it (never to residents);
    returns how many got it. Audit-logged."""
    broadcast = get_broadcast(session, broadcast_id)
    if actor is None or not can_see(actor, broadcast):
        raise NoticeError("このお知らせをテスト送信する権限がありません。")
    recipients = test_recipients(session, broadcast)
    if not recipients:
        raise NoticeError("LINEアカウントを連携した職員がいないため、テスト送信できません。「LINE連携」で連携してください。")
    messages = list(broadcast.messages)
    if len(messages) < 5:
        messages = [{"type": "text", "text": TEST_HEADER}, *messages]
    sent = 0
    for user in recipients:
        assert user.line_user_id is not None
        try:
            gateway.push(user.line_user_id, messages, retry_key=new_retry_key())
        except LineError:
            continue
        sent += 1
    audit(session, "notice_test_send", f"#{broadcast.id}", actor=actor, title=broadcast.title, staff=sent)
    session.flush()
    if sent == 0:
        raise NoticeError("LINEに送れませんでした。しばらくしてからもう一度お試しください。")
    return sent


def awaiting_count(session: Session) -> int:
    """Drafts waiting for PR."""
    return int(session.scalar(select(func.count(Broadcast.id)).where(Broadcast.status == AWAITING_APPROVAL)) or 0)

