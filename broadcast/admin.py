"""Admin pages of `broadcast` (role pr): compose with a LINE preview, confirm with the recipient count,
schedule, list with delivery counts, detail, pause / resume / cancel; every change audit-logged.
An occurrence held below the privacy floor is released by an admin only, with a reason."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from bot import auth
from bot.auth import audit, current_staff, register_nav, require_role
from bot.db import get_session, utcnow
from broadcast import service
from broadcast.errors import NoticeError
from broadcast.messages import KIND_LABELS, NoticeContent
from broadcast.models import HELD, PAUSED, SCHEDULED, SENDING, STATUS_LABELS
from broadcast.schedule import (
    DAILY,
    MONTHLY,
    WEEKDAY_CODES,
    WEEKDAY_JA,
    WEEKLY,
    Schedule,
    format_jst,
    parse_date,
    parse_dates,
    parse_local_datetime,
)
from segments.models import Segment
from segments.rules import FloorOverride, SegmentRule, is_below_privacy_floor
from segments.vocab import AGE_BANDS, GENDERS, INTERESTS, areas_for

bp = Blueprint("broadcast_admin", __name__, url_prefix="/admin/notices")

MULTI_FIELDS = ("age_bands", "genders", "areas", "interests", "weekdays")
SINGLE_FIELDS = (
    "title", "kind", "text", "image_url", "card_title", "button_label", "button_url", "target", "segment",
    "is_emergency", "allow_small", "timing", "at", "month_day", "until", "excluded",
)
TIMING_LABELS = {"now": "今すぐ", "at": "日時を指定（1回）", DAILY: "毎日", WEEKLY: "毎週", MONTHLY: "毎月"}
TARGET_LABELS = {"all": "配信を受け取る全員", "segment": "保存済みセグメント", "custom": "条件を指定"}
AUDIT_LABELS = {
    "notice_create": "お知らせ予約",
    "notice_pause": "お知らせ一時停止",
    "notice_resume": "お知らせ再開",
    "notice_cancel": "お知らせ取り消し",
}
ACTION_MESSAGES = {"pause": "一時停止しました", "resume": "再開しました", "cancel": "取り消しました"}


def _values(form: MultiDict[str, str]) -> dict[str, Any]:
    """The compose fields as submitted (re-rendered as they were on errors and on the confirm page)."""
    values: dict[str, Any] = {name: form.get(name, "").strip() if name != "text" else form.get(name, "") for name in SINGLE_FIELDS}
    for name in MULTI_FIELDS:
        values[name] = [v for v in form.getlist(name) if v]
    values["kind"] = values["kind"] or "text"
    values["target"] = values["target"] or "all"
    values["timing"] = values["timing"] or "now"
    return values


@dataclass(frozen=True)
class Draft:
    """A validated compose form."""

    title: str
    content: NoticeContent
    target: service.Target
    schedule: Schedule
    allow_small: bool


def _rule(values: dict[str, Any]) -> SegmentRule | None:
    data = {name: {"include": values[name]} for name in ("age_bands", "genders", "areas", "interests") if values[name]}
    return SegmentRule.from_dict(data) if data else None


def _target(values: dict[str, Any]) -> service.Target:
    session = get_session()
    municipality = current_app.config["MUNICIPALITY"]
    emergency = values["is_emergency"] == "1"
    if emergency:
        return service.make_target(session, municipality, is_emergency=True)
    if values["target"] == "segment":
        if not values["segment"]:
            raise NoticeError("セグメントを選んでください。")
        return service.make_target(session, municipality, segment_name=values["segment"])
    if values["target"] == "custom":
        rule = _rule(values)
        if rule is None:
            raise NoticeError("条件を1つ以上選んでください（全員に送る場合は「配信を受け取る全員」）。")
        return service.make_target(session, municipality, rule=rule)
    return service.make_target(session, municipality)


def _schedule(values: dict[str, Any], now: dt.datetime) -> Schedule:
    timing = values["timing"]
    if timing == "now":
        return Schedule.once(now)
    if not values["at"]:
        raise NoticeError("配信日時を入力してください。" if timing == "at" else "開始日時を入力してください。")
    start = parse_local_datetime(values["at"])
    if timing == "at":
        return Schedule.once(start)
    if timing == WEEKLY:
        if not values["weekdays"]:
            raise NoticeError("毎週の配信では曜日を1つ以上選んでください。")
        every = "weekly:" + ",".join(values["weekdays"])
    elif timing == MONTHLY:
        every = f"monthly:{values['month_day'] or '1'}"
    elif timing == DAILY:
        every = DAILY
    else:
        raise NoticeError("配信タイミングを選んでください。")
    until = parse_date(values["until"], "終了日") if values["until"] else None
    return Schedule.recurring(every, start, until, parse_dates(values["excluded"]) if values["excluded"] else ())


def _draft(values: dict[str, Any], now: dt.datetime) -> Draft:
    """Validate the form; NoticeError with a Japanese message."""
    content = NoticeContent.build(
        values["text"], image_url=values["image_url"], card_title=values["card_title"], button_label=values["button_label"],
        button_url=values["button_url"], kind=values["kind"] if values["kind"] in KIND_LABELS else None,
    )
    schedule = _schedule(values, now)
    schedule.validate()
    service.first_run_at(schedule, now)
    return Draft(values["title"], content, _target(values), schedule, values["allow_small"] == "1")


def _form_context(values: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    session = get_session()
    return {
        "values": values,
        "error": error,
        "segments": session.scalars(select(Segment).order_by(Segment.name)).all(),
        "choices": {
            "age_bands": AGE_BANDS, "genders": GENDERS, "interests": INTERESTS,
            "areas": areas_for(current_app.config["MUNICIPALITY"]),
        },
        "choice_labels": {"age_bands": "年代", "genders": "性別", "areas": "地域", "interests": "関心"},
        "kind_labels": KIND_LABELS,
        "timing_labels": TIMING_LABELS,
        "target_labels": TARGET_LABELS,
        "weekdays": list(zip(WEEKDAY_CODES, WEEKDAY_JA, strict=True)),
        "month_days": [(str(d), f"{d}日") for d in range(1, 29)] + [("last", "月末")],
        "is_admin": _is_admin(),
        "floor": int(current_app.config["SEGMENT_PRIVACY_FLOOR"]),
    }


def _is_admin() -> bool:
    staff = current_staff()
    return staff is not None and staff.role == "admin"


def _held_warning() -> str:
    floor = int(current_app.config["SEGMENT_PRIVACY_FLOOR"])
    return f"配信の時点でも対象者が{floor}人未満なら、その回の配信は保留され、管理者が許可するまで送られません。"


def _shown_count(count: int, below_floor: bool) -> str:
    """The count for staff: a group below the privacy floor is not counted exactly except for admins."""
    if below_floor and not _is_admin():
        return f"{int(current_app.config['SEGMENT_PRIVACY_FLOOR'])}人未満"
    return f"{count:,} 人"


@bp.get("")
@require_role("pr")
def index() -> str:
    """Notices with their status and delivery counts."""
    session = get_session()
    status = request.args.get("status") or None
    if status not in STATUS_LABELS:
        status = None
    rows = service.list_broadcasts(session, [status] if status else None)
    counts = service.delivery_counts(session, [b.id for b in rows])
    held = service.held_run_counts(session, [b.id for b in rows])
    schedules = {b.id: Schedule.from_dict(b.schedule) for b in rows}
    return render_template(
        "broadcast/list.html", rows=rows, counts=counts, held=held, schedules=schedules, status=status, labels=STATUS_LABELS,
        format_jst=format_jst, SCHEDULED=SCHEDULED, SENDING=SENDING, PAUSED=PAUSED, HELD=HELD,
    )


@bp.get("/new")
@require_role("pr")
def new() -> str:
    """The compose form."""
    return render_template("broadcast/compose.html", **_form_context(_values(MultiDict())))


@bp.post("/new")
@require_role("pr")
def compose() -> Any:
    """`step=confirm`: check and show the count; `step=schedule`: create; `step=edit`: back to the form."""
    values = _values(request.form)
    step = request.form.get("step", "confirm")
    if step == "edit":
        return render_template("broadcast/compose.html", **_form_context(values))
    session = get_session()
    now = utcnow()
    try:
        draft = _draft(values, now)
        if step != "schedule":
            count = service.count_target(session, draft.target)
            below = not draft.target.is_everyone and is_below_privacy_floor(count, int(current_app.config["SEGMENT_PRIVACY_FLOOR"]))
            return render_template(
                "broadcast/confirm.html", values=values, draft=draft, count=count, below_floor=below,
                shown_count=_shown_count(count, below), exact=not below or _is_admin(),
                # An empty segment singles nobody out yet: it may be scheduled, and is held at send time if still below.
                blocked=below and count > 0 and not (draft.allow_small and _is_admin()),
                first=service.first_run_at(draft.schedule, now),
                upcoming=draft.schedule.upcoming(now - service.PAST_TOLERANCE, 5) if draft.schedule.is_recurring else [],
                format_jst=format_jst, messages=draft.content.to_messages(), content=draft.content,
                floor=int(current_app.config["SEGMENT_PRIVACY_FLOOR"]), multi_fields=MULTI_FIELDS, single_fields=SINGLE_FIELDS,
            )
        staff = current_staff()
        created = service.create_broadcast(
            session, content=draft.content, schedule=draft.schedule, target=draft.target, title=draft.title,
            created_by=staff.id if staff else None, privacy_floor=int(current_app.config["SEGMENT_PRIVACY_FLOOR"]),
            override=FloorOverride(staff, "お知らせの予約画面で「少人数でも配信する」を選択") if draft.allow_small and staff else None,
            now=now,
        )
    except NoticeError as exc:
        session.rollback()
        return render_template("broadcast/compose.html", **_form_context(values, str(exc))), 400
    broadcast = created.broadcast
    audit(
        session, "notice_create", f"#{broadcast.id}", title=broadcast.title, audience=draft.target.describe(),
        schedule=draft.schedule.describe(), recipients_now=created.recipient_count, emergency=draft.target.is_emergency,
    )
    session.commit()
    flash(
        f"お知らせ #{broadcast.id}「{broadcast.title}」を予約しました（対象 {_shown_count(created.recipient_count, created.is_below_floor)}、"
        f"{draft.schedule.describe()}）。"
        + (_held_warning() if created.is_below_floor else ""),
        "success",
    )
    return redirect(url_for("broadcast_admin.detail", broadcast_id=broadcast.id))


@bp.get("/count")
@require_role("pr")
def count() -> Any:
    """How many residents the target chosen on the compose form reaches now (JSON, for the live count)."""
    values = _values(request.args)
    try:
        target = _target(values)
    except NoticeError as exc:
        return jsonify({"error": str(exc)}), 400
    number = service.count_target(get_session(), target)
    floor = int(current_app.config["SEGMENT_PRIVACY_FLOOR"])
    below = not target.is_everyone and is_below_privacy_floor(number, floor)
    return jsonify({
        "count": number if not below or _is_admin() else None, "shown": _shown_count(number, below),
        "description": target.describe(), "floor": floor, "below_floor": below,
    })


@bp.get("/<int:broadcast_id>")
@require_role("pr")
def detail(broadcast_id: int) -> str:
    """One notice: preview, target, schedule, counts per run, actions."""
    session = get_session()
    try:
        broadcast = service.get_broadcast(session, broadcast_id)
    except NoticeError:
        abort(404)
    report = service.notice_report(session, broadcast)
    schedule = Schedule.from_dict(broadcast.schedule)
    upcoming = schedule.upcoming(broadcast.next_run_at - dt.timedelta(microseconds=1), 5) if broadcast.next_run_at else []
    content = NoticeContent.from_dict(broadcast.content)
    held_runs = [run for run in report["runs"] if run["status"] == HELD]
    # Admins decide on a held occurrence knowing how many it would reach now; others see no small count.
    count_now = service.count_target(session, service.target_of(session, broadcast)) if held_runs and _is_admin() else None
    return render_template(
        "broadcast/detail.html", b=broadcast, report=report, schedule=schedule, upcoming=upcoming, content=content,
        messages=broadcast.messages, labels=STATUS_LABELS, format_jst=format_jst,
        parse_iso=dt.datetime.fromisoformat, SCHEDULED=SCHEDULED, SENDING=SENDING, PAUSED=PAUSED, HELD=HELD,
        held_runs=held_runs, count_now=count_now, is_admin=_is_admin(),
        floor=int(current_app.config["SEGMENT_PRIVACY_FLOOR"]),
    )


def _action(broadcast_id: int, action: str) -> Response:
    session = get_session()
    functions = {"cancel": service.cancel_broadcast, "pause": service.pause_broadcast, "resume": service.resume_broadcast}
    try:
        broadcast = functions[action](session, broadcast_id)
    except NoticeError as exc:
        session.rollback()
        flash(str(exc), "error")
    else:
        audit(session, f"notice_{action}", f"#{broadcast.id}", title=broadcast.title)
        session.commit()
        flash(f"お知らせ #{broadcast.id} を{ACTION_MESSAGES[action]}（状態: {STATUS_LABELS[broadcast.status]}）。", "success")
    target = request.form.get("next")
    if target == "list":
        return redirect(url_for("broadcast_admin.index"))
    return redirect(url_for("broadcast_admin.detail", broadcast_id=broadcast_id))


@bp.post("/<int:broadcast_id>/pause")
@require_role("pr")
def pause(broadcast_id: int) -> Response:
    """Pause before or during sending."""
    return _action(broadcast_id, "pause")


@bp.post("/<int:broadcast_id>/resume")
@require_role("pr")
def resume(broadcast_id: int) -> Response:
    """Resume a paused notice."""
    return _action(broadcast_id, "resume")


@bp.post("/<int:broadcast_id>/cancel")
@require_role("pr")
def cancel(broadcast_id: int) -> Response:
    """Cancel before or during sending."""
    return _action(broadcast_id, "cancel")


@bp.post("/<int:broadcast_id>/runs/<int:run_id>/release")
@require_role("admin")
def release(broadcast_id: int, run_id: int) -> Response:
    """Send an occurrence held below the privacy floor: an admin's decision, with a reason, audit-logged."""
    session = get_session()
    try:
        released = service.release_held_run(
            session, broadcast_id, FloorOverride(current_staff(), request.form.get("reason", "")),
            privacy_floor=int(current_app.config["SEGMENT_PRIVACY_FLOOR"]), run_id=run_id,
        )
    except NoticeError as exc:
        session.rollback()
        flash(str(exc), "error")
    else:
        session.commit()
        flash(
            f"お知らせ #{broadcast_id} の保留していた回（{format_jst(released.run.occurrence_at)}）の配信を許可しました"
            f"（対象 {released.recipient_count:,} 人、監査ログに記録）。"
            + ("一時停止中のため、再開すると送られます。" if released.broadcast.status == PAUSED else "配信プロセスが送ります。"),
            "success",
        )
    return redirect(url_for("broadcast_admin.detail", broadcast_id=broadcast_id))


def init_app(app: Flask) -> None:
    """Register the pages, the navigation entry and the audit labels."""
    app.register_blueprint(bp)
    register_nav("お知らせ配信", "broadcast_admin.index", ["pr"], order=10)
    auth.AUDIT_ACTION_LABELS.update(AUDIT_LABELS)

