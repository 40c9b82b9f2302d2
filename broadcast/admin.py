"""Admin pages of `broadcast` (role pr): compose with a LINE preview (the city's account name and
icon), confirm with the recipient count, send now or schedule, list with delivery counts, detail,
pause / resume / cancel; every change audit-logged. A one-off that reaches nobody, or a group below
the privacy floor without an admin's override, cannot be confirmed. An occurrence held below the
privacy floor is released by an admin only, with a reason."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
from broadcast import approval, approval_admin, service
from broadcast.errors import NoticeError
from broadcast.languages import CARD_FIELDS, VERSION_FIELDS, group_label, staff_label, version_languages
from broadcast.messages import CARD, KIND_LABELS, NoticeContent
from broadcast.models import AWAITING_APPROVAL, HELD, PAUSED, SCHEDULED, SENDING, STATUS_LABELS
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

RULE_FIELDS = ("age_bands", "genders", "areas", "interests")
EXCLUDE_FIELDS = tuple(f"exclude_{name}" for name in RULE_FIELDS)
MULTI_FIELDS = (*RULE_FIELDS, *EXCLUDE_FIELDS, "weekdays")
SINGLE_FIELDS = (
    "title", "kind", "text", "image_url", "card_title", "button_label", "button_url", "target", "segment",
    "is_emergency", "allow_small", "timing", "at", "month_day", "until", "excluded",
)
TIMING_LABELS = {"now": "今すぐ送信", "at": "日時を指定（1回）", DAILY: "毎日", WEEKLY: "毎週", MONTHLY: "毎月"}
TARGET_LABELS = {"all": "配信を受け取る全員", "segment": "保存済みセグメント", "custom": "条件を指定"}
AUDIT_LABELS = {
    "notice_create": "お知らせ予約",
    "notice_pause": "お知らせ一時停止",
    "notice_resume": "お知らせ再開",
    "notice_cancel": "お知らせ取り消し",
}
ACTION_MESSAGES = {"pause": "一時停止しました", "resume": "再開しました", "cancel": "取り消しました"}
MSG_NOBODY = "対象が0人のため確定できません。この条件では誰にも届きません。条件を見直してください。"
# The admin pages' policy (bot.admin) with the configured account icon's origin allowed for images.
ADMIN_CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"


def _version_fields() -> tuple[str, ...]:
    """The form fields of the versions per language (text_pt, card_title_pt, button_label_pt, ...)."""
    return tuple(f"{field}_{code}" for code in version_languages(current_app.config) for field in VERSION_FIELDS)


def _values(form: MultiDict[str, str]) -> dict[str, Any]:
    """The compose fields as submitted (re-rendered as they were on errors and on the confirm page)."""
    values: dict[str, Any] = {
        name: form.get(name, "") if name.startswith("text") else form.get(name, "").strip()
        for name in (*SINGLE_FIELDS, *_version_fields())
    }
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
    versions: dict[str, NoticeContent]


def _rule(values: dict[str, Any]) -> SegmentRule | None:
    data = {
        name: {"include": values[name], "exclude": values[f"exclude_{name}"]}
        for name in RULE_FIELDS
        if values[name] or values[f"exclude_{name}"]
    }
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
        return Schedule.once(now, immediate=True)
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
    versions = _versions(values, content)
    schedule = _schedule(values, now)
    schedule.validate()
    service.first_run_at(schedule, now)
    return Draft(values["title"], content, _target(values), schedule, values["allow_small"] == "1", versions)


def _versions(values: dict[str, Any], content: NoticeContent) -> dict[str, NoticeContent]:
    """The versions per language staff wrote (a language whose text is empty has none).

    A version has its own text and, on a card, its own heading and button label (empty: the
    Japanese ones); the image and the link are the Japanese notice's."""
    versions: dict[str, NoticeContent] = {}
    for code in version_languages(current_app.config):
        text = values.get(f"text_{code}", "")
        if not text.strip():
            if content.kind == CARD and any(values.get(f"{field}_{code}") for field in CARD_FIELDS):
                raise NoticeError(f"{staff_label(code)}の版の本文を入力してください（見出しやボタンだけの版は作れません）。")
            continue
        try:
            versions[code] = NoticeContent.build(
                text, image_url=content.image_url,
                card_title=values.get(f"card_title_{code}") or content.card_title,
                button_label=values.get(f"button_label_{code}") or content.button_label,
                button_url=content.button_url, kind=content.kind,
            )
        except NoticeError as exc:
            raise NoticeError(f"{staff_label(code)}の版: {exc}") from None
    return versions


def _requested_versions(values: dict[str, Any]) -> list[str]:
    """Languages with a version on the form (the live count asks with `versions=pt,vi`)."""
    offered = version_languages(current_app.config)
    asked = values.get("versions", "")
    if asked:
        return [code for code in asked.split(",") if code in offered]
    return [code for code in offered if values.get(f"text_{code}", "").strip()]


def _language_rows(target: service.Target, versions: list[str], below_floor: bool) -> list[dict[str, Any]]:
    """How many get each version (the Japanese text first), every version listed even if nobody gets it.

    Staff who may not override see a group smaller than the privacy floor as 「N人未満」, like a
    segment: a language group in an area can single residents out."""
    floor = int(current_app.config["SEGMENT_PRIVACY_FLOOR"])
    groups = dict(service.count_target_by_language(get_session(), target, versions, version_languages(current_app.config)))
    for code in versions:
        groups.setdefault(code, 0)
    groups.setdefault(None, 0)
    order = [None, *version_languages(current_app.config)]
    keys = sorted(groups, key=lambda k: (order.index(k) if k in order else len(order), k or ""))
    rows = []
    for key in keys:
        count = groups[key]
        small = (below_floor or is_below_privacy_floor(count, floor)) and not _is_admin()
        rows.append({
            "language": key or "ja", "label": group_label(key, versions),
            "count": None if small else count, "shown": f"{floor}人未満" if small else f"{count:,} 人",
        })
    return rows


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
        "account": _account(),
        "kind_labels": KIND_LABELS,
        "timing_labels": TIMING_LABELS,
        "target_labels": TARGET_LABELS,
        "weekdays": list(zip(WEEKDAY_CODES, WEEKDAY_JA, strict=True)),
        "month_days": [(str(d), f"{d}日") for d in range(1, 29)] + [("last", "月末")],
        "is_admin": _is_admin(),
        "floor": int(current_app.config["SEGMENT_PRIVACY_FLOOR"]),
        "version_languages": [(code, staff_label(code)) for code in version_languages(current_app.config)],
    }


def _is_admin() -> bool:
    staff = current_staff()
    return staff is not None and staff.role == "admin"


def _account() -> dict[str, str]:
    """The LINE account as residents see it in the preview: its name and profile image.

    LINE_ACCOUNT_NAME, else the city's name from its city.yaml (faq, through bot.site) + 公式LINE;
    LINE_ACCOUNT_ICON_URL, else a neutral placeholder shipped in bot/static (never a made-up logo)."""
    config = current_app.config
    name = config.get("LINE_ACCOUNT_NAME")
    if not name:
        city_name = current_app.extensions.get("site", {}).get("city_name")
        city = city_name(config["MUNICIPALITY"]) if city_name else ""
        name = f"{city or '市'}公式LINE"
    placeholder = url_for("static", filename="account-icon.svg")
    # The placeholder also stands in, in the browser, for a configured icon that cannot be loaded.
    return {"name": name, "icon_url": config.get("LINE_ACCOUNT_ICON_URL") or placeholder, "placeholder": placeholder}


def _icon_origin() -> str | None:
    """The origin of a configured icon on another server (the notice pages let images load from it)."""
    parts = urlsplit(current_app.config.get("LINE_ACCOUNT_ICON_URL") or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme == "https" and parts.netloc else None


@bp.after_request
def _allow_account_icon(response: Response) -> Response:
    origin = _icon_origin()
    if origin:
        response.headers["Content-Security-Policy"] = f"{ADMIN_CSP}; img-src 'self' {origin}"
    return response


def _blocker(draft: Draft, count: int, below_floor: bool) -> str | None:
    """Why the notice cannot be confirmed as it is now (None: it can).

    Nobody may confirm a one-off that reaches nobody; a recurring notice may start empty (its group
    may grow, and each occurrence below the floor is held at send time). Below the privacy floor,
    only an admin who chose 「少人数でも配信する」. Staff who may not override are not told that a
    small group is empty, only that it is below the floor."""
    floor = int(current_app.config["SEGMENT_PRIVACY_FLOOR"])
    if count == 0 and not draft.schedule.is_recurring:
        if below_floor and not _is_admin():
            return f"対象が{floor}人未満のため確定できません。条件を広げてください。"
        return MSG_NOBODY
    if below_floor and count > 0 and not (draft.allow_small and _is_admin()):
        if _is_admin():
            return f"対象が{floor}人未満です。配信するには「修正する」で「少人数でも配信する」を選んでください（監査ログに記録します）。"
        return f"対象が{floor}人未満のため確定できません。条件を広げるか、管理者に相談してください。"
    return None


def _held_warning() -> str:
    floor = int(current_app.config["SEGMENT_PRIVACY_FLOOR"])
    return f"配信の時点でも対象者が{floor}人未満なら、その回の配信は保留され、管理者が許可するまで送られません。"


def _shown_count(count: int, below_floor: bool) -> str:
    """The count for staff: a group below the privacy floor is not counted exactly except for admins."""
    if below_floor and not _is_admin():
        return f"{int(current_app.config['SEGMENT_PRIVACY_FLOOR'])}人未満"
    return f"{count:,} 人"


@bp.get("")
@require_role("pr", "dept")
def index() -> str:
    """Notices with their status and delivery counts."""
    session = get_session()
    status = request.args.get("status") or None
    if status not in STATUS_LABELS:
        status = None
    rows = approval.visible(current_staff(), service.list_broadcasts(session, [status] if status else None))
    counts = service.delivery_counts(session, [b.id for b in rows])
    held = service.held_run_counts(session, [b.id for b in rows])
    schedules = {b.id: Schedule.from_dict(b.schedule) for b in rows}
    return render_template(
        "broadcast/list.html", rows=rows, counts=counts, held=held, schedules=schedules, status=status, labels=STATUS_LABELS,
        format_jst=format_jst, SCHEDULED=SCHEDULED, SENDING=SENDING, PAUSED=PAUSED, HELD=HELD,
    )


@bp.get("/new")
@require_role("pr", "dept")
def new() -> str:
    """The compose form."""
    return render_template("broadcast/compose.html", **_form_context(_values(MultiDict())))


@bp.post("/new")
@require_role("pr", "dept")
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
        count = service.count_target(session, draft.target)
        below = not draft.target.is_everyone and is_below_privacy_floor(count, int(current_app.config["SEGMENT_PRIVACY_FLOOR"]))
        blocker = _blocker(draft, count, below)
        if step != "schedule":
            return render_template(
                "broadcast/confirm.html", values=values, draft=draft, count=count, below_floor=below,
                shown_count=_shown_count(count, below), exact=not below or _is_admin(),
                blocked=blocker is not None, blocker=blocker, nobody=blocker == MSG_NOBODY,
                first=service.first_run_at(draft.schedule, now),
                upcoming=draft.schedule.upcoming(now - service.PAST_TOLERANCE, 5) if draft.schedule.is_recurring else [],
                format_jst=format_jst, messages=draft.content.to_messages(), content=draft.content, account=_account(),
                floor=int(current_app.config["SEGMENT_PRIVACY_FLOOR"]), multi_fields=MULTI_FIELDS,
                single_fields=(*SINGLE_FIELDS, *_version_fields()),
                versions=[(code, staff_label(code), version.to_messages()) for code, version in draft.versions.items()],
                language_rows=_language_rows(draft.target, list(draft.versions), below),
                needs_approval=not approval.is_approver(current_staff()),
            )
        if blocker is not None and count == 0:
            raise NoticeError(blocker)  # below the floor with someone in it: create_broadcast refuses, naming who may override
        staff = current_staff()
        created = approval.create_notice(
            staff,
            session, content=draft.content, schedule=draft.schedule, target=draft.target, versions=draft.versions, title=draft.title,
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
        **({"languages": "、".join(staff_label(code) for code in draft.versions)} if draft.versions else {}),
    )
    session.commit()
    shown = _shown_count(created.recipient_count, created.is_below_floor)
    if broadcast.status == AWAITING_APPROVAL:
        flash(f"お知らせ #{broadcast.id}「{broadcast.title}」の承認を広報に依頼しました（対象 {shown}）。承認されるまで配信しません。", "success")
        return redirect(url_for("broadcast_admin.detail", broadcast_id=broadcast.id))
    flash(
        (
            f"お知らせ #{broadcast.id}「{broadcast.title}」の今すぐ送信を受け付けました（対象 {shown}）。"
            + ("" if created.is_below_floor else "配信プロセスがすぐに送り始めます。")
            if draft.schedule.immediate
            else f"お知らせ #{broadcast.id}「{broadcast.title}」を予約しました（対象 {shown}、{draft.schedule.describe()}）。"
        )
        + (_held_warning() if created.is_below_floor else ""),
        "success",
    )
    return redirect(url_for("broadcast_admin.detail", broadcast_id=broadcast.id))


@bp.get("/count")
@require_role("pr", "dept")
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
    values["versions"] = request.args.get("versions", "")
    return jsonify({
        "count": number if not below or _is_admin() else None, "shown": _shown_count(number, below),
        "description": target.describe(), "floor": floor, "below_floor": below,
        "languages": _language_rows(target, _requested_versions(values), below),
    })


@bp.get("/<int:broadcast_id>")
@require_role("pr", "dept")
def detail(broadcast_id: int) -> str:
    """One notice: preview, target, schedule, counts per run, approval, actions."""
    session = get_session()
    try:
        broadcast = service.get_broadcast(session, broadcast_id)
    except NoticeError:
        abort(404)
    if not approval.can_see(current_staff(), broadcast):
        abort(404)  # another department's notice
    report = service.notice_report(session, broadcast)
    schedule = Schedule.from_dict(broadcast.schedule)
    upcoming = schedule.upcoming(broadcast.next_run_at - dt.timedelta(microseconds=1), 5) if broadcast.next_run_at else []
    content = NoticeContent.from_dict(broadcast.content)
    held_runs = [run for run in report["runs"] if run["status"] == HELD]
    versions = [
        (code, staff_label(code), version.messages) for code, version in service.versions_of(session, broadcast.id).items()
    ]
    # Admins decide on a held occurrence knowing how many it would reach now; others see no small count.
    count_now = service.count_target(session, service.target_of(session, broadcast)) if held_runs and _is_admin() else None
    return render_template(
        "broadcast/detail.html", b=broadcast, report=report, schedule=schedule, upcoming=upcoming, content=content,
        messages=broadcast.messages, labels=STATUS_LABELS, format_jst=format_jst, account=_account(),
        parse_iso=dt.datetime.fromisoformat, SCHEDULED=SCHEDULED, SENDING=SENDING, PAUSED=PAUSED, HELD=HELD,
        held_runs=held_runs, count_now=count_now, is_admin=_is_admin(), versions=versions,
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
    register_nav("お知らせ配信", "broadcast_admin.index", ["pr", "dept"], order=10)
    auth.AUDIT_ACTION_LABELS.update(AUDIT_LABELS)
    approval_admin.init_app(app)

