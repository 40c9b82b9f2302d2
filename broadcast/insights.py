"""Per-notice statistics from LINE: opens, unique clicks per link, and the account's friends and blocks.

Each run's multicasts carry one `customAggregationUnits` name and LINE counts what residents did
with messages sent under it. LINE allows one unit per request and about 1,000 unit names a month,
so names are spent sparingly (`assign_unit`):

* a notice has ONE name for all its runs, `notice_<id>` (a recurring notice reuses it every time);
* only runs of at least INSIGHT_MIN_RECIPIENTS recipients (default 20) get it: LINE hides every
  figure under 20, so a smaller notice would spend a name on nothing;
* at most INSIGHT_MONTHLY_UNITS names (default 900, below LINE's limit) are used per month (JST);
  a notice first sent in a month whose names are used up is sent without one and has no statistics.

The dispatcher's hourly maintenance (`collect_statistics`, on its clock) asks LINE once per day for
every notice sent in the last INSIGHT_DAYS days (default 14; the period from its first sending, at
most LINE's 30 days) and stores the latest figures, plus the account's friends and blocks of the
day. LINE gives null for a value under 20: stored as None and shown as 「20未満」.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.types import JSON

from bot.db import Base, UTCDateTime, get_db, utcnow
from bot.line import LineError, LineGateway
from broadcast.models import Broadcast, BroadcastRun
from broadcast.schedule import JST

log = logging.getLogger(__name__)

UNIT_PREFIX = "notice_"
HIDDEN_LABEL = "20未満"  # what LINE hides (null): fewer than 20
MAX_PERIOD_DAYS = 30  # LINE: `to` at most 30 days after `from`


class NoticeStatistics(Base):
    """A notice's aggregation unit and the latest figures LINE gave for it (None: hidden, under 20)."""

    __tablename__ = "notice_statistics"

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), unique=True)
    unit: Mapped[str] = mapped_column(String(30))
    first_sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    fetched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    period_from: Mapped[str | None] = mapped_column(String(8))  # JST yyyyMMdd, as asked
    period_to: Mapped[str | None] = mapped_column(String(8))
    opens: Mapped[int | None] = mapped_column()  # overview.uniqueImpression
    clicks: Mapped[int | None] = mapped_column()  # overview.uniqueClick
    # [{"url", "unique_clicks"}] in LINE's order
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    last_error: Mapped[str | None] = mapped_column(String(300))


class FollowerSnapshot(Base):
    """The account's friends and blocks on a JST day, as LINE counts them."""

    __tablename__ = "line_follower_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    date: Mapped[str] = mapped_column(String(8), unique=True)  # JST yyyyMMdd
    status: Mapped[str] = mapped_column(String(16))  # ready | unready | out_of_service
    followers: Mapped[int | None] = mapped_column()
    targeted_reaches: Mapped[int | None] = mapped_column()
    blocks: Mapped[int | None] = mapped_column()
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


def unit_name(broadcast_id: int) -> str:
    """The aggregation unit of a notice (LINE: [a-zA-Z0-9_]{1,30})."""
    return f"{UNIT_PREFIX}{broadcast_id}"


def jst_day(moment: dt.datetime) -> str:
    """A moment's JST date as LINE's insight API wants it (yyyyMMdd)."""
    return moment.astimezone(JST).strftime("%Y%m%d")


def _month_start(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(JST)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(dt.timezone.utc)


def units_used_this_month(session: Session, now: dt.datetime) -> int:
    """Unit names sent with this month (JST): a notice's name counts once per month it was sent in."""
    return int(session.scalar(select(func.count(NoticeStatistics.id)).where(NoticeStatistics.last_sent_at >= _month_start(now))) or 0)


def assign_unit(
    session: Session, broadcast: Broadcast, run: BroadcastRun, recipients: int, config: Any, now: dt.datetime | None = None
) -> str | None:
    """Give a run its aggregation unit (set on the run, in the caller's transaction) or None.

    The rule (module docstring): the notice's own name, for runs of at least INSIGHT_MIN_RECIPIENTS,
    while fewer than INSIGHT_MONTHLY_UNITS names were used this month (a name already used this
    month costs nothing more)."""
    now = now or utcnow()
    if recipients < int(config["INSIGHT_MIN_RECIPIENTS"]):
        return None
    row = session.scalar(select(NoticeStatistics).where(NoticeStatistics.broadcast_id == broadcast.id))
    used_this_month = row is not None and row.last_sent_at >= _month_start(now)
    if not used_this_month and units_used_this_month(session, now) >= int(config["INSIGHT_MONTHLY_UNITS"]):
        log.warning("notice %s run %s: this month's statistics units are used up; sent without one", broadcast.id, run.id)
        return None
    if row is None:
        row = NoticeStatistics(broadcast_id=broadcast.id, unit=unit_name(broadcast.id), first_sent_at=now, last_sent_at=now, links=[])
        session.add(row)
    else:
        row.last_sent_at = now
    run.aggregation_unit = row.unit
    return row.unit


def period_for(row: NoticeStatistics, now: dt.datetime, days: int) -> tuple[str, str]:
    """(from, to) JST dates to ask LINE: from the first sending (at most 30 days back) to today,
    or to the last day of collection once it has passed."""
    end = min(now, row.last_sent_at + dt.timedelta(days=days))
    start = max(row.first_sent_at, end - dt.timedelta(days=MAX_PERIOD_DAYS - 1))
    return jst_day(start), jst_day(end)


def due_for_fetch(session: Session, now: dt.datetime, days: int, force: bool = False) -> list[NoticeStatistics]:
    """Notices sent within the last `days` days (plus one day, for the final figures) not yet asked
    about today (JST; `force`: asked again)."""
    today = jst_day(now)
    rows = session.scalars(
        select(NoticeStatistics).where(NoticeStatistics.last_sent_at >= now - dt.timedelta(days=days + 1)).order_by(NoticeStatistics.id)
    ).all()
    return [row for row in rows if force or row.fetched_at is None or jst_day(row.fetched_at) != today]


def store_figures(row: NoticeStatistics, figures: dict[str, Any], period: tuple[str, str], now: dt.datetime) -> None:
    """Keep LINE's answer: opens, clicks, unique clicks per link (None where LINE hid the value)."""
    overview = figures.get("overview") or {}
    row.opens = overview.get("uniqueImpression")
    row.clicks = overview.get("uniqueClick")
    row.links = [
        {"url": str(click.get("url", "")), "unique_clicks": click.get("uniqueClick")}
        for click in figures.get("clicks") or []
        if click.get("url")
    ]
    row.period_from, row.period_to = period
    row.fetched_at = now
    row.last_error = None


@dataclass
class CollectReport:
    """What one collection did."""

    fetched: int = 0
    failed: int = 0
    followers: bool = False


def collect(
    session: Session, gateway: LineGateway, config: Any, now: dt.datetime | None = None, force: bool = False
) -> CollectReport:
    """Ask LINE for each due notice's figures and today's friends and blocks (the caller commits)."""
    now = now or utcnow()
    days = int(config["INSIGHT_DAYS"])
    report = CollectReport()
    for row in due_for_fetch(session, now, days, force):
        period = period_for(row, now, days)
        try:
            figures = gateway.unit_statistics(row.unit, *period)
        except LineError as exc:
            row.last_error = str(exc)[:300]
            report.failed += 1
            log.warning("statistics of notice %s not fetched: %s", row.broadcast_id, exc)
            continue
        store_figures(row, figures, period, now)
        report.fetched += 1
    report.followers = fetch_followers(session, gateway, now)
    session.flush()
    return report


def fetch_followers(session: Session, gateway: LineGateway, now: dt.datetime) -> bool:
    """Store the day's friends and blocks once a day (LINE counts up to the day before: ask for
    yesterday, JST). False if LINE did not answer."""
    day = jst_day(now - dt.timedelta(days=1))
    snapshot = session.scalar(select(FollowerSnapshot).where(FollowerSnapshot.date == day))
    if snapshot is not None and snapshot.status == "ready":
        return True
    try:
        answer = gateway.followers(day)
    except LineError as exc:
        log.warning("friend counts of %s not fetched: %s", day, exc)
        return False
    if snapshot is None:
        snapshot = FollowerSnapshot(date=day)
        session.add(snapshot)
    snapshot.status = str(answer.get("status") or "unready")
    snapshot.followers = answer.get("followers")
    snapshot.targeted_reaches = answer.get("targetedReaches")
    snapshot.blocks = answer.get("blocks")
    snapshot.fetched_at = now
    return True


def collect_statistics(app: Flask, force: bool = False) -> CollectReport:
    """The maintenance job (the dispatcher's clock, hourly): each notice at most once a JST day
    (`force`, from `flask broadcast statistics --again`: asked again today)."""
    with get_db(app).session() as session:
        report = collect(session, app.extensions["line"], app.config, force=force)
        session.commit()
    if report.fetched or report.failed:
        log.info("notice statistics: %d fetched, %d failed", report.fetched, report.failed)
    return report


# --- what staff read -------------------------------------------------------------------------------


def shown(value: int | None) -> str:
    """A LINE figure as staff read it: a number, or 「20未満」 where LINE hid it."""
    return HIDDEN_LABEL if value is None else f"{value:,}"


def rate(value: int | None, delivered: int) -> str:
    """A share of the delivered, or 「-」 when LINE hid the value or nothing was delivered."""
    if value is None or delivered <= 0:
        return "-"
    return f"{value / delivered:.1%}"


def statistics_of(session: Session, broadcast_id: int) -> NoticeStatistics | None:
    """A notice's statistics row (None: never sent with a unit)."""
    return session.scalar(select(NoticeStatistics).where(NoticeStatistics.broadcast_id == broadcast_id))


def notice_statistics(session: Session, broadcast_id: int, delivered: int) -> dict[str, Any]:
    """The notice page's statistics: state, opens, clicks and links with their shown values and rates."""
    row = statistics_of(session, broadcast_id)
    if row is None:
        return {"state": "none"}
    if row.fetched_at is None:
        return {"state": "waiting", "unit": row.unit, "error": row.last_error}
    return {
        "state": "ready",
        "unit": row.unit,
        "fetched_at": row.fetched_at.astimezone(JST).strftime("%Y/%m/%d %H:%M"),
        "period": f"{row.period_from[:4]}/{row.period_from[4:6]}/{row.period_from[6:]}〜"
                  f"{row.period_to[:4]}/{row.period_to[4:6]}/{row.period_to[6:]}" if row.period_from and row.period_to else "",
        "delivered": delivered,
        "opens": row.opens,
        "opens_shown": shown(row.opens),
        "open_rate": rate(row.opens, delivered),
        "clicks": row.clicks,
        "clicks_shown": shown(row.clicks),
        "click_rate": rate(row.clicks, delivered),
        "links": [{**link, "shown": shown(link.get("unique_clicks"))} for link in row.links or []],
        "error": row.last_error,
    }


def latest_followers(session: Session) -> FollowerSnapshot | None:
    """The latest ready friend count."""
    return session.scalar(
        select(FollowerSnapshot).where(FollowerSnapshot.status == "ready").order_by(FollowerSnapshot.date.desc()).limit(1)
    )


__all__ = [
    "HIDDEN_LABEL", "CollectReport", "FollowerSnapshot", "NoticeStatistics", "assign_unit", "collect", "collect_statistics",
    "latest_followers", "notice_statistics", "shown", "unit_name",
]


# --- the KPI reports (wired in bot.app through kpi.hooks: plain rows) ------------------------------

NOTICE_SECTION = "notice_statistics"
NOTICE_TITLE = "お知らせ別の開封・クリック（LINEの集計）"
NOTICE_COLUMNS = ("お知らせ", "配信数", "開封数", "開封率", "クリック数", "クリック率", "配信後24時間のブロック")
NOTICE_NOTE = (
    "その月に送ったお知らせのLINEの集計です（配信から14日間、毎日更新）。"
    "LINEは20未満の数を公表しないため「20未満」と表示します。ブロックは配信後24時間以内に友だちをやめた人数です。"
)
FOLLOWER_SECTION = "line_followers"
FOLLOWER_TITLE = "友だち数とブロック（LINEの集計）"
FOLLOWER_COLUMNS = ("日付", "友だち追加（累計）", "ブロック", "ブロック率")
FOLLOWER_NOTE = "LINEが数える、その日までに友だち追加した人数（累計）と、その日ブロックしている人数です。"


def notice_rows(session: Session, municipality: str, start: dt.datetime, end: dt.datetime, limit: int) -> list[tuple[Any, ...]]:
    """Notices first sent in [start, end) with LINE's figures, most delivered first."""
    from broadcast.service import block_counts, delivery_counts

    rows = session.execute(
        select(NoticeStatistics, Broadcast.title)
        .join(Broadcast, Broadcast.id == NoticeStatistics.broadcast_id)
        .where(NoticeStatistics.first_sent_at >= start, NoticeStatistics.first_sent_at < end)
    ).all()
    ids = [stats.broadcast_id for stats, _ in rows]
    delivered = delivery_counts(session, ids)
    blocks = block_counts(session, ids)
    out = []
    for stats, title in rows:
        sent = delivered[stats.broadcast_id].delivered
        out.append((
            f"#{stats.broadcast_id} {title}", sent, shown(stats.opens) if stats.fetched_at else "集計待ち",
            rate(stats.opens, sent), shown(stats.clicks) if stats.fetched_at else "集計待ち", rate(stats.clicks, sent),
            blocks.get(stats.broadcast_id, 0),
        ))
    out.sort(key=lambda row: -int(row[1]))
    return out[:limit]


def follower_rows(session: Session, municipality: str, start: dt.datetime, end: dt.datetime, limit: int) -> list[tuple[Any, ...]]:
    """The month's last ready friend count from LINE (one row), with the block rate."""
    snapshot = session.scalar(
        select(FollowerSnapshot)
        .where(
            FollowerSnapshot.status == "ready",
            # LINE counts up to the day before: the snapshot of the month's first day is of the day before it.
            FollowerSnapshot.date >= jst_day(start - dt.timedelta(days=1)),
            FollowerSnapshot.date < jst_day(end),
        )
        .order_by(FollowerSnapshot.date.desc())
        .limit(1)
    )
    if snapshot is None or snapshot.followers is None:
        return []
    day = f"{snapshot.date[:4]}/{snapshot.date[4:6]}/{snapshot.date[6:]}"
    blocks = snapshot.blocks or 0
    return [(day, snapshot.followers, blocks, f"{blocks / snapshot.followers:.1%}" if snapshot.followers else "-")]
