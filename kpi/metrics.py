"""KPI figures of one month, computed from usage events only (see kpi/README.md for definitions).

Months are calendar months in Japan time: an event at 00:30 JST on November 1st belongs to
November although in UTC, where it is stored, it is still 15:30 on October 31st.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kpi.cities import CityKpiConfig
from kpi.models import UsageEvent

JST = dt.timezone(dt.timedelta(hours=9), "JST")  # Japan has no daylight saving time
QUESTION_DECISIONS = ("answer", "clarify", "unknown")
# Votes and 「もしかして」 choices are linked to the resident's question before them; a question
# asked up to this long before the month (or a vote this long after it) is still looked at.
LINK_WINDOW = dt.timedelta(days=7)
# An unfollow this soon after a notice was sent counts against that notice.
NOTICE_BLOCK_WINDOW = dt.timedelta(hours=24)
ACTIVE_KINDS = ("message", "postback")
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")

CATEGORY_UNKNOWN = "回答できず"
CATEGORY_CLARIFY_NONE = "「もしかして」該当なし"
CATEGORY_CLARIFY_OPEN = "「もしかして」未選択"
CATEGORY_UNLABELLED = "分類不明"


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in Japan time."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (1 <= self.month <= 12 and 2000 <= self.year <= 2999):
            raise ValueError("月は2000年1月以降の YYYY-MM の形式で指定してください（例: 2026-11）。")

    @classmethod
    def parse(cls, text: str) -> Month:
        """'2026-11' -> Month(2026, 11); ValueError with a Japanese message otherwise."""
        match = MONTH_RE.match(text.strip())
        if not match:
            raise ValueError("月は YYYY-MM の形式で指定してください（例: 2026-11）。")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, moment: dt.datetime) -> Month:
        """The month (Japan time) an aware timestamp falls in."""
        local = moment.astimezone(JST)
        return cls(local.year, local.month)

    def shift(self, months: int) -> Month:
        """The month `months` later (earlier when negative)."""
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def key(self) -> str:
        """'2026-11'."""
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        """'2026年11月'."""
        return f"{self.year}年{self.month}月"

    @property
    def start(self) -> dt.datetime:
        """First instant of the month, as aware UTC."""
        return dt.datetime(self.year, self.month, 1, tzinfo=JST).astimezone(dt.UTC)

    @property
    def end(self) -> dt.datetime:
        """First instant of the next month (exclusive end), as aware UTC."""
        return self.shift(1).start


@dataclass
class Question:
    """A resident's question as the usage events tell it, with what followed it."""

    event_id: int
    at: dt.datetime
    resident_id: int | None
    decision: str
    topic: str | None
    chosen: str | None = None  # after 「もしかして」: the entry chosen, "" for 「どれでもない」
    vote: bool | None = None  # the last 「役に立ちましたか？」 answer

    @property
    def resolved_topic(self) -> str | None:
        """The entry the resident ended up with: the direct answer or the one chosen."""
        if self.decision == "answer":
            return self.topic
        if self.decision == "clarify" and self.chosen:
            return self.chosen
        return None


@dataclass(frozen=True)
class NoticeSend:
    """One sending of a notice, with what was delivered and the blocks within 24 hours."""

    event_id: int
    broadcast_id: str
    title: str
    sent_at: dt.datetime
    recipients: int
    delivered: int
    blocks: int

    @property
    def block_rate(self) -> float | None:
        """Blocks within 24 hours per 100 delivered."""
        return ratio(self.blocks, self.delivered)


@dataclass
class MonthFigures:
    """Every KPI of one month (see kpi.definitions for their meaning)."""

    month: Month
    friends: int = 0
    friends_reported: int | None = None  # LINE's own count, when one was recorded this month
    friends_reported_on: str | None = None
    new_friends: int = 0
    blocked: int = 0
    active_residents: int = 0
    line_usage_rate: float | None = None
    questions: int = 0
    answered: int = 0
    clarified: int = 0
    unknown: int = 0
    smalltalk: int = 0
    direct_votes: int = 0
    direct_helpful: int = 0
    clarified_votes: int = 0
    clarified_helpful: int = 0
    notices_sent: int = 0
    notice_recipients: int = 0
    notices_delivered: int = 0
    notice_blocks: int = 0

    @property
    def friends_for_rate(self) -> int:
        """The friends figure the usage rate uses: LINE's own count if recorded, else ours."""
        return self.friends_reported if self.friends_reported is not None else self.friends

    @property
    def answer_rate(self) -> float | None:
        """Directly answered per 100 questions."""
        return ratio(self.answered, self.questions)

    @property
    def precision(self) -> float | None:
        """Helpful votes per 100 voted direct answers."""
        return ratio(self.direct_helpful, self.direct_votes)

    @property
    def notice_block_rate(self) -> float | None:
        """Blocks within 24 hours of a notice per 100 delivered."""
        return ratio(self.notice_blocks, self.notices_delivered)

    def value(self, kpi_id: str) -> float | int | None:
        """A KPI by its id."""
        return getattr(self, kpi_id)  # type: ignore[no-any-return]


@dataclass
class MonthDetail:
    """The month's figures and the breakdowns behind them."""

    figures: MonthFigures
    questions: list[Question] = field(default_factory=list)
    top_topics: list[tuple[str, int, int, int]] = field(default_factory=list)  # topic, total, direct, chosen
    by_category: list[tuple[str, int]] = field(default_factory=list)
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    notices: list[NoticeSend] = field(default_factory=list)
    usage_kinds: list[tuple[str, int]] = field(default_factory=list)


def ratio(part: int, whole: int) -> float | None:
    """part / whole as a percentage, or None when whole is 0."""
    return 100.0 * part / whole if whole else None


def _as_int(value: Any) -> int:
    """A count from an event's detail (0 when missing or not a number)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- friends --------------------------------------------------------------------------------------


def friends_at(session: Session, moments: Sequence[dt.datetime]) -> list[int]:
    """Friends at each moment: residents whose last follow/unfollow before it is a follow."""
    if not moments:
        return []
    order = sorted(range(len(moments)), key=lambda i: moments[i])
    rows = session.execute(
        select(UsageEvent.resident_id, UsageEvent.kind, UsageEvent.occurred_at)
        .where(
            UsageEvent.kind.in_(("follow", "unfollow")),
            UsageEvent.resident_id.is_not(None),
            UsageEvent.occurred_at < max(moments),
        )
        .order_by(UsageEvent.occurred_at, UsageEvent.id)
    ).all()
    following: dict[int, bool] = {}
    count = 0
    results = [0] * len(moments)
    position = 0
    for index in order:
        moment = moments[index]
        while position < len(rows) and rows[position].occurred_at < moment:
            resident_id, kind = rows[position].resident_id, rows[position].kind
            now_following = kind == "follow"
            was_following = following.get(resident_id, False)
            count += int(now_following) - int(was_following)
            following[resident_id] = now_following
            position += 1
        results[index] = count
    return results


def _distinct_residents(session: Session, kinds: Iterable[str], start: dt.datetime, end: dt.datetime) -> int:
    return session.scalar(
        select(func.count(func.distinct(UsageEvent.resident_id))).where(
            UsageEvent.kind.in_(tuple(kinds)),
            UsageEvent.resident_id.is_not(None),
            UsageEvent.occurred_at >= start,
            UsageEvent.occurred_at < end,
        )
    ) or 0


def _reported_friends(session: Session, start: dt.datetime, end: dt.datetime) -> tuple[int, str] | None:
    """LINE's own friends count recorded in the month (`flask kpi record-friends`), the last one."""
    row = session.execute(
        select(UsageEvent.detail, UsageEvent.occurred_at)
        .where(UsageEvent.kind == "friends_snapshot", UsageEvent.occurred_at >= start, UsageEvent.occurred_at < end)
        .order_by(UsageEvent.occurred_at.desc(), UsageEvent.id.desc())
        .limit(1)
    ).first()
    if row is None or not isinstance(row.detail.get("followers"), int):
        return None
    on = row.detail.get("date") or row.occurred_at.astimezone(JST).date().isoformat()
    return int(row.detail["followers"]), str(on)


# --- questions, choices and votes ---------------------------------------------------------------


@dataclass
class Timeline:
    """Questions (with their choices and votes) and small talk, in time order."""

    questions: list[Question]
    smalltalk_at: list[dt.datetime]

    def between(self, start: dt.datetime, end: dt.datetime) -> tuple[list[Question], int]:
        """The questions asked in [start, end), and how much small talk there was."""
        first = bisect.bisect_left(self.questions, start, key=lambda q: q.at)
        last = bisect.bisect_left(self.questions, end, key=lambda q: q.at)
        talk = bisect.bisect_left(self.smalltalk_at, end) - bisect.bisect_left(self.smalltalk_at, start)
        return self.questions[first:last], talk


def question_timeline(session: Session, start: dt.datetime, end: dt.datetime) -> Timeline:
    """The questions asked in [start, end) with their 「もしかして」 choices and votes.

    Votes and choices name their question when the events carry `question` (the question-log
    id); otherwise they belong to the same resident's latest question before them.
    """
    detail = UsageEvent.detail
    rows = session.execute(
        # Only the fields needed, extracted by the database: decoding every JSON detail in
        # Python is most of the cost of a year's report.
        select(
            UsageEvent.kind,
            UsageEvent.occurred_at,
            UsageEvent.resident_id,
            UsageEvent.id,
            detail["decision"].as_string(),
            detail["topic"].as_string(),
            detail["helpful"].as_string(),
            detail["question"].as_string(),
        )
        .where(
            UsageEvent.kind.in_(("decision", "clarify_choice", "feedback")),
            UsageEvent.occurred_at >= start - LINK_WINDOW,
            UsageEvent.occurred_at < end + LINK_WINDOW,
        )
        .order_by(UsageEvent.occurred_at, UsageEvent.id)
    )
    questions: list[Question] = []
    smalltalk_at: list[dt.datetime] = []
    latest: dict[int, Question] = {}
    by_ref: dict[str, Question] = {}
    for kind, at, resident_id, event_id, decision, topic, helpful, ref in rows:
        if kind == "decision":
            if decision == "smalltalk":
                smalltalk_at.append(at)
                continue
            if decision not in QUESTION_DECISIONS:
                continue
            question = Question(event_id, at, resident_id, decision, topic)
            questions.append(question)
            if resident_id is not None:
                latest[resident_id] = question
            if ref is not None:
                by_ref[str(ref)] = question
            continue
        target = by_ref.get(str(ref)) if ref is not None else latest.get(resident_id) if resident_id is not None else None
        if target is None:
            continue
        if kind == "clarify_choice" and target.decision == "clarify":
            target.chosen = topic or ""
        elif kind == "feedback" and target.decision in ("answer", "clarify"):
            vote = _json_bool(helpful)
            if vote is not None:
                target.vote = vote
    in_range = [q for q in questions if start <= q.at < end]
    return Timeline(in_range, [at for at in smalltalk_at if start <= at < end])


def _json_bool(value: Any) -> bool | None:
    """A JSON boolean as the database extracted it (SQLite: 1/0, PostgreSQL: 'true'/'false')."""
    if value in (True, 1, "1", "true"):
        return True
    if value in (False, 0, "0", "false"):
        return False
    return None


def questions_between(session: Session, start: dt.datetime, end: dt.datetime) -> tuple[list[Question], int]:
    """The questions asked in [start, end) with their choices and votes, and the small-talk count."""
    return question_timeline(session, start, end).between(start, end)


def category_of(question: Question, catalog: Mapping[str, tuple[str, str]]) -> str:
    """The category label a question is counted under."""
    topic = question.resolved_topic
    if topic is not None:
        return catalog[topic][1] if topic in catalog else CATEGORY_UNLABELLED
    if question.decision == "unknown":
        return CATEGORY_UNKNOWN
    return CATEGORY_CLARIFY_NONE if question.chosen == "" else CATEGORY_CLARIFY_OPEN


# --- notices ----------------------------------------------------------------------------------------


@dataclass
class _Sending:
    """A `notice_sent` event and the deliveries counted for it so far."""

    event_id: int
    at: dt.datetime
    broadcast_id: str
    run_id: Any
    detail: dict[str, Any]
    delivered: int = 0


def _link_deliveries(rows: Sequence[Any]) -> list[_Sending]:
    """Sendings with their delivered counts: by `run_id` when the events carry one, otherwise the
    latest sending of the same notice before the delivery."""
    sends: list[_Sending] = []
    by_run: dict[Any, _Sending] = {}
    latest: dict[str, _Sending] = {}
    early: Counter[tuple[str, Any]] = Counter()  # delivered recorded before its sending was
    for row in rows:
        detail = row.detail or {}
        broadcast_id, run_id = str(detail.get("broadcast_id", "")), detail.get("run_id")
        key = ("run", run_id) if run_id is not None else ("notice", broadcast_id)
        if row.kind == "notice_sent":
            sending = _Sending(row.id, row.occurred_at, broadcast_id, run_id, detail, early.pop(key, 0))
            sends.append(sending)
            latest[broadcast_id] = sending
            if run_id is not None:
                by_run[run_id] = sending
            continue
        target = by_run.get(run_id) if run_id is not None else latest.get(broadcast_id)
        if target is None:
            early[key] += _as_int(detail.get("count"))
        else:
            target.delivered += _as_int(detail.get("count"))
    return sends


def records_notice_blocks(session: Session) -> bool:
    """True once the notices feature records `notice_block` events (recipients who blocked)."""
    return session.scalar(select(UsageEvent.id).where(UsageEvent.kind == "notice_block").limit(1)) is not None


def notices_between(session: Session, start: dt.datetime, end: dt.datetime) -> tuple[list[NoticeSend], int]:
    """Notices sent in [start, end), and how many residents blocked within 24 h after any of them.

    Blocks are the notices feature's `notice_block` events when it records them: recipients who
    blocked within 24 h after the notice reached them. Where it does not, every unfollow within
    24 h after the sending counts; two notices sent close together then both count it. The
    month's total counts each resident once.
    """
    rows = session.execute(
        select(UsageEvent.id, UsageEvent.kind, UsageEvent.occurred_at, UsageEvent.detail)
        .where(
            UsageEvent.kind.in_(("notice_sent", "notice_delivered")),
            UsageEvent.occurred_at >= start - LINK_WINDOW,
            UsageEvent.occurred_at < end + LINK_WINDOW,
        )
        .order_by(UsageEvent.occurred_at, UsageEvent.id)
    ).all()
    in_month = [s for s in _link_deliveries(rows) if start <= s.at < end]
    if not in_month:
        return [], 0
    attributed = records_notice_blocks(session)
    window_end = in_month[-1].at + NOTICE_BLOCK_WINDOW + (LINK_WINDOW if attributed else dt.timedelta(0))
    blocks = session.execute(
        select(UsageEvent.id, UsageEvent.resident_id, UsageEvent.occurred_at, UsageEvent.detail)
        .where(
            UsageEvent.kind == ("notice_block" if attributed else "unfollow"),
            UsageEvent.occurred_at >= in_month[0].at,
            UsageEvent.occurred_at < window_end,
        )
        .order_by(UsageEvent.occurred_at, UsageEvent.id)
    ).all()

    def blocked_after(sending: _Sending) -> list[Any]:
        if not attributed:
            return [b for b in blocks if sending.at <= b.occurred_at < sending.at + NOTICE_BLOCK_WINDOW]
        if sending.run_id is not None:
            return [b for b in blocks if (b.detail or {}).get("run_id") == sending.run_id]
        return [b for b in blocks if str((b.detail or {}).get("broadcast_id", "")) == sending.broadcast_id
                and sending.at <= b.occurred_at < sending.at + NOTICE_BLOCK_WINDOW]

    result: list[NoticeSend] = []
    everyone: set[Any] = set()
    for sending in in_month:
        blockers = {b.resident_id if b.resident_id is not None else f"event:{b.id}" for b in blocked_after(sending)}
        everyone |= blockers
        title = sending.detail.get("title")
        result.append(NoticeSend(
            event_id=sending.event_id,
            broadcast_id=sending.broadcast_id,
            title=title if isinstance(title, str) else "",
            sent_at=sending.at,
            recipients=_as_int(sending.detail.get("recipients")),
            delivered=sending.delivered,
            blocks=len(blockers),
        ))
    return result, len(everyone)


# --- the month ---------------------------------------------------------------------------------------


def usage_kinds_between(session: Session, start: dt.datetime, end: dt.datetime) -> list[tuple[str, int]]:
    """How many usage events of each kind were recorded in [start, end)."""
    rows = session.execute(
        select(UsageEvent.kind, func.count())
        .where(UsageEvent.occurred_at >= start, UsageEvent.occurred_at < end)
        .group_by(UsageEvent.kind)
        .order_by(func.count().desc(), UsageEvent.kind)
    ).all()
    return [(kind, int(count)) for kind, count in rows]


def month_detail(
    session: Session,
    month: Month,
    city: CityKpiConfig,
    catalog: Mapping[str, tuple[str, str]] | None = None,
    *,
    friends: int | None = None,
    timeline: Timeline | None = None,
    breakdowns: bool = True,
) -> MonthDetail:
    """Every KPI of the month, and its breakdowns unless told not to.

    `friends` and `timeline` may come from the caller that computed them for several months.
    """
    catalog = catalog or {}
    start, end = month.start, month.end
    figures = MonthFigures(month)
    figures.friends = friends if friends is not None else friends_at(session, [end])[0]
    figures.new_friends = _distinct_residents(session, ("follow",), start, end)
    figures.blocked = _distinct_residents(session, ("unfollow",), start, end)
    figures.active_residents = _distinct_residents(session, ACTIVE_KINDS, start, end)

    timeline = timeline or question_timeline(session, start, end)
    questions, figures.smalltalk = timeline.between(start, end)
    decisions = Counter(q.decision for q in questions)
    figures.questions = len(questions)
    figures.answered, figures.clarified, figures.unknown = (decisions[d] for d in QUESTION_DECISIONS)
    direct_votes = [q.vote for q in questions if q.decision == "answer" and q.vote is not None]
    figures.direct_votes, figures.direct_helpful = len(direct_votes), sum(direct_votes)
    chosen_votes = [q.vote for q in questions if q.decision == "clarify" and q.vote is not None]
    figures.clarified_votes, figures.clarified_helpful = len(chosen_votes), sum(chosen_votes)

    notices, figures.notice_blocks = notices_between(session, start, end)
    figures.notices_sent = len(notices)
    figures.notice_recipients = sum(n.recipients for n in notices)
    figures.notices_delivered = sum(n.delivered for n in notices)
    _add_reported_friends_and_rate(session, figures, city)

    if not breakdowns:
        return MonthDetail(figures, notices=notices)
    detail = MonthDetail(figures, questions=questions, notices=notices)
    totals: Counter[str] = Counter()
    direct: Counter[str] = Counter()
    for question in questions:
        topic = question.resolved_topic
        if topic is not None:
            totals[topic] += 1
            direct[topic] += question.decision == "answer"
        detail.by_hour[question.at.astimezone(JST).hour] += 1
    detail.top_topics = [
        (topic, count, direct[topic], count - direct[topic])
        for topic, count in sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    ]
    categories = Counter(category_of(q, catalog) for q in questions)
    detail.by_category = sorted(categories.items(), key=lambda item: (-item[1], item[0]))
    detail.usage_kinds = usage_kinds_between(session, start, end)
    return detail


def _add_reported_friends_and_rate(session: Session, figures: MonthFigures, city: CityKpiConfig) -> None:
    """LINE's own friends count (it may be recorded long afterwards) and the usage rate."""
    reported = _reported_friends(session, figures.month.start, figures.month.end)
    figures.friends_reported, figures.friends_reported_on = reported if reported is not None else (None, None)
    figures.line_usage_rate = (
        100.0 * figures.friends_for_rate / city.denominator.value if city.denominator is not None else None
    )


def is_settled(month: Month, now: dt.datetime) -> bool:
    """True once no later usage event can change the month's figures (votes, deliveries, blocks)."""
    return month.end + LINK_WINDOW + NOTICE_BLOCK_WINDOW <= now


def trend(
    session: Session,
    last: Month,
    city: CityKpiConfig,
    catalog: Mapping[str, tuple[str, str]] | None = None,
    months: int = 12,
    *,
    cache: MutableMapping[Month, MonthDetail] | None = None,
    now: dt.datetime | None = None,
) -> list[MonthDetail]:
    """The `months` months up to and including `last`, oldest first (breakdowns for `last` only).

    Settled months are kept in `cache`: usage events are only ever added at the time they happen,
    so a month whose windows have closed never changes (LINE's friends count and the usage rate,
    which settings and `flask kpi record-friends` may change, are computed afresh).
    """
    now = now or dt.datetime.now(dt.UTC)
    span = [last.shift(offset) for offset in range(-months + 1, 1)]
    found: dict[Month, MonthDetail] = {}
    for month in span:
        cached = cache.get(month) if cache is not None and month != last else None
        if cached is not None:
            figures = dataclasses.replace(cached.figures)
            _add_reported_friends_and_rate(session, figures, city)
            found[month] = MonthDetail(figures, notices=cached.notices)
    todo = [m for m in span if m not in found]
    friends = friends_at(session, [m.end for m in todo])
    timeline = question_timeline(session, todo[0].start, todo[-1].end) if todo else None
    for month, count in zip(todo, friends, strict=True):
        detail = month_detail(session, month, city, catalog, friends=count, timeline=timeline, breakdowns=month == last)
        found[month] = detail
        if cache is not None and is_settled(month, now):
            cache[month] = MonthDetail(dataclasses.replace(detail.figures), notices=detail.notices)
    return [found[m] for m in span]
