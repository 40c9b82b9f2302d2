"""The dispatcher: starts due notices and delivers them in multicast chunks, exactly once.

Runs only inside `flask broadcast run-scheduler` (one process, holding `DispatcherLock`).
Every step is committed before the next, so a process killed at any point is resumed by the
next one without sending a chunk twice or skipping one:

1. start a run: resolve recipients and store all chunks (≤ 500 ids, a fresh retry key each)
   in the same transaction that advances the notice's schedule; a segment below the privacy
   floor (an empty one included) is held instead, with no chunks, until an admin releases it;
2. prepare a chunk: drop residents who left since, freeze the list, note the attempt — committed
   before the call, so a retry sends the same request under the same key;
3. call LINE's multicast with that key; 409 (the key was already accepted) counts as delivered;
4. record the outcome; on 429 every sender backs off, on 5xx or a timeout the chunk is retried
   later with the same key, other refusals fail the chunk.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import (
    String,
    any_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import metrics
from bot.db import Database, get_db, utcnow
from bot.line import (
    LineError,
    LineGateway,
    LineRateLimited,
    LineServerError,
    LineTimeout,
)
from broadcast.models import (
    FAILED,
    HELD,
    PENDING,
    SCHEDULED,
    SENDING,
    SENT,
    SKIPPED,
    UNFINISHED_CHUNK,
    Broadcast,
    BroadcastChunk,
    BroadcastRun,
    BroadcastVersion,
)
from broadcast.insights import assign_unit
from broadcast.languages import messages_for
from broadcast.schedule import Schedule
from broadcast.service import (
    BLOCK_WINDOW,
    CHUNK_SIZE,
    held_note,
    is_held_by_floor,
    resolve_batches,
    run_counts,
    settled_status,
    store_chunks,
    target_of,
)
from kpi.service import record_usage
from segments.models import Resident
from segments.rules import eligible

log = logging.getLogger(__name__)

# LINE remembers an accepted retry key for 24 hours; after that a retry could deliver twice.
RETRY_KEY_LIFETIME = dt.timedelta(hours=23)

MAX_STALLS = 10
# What process_run came to.
FINISHED, WAITING, STOPPED = "finished", "waiting", "stopped"


@dataclass
class TickReport:
    """What one pass of the dispatcher did."""

    started_runs: list[int] = field(default_factory=list)
    finished_runs: list[int] = field(default_factory=list)
    waiting_runs: list[int] = field(default_factory=list)
    held_runs: list[int] = field(default_factory=list)  # below the privacy floor, nothing sent
    skipped_occurrences: int = 0

    def summary(self) -> str:
        """One Japanese line for the CLI."""
        return (
            f"開始 {len(self.started_runs)} 件、完了 {len(self.finished_runs)} 件、"
            f"再試行待ち {len(self.waiting_runs)} 件"
            + (f"、保留 {len(self.held_runs)} 件" if self.held_runs else "")
            + (f"、見送り {self.skipped_occurrences} 件" if self.skipped_occurrences else "")
        )


@dataclass(frozen=True)
class PreparedChunk:
    """A chunk ready to send: its frozen recipients, retry key and messages."""

    chunk_id: int
    run_id: int
    seq: int
    to: list[str]
    retry_key: str
    messages: list[dict[str, Any]]
    attempt: int
    aggregation_unit: str | None = None  # the run's LINE statistics unit (broadcast.insights)


class Dispatcher:
    """Delivers due notices through the gateway; one instance per dispatcher process."""

    def __init__(
        self,
        app: Flask,
        gateway: LineGateway | None = None,
        *,
        stop_event: threading.Event | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.app = app
        self.config = app.config
        self.db: Database = get_db(app)
        self.gateway: LineGateway = gateway or app.extensions["line"]
        self.stop_event = stop_event or threading.Event()
        self.threads = max(1, int(self.config["BROADCAST_SEND_THREADS"]))
        self.max_attempts = max(1, int(self.config["BROADCAST_MAX_ATTEMPTS"]))
        self.retry_base = float(self.config["BROADCAST_RETRY_BASE_SECONDS"])
        self.retry_max = float(self.config["BROADCAST_RETRY_MAX_SECONDS"])
        self.misfire_grace = dt.timedelta(minutes=int(self.config["BROADCAST_MISFIRE_GRACE_MINUTES"]))
        self._sleep = sleep or self._interruptible_sleep
        # After a 429 every sender waits until this moment (monotonic clock).
        self._throttle_until = 0.0
        self._throttle_lock = threading.Lock()

    # ---- the tick -----------------------------------------------------------------------------

    def send_due_broadcasts(self, now: dt.datetime | None = None, max_wait: float = 0.0) -> TickReport:
        """Start the runs that are due, then deliver every unfinished run.

        `max_wait`: how long to sleep for a chunk's backoff before leaving its run for the next tick
        (`math.inf`: until the run is finished, for `--once`).
        """
        report = TickReport()
        now = now or utcnow()
        report.started_runs = self.start_due_runs(now, report)
        for run_id in self.unfinished_runs():
            if self.stop_event.is_set():
                break
            outcome = self.process_run(run_id, max_wait)
            if outcome == FINISHED:
                report.finished_runs.append(run_id)
            elif outcome == WAITING:
                report.waiting_runs.append(run_id)
        return report

    def unfinished_runs(self) -> list[int]:
        """Runs still sending whose notice is not paused or cancelled: emergencies first, then oldest."""
        with self.db.session() as session:
            rows = session.execute(
                select(BroadcastRun.id)
                .join(Broadcast, Broadcast.id == BroadcastRun.broadcast_id)
                .where(BroadcastRun.status == SENDING, Broadcast.status == SENDING)
                .order_by(Broadcast.is_emergency.desc(), BroadcastRun.id)
            ).scalars().all()
        return list(rows)

    # ---- starting runs ------------------------------------------------------------------------

    def start_due_runs(self, now: dt.datetime, report: TickReport | None = None) -> list[int]:
        """Create a run (with all its chunks) for every notice that is due; returns the run ids."""
        with self.db.session() as session:
            due = session.scalars(
                select(Broadcast.id)
                .where(Broadcast.status == SCHEDULED, Broadcast.next_run_at <= now)
                .order_by(Broadcast.is_emergency.desc(), Broadcast.next_run_at, Broadcast.id)
            ).all()
        started = []
        for broadcast_id in due:
            if self.stop_event.is_set():
                break
            held: list[int] = []
            try:
                run_id = self.start_run(broadcast_id, now, held)
            except IntegrityError:
                # This occurrence already has a run (another dispatcher got there first).
                log.warning("run for notice %s already exists; not starting another", broadcast_id)
                continue
            if run_id is not None:
                started.append(run_id)
            elif report is not None and held:
                report.held_runs += held
            elif report is not None:
                report.skipped_occurrences += 1
        return started

    def start_run(self, broadcast_id: int, now: dt.datetime, held: list[int] | None = None) -> int | None:
        """Resolve the recipients and store every chunk in one transaction; None if nothing was started.

        A segment below the privacy floor (an empty one included) gets a held run instead, without
        chunks, whose id is appended to `held`; the schedule moves on to the next occurrence.
        """
        with self.db.session() as session:
            broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
            if broadcast is None or broadcast.status != SCHEDULED or broadcast.next_run_at is None or broadcast.next_run_at > now:
                return None
            if broadcast.approved_at is None:
                # Never sent without approval (broadcast.approval), whatever its status says.
                log.error("notice %s is scheduled but not approved; not sent", broadcast.id)
                return None
            schedule = Schedule.from_dict(broadcast.schedule)
            occurrence = broadcast.next_run_at
            if schedule.is_recurring and now - occurrence > self.misfire_grace:
                # The dispatcher was down: yesterday's reminder is not sent today.
                broadcast.next_run_at = schedule.next_after(now)
                if broadcast.next_run_at is None:
                    broadcast.status = SENT
                log.warning("notice %s: occurrence %s missed by more than the grace period; skipped", broadcast.id, occurrence.isoformat())
                return None
            run = BroadcastRun(broadcast_id=broadcast.id, occurrence_at=occurrence, status=SENDING, started_at=now)
            session.add(run)
            session.flush()
            target = target_of(session, broadcast)
            batches = resolve_batches(session, broadcast, target)
            broadcast.next_run_at = schedule.next_after(occurrence) if schedule.is_recurring else None
            # The floor is checked on exactly the list that would be sent, every occurrence.
            floor = int(self.config["SEGMENT_PRIVACY_FLOOR"])
            if is_held_by_floor(target, sum(len(batch) for _, batch in batches), floor):
                run.status = HELD
                run.note = held_note(floor)
                broadcast.status = settled_status(session, broadcast)
                log.warning("notice %s run %s held: below the privacy floor of %d; an admin must release it", broadcast.id, run.id, floor)
                if held is not None:
                    held.append(run.id)
                return None
            store_chunks(session, run, batches)
            assign_unit(session, broadcast, run, run.recipient_count, self.config, now)
            broadcast.status = SENDING
            broadcast.last_run_at = now
            record_usage(
                session, "notice_sent", None, broadcast_id=broadcast.id, run_id=run.id, recipients=run.recipient_count,
                title=broadcast.title, is_emergency=broadcast.is_emergency,
            )
            log.info("notice %s run %s started: %d recipients in %d chunks", broadcast.id, run.id, run.recipient_count, run.chunk_count)
            return run.id

    # ---- delivering a run -----------------------------------------------------------------------

    def process_run(self, run_id: int, max_wait: float = 0.0) -> str:
        """Send the run's chunks until it is finished, stopped (pause, cancel, shutdown) or only backoffs remain."""
        stalled: list[int] | None = None
        stalls = 0
        with ThreadPoolExecutor(self.threads, thread_name_prefix=f"notice-run-{run_id}") as pool:
            while True:
                if self.stop_event.is_set():
                    return STOPPED
                now = utcnow()
                with self.db.session() as session:
                    status = session.scalar(
                        select(Broadcast.status).join(BroadcastRun, BroadcastRun.broadcast_id == Broadcast.id).where(BroadcastRun.id == run_id)
                    )
                    run_status = session.scalar(select(BroadcastRun.status).where(BroadcastRun.id == run_id))
                    if status != SENDING or run_status != SENDING:
                        return STOPPED
                    ready = list(session.scalars(
                        select(BroadcastChunk.id)
                        .where(
                            BroadcastChunk.run_id == run_id,
                            BroadcastChunk.status.in_(UNFINISHED_CHUNK),
                            or_(BroadcastChunk.next_attempt_at.is_(None), BroadcastChunk.next_attempt_at <= now),
                        )
                        .order_by(BroadcastChunk.seq)
                    ).all())
                    later = session.execute(
                        select(func.count(), func.min(BroadcastChunk.next_attempt_at)).where(
                            BroadcastChunk.run_id == run_id, BroadcastChunk.status.in_(UNFINISHED_CHUNK)
                        )
                    ).one()
                if ready:
                    if ready == stalled:
                        # The same chunks again and nothing came of the last pass (the database
                        # refusing writes, say): don't spin; leave the run to a later tick.
                        stalls += 1
                        if max_wait < 1.0 or stalls > MAX_STALLS:
                            return WAITING
                        self._sleep(1.0)
                    # list() waits for the whole pass and re-raises a sender's unexpected error.
                    outcomes = list(pool.map(self.send_chunk, ready))
                    stalled = ready if all(outcome is None for outcome in outcomes) else None
                    continue
                remaining, earliest = later
                if not remaining:
                    return FINISHED if self.finish_run(run_id) else STOPPED
                wait = max(0.0, (earliest - utcnow()).total_seconds()) if earliest else 0.0
                if wait > max_wait:
                    return WAITING
                self._sleep(wait)

    def send_chunk(self, chunk_id: int) -> str | None:
        """Prepare, send and record one chunk; returns its new status (None: not sent now)."""
        if self.stop_event.is_set():
            return None
        try:
            prepared = self.prepare_chunk(chunk_id)
        except Exception:  # noqa: BLE001 - e.g. the database restarting: the chunk stays pending
            log.exception("preparing chunk %s failed", chunk_id)
            return None
        if prepared is None:
            return None
        self._wait_for_throttle()
        try:
            result = self.gateway.multicast(
                prepared.to, prepared.messages, retry_key=prepared.retry_key, aggregation_unit=prepared.aggregation_unit,
            )
        except LineError as exc:
            status = self.record_failure(prepared, exc)
            metrics.notice_chunk("failed" if status == FAILED else "retry", len(prepared.to))
            return status
        except Exception as exc:  # noqa: BLE001 - a bug or a refused message: fail the chunk, never loop on it
            log.exception("chunk %s of run %s: unexpected error from the gateway", prepared.chunk_id, prepared.run_id)
            status = self.record_failure(prepared, exc)
            metrics.notice_chunk("failed" if status == FAILED else "retry", len(prepared.to))
            return status
        self.record_sent(prepared, result.request_id, result.already_accepted)
        metrics.notice_chunk("repeat" if result.already_accepted else "sent", len(prepared.to))
        return SENT

    def prepare_chunk(self, chunk_id: int, now: dt.datetime | None = None) -> PreparedChunk | None:
        """Freeze the chunk's recipients (first attempt only) and count the attempt, committed before any call."""
        now = now or utcnow()
        with self.db.session() as session:
            chunk = session.get(BroadcastChunk, chunk_id, with_for_update=True)
            if chunk is None or chunk.status not in UNFINISHED_CHUNK:
                return None
            run = session.get(BroadcastRun, chunk.run_id)
            broadcast = session.get(Broadcast, run.broadcast_id) if run is not None else None
            if run is None or broadcast is None or run.status != SENDING or broadcast.status != SENDING:
                return None  # paused or cancelled since
            if chunk.status == PENDING:
                sent_to, resident_ids = self._still_reachable(session, chunk.recipients, broadcast.is_emergency)
                chunk.sent_to = sent_to
                chunk.skipped_count = chunk.recipient_count - len(sent_to)
                chunk.prepared_at = now
                if not sent_to:
                    chunk.status = SKIPPED
                    return None
                self._record_deliveries(session, chunk.id, resident_ids)
                chunk.status = SENDING
            elif chunk.prepared_at is not None and now - chunk.prepared_at > RETRY_KEY_LIFETIME:
                # LINE has forgotten the key: a retry might deliver a second time. Better to stop.
                chunk.status = FAILED
                chunk.last_error = "retry key expired after 23 h; outcome unknown, not resent"
                log.error("chunk %s of run %s: retry key too old, marked failed", chunk.id, run.id)
                return None
            chunk.attempts += 1
            assert chunk.sent_to is not None
            return PreparedChunk(
                chunk.id, run.id, chunk.seq, list(chunk.sent_to), chunk.retry_key,
                self._messages(session, broadcast, chunk.language), chunk.attempts, run.aggregation_unit,
            )

    def _messages(self, session: Session, broadcast: Broadcast, language: str | None) -> list[dict[str, Any]]:
        """What a chunk of this language group sends: the version in its language, else the Japanese
        text (with a note in the group's language when it has no version: broadcast.languages)."""
        versions: dict[str, list[dict[str, Any]]] = {}
        if language is not None:
            version = session.scalars(
                select(BroadcastVersion).where(BroadcastVersion.broadcast_id == broadcast.id, BroadcastVersion.language == language)
            ).first()
            if version is not None:
                versions[language] = list(version.messages)
        return messages_for(language, list(broadcast.messages), versions)

    def _still_reachable(self, session: Session, recipients: list[str], is_emergency: bool) -> tuple[list[str], list[int]]:
        """The recipients who still follow (and, for ordinary notices, still accept notices), in order."""
        condition = Resident.is_following.is_(True) if is_emergency else eligible()
        # The condition is selected, not filtered on: in WHERE, SQLite would pick the eligibility
        # index and scan every eligible resident instead of looking up these 500 by user id.
        rows = session.execute(
            select(Resident.line_user_id, Resident.id, condition.label("ok")).where(self._one_of(Resident.line_user_id, recipients))
        ).all()
        ids = {user: rid for user, rid, ok in rows if ok}
        sent_to = [user for user in recipients if user in ids]
        return sent_to, [ids[user] for user in sent_to]

    def _one_of(self, column: Any, values: list[str]) -> Any:
        """`column IN values` as ONE bound array / JSON parameter: 500 separate parameters cost
        more to compile and bind than the query costs to run."""
        if self.db.is_postgres:
            return column == any_(bindparam("values", values, type_=postgresql.ARRAY(String(64))))
        return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam("values", json.dumps(values)))))

    def _record_deliveries(self, session: Session, chunk_id: int, resident_ids: list[int]) -> None:
        """One delivery row per resident, in a single statement (executemany is a round trip per row)."""
        if self.db.is_postgres:
            stmt = text(
                "INSERT INTO broadcast_deliveries (chunk_id, resident_id) SELECT :chunk_id, unnest(CAST(:ids AS integer[]))"
            )
            session.execute(stmt, {"chunk_id": chunk_id, "ids": resident_ids})
        else:
            stmt = text("INSERT INTO broadcast_deliveries (chunk_id, resident_id) SELECT :chunk_id, value FROM json_each(:ids)")
            session.execute(stmt, {"chunk_id": chunk_id, "ids": json.dumps(resident_ids)})

    def record_sent(self, prepared: PreparedChunk, request_id: str | None, already_accepted: bool) -> None:
        """LINE accepted the chunk (now, or before a crash: 409). Recorded even if the notice was cancelled meanwhile."""
        now = utcnow()
        with self.db.session() as session:
            session.execute(
                update(BroadcastChunk)
                .where(BroadcastChunk.id == prepared.chunk_id)
                .values(
                    status=SENT,
                    sent_at=now,
                    block_window_ends_at=now + BLOCK_WINDOW,
                    request_id=(request_id or "")[:64] or None,
                    is_already_accepted=already_accepted,
                    next_attempt_at=None,
                    last_error=None,
                )
            )
        log.debug("chunk %s of run %s sent (%d recipients, request_id=%s, repeat=%s)", prepared.chunk_id, prepared.run_id, len(prepared.to), request_id, already_accepted)

    def record_failure(self, prepared: PreparedChunk, exc: Exception) -> str:
        """Schedule a retry with the same key, or give up; returns the chunk's status."""
        retryable = isinstance(exc, (LineRateLimited, LineServerError, LineTimeout))
        give_up = not retryable or prepared.attempt >= self.max_attempts
        delay = self.backoff(prepared.attempt)
        if isinstance(exc, LineRateLimited):
            self._throttle(delay)
        error = f"{type(exc).__name__}: {exc}"[:300]
        now = utcnow()
        values: dict[str, Any] = {"last_error": error}
        if give_up:
            values.update(status=FAILED, next_attempt_at=None)
        else:
            values.update(next_attempt_at=now + dt.timedelta(seconds=delay))
        with self.db.session() as session:
            # Only while still sending: a notice cancelled meanwhile keeps its chunk cancelled.
            session.execute(
                update(BroadcastChunk).where(BroadcastChunk.id == prepared.chunk_id, BroadcastChunk.status == SENDING).values(**values)
            )
        status = getattr(exc, "status", None)
        request_id = getattr(exc, "request_id", None)
        if give_up:
            log.error("chunk %s of run %s failed after %d attempt(s): status=%s request_id=%s %s", prepared.chunk_id, prepared.run_id, prepared.attempt, status, request_id, type(exc).__name__)
            return FAILED
        log.warning("chunk %s of run %s: %s (status=%s request_id=%s), retry %d in %.1fs with the same key", prepared.chunk_id, prepared.run_id, type(exc).__name__, status, request_id, prepared.attempt + 1, delay)
        return SENDING

    def finish_run(self, run_id: int) -> bool:
        """Mark the run sent and move the notice on (scheduled again, or sent); records `notice_delivered`."""
        now = utcnow()
        with self.db.session() as session:
            broadcast_id = session.scalar(select(BroadcastRun.broadcast_id).where(BroadcastRun.id == run_id))
            # The notice first, then the run: the order cancel_broadcast takes them in (no deadlock).
            broadcast = session.get(Broadcast, broadcast_id, with_for_update=True) if broadcast_id else None
            run = session.get(BroadcastRun, run_id, with_for_update=True)
            if run is None or broadcast is None or run.status != SENDING:
                return False
            counts = run_counts(session, [run.id])[run.id]
            run.status = SENT
            run.finished_at = now
            if broadcast.status == SENDING:
                # Another run may still be sending (an occurrence an admin released meanwhile).
                broadcast.status = settled_status(session, broadcast)
            record_usage(session, "notice_delivered", None, broadcast_id=broadcast.id, run_id=run.id, count=counts.delivered)
        log.info(
            "notice %s run %s finished: %d delivered, %d skipped, %d failed",
            run.broadcast_id, run.id, counts.delivered, counts.skipped, counts.failed,
        )
        return True

    # ---- backoff ------------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt + 1: doubling from the base, capped, with jitter so senders spread out."""
        delay = min(self.retry_max, self.retry_base * 2.0 ** max(0, attempt - 1))
        return delay * (0.75 + random.random() * 0.5)

    def _throttle(self, delay: float) -> None:
        with self._throttle_lock:
            self._throttle_until = max(self._throttle_until, time.monotonic() + delay)

    def _wait_for_throttle(self) -> None:
        """After a 429 nobody calls LINE until the backoff has passed."""
        while not self.stop_event.is_set():
            with self._throttle_lock:
                remaining = self._throttle_until - time.monotonic()
            if remaining <= 0:
                return
            self._sleep(remaining)

    def _interruptible_sleep(self, seconds: float) -> None:
        self.stop_event.wait(max(0.0, seconds))


def send_due_broadcasts(app: Flask, now: dt.datetime | None = None, wait: bool = False) -> TickReport:
    """One pass of the dispatcher (the caller holds the dispatcher lock); `wait`: finish every run, backoffs included."""
    return Dispatcher(app).send_due_broadcasts(now, max_wait=math.inf if wait else 0.0)


__all__ = ["CHUNK_SIZE", "Dispatcher", "TickReport", "send_due_broadcasts"]
