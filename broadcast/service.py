"""Notice services: create, pause, resume, cancel, the privacy floor at send time, delivery counts,
block attribution, retention.

Plain functions over an explicit session (the caller commits); the admin pages, the CLI and
the dispatcher are thin edges around them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, insert, select, update
from sqlalchemy.orm import Session

from bot.db import utcnow
from bot import i18n
from bot.line import new_retry_key
from broadcast.errors import NoticeError
from broadcast.insights import notice_statistics
from broadcast.languages import delivery_language, group_counts, group_label, staff_label
from broadcast.messages import NoticeContent
from broadcast.models import (
    AWAITING_APPROVAL,
    CANCELLED,
    FAILED,
    HELD,
    PAUSED,
    PENDING,
    SCHEDULED,
    SENDING,
    SENT,
    STATUS_LABELS,
    Broadcast,
    BroadcastChunk,
    BroadcastDelivery,
    BroadcastRun,
    BroadcastVersion,
)
from broadcast.schedule import Schedule, format_jst, to_jst
from kpi.models import UsageEvent
from kpi.service import record_usage
from segments.models import Resident
from segments.rules import (
    FloorOverride,
    RuleError,
    SegmentRule,
    authorize_floor_override,
    check_privacy_floor,
    count_by_language,
    count_recipients,
    get_segment,
    is_below_privacy_floor,
    resolve_with_language,
)

# A time "just past" is accepted as "now" (a form filled in slowly, a clock a little off).
PAST_TOLERANCE = dt.timedelta(minutes=5)
BLOCK_WINDOW = dt.timedelta(hours=24)
# Unfollows are recorded when the inbox processes them, which may lag; block counts are frozen
# this long after the window closes.
BLOCK_FREEZE_MARGIN = dt.timedelta(hours=1)
CHUNK_SIZE = 500  # LINE's multicast limit


@dataclass(frozen=True)
class Target:
    """Who a notice is for: a saved segment, an ad hoc rule, everyone who accepts notices, or (emergency) every follower."""

    segment_name: str | None = None
    rule: SegmentRule | None = None
    is_emergency: bool = False

    def describe(self) -> str:
        """Japanese description for staff."""
        if self.is_emergency:
            return "緊急：友だち全員（登録内容・配信設定に関わらず）"
        if self.segment_name:
            return f"セグメント「{self.segment_name}」（{(self.rule or SegmentRule()).describe()}）"
        return (self.rule or SegmentRule()).describe()

    @property
    def is_everyone(self) -> bool:
        """True when no segment narrows it."""
        return self.is_emergency or (not self.segment_name and (self.rule is None or not self.rule.to_dict()))


def make_target(
    session: Session,
    municipality: str,
    *,
    segment_name: str | None = None,
    rule: SegmentRule | None = None,
    is_emergency: bool = False,
) -> Target:
    """Check a target: the saved segment exists, the rule names values residents can choose."""
    if segment_name and rule is not None and rule.to_dict():
        raise NoticeError("セグメント名と個別の条件は、どちらか一方だけを指定してください。")
    if segment_name:
        segment = get_segment(session, segment_name)
        if segment is None:
            raise NoticeError(f"セグメント「{segment_name}」はありません。")
        try:
            rule = SegmentRule.from_dict(segment.rule)
        except RuleError as exc:
            raise NoticeError(str(exc)) from None
    elif rule is not None:
        try:
            rule.validate(municipality)
        except RuleError as exc:
            raise NoticeError(str(exc)) from None
        if not rule.to_dict():
            rule = None
    return Target(segment_name or None, rule, is_emergency)


def target_of(session: Session, broadcast: Broadcast) -> Target:
    """The notice's target now: a saved segment's current rule (its scheduled rule if it was deleted)."""
    rule = SegmentRule.from_dict(broadcast.rule) if broadcast.rule else None
    if broadcast.segment_name and not broadcast.is_emergency:
        segment = get_segment(session, broadcast.segment_name)
        if segment is not None:
            rule = SegmentRule.from_dict(segment.rule)
    return Target(broadcast.segment_name, rule, broadcast.is_emergency)


def count_followers(session: Session) -> int:
    """Every follower (emergency notices ignore consent and settings)."""
    return int(session.scalar(select(func.count(Resident.id)).where(Resident.is_following.is_(True))) or 0)


def count_target(session: Session, target: Target) -> int:
    """How many residents the target reaches now."""
    if target.is_emergency:
        return count_followers(session)
    return count_recipients(session, target.rule)


def count_target_by_language(
    session: Session, target: Target, versions: Iterable[str], order: Iterable[str] = i18n.TRANSLATED
) -> list[tuple[str | None, int]]:
    """How many residents the target reaches now per delivery group (None: the Japanese text), given
    the languages the notice has versions in (broadcast.languages.delivery_language)."""
    counts = count_by_language(session, target.rule, all_followers=target.is_emergency)
    return group_counts(counts, versions, order)


def check_versions(versions: Mapping[str, NoticeContent], content: NoticeContent) -> None:
    """Each version is in a language residents can choose (not Japanese), of the notice's kind, and valid."""
    for language, version in versions.items():
        if language not in i18n.TRANSLATED:
            raise NoticeError(f"「{language}」の版は作れません（選べる言語: {'、'.join(staff_label(c) for c in i18n.TRANSLATED)}）。")
        if version.kind != content.kind:
            raise NoticeError(f"{staff_label(language)}の版は日本語と同じ種類のメッセージにしてください。")
        try:
            version.validate()
        except NoticeError as exc:
            raise NoticeError(f"{staff_label(language)}の版: {exc}") from None


def versions_of(session: Session, broadcast_id: int) -> dict[str, BroadcastVersion]:
    """A notice's versions by language, in the order languages are offered."""
    rows = session.scalars(select(BroadcastVersion).where(BroadcastVersion.broadcast_id == broadcast_id)).all()
    rank = {code: n for n, code in enumerate(i18n.LANGUAGES)}
    return {row.language: row for row in sorted(rows, key=lambda r: rank.get(r.language, len(rank)))}


def first_run_at(schedule: Schedule, now: dt.datetime) -> dt.datetime:
    """When the notice first goes out; refuses times in the past."""
    if not schedule.is_recurring:
        if schedule.start < now - PAST_TOLERANCE:
            raise NoticeError(f"配信日時 {format_jst(schedule.start)} は過去です。")
        return schedule.start
    moment = max(schedule.start, now - PAST_TOLERANCE) - dt.timedelta(microseconds=1)
    first = schedule.next_after(moment)
    if first is None:
        raise NoticeError("これから先の配信日がありません（終了日・除外日を確認してください）。")
    return first


@dataclass(frozen=True)
class CreatedNotice:
    """A newly scheduled notice and how many it reaches now."""

    broadcast: Broadcast
    recipient_count: int
    is_privacy_override: bool
    # Below the privacy floor now (an empty segment included): an occurrence still below it when
    # its recipients are resolved is held.
    is_below_floor: bool = False


def create_broadcast(
    session: Session,
    *,
    content: NoticeContent,
    schedule: Schedule,
    target: Target,
    versions: Mapping[str, NoticeContent] | None = None,
    title: str | None = None,
    created_by: int | None = None,
    privacy_floor: int = 0,
    override: FloorOverride | None = None,
    now: dt.datetime | None = None,
    department: str | None = None,
    awaiting_approval: bool = False,
) -> CreatedNotice:
    """Validate and schedule a notice (flushed, not committed).

    A segment smaller than `privacy_floor` is refused unless `override` comes from an admin (or
    the CLI operator); the override is audit-logged by `segments.rules.check_privacy_floor`.
    `awaiting_approval`: a department's draft, not scheduled until PR approves it
    (broadcast.approval); otherwise the notice is approved by its creator as it is scheduled.
    """
    now = now or utcnow()
    content.validate()
    check_versions(versions or {}, content)
    schedule.validate()
    first = first_run_at(schedule, now)
    title = (title or "").strip() or content.summary
    if len(title) > 100:
        raise NoticeError("件名は100文字以内にしてください。")
    broadcast = Broadcast(
        title=title,
        status=AWAITING_APPROVAL if awaiting_approval else SCHEDULED,
        department=department,
        approved_at=None if awaiting_approval else now,
        approved_by=None if awaiting_approval else created_by,
        content=content.to_dict(),
        messages=content.to_messages(),
        is_emergency=target.is_emergency,
        segment_name=None if target.is_emergency else target.segment_name,
        rule=None if target.is_emergency or target.rule is None else target.rule.to_dict(),
        schedule=schedule.to_dict(),
        next_run_at=first,
        created_by=created_by,
        created_at=now,
    )
    session.add(broadcast)
    session.flush()
    for language, version in (versions or {}).items():
        session.add(BroadcastVersion(
            broadcast_id=broadcast.id, language=language, content=version.to_dict(), messages=version.to_messages(),
        ))
    session.flush()
    if target.is_everyone:
        return CreatedNotice(broadcast, count_target(session, target), False)
    try:
        count = check_privacy_floor(session, target.rule, privacy_floor, override=override, target=f"お知らせ #{broadcast.id}")
    except RuleError as exc:
        raise NoticeError(str(exc)) from None
    below = is_below_privacy_floor(count, privacy_floor)
    return CreatedNotice(broadcast, count, below and count > 0, below)


# --- resolving recipients and the privacy floor at send time ------------------------------------


# A chunk: (delivery language, LINE user ids); None is the Japanese text (broadcast.languages).
Batch = tuple[str | None, list[str]]


def resolve_batches(session: Session, broadcast: Broadcast, target: Target | None = None) -> list[Batch]:
    """LINE user ids resolved now (emergency: every follower), grouped by the version each resident
    gets, in chunks of ≤ 500: the Japanese group first, then the languages in the order offered."""
    target = target or target_of(session, broadcast)
    versions = set(session.scalars(select(BroadcastVersion.language).where(BroadcastVersion.broadcast_id == broadcast.id)))
    groups: dict[str | None, list[str]] = {}
    for line_user_id, language in resolve_with_language(session, target.rule, all_followers=broadcast.is_emergency):
        groups.setdefault(delivery_language(language, versions), []).append(line_user_id)
    rank = {code: n for n, code in enumerate(i18n.LANGUAGES)}
    batches: list[Batch] = []
    for key in sorted(groups, key=lambda k: (k is not None, rank.get(k or "", len(rank)), k or "")):
        ids = groups[key]
        batches += [(key, ids[at:at + CHUNK_SIZE]) for at in range(0, len(ids), CHUNK_SIZE)]
    return batches


def store_chunks(session: Session, run: BroadcastRun, batches: list[Batch]) -> None:
    """Store the run's chunks, each with a fresh retry key and its language, in the caller's transaction (before any call)."""
    if batches:
        session.execute(
            insert(BroadcastChunk),
            [
                {
                    "run_id": run.id,
                    "seq": seq,
                    "language": language,
                    "recipients": batch,
                    "recipient_count": len(batch),
                    "retry_key": new_retry_key(),
                    "skipped_count": 0,
                    "status": PENDING,
                    "attempts": 0,
                    "is_already_accepted": False,
                }
                for seq, (language, batch) in enumerate(batches)
            ],
        )
    run.recipient_count = sum(len(batch) for _, batch in batches)
    run.chunk_count = len(batches)


def is_held_by_floor(target: Target, count: int, privacy_floor: int) -> bool:
    """True when an occurrence resolved to `count` recipients must be held: a segment (not everyone,
    not an emergency) below the privacy floor, an empty one included."""
    return not target.is_everyone and is_below_privacy_floor(count, privacy_floor)


def held_note(privacy_floor: int) -> str:
    """Why an occurrence was held, as staff read it on the notice page."""
    return f"対象者がプライバシー保護の下限（{privacy_floor}人）未満のため、この回の配信を保留しました"


def settled_status(session: Session, broadcast: Broadcast) -> str:
    """The notice's status when no run is being started: sending while a run is unfinished, scheduled
    while occurrences remain, held while an occurrence waits for an admin, else sent."""
    session.flush()
    statuses = set(session.scalars(select(BroadcastRun.status).where(BroadcastRun.broadcast_id == broadcast.id).distinct()))
    if SENDING in statuses:
        return SENDING
    if broadcast.next_run_at is not None:
        return SCHEDULED
    return HELD if HELD in statuses else SENT


@dataclass(frozen=True)
class ReleasedRun:
    """A held occurrence an admin let go: its chunks are stored and the dispatcher sends them."""

    broadcast: Broadcast
    run: BroadcastRun
    recipient_count: int


def release_held_run(
    session: Session,
    broadcast_id: int,
    override: FloorOverride,
    *,
    privacy_floor: int,
    run_id: int | None = None,
    now: dt.datetime | None = None,
) -> ReleasedRun:
    """Send an occurrence held below the privacy floor, on an admin's explicit decision (flushed, not committed).

    Only an active admin (or the CLI operator) with a reason may; the override is audit-logged with
    the count, the floor and the reason. Recipients are resolved now and stored as chunks in this
    transaction, exactly as when the dispatcher starts a run, so the dispatcher sends them once.
    `run_id` None: the notice's only held occurrence.
    """
    now = now or utcnow()
    reason = override.reason.strip()
    if not reason:
        raise NoticeError("配信を許可する理由を入力してください（監査ログに記録します）。")
    broadcast = _locked(session, broadcast_id)
    held = list(session.scalars(
        select(BroadcastRun)
        .where(BroadcastRun.broadcast_id == broadcast.id, BroadcastRun.status == HELD)
        .order_by(BroadcastRun.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all())
    if run_id is None:
        if not held:
            raise NoticeError(f"お知らせ #{broadcast.id} に保留中の配信回はありません。")
        if len(held) > 1:
            raise NoticeError(
                f"お知らせ #{broadcast.id} には保留中の配信回が{len(held)}回あります。配信回を指定してください"
                f"（{', '.join(f'#{r.id}' for r in held)}）。"
            )
        run = held[0]
    else:
        found = [r for r in held if r.id == run_id]
        if not found:
            raise NoticeError(f"お知らせ #{broadcast.id} の配信回 #{run_id} は保留中ではありません。")
        run = found[0]
    target = target_of(session, broadcast)
    batches = resolve_batches(session, broadcast, target)
    count = sum(len(batch) for _, batch in batches)
    try:
        authorize_floor_override(
            session, FloorOverride(override.actor, reason), count=count, floor=privacy_floor, rule=target.rule,
            target=f"お知らせ #{broadcast.id} 配信回 #{run.id}", occurrence_at=_iso(run.occurrence_at),
        )
    except RuleError as exc:
        raise NoticeError(str(exc)) from None
    store_chunks(session, run, batches)
    who = f"管理者 {override.actor.username} " if override.actor is not None else "サーバー管理者（CLI）"
    run.note = f"{run.note or ''}。{who}が理由を記録して配信を許可しました（理由: {reason}）"[:200]
    run.status = SENDING
    run.started_at = now
    if broadcast.status != PAUSED:  # a paused notice sends the released run once resumed
        broadcast.status = SENDING
    broadcast.last_run_at = now
    record_usage(
        session, "notice_sent", None, broadcast_id=broadcast.id, run_id=run.id, recipients=count,
        title=broadcast.title, is_emergency=broadcast.is_emergency,
    )
    session.flush()
    return ReleasedRun(broadcast, run, count)


def held_run_counts(session: Session, broadcast_ids: Sequence[int]) -> dict[int, int]:
    """How many occurrences of each notice are held below the privacy floor."""
    if not broadcast_ids:
        return {}
    rows = session.execute(
        select(BroadcastRun.broadcast_id, func.count())
        .where(BroadcastRun.broadcast_id.in_(list(broadcast_ids)), BroadcastRun.status == HELD)
        .group_by(BroadcastRun.broadcast_id)
    ).all()
    return {int(broadcast_id): int(count) for broadcast_id, count in rows}


# --- pause, resume, cancel ---------------------------------------------------------------------


def _locked(session: Session, broadcast_id: int) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True, populate_existing=True)
    if broadcast is None:
        raise NoticeError(f"お知らせ #{broadcast_id} はありません。")
    return broadcast


def pause_broadcast(session: Session, broadcast_id: int) -> Broadcast:
    """Stop sending (before or during a run); chunks already on their way finish."""
    broadcast = _locked(session, broadcast_id)
    if broadcast.status not in (SCHEDULED, SENDING):
        raise NoticeError(f"「{STATUS_LABELS.get(broadcast.status, broadcast.status)}」のお知らせは一時停止できません。")
    broadcast.status = PAUSED
    session.flush()
    return broadcast


def resume_broadcast(session: Session, broadcast_id: int) -> Broadcast:
    """Carry on: an interrupted run continues where it stopped, else the schedule applies."""
    broadcast = _locked(session, broadcast_id)
    if broadcast.status != PAUSED:
        raise NoticeError("一時停止中のお知らせではありません。")
    broadcast.status = settled_status(session, broadcast)
    session.flush()
    return broadcast


def cancel_broadcast(session: Session, broadcast_id: int, now: dt.datetime | None = None) -> Broadcast:
    """Cancel: nothing more is sent (a chunk already handed to LINE still counts as sent; held occurrences are dropped)."""
    now = now or utcnow()
    broadcast = _locked(session, broadcast_id)
    if broadcast.status in (SENT, CANCELLED):
        raise NoticeError(f"「{STATUS_LABELS[broadcast.status]}」のお知らせは取り消せません。")
    broadcast.status = CANCELLED
    broadcast.next_run_at = None
    runs = select(BroadcastRun.id).where(BroadcastRun.broadcast_id == broadcast.id, BroadcastRun.status == SENDING)
    session.execute(
        update(BroadcastChunk)
        .where(BroadcastChunk.run_id.in_(runs), BroadcastChunk.status.in_((PENDING, SENDING)))
        .values(status=CANCELLED)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(BroadcastRun)
        .where(BroadcastRun.broadcast_id == broadcast.id, BroadcastRun.status.in_((SENDING, HELD)))
        .values(status=CANCELLED, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return broadcast


# --- counts ------------------------------------------------------------------------------------


@dataclass
class DeliveryCounts:
    """Recipients of a notice (or one run) by outcome."""

    recipients: int = 0  # resolved at send time
    delivered: int = 0  # in chunks LINE accepted (a 409 for a repeated retry key included)
    skipped: int = 0  # left (unfollowed, stopped notices) between resolution and sending
    failed: int = 0
    pending: int = 0
    cancelled: int = 0
    chunks: int = 0
    blocks: int = 0  # unfollows within 24 h after delivery

    def add(self, other: DeliveryCounts) -> None:
        """Accumulate another's counts."""
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, int]:
        """JSON form."""
        return asdict(self)


def run_counts(session: Session, run_ids: Sequence[int]) -> dict[int, DeliveryCounts]:
    """Counts per run, from the chunks (one grouped query)."""
    out = {run_id: DeliveryCounts() for run_id in run_ids}
    if not run_ids:
        return out
    rows = session.execute(
        select(
            BroadcastChunk.run_id,
            BroadcastChunk.status,
            func.count(),
            func.coalesce(func.sum(BroadcastChunk.recipient_count), 0),
            func.coalesce(func.sum(BroadcastChunk.skipped_count), 0),
        )
        .where(BroadcastChunk.run_id.in_(run_ids))
        .group_by(BroadcastChunk.run_id, BroadcastChunk.status)
    ).all()
    for run_id, status, chunks, recipients, skipped in rows:
        counts = out[run_id]
        recipients, skipped = int(recipients), int(skipped)
        counts.chunks += int(chunks)
        counts.recipients += recipients
        counts.skipped += skipped
        remaining = recipients - skipped
        if status == SENT:
            counts.delivered += remaining
        elif status == FAILED:
            counts.failed += remaining
        elif status in (PENDING, SENDING):
            counts.pending += remaining
        elif status == CANCELLED:
            counts.cancelled += remaining
    for run_id, blocks in run_block_counts(session, run_ids).items():
        out[run_id].blocks = blocks
    return out


def language_counts(session: Session, broadcast_id: int) -> list[dict[str, Any]]:
    """Recipients and deliveries of a notice per language group (None: the Japanese text), over all its runs."""
    rows = session.execute(
        select(
            BroadcastChunk.language,
            BroadcastChunk.status,
            func.coalesce(func.sum(BroadcastChunk.recipient_count), 0),
            func.coalesce(func.sum(BroadcastChunk.skipped_count), 0),
        )
        .join(BroadcastRun, BroadcastRun.id == BroadcastChunk.run_id)
        .where(BroadcastRun.broadcast_id == broadcast_id)
        .group_by(BroadcastChunk.language, BroadcastChunk.status)
    ).all()
    versions = set(versions_of(session, broadcast_id))
    out: dict[str | None, dict[str, Any]] = {}
    for language, status, recipients, skipped in rows:
        row = out.setdefault(language, {"language": language, "label": group_label(language, versions), "recipients": 0, "delivered": 0})
        row["recipients"] += int(recipients)
        if status == SENT:
            row["delivered"] += int(recipients) - int(skipped)
    rank = {code: n for n, code in enumerate(i18n.LANGUAGES)}
    return sorted(out.values(), key=lambda r: (r["language"] is not None, rank.get(r["language"] or "", len(rank))))


def delivery_counts(session: Session, broadcast_ids: Sequence[int]) -> dict[int, DeliveryCounts]:
    """Counts per notice, over all its runs."""
    out = {broadcast_id: DeliveryCounts() for broadcast_id in broadcast_ids}
    if not broadcast_ids:
        return out
    runs = session.execute(
        select(BroadcastRun.id, BroadcastRun.broadcast_id).where(BroadcastRun.broadcast_id.in_(broadcast_ids))
    ).all()
    per_run = run_counts(session, [run_id for run_id, _ in runs])
    for run_id, broadcast_id in runs:
        out[broadcast_id].add(per_run[run_id])
    return out


# --- block attribution -------------------------------------------------------------------------
#
# An unfollow within 24 h after a notice reached a resident counts against that notice. It is
# computed from the delivery rows (who was in which sent chunk) and the `unfollow` usage events
# handlers/follow.py records, so the unfollow handler needs no hook (and `handlers` keeps not
# importing `broadcast`). Once a run's window has closed, the dispatcher's hourly maintenance
# records one `notice_block` usage event per blocker for the KPI and freezes the run's count, so
# the per-resident rows can later be purged.


def _blockers(session: Session, run_ids: Sequence[int]) -> list[tuple[int, int, dt.datetime]]:
    """(run id, resident id, first unfollow) for residents who unfollowed within 24 h after a run reached them."""
    if not run_ids:
        return []
    rows = session.execute(
        select(BroadcastChunk.run_id, UsageEvent.resident_id, func.min(UsageEvent.occurred_at))
        .select_from(UsageEvent)
        .join(BroadcastDelivery, BroadcastDelivery.resident_id == UsageEvent.resident_id)
        .join(BroadcastChunk, BroadcastChunk.id == BroadcastDelivery.chunk_id)
        .where(
            UsageEvent.kind == "unfollow",
            BroadcastChunk.run_id.in_(list(run_ids)),
            BroadcastChunk.status == SENT,
            UsageEvent.occurred_at >= BroadcastChunk.sent_at,
            UsageEvent.occurred_at < BroadcastChunk.block_window_ends_at,
        )
        .group_by(BroadcastChunk.run_id, UsageEvent.resident_id)
        .order_by(BroadcastChunk.run_id, UsageEvent.resident_id)
    ).all()
    # resident_id is never NULL here: the join with the delivery rows requires a match.
    return [(int(run_id), int(resident_id or 0), at) for run_id, resident_id, at in rows]


def run_block_counts(session: Session, run_ids: Sequence[int]) -> dict[int, int]:
    """Residents who unfollowed within 24 h after a run's notice reached them, per run."""
    if not run_ids:
        return {}
    frozen: dict[int, int] = {
        run_id: count or 0
        for run_id, count in session.execute(
            select(BroadcastRun.id, BroadcastRun.block_count).where(
                BroadcastRun.id.in_(list(run_ids)), BroadcastRun.block_count.is_not(None)
            )
        ).all()
    }
    live: Counter[int] = Counter(run_id for run_id, _, _ in _blockers(session, [r for r in run_ids if r not in frozen]))
    return {run_id: frozen.get(run_id, live[run_id]) for run_id in run_ids}


def block_counts(session: Session, broadcast_ids: Sequence[int] | None = None) -> dict[int, int]:
    """Unfollows within 24 h after each notice reached the resident, per notice (the KPI's block rate).

    None: every notice that has runs.
    """
    stmt = select(BroadcastRun.id, BroadcastRun.broadcast_id)
    if broadcast_ids is not None:
        stmt = stmt.where(BroadcastRun.broadcast_id.in_(list(broadcast_ids)))
    runs = session.execute(stmt).all()
    per_run = run_block_counts(session, [run_id for run_id, _ in runs])
    out: dict[int, int] = dict.fromkeys(broadcast_ids or (), 0)
    for run_id, broadcast_id in runs:
        out[broadcast_id] = out.get(broadcast_id, 0) + per_run[run_id]
    return out


def close_block_windows(session: Session, now: dt.datetime | None = None) -> int:
    """For runs whose 24 h window has closed: record a `notice_block` usage event per resident who
    unfollowed (at the time they did; detail broadcast_id, run_id) and freeze the run's block count.
    Each run once, whoever calls; returns how many runs were closed."""
    now = now or utcnow()
    closed_before = now - BLOCK_WINDOW - BLOCK_FREEZE_MARGIN
    runs = session.execute(
        select(BroadcastRun.id, BroadcastRun.broadcast_id).where(
            BroadcastRun.block_count.is_(None),
            BroadcastRun.finished_at.is_not(None),
            BroadcastRun.finished_at < closed_before,
        )
    ).all()
    per_run: dict[int, list[tuple[int, dt.datetime]]] = {}
    for run_id, resident_id, at in _blockers(session, [run_id for run_id, _ in runs]):
        per_run.setdefault(run_id, []).append((resident_id, at))
    closed = 0
    for run_id, broadcast_id in runs:
        blockers = per_run.get(run_id, [])
        frozen = session.execute(
            update(BroadcastRun)
            .where(BroadcastRun.id == run_id, BroadcastRun.block_count.is_(None))
            .values(block_count=len(blockers))
            .execution_options(synchronize_session=False)
        )
        if cast("CursorResult[Any]", frozen).rowcount != 1:
            continue  # closed meanwhile by someone else
        closed += 1
        for resident_id, at in blockers:
            session.add(UsageEvent(
                kind="notice_block", resident_id=resident_id, occurred_at=at,
                detail={"broadcast_id": broadcast_id, "run_id": run_id},
            ))
    session.flush()
    return closed


# --- retention ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeReport:
    """What the maintenance job did."""

    closed_runs: int
    deleted_deliveries: int


def purge_delivery_records(session: Session, retention_days: int, now: dt.datetime | None = None) -> PurgeReport:
    """Close block windows, then delete per-resident records (delivery rows, recipient lists) of runs
    finished more than `retention_days` ago whose blocks are counted. Counts stay."""
    now = now or utcnow()
    closed = close_block_windows(session, now)
    cutoff = now - dt.timedelta(days=max(retention_days, 2))
    old_runs = select(BroadcastRun.id).where(
        BroadcastRun.finished_at.is_not(None), BroadcastRun.finished_at < cutoff, BroadcastRun.block_count.is_not(None)
    )
    old_chunks = select(BroadcastChunk.id).where(BroadcastChunk.run_id.in_(old_runs))
    deleted = int(session.scalar(select(func.count()).where(BroadcastDelivery.chunk_id.in_(old_chunks))) or 0)
    session.execute(delete(BroadcastDelivery).where(BroadcastDelivery.chunk_id.in_(old_chunks)))
    session.execute(
        update(BroadcastChunk)
        .where(BroadcastChunk.run_id.in_(old_runs), BroadcastChunk.sent_to.is_not(None))
        .values(recipients=[], sent_to=None)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return PurgeReport(closed, deleted)


# --- reports -------------------------------------------------------------------------------------


def list_broadcasts(session: Session, statuses: Iterable[str] | None = None, limit: int = 200) -> list[Broadcast]:
    """Notices, newest first."""
    stmt = select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)
    if statuses:
        stmt = stmt.where(Broadcast.status.in_(list(statuses)))
    return list(session.scalars(stmt).all())


def get_broadcast(session: Session, broadcast_id: int) -> Broadcast:
    """A notice by id, or NoticeError."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NoticeError(f"お知らせ #{broadcast_id} はありません。")
    return broadcast


def runs_of(session: Session, broadcast_id: int) -> list[BroadcastRun]:
    """A notice's runs, oldest first."""
    return list(session.scalars(select(BroadcastRun).where(BroadcastRun.broadcast_id == broadcast_id).order_by(BroadcastRun.id)).all())


def _iso(moment: dt.datetime | None) -> str | None:
    return to_jst(moment).isoformat() if moment is not None else None


def notice_report(session: Session, broadcast: Broadcast) -> dict[str, Any]:
    """Everything `flask broadcast show --json` prints: status, target, schedule, counts per run and in total."""
    schedule = Schedule.from_dict(broadcast.schedule)
    target = target_of(session, broadcast)
    runs = runs_of(session, broadcast.id)
    per_run = run_counts(session, [run.id for run in runs])
    total = DeliveryCounts()
    for counts in per_run.values():
        total.add(counts)
    return {
        "id": broadcast.id,
        "title": broadcast.title,
        "status": broadcast.status,
        "status_label": STATUS_LABELS.get(broadcast.status, broadcast.status),
        "is_emergency": broadcast.is_emergency,
        "content": broadcast.content,
        "versions": {language: version.content for language, version in versions_of(session, broadcast.id).items()},
        "languages": language_counts(session, broadcast.id),
        "target": {
            "segment": broadcast.segment_name,
            "rule": target.rule.to_dict() if target.rule else None,
            "description": target.describe(),
        },
        "schedule": {**schedule.to_dict(), "description": schedule.describe()},
        "next_run_at": _iso(broadcast.next_run_at),
        "last_run_at": _iso(broadcast.last_run_at),
        "created_at": _iso(broadcast.created_at),
        "counts": total.as_dict(),
        # LINE's opens and clicks (broadcast.insights); None values are hidden by LINE (under 20).
        "statistics": notice_statistics(session, broadcast.id, total.delivered),
        "runs": [
            {
                "id": run.id,
                "occurrence_at": _iso(run.occurrence_at),
                "status": run.status,
                "started_at": _iso(run.started_at),
                "finished_at": _iso(run.finished_at),
                "counts": per_run[run.id].as_dict(),
                "note": run.note,
            }
            for run in runs
        ],
    }


def create_emergency_notice(session: Session, text: str, created_by: int | None = None) -> int:
    """An emergency text notice to every follower, due now (disaster mode's switch; bot.app wires it).

    Ignores segments, interests, notice settings and the privacy floor, and is never held; the
    dispatcher sends it once, in chunks with retry keys. Returns the notice's id (NoticeError if
    LINE would refuse the text)."""
    now = utcnow()
    created = create_broadcast(
        session, content=NoticeContent(kind="text", text=text), schedule=Schedule.once(now, immediate=True),
        target=Target(is_emergency=True), title="【緊急】" + " ".join(text.split())[:90], created_by=created_by, now=now,
    )
    return created.broadcast.id
