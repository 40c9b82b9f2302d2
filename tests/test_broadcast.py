"""Notice delivery: chunks of ≤ 500, retry keys stored before the call, crash recovery without
duplicates or gaps, 429 / 5xx / timeout handling, unfollowers skipped, pause and cancel,
recurrence, the dispatcher lock, block attribution and retention."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, insert, select, update

from bot.db import get_db, utcnow
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast import service
from broadcast.dispatcher import Dispatcher
from broadcast.lock import DispatcherLock
from broadcast.messages import NoticeContent
from broadcast.models import Broadcast, BroadcastChunk, BroadcastDelivery, BroadcastRun
from broadcast.schedule import JST, Schedule
from kpi.models import UsageEvent
from segments.models import Resident
from segments.rules import SegmentRule, save_segment
from segments.service import record_unfollow
from segments.vocab import interests_to_mask
from tests.conftest import CHANNEL_SECRET, ROOT, wait_until

# Backoffs of tens of milliseconds keep the retry tests quick; the logic is the same.
FAST = {
    "BROADCAST_RETRY_BASE_SECONDS": 0.05,
    "BROADCAST_RETRY_MAX_SECONDS": 0.2,
    "BROADCAST_SEND_THREADS": 2,
    "BROADCAST_POLL_SECONDS": 0.3,
}


def user_id(n: int) -> str:
    """A well-formed LINE user id."""
    return f"U{n:032x}"


def add_residents(app: Flask, count: int, start: int = 0, **attrs: Any) -> list[str]:
    """Residents who accept notices (following, consented, notices on) unless attrs say otherwise."""
    now = utcnow()
    rows = []
    for n in range(start, start + count):
        row = {
            "line_user_id": user_id(n), "is_following": True, "followed_at": now, "consented_at": now,
            "is_notices_enabled": True, "interests_mask": 0, "updated_at": now,
        }
        row.update(attrs)
        rows.append(row)
    with get_db(app).write_connection() as conn:
        conn.execute(insert(Resident), rows)
    return [r["line_user_id"] for r in rows]


def schedule_notice(
    app: Flask,
    text: str = "【お知らせ】ごみ収集日が変わります",
    *,
    at: dt.datetime | None = None,
    every: str | None = None,
    until: dt.date | None = None,
    excluded: tuple[dt.date, ...] = (),
    segment: str | None = None,
    rule: SegmentRule | None = None,
    emergency: bool = False,
    now: dt.datetime | None = None,
) -> int:
    """Schedule a notice through the service, as the CLI and the admin pages do; returns its id."""
    now = now or utcnow()
    start = at or now
    schedule = Schedule.recurring(every, start, until, excluded) if every else Schedule.once(start)
    with get_db(app).session() as session:
        target = service.make_target(session, app.config["MUNICIPALITY"], segment_name=segment, rule=rule, is_emergency=emergency)
        created = service.create_broadcast(session, content=NoticeContent.build(text), schedule=schedule, target=target, now=now)
        return created.broadcast.id


def report(app: Flask, broadcast_id: int) -> dict[str, Any]:
    """`flask broadcast show --json` for a notice."""
    with get_db(app).session() as session:
        return service.notice_report(session, service.get_broadcast(session, broadcast_id))


def deliveries_per_user(fake: FakeLinePlatform, text: str | None = None) -> Counter[str]:
    """How many times each resident received the notice (by multicast), per the fake platform."""
    got: Counter[str] = Counter()
    for d in fake.deliveries:
        if d.kind == "multicast" and (text is None or d.messages[0].get("text") == text):
            got.update(d.to)
    return got


def multicast_requests(fake: FakeLinePlatform) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/multicast")]


def chunks(app: Flask, broadcast_id: int | None = None) -> list[BroadcastChunk]:
    with get_db(app).session() as session:
        stmt = select(BroadcastChunk).order_by(BroadcastChunk.run_id, BroadcastChunk.seq)
        if broadcast_id is not None:
            stmt = stmt.join(BroadcastRun).where(BroadcastRun.broadcast_id == broadcast_id)
        rows = list(session.scalars(stmt).all())
        session.expunge_all()
        return rows


@pytest.fixture
def bapp(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    """The app with fast retries and its own dispatcher lock file."""
    return make_app(**FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"))


def run_dispatcher(app: Flask, now: dt.datetime | None = None, **kwargs: Any) -> Any:
    """`flask broadcast run-scheduler --once` minus the lock: send everything due, retries included."""
    return Dispatcher(app, **kwargs).send_due_broadcasts(now, max_wait=float("inf"))


# --- delivery --------------------------------------------------------------------------------


def test_each_eligible_resident_gets_the_notice_once_in_chunks_of_at_most_500(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    eligible = add_residents(bapp, 1201)
    no_consent = add_residents(bapp, 1, start=5000, consented_at=None)
    notices_off = add_residents(bapp, 1, start=5001, is_notices_enabled=False)
    gone = add_residents(bapp, 1, start=5002, is_following=False)
    notice = schedule_notice(bapp, "12月の休日当番医のお知らせ")

    tick = run_dispatcher(bapp)

    sizes = [len(r.body["to"]) for r in multicast_requests(fake_line)]
    assert sorted(sizes) == [201, 500, 500]
    got = deliveries_per_user(fake_line)
    assert set(got) == set(eligible) and set(got.values()) == {1}
    assert not set(got) & set(no_consent + notices_off + gone)
    assert fake_line.delivered(eligible[0]) == [{"type": "text", "text": "12月の休日当番医のお知らせ"}]
    # Every request carried its own retry key.
    keys = [r.headers.get("X-Line-Retry-Key") for r in multicast_requests(fake_line)]
    assert len(set(keys)) == 3 and None not in keys
    shown = report(bapp, notice)
    assert shown["status"] == "sent" and tick.finished_runs == [shown["runs"][0]["id"]]
    assert shown["counts"] | {"blocks": 0} == {
        "recipients": 1201, "delivered": 1201, "skipped": 0, "failed": 0, "pending": 0, "cancelled": 0, "chunks": 3, "blocks": 0,
    }
    with get_db(bapp).session() as session:
        events = {e.kind: e.detail for e in session.scalars(select(UsageEvent).where(UsageEvent.kind.like("notice_%")))}
    assert events["notice_sent"] == {
        "broadcast_id": notice, "run_id": shown["runs"][0]["id"], "recipients": 1201, "title": "12月の休日当番医のお知らせ", "is_emergency": False,
    }
    assert events["notice_delivered"] == {"broadcast_id": notice, "run_id": shown["runs"][0]["id"], "count": 1201}


def test_a_second_pass_sends_nothing_more(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 10)
    schedule_notice(bapp)
    run_dispatcher(bapp)
    run_dispatcher(bapp)
    assert len(multicast_requests(fake_line)) == 1


def test_a_notice_scheduled_later_waits_for_its_time(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 3)
    at = utcnow() + dt.timedelta(minutes=1)
    notice = schedule_notice(bapp, at=at)
    run_dispatcher(bapp)
    assert multicast_requests(fake_line) == [] and report(bapp, notice)["status"] == "scheduled"
    run_dispatcher(bapp, now=at + dt.timedelta(seconds=1))
    assert report(bapp, notice)["counts"]["delivered"] == 3


def test_recipients_of_a_segment_are_resolved_at_send_time(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    parents = add_residents(bapp, 12, interests_mask=interests_to_mask(["子育て"]))
    others = add_residents(bapp, 5, start=100, interests_mask=interests_to_mask(["防災"]))
    with get_db(bapp).session() as session:
        save_segment(session, "子育て世帯", SegmentRule.from_dict({"interests": {"include": ["子育て"]}}), bapp.config["MUNICIPALITY"])
    notice = schedule_notice(bapp, "乳幼児健診のお知らせ", segment="子育て世帯")
    # Someone declares the interest after the notice was scheduled, before it goes out: they get it.
    with get_db(bapp).session() as session:
        session.execute(update(Resident).where(Resident.line_user_id == others[0]).values(interests_mask=interests_to_mask(["子育て", "防災"])))
    run_dispatcher(bapp)
    assert set(deliveries_per_user(fake_line)) == set(parents) | {others[0]}
    assert report(bapp, notice)["target"]["segment"] == "子育て世帯"


def test_an_emergency_notice_goes_to_every_follower_whatever_their_settings(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    eligible = add_residents(bapp, 3)
    no_consent = add_residents(bapp, 2, start=10, consented_at=None)
    notices_off = add_residents(bapp, 2, start=20, is_notices_enabled=False)
    gone = add_residents(bapp, 2, start=30, is_following=False)
    notice = schedule_notice(bapp, "【緊急】避難指示が発令されました", emergency=True)
    run_dispatcher(bapp)
    assert set(deliveries_per_user(fake_line)) == set(eligible + no_consent + notices_off)
    assert not set(deliveries_per_user(fake_line)) & set(gone)
    assert report(bapp, notice)["is_emergency"] is True


def test_emergency_notices_go_before_others_that_are_due(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 2)
    schedule_notice(bapp, "通常のお知らせ")
    schedule_notice(bapp, "【緊急】断水のお知らせ", emergency=True)
    run_dispatcher(bapp)
    texts = [r.body["messages"][0]["text"] for r in multicast_requests(fake_line)]
    assert texts == ["【緊急】断水のお知らせ", "通常のお知らせ"]


# --- retry keys and crash recovery -------------------------------------------------------------


def test_the_retry_key_and_recipients_are_stored_before_the_call(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 1100)
    schedule_notice(bapp)
    dispatcher = Dispatcher(bapp)
    real = dispatcher.gateway.multicast
    seen: list[tuple[str, int]] = []

    def checking_multicast(to: list[str], messages: list[dict[str, Any]], retry_key: str | None = None, **extra: Any) -> Any:
        # What a crash right now would leave behind: read from the database by another session.
        with get_db(bapp).session() as session:
            chunk = session.scalars(select(BroadcastChunk).where(BroadcastChunk.retry_key == retry_key)).one()
            rows = session.scalar(select(func.count()).where(BroadcastDelivery.chunk_id == chunk.id))
            assert chunk.status == "sending" and chunk.sent_to == list(to) and chunk.attempts == 1
            assert rows == len(to)
            seen.append((retry_key or "", len(to)))
        return real(to, messages, retry_key=retry_key, **extra)

    dispatcher.gateway = type("G", (), {"multicast": staticmethod(checking_multicast)})()  # type: ignore[assignment]
    dispatcher.send_due_broadcasts(max_wait=float("inf"))
    assert sorted(n for _, n in seen) == [100, 500, 500]
    assert {r.headers["X-Line-Retry-Key"] for r in multicast_requests(fake_line)} == {k for k, _ in seen}


def test_a_crash_between_storing_and_calling_resumes_with_the_same_key(
    bapp: Flask, make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path
) -> None:
    residents = add_residents(bapp, 1200)
    notice = schedule_notice(bapp)
    first = Dispatcher(bapp)
    first.start_due_runs(utcnow())
    stored = chunks(bapp, notice)
    prepared = first.prepare_chunk(stored[1].id)  # committed ... and the process dies before calling
    assert prepared is not None and prepared.retry_key == stored[1].retry_key
    assert multicast_requests(fake_line) == []

    restarted = make_app(empty=False, **FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"))
    run_dispatcher(restarted)

    got = deliveries_per_user(fake_line)
    assert set(got) == set(residents) and set(got.values()) == {1}
    keys = [r.headers["X-Line-Retry-Key"] for r in multicast_requests(fake_line)]
    assert sorted(keys) == sorted(c.retry_key for c in stored)  # each key used once, the prepared one included
    after = {c.id: c for c in chunks(restarted, notice)}
    assert after[stored[1].id].attempts == 2 and after[stored[1].id].sent_to == prepared.to


def test_a_crash_after_line_accepted_counts_the_409_as_delivered(
    bapp: Flask, make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path
) -> None:
    residents = add_residents(bapp, 700)
    notice = schedule_notice(bapp)
    first = Dispatcher(bapp)
    first.start_due_runs(utcnow())
    chunk = chunks(bapp, notice)[0]
    prepared = first.prepare_chunk(chunk.id)
    assert prepared is not None
    first.gateway.multicast(prepared.to, prepared.messages, retry_key=prepared.retry_key)  # LINE accepted it...
    # ... and the dispatcher was killed before recording that.

    restarted = make_app(empty=False, **FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"))
    run_dispatcher(restarted)

    got = deliveries_per_user(fake_line)
    assert set(got) == set(residents) and set(got.values()) == {1}
    statuses = [r.status for r in multicast_requests(fake_line)]
    assert sorted(statuses) == [200, 200, 409]
    again = {c.id: c for c in chunks(restarted, notice)}[chunk.id]
    assert again.status == "sent" and again.is_already_accepted is True
    assert report(restarted, notice)["counts"]["delivered"] == 700


def test_429_backs_off_then_retries_with_the_same_key(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    residents = add_residents(bapp, 20)
    schedule_notice(bapp)
    fake_line.fail("multicast", 429, times=2)
    slept: list[float] = []

    def recording_sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    started = time.monotonic()
    run_dispatcher(bapp, sleep=recording_sleep)
    elapsed = time.monotonic() - started

    requests = multicast_requests(fake_line)
    assert [r.status for r in requests] == [429, 429, 200]
    assert len({r.headers["X-Line-Retry-Key"] for r in requests}) == 1
    # The backoff doubles (0.05 s, then 0.1 s, each jittered by ±25 %) and is waited out before each retry.
    gaps = [b.at - a.at for a, b in zip(requests, requests[1:], strict=False)]
    assert gaps[0] >= 0.75 * 0.05 and gaps[1] >= 0.75 * 0.1, gaps
    assert slept and elapsed >= 0.75 * 0.15
    assert set(deliveries_per_user(fake_line).values()) == {1} and len(deliveries_per_user(fake_line)) == len(residents)
    chunk = chunks(bapp)[0]
    assert chunk.attempts == 3 and chunk.status == "sent"


def test_a_429_makes_every_sender_wait(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 2000)
    schedule_notice(bapp)
    fake_line.fail("multicast", 429, times=1)
    dispatcher = Dispatcher(bapp)
    dispatcher.retry_base, dispatcher.retry_max = 0.3, 1.0
    dispatcher.send_due_broadcasts(max_wait=float("inf"))
    requests = multicast_requests(fake_line)
    limited = next(r for r in requests if r.status == 429)
    # After the 429 no new request for ~0.3 s (jittered by ±25 %) from either thread; the other
    # thread's call already on its way when the 429 came back may still finish just after it.
    later = sorted(r.at for r in requests if r.at > limited.at)
    assert len(later) >= 2 and later[1] - limited.at >= 0.2, [t - limited.at for t in later]
    assert len(deliveries_per_user(fake_line)) == 2000


def test_5xx_and_timeouts_are_retried_with_the_same_key(make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path) -> None:
    app = make_app(**FAST, LINE_TIMEOUT_SECONDS=0.5, BROADCAST_LOCK_FILE=str(tmp_path / "lock"))
    residents = add_residents(app, 30)
    notice = schedule_notice(app)
    fake_line.fail("multicast", 500, times=1)
    fake_line.fail("multicast", "hang", times=1, hang_seconds=1.5)
    run_dispatcher(app)
    # The fake records the hung call when it gives up on it (after 1.5 s); we had timed out at 0.5 s.
    requests = wait_until(lambda: len(multicast_requests(fake_line)) == 3 and multicast_requests(fake_line), timeout=10)
    assert sorted(r.status for r in requests) == [200, 500, 500]
    assert len({r.headers["X-Line-Retry-Key"] for r in requests}) == 1
    assert len({tuple(r.body["to"]) for r in requests}) == 1
    got = deliveries_per_user(fake_line)
    assert set(got) == set(residents) and set(got.values()) == {1}
    assert report(app, notice)["counts"]["delivered"] == 30


def test_a_refused_chunk_fails_without_retrying_and_is_counted(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 600)
    notice = schedule_notice(bapp)
    fake_line.fail("multicast", 403, times=1)
    run_dispatcher(bapp)
    assert sorted(r.status for r in multicast_requests(fake_line)) == [200, 403]
    counts = report(bapp, notice)["counts"]
    assert counts["failed"] + counts["delivered"] == 600 and counts["failed"] in (500, 100)
    assert report(bapp, notice)["status"] == "sent"
    failed = [c for c in chunks(bapp, notice) if c.status == "failed"]
    assert len(failed) == 1 and failed[0].attempts == 1 and "LineRejected" in (failed[0].last_error or "")


def test_a_chunk_gives_up_after_the_configured_attempts(make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path) -> None:
    app = make_app(**FAST, BROADCAST_MAX_ATTEMPTS=3, BROADCAST_LOCK_FILE=str(tmp_path / "lock"))
    add_residents(app, 5)
    notice = schedule_notice(app)
    fake_line.fail("multicast", 503, times=-1)
    run_dispatcher(app)
    assert [r.status for r in multicast_requests(fake_line)] == [503, 503, 503]
    assert report(app, notice)["counts"]["failed"] == 5 and report(app, notice)["status"] == "sent"


def test_residents_who_unfollow_after_resolution_are_skipped(
    bapp: Flask, make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path
) -> None:
    residents = add_residents(bapp, 520)
    notice = schedule_notice(bapp)
    dispatcher = Dispatcher(bapp)
    dispatcher.start_due_runs(utcnow())  # recipients resolved ...
    with get_db(bapp).session() as session:  # ... then two residents block the account
        record_unfollow(session, residents[3])
        record_unfollow(session, residents[510])
    first = chunks(bapp, notice)[0]
    prepared = dispatcher.prepare_chunk(first.id)
    assert prepared is not None and residents[3] not in prepared.to and len(prepared.to) == 499
    # A resident coming back after the list was frozen does not change the retried request.
    with get_db(bapp).session() as session:
        session.execute(update(Resident).where(Resident.line_user_id == residents[3]).values(is_following=True))
    run_dispatcher(make_app(empty=False, **FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock")))

    got = deliveries_per_user(fake_line)
    assert set(got) == set(residents) - {residents[3], residents[510]}
    counts = report(bapp, notice)["counts"]
    assert counts["skipped"] == 2 and counts["delivered"] == 518 and counts["recipients"] == 520


def test_a_chunk_whose_residents_all_left_is_skipped_without_a_call(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    residents = add_residents(bapp, 3)
    notice = schedule_notice(bapp)
    dispatcher = Dispatcher(bapp)
    dispatcher.start_due_runs(utcnow())
    with get_db(bapp).session() as session:
        for r in residents:
            record_unfollow(session, r)
    run_dispatcher(bapp)
    assert multicast_requests(fake_line) == []
    assert report(bapp, notice)["status"] == "sent" and report(bapp, notice)["counts"]["skipped"] == 3


def test_a_chunk_prepared_over_23_hours_ago_is_not_resent(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    """LINE forgets a retry key after 24 h: resending then could deliver twice, so the chunk is failed instead."""
    add_residents(bapp, 700)
    notice = schedule_notice(bapp)
    dispatcher = Dispatcher(bapp)
    dispatcher.start_due_runs(utcnow())
    stale = chunks(bapp, notice)[0]
    assert dispatcher.prepare_chunk(stale.id) is not None  # ... and the dispatcher stayed down for a day
    with get_db(bapp).session() as session:
        session.execute(update(BroadcastChunk).where(BroadcastChunk.id == stale.id).values(prepared_at=utcnow() - dt.timedelta(hours=24)))
    run_dispatcher(bapp)
    assert [len(r.body["to"]) for r in multicast_requests(fake_line)] == [200]
    after = {c.id: c for c in chunks(bapp, notice)}[stale.id]
    assert after.status == "failed" and "retry key expired" in (after.last_error or "")
    assert report(bapp, notice)["counts"]["failed"] == 500


def test_an_unexpected_gateway_error_fails_the_chunk_instead_of_looping(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 3)
    notice = schedule_notice(bapp)

    class Broken:
        calls = 0

        def multicast(self, *_args: Any, **_kwargs: Any) -> Any:
            Broken.calls += 1
            raise RuntimeError("bug")

    Dispatcher(bapp, gateway=Broken()).send_due_broadcasts(max_wait=float("inf"))  # type: ignore[arg-type]
    assert Broken.calls == 1
    assert report(bapp, notice)["counts"]["failed"] == 3 and report(bapp, notice)["status"] == "sent"


# --- pause and cancel ------------------------------------------------------------------------


class PausingGateway:
    """Lets `after` multicast calls through, then pauses or cancels the notice (staff pressing the button mid-send)."""

    def __init__(self, app: Flask, broadcast_id: int, action: Callable[..., Any], after: int = 1) -> None:
        self.app, self.broadcast_id, self.action, self.after = app, broadcast_id, action, after
        self.real = app.extensions["line"]
        self.calls = 0

    def multicast(self, to: list[str], messages: list[dict[str, Any]], retry_key: str | None = None, **extra: Any) -> Any:
        result = self.real.multicast(to, messages, retry_key=retry_key, **extra)
        self.calls += 1
        if self.calls == self.after:
            with get_db(self.app).session() as session:
                self.action(session, self.broadcast_id)
        return result


def test_pause_during_sending_stops_and_resume_finishes_without_duplicates(make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path) -> None:
    app = make_app(**{**FAST, "BROADCAST_SEND_THREADS": 1}, BROADCAST_LOCK_FILE=str(tmp_path / "lock"))
    residents = add_residents(app, 1400)
    notice = schedule_notice(app)
    gateway = PausingGateway(app, notice, service.pause_broadcast)
    Dispatcher(app, gateway=gateway).send_due_broadcasts(max_wait=float("inf"))  # type: ignore[arg-type]

    paused = report(app, notice)
    assert paused["status"] == "paused"
    assert paused["counts"]["delivered"] == 500 and paused["counts"]["pending"] == 900
    run_dispatcher(app)  # a paused notice is left alone
    assert len(deliveries_per_user(fake_line)) == 500

    with get_db(app).session() as session:
        service.resume_broadcast(session, notice)
    assert report(app, notice)["status"] == "sending"
    run_dispatcher(app)
    got = deliveries_per_user(fake_line)
    assert set(got) == set(residents) and set(got.values()) == {1}
    assert report(app, notice)["status"] == "sent"


def test_pause_before_sending_holds_a_scheduled_notice(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 4)
    notice = schedule_notice(bapp)
    with get_db(bapp).session() as session:
        service.pause_broadcast(session, notice)
    run_dispatcher(bapp)
    assert multicast_requests(fake_line) == []
    with get_db(bapp).session() as session:
        assert service.resume_broadcast(session, notice).status == "scheduled"
    run_dispatcher(bapp)
    assert report(bapp, notice)["counts"]["delivered"] == 4


def test_cancel_before_sending_sends_nothing(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 4)
    notice = schedule_notice(bapp, at=utcnow() + dt.timedelta(hours=1))
    with get_db(bapp).session() as session:
        service.cancel_broadcast(session, notice)
    run_dispatcher(bapp, now=utcnow() + dt.timedelta(hours=2))
    assert multicast_requests(fake_line) == []
    shown = report(bapp, notice)
    assert shown["status"] == "cancelled" and shown["runs"] == [] and shown["next_run_at"] is None
    with get_db(bapp).session() as session, pytest.raises(service.NoticeError, match="取り消せません"):
        service.cancel_broadcast(session, notice)


def test_cancel_during_sending_stops_the_rest(make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path) -> None:
    app = make_app(**{**FAST, "BROADCAST_SEND_THREADS": 1}, BROADCAST_LOCK_FILE=str(tmp_path / "lock"))
    add_residents(app, 1500)
    notice = schedule_notice(app)
    gateway = PausingGateway(app, notice, service.cancel_broadcast)
    Dispatcher(app, gateway=gateway).send_due_broadcasts(max_wait=float("inf"))  # type: ignore[arg-type]
    run_dispatcher(app)
    assert len(multicast_requests(fake_line)) == 1
    shown = report(app, notice)
    assert shown["status"] == "cancelled" and shown["runs"][0]["status"] == "cancelled"
    assert shown["counts"]["delivered"] == 500 and shown["counts"]["cancelled"] == 1000


# --- recurrence ------------------------------------------------------------------------------


def test_a_weekly_notice_goes_out_on_each_chosen_day_in_tokyo_time_until_its_end(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    residents = add_residents(bapp, 3)
    # Created on Tuesday 2026-12-01; Mondays and Thursdays at 09:00 JST until Thursday the 10th, not the 7th.
    created = dt.datetime(2026, 12, 1, 10, 0, tzinfo=JST)
    notice = schedule_notice(
        bapp, "資源ごみの日です", at=dt.datetime(2026, 12, 1, 9, 0, tzinfo=JST), every="weekly:mon,thu",
        until=dt.date(2026, 12, 10), excluded=(dt.date(2026, 12, 7),), now=created,
    )
    expected = [dt.datetime(2026, 12, 3, 9, 0, tzinfo=JST), dt.datetime(2026, 12, 10, 9, 0, tzinfo=JST)]
    assert report(bapp, notice)["next_run_at"] == expected[0].isoformat()
    run_dispatcher(bapp, now=expected[0] - dt.timedelta(seconds=1))
    assert multicast_requests(fake_line) == []
    for n, due in enumerate(expected, start=1):
        run_dispatcher(bapp, now=due + dt.timedelta(seconds=5))
        shown = report(bapp, notice)
        assert len(shown["runs"]) == n and shown["runs"][-1]["occurrence_at"] == due.isoformat()
    assert shown["status"] == "sent" and shown["next_run_at"] is None
    assert shown["counts"]["delivered"] == 6
    assert Counter(deliveries_per_user(fake_line)) == Counter(dict.fromkeys(residents, 2))


def test_a_recurring_notice_stays_scheduled_between_runs(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 2)
    start = dt.datetime(2026, 12, 31, 18, 0, tzinfo=JST)
    notice = schedule_notice(bapp, at=start, every="monthly:last", now=start - dt.timedelta(hours=1))
    run_dispatcher(bapp, now=start + dt.timedelta(seconds=1))
    shown = report(bapp, notice)
    assert shown["status"] == "scheduled" and shown["next_run_at"] == dt.datetime(2027, 1, 31, 18, 0, tzinfo=JST).isoformat()


def test_a_missed_occurrence_is_skipped_not_sent_hours_late(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 2)
    start = dt.datetime(2026, 12, 1, 7, 0, tzinfo=JST)
    notice = schedule_notice(bapp, "今日の燃えるごみ", at=start, every="daily", now=start - dt.timedelta(minutes=10))
    # The dispatcher was down from 06:50 until 10:00: the 07:00 reminder is dropped, tomorrow's stays.
    run_dispatcher(bapp, now=start + dt.timedelta(hours=3))
    assert multicast_requests(fake_line) == []
    assert report(bapp, notice)["next_run_at"] == (start + dt.timedelta(days=1)).isoformat()


# --- the one dispatcher --------------------------------------------------------------------------


def test_a_second_dispatcher_waits_for_the_lock(bapp: Flask) -> None:
    db = get_db(bapp)
    lock_file = bapp.config["BROADCAST_LOCK_FILE"]
    first, second = DispatcherLock(db, lock_file), DispatcherLock(db, lock_file)
    assert first.acquire(timeout=5)
    try:
        waited: list[bool] = []
        started = time.monotonic()
        assert second.acquire(timeout=0.6, poll=0.1, on_wait=lambda: waited.append(True)) is False
        assert time.monotonic() - started >= 0.5 and waited == [True]
        assert first.still_held()
    finally:
        first.release()
    assert second.acquire(timeout=5, poll=0.1)
    second.release()


def _cli_env(app: Flask, fake_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        APP_ENV="testing", DATABASE_URL=app.config["DATABASE_URL"], LINE_API_BASE_URL=fake_url,
        LINE_CHANNEL_SECRET=CHANNEL_SECRET, LINE_CHANNEL_ACCESS_TOKEN="test-access-token", SECRET_KEY="test",
        BROADCAST_LOCK_FILE=app.config["BROADCAST_LOCK_FILE"], LOG_LEVEL="WARNING", **extra,
    )
    return env


@pytest.fixture
def fake_url(fake_line_server: Any) -> str:
    return str(fake_line_server[1].url)


def test_run_scheduler_waits_while_another_dispatcher_runs(bapp: Flask, fake_line: FakeLinePlatform, fake_url: str) -> None:
    residents = add_residents(bapp, 5)
    schedule_notice(bapp)
    holder = DispatcherLock(get_db(bapp), bapp.config["BROADCAST_LOCK_FILE"])
    assert holder.acquire(timeout=5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "broadcast", "run-scheduler", "--once"],
        cwd=ROOT, env=_cli_env(bapp, fake_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        seen = ""
        while "待機しています" not in seen:  # the process starts, finds the lock taken and says so
            line = proc.stderr.readline()
            assert line, f"run-scheduler ended without waiting: {proc.communicate()}"
            seen += line
        time.sleep(1.5)
        assert proc.poll() is None
        assert multicast_requests(fake_line) == []  # waiting, not sending
    finally:
        holder.release()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "開始 1 件、完了 1 件" in out
    assert set(deliveries_per_user(fake_line)) == set(residents)


def test_run_scheduler_delivers_on_its_clock_and_stops_on_sigterm(bapp: Flask, fake_line: FakeLinePlatform, fake_url: str) -> None:
    residents = add_residents(bapp, 5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "broadcast", "run-scheduler"],
        cwd=ROOT, env=_cli_env(bapp, fake_url, BROADCAST_POLL_SECONDS="0.3"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.0)
        schedule_notice(bapp, "時計で送るお知らせ")  # written by "the web UI" while the dispatcher runs
        wait_until(lambda: len(deliveries_per_user(fake_line)) == 5, timeout=30, message="the dispatcher to send")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "配信プロセスを開始しました" in err
    assert set(deliveries_per_user(fake_line)) == set(residents)


def test_the_web_app_never_loads_a_scheduler() -> None:
    # What a gunicorn worker imports: the app, which registers the CLI group but not its scheduler.
    code = "import sys, wsgi; print('apscheduler' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, APP_ENV="testing", LOG_LEVEL="WARNING"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# --- block attribution and retention --------------------------------------------------------------


def _unfollow_at(app: Flask, line_user_id: str, at: dt.datetime) -> None:
    """What handlers/follow.py does on an unfollow event, at a chosen time."""
    with get_db(app).session() as session:
        resident = record_unfollow(session, line_user_id)
        session.add(UsageEvent(kind="unfollow", resident_id=resident.id, occurred_at=at, detail={}))


def test_unfollows_within_24_hours_count_against_the_notice(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    residents = add_residents(bapp, 6)
    notice = schedule_notice(bapp)
    other = schedule_notice(bapp, "別のお知らせ", at=utcnow() + dt.timedelta(days=3))
    run_dispatcher(bapp)
    sent_at = chunks(bapp, notice)[0].sent_at
    assert sent_at is not None
    _unfollow_at(bapp, residents[0], sent_at + dt.timedelta(hours=1))
    _unfollow_at(bapp, residents[1], sent_at + dt.timedelta(hours=23, minutes=59))
    _unfollow_at(bapp, residents[2], sent_at + dt.timedelta(hours=25))  # too late to blame the notice
    with get_db(bapp).session() as session:
        assert service.block_counts(session, [notice, other]) == {notice: 2, other: 0}
        assert service.block_counts(session) == {notice: 2}
    assert report(bapp, notice)["counts"]["blocks"] == 2

    # Once the window has closed (and a margin for late webhooks), the hourly maintenance records
    # one notice_block usage event per blocker, at the time they blocked, for the KPI.
    with get_db(bapp).session() as session:
        assert service.close_block_windows(session, sent_at + dt.timedelta(hours=20)) == 0  # still open
        assert service.close_block_windows(session, sent_at + dt.timedelta(hours=26)) == 1
        assert service.close_block_windows(session, sent_at + dt.timedelta(hours=27)) == 0  # once only
    with get_db(bapp).session() as session:
        ids = dict(session.execute(select(Resident.line_user_id, Resident.id)).all())
        blocks = session.scalars(select(UsageEvent).where(UsageEvent.kind == "notice_block").order_by(UsageEvent.resident_id)).all()
        run_id = session.scalar(select(BroadcastRun.id).where(BroadcastRun.broadcast_id == notice))
        assert [(b.resident_id, b.detail) for b in blocks] == [
            (ids[residents[0]], {"broadcast_id": notice, "run_id": run_id}),
            (ids[residents[1]], {"broadcast_id": notice, "run_id": run_id}),
        ]
        assert blocks[0].occurred_at == sent_at + dt.timedelta(hours=1)
        assert service.block_counts(session, [notice]) == {notice: 2}
        # The KPI's block rate reads them.
        from kpi.metrics import notices_between

        sends, blocked = notices_between(session, sent_at - dt.timedelta(hours=1), sent_at + dt.timedelta(hours=1))
        assert blocked == 2 and [(n.broadcast_id, n.delivered, n.blocks) for n in sends] == [(str(notice), 6, 2)]


def test_retention_keeps_counts_and_drops_who_received_what(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    residents = add_residents(bapp, 4)
    notice = schedule_notice(bapp)
    run_dispatcher(bapp)
    sent_at = chunks(bapp, notice)[0].sent_at
    assert sent_at is not None
    _unfollow_at(bapp, residents[0], sent_at + dt.timedelta(hours=2))
    with get_db(bapp).session() as session:
        early = service.purge_delivery_records(session, retention_days=90, now=sent_at + dt.timedelta(hours=2))
    assert early.closed_runs == 0 and early.deleted_deliveries == 0  # the window is still open
    with get_db(bapp).session() as session:
        kept = service.purge_delivery_records(session, retention_days=90, now=sent_at + dt.timedelta(days=2))
    assert kept.closed_runs == 1 and kept.deleted_deliveries == 0  # blocks recorded, records kept
    with get_db(bapp).session() as session:
        purge = service.purge_delivery_records(session, retention_days=90, now=sent_at + dt.timedelta(days=91))
    assert purge.closed_runs == 0 and purge.deleted_deliveries == 4
    with get_db(bapp).session() as session:
        assert session.scalar(select(func.count()).select_from(BroadcastDelivery)) == 0
        assert session.scalar(select(BroadcastRun.block_count)) == 1
        chunk = session.scalars(select(BroadcastChunk)).one()
        assert chunk.recipients == [] and chunk.sent_to is None
    shown = report(bapp, notice)
    assert shown["counts"]["delivered"] == 4 and shown["counts"]["blocks"] == 1


def test_the_chunk_status_survives_a_concurrent_cancel(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    """A chunk LINE accepted is recorded as sent even if the notice was cancelled while it was in flight."""
    add_residents(bapp, 3)
    notice = schedule_notice(bapp)
    dispatcher = Dispatcher(bapp)
    dispatcher.start_due_runs(utcnow())
    prepared = dispatcher.prepare_chunk(chunks(bapp, notice)[0].id)
    assert prepared is not None
    with get_db(bapp).session() as session:
        service.cancel_broadcast(session, notice)
    result = dispatcher.gateway.multicast(prepared.to, prepared.messages, retry_key=prepared.retry_key)
    dispatcher.record_sent(prepared, result.request_id, result.already_accepted)
    shown = report(bapp, notice)
    assert shown["status"] == "cancelled" and shown["counts"]["delivered"] == 3


def test_threads_are_not_left_behind(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 3)
    schedule_notice(bapp)
    before = threading.active_count()
    run_dispatcher(bapp)
    assert threading.active_count() <= before


def test_broadcast_rows_are_typed_as_the_models_say(bapp: Flask) -> None:
    add_residents(bapp, 1)
    notice = schedule_notice(bapp)
    with get_db(bapp).session() as session:
        row = session.get(Broadcast, notice)
        assert row is not None and row.next_run_at is not None and row.next_run_at.tzinfo is not None
        assert row.messages == [{"type": "text", "text": "【お知らせ】ごみ収集日が変わります"}]

