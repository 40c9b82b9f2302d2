"""The event inbox: store webhook events, then claim and process them in background threads.

The database is the queue. The webhook inserts events (deduplicated by webhookEventId) and
returns; worker threads in every web process claim pending rows with a lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers), run the handler and
commit its database work together with the messages to send, then send them. A process that
dies leaves its rows leased; when the lease expires another worker claims them again and,
because the handler's work was committed with `is_handled`, only the sending is repeated:
a reply while the reply token is still fresh, otherwise a push whose retry key is derived
from the event id, so LINE never delivers it twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from bot import metrics
from bot.db import Database, get_db, utcnow
from bot.line import LineError, LineGateway, LineRejected, LineTimeout
from handlers.context import EventContext, preload
from handlers.models import DONE, FAILED, PENDING, PROCESSING, InboxEvent
from handlers.owner import Owner, is_dead

log = logging.getLogger(__name__)
# Handler work per write transaction: on SQLite the webhook's inserts wait this long at most.
TXN_BUDGET_SECONDS = 0.02
RETRY_KEY_NAMESPACE = uuid.UUID("6f1c1f55-8a4e-4d8e-9a55-3c2b8f6b8a10")
Handler = Callable[[EventContext], None]
Preparer = Callable[[dict[str, Any], Session, Any], Any]
BatchPreparer = Callable[[list[dict[str, Any]], Session, Any], None]


@dataclass(frozen=True)
class IncomingEvent:
    """A structurally valid webhook event ready to store."""

    key: str
    event_type: str
    timestamp_ms: int
    payload: dict[str, Any]


def dedupe_key(event: dict[str, Any]) -> str:
    """LINE's webhookEventId (validated at the edge: never longer than the column), or a hash of the event without its delivery context."""
    event_id = event.get("webhookEventId")
    if isinstance(event_id, str) and event_id:
        return event_id
    body = {k: v for k, v in event.items() if k != "deliveryContext"}
    return "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """Store events already claimed by this process (it runs workers): no claim round-trip, no polling."""

    token: str
    owner: str
    lease_seconds: float


def store_events(db: Database, events: Sequence[IncomingEvent], claim: Claim | None = None) -> dict[str, int]:
    """Insert events not seen before in one transaction; returns {key: row id} of the new ones.

    With `claim`, new rows are stored as claimed by it. Core, not the ORM: this runs for every
    webhook request.
    """
    if not events:
        return {}
    now = utcnow()
    claimed = {}
    if claim is not None:
        claimed = {"status": PROCESSING, "claim_token": claim.token, "claim_owner": claim.owner, "attempts": 1,
                   "lease_until": now + dt.timedelta(seconds=claim.lease_seconds)}
    rows = [
        {
            "webhook_event_id": e.key,
            "event_type": e.event_type[:64],
            "event_timestamp_ms": e.timestamp_ms,
            "payload": e.payload,
            "received_at": now,
            "status": PENDING,
            "attempts": 0,
            "is_handled": False,
            "is_reply_uncertain": False,
            "lease_until": None,
            "claim_token": None,
            "claim_owner": None,
            **claimed,
        }
        for e in events
    ]
    dialect_insert = postgresql.insert if db.is_postgres else sqlite.insert
    stmt = dialect_insert(InboxEvent).on_conflict_do_nothing(index_elements=["webhook_event_id"])
    stmt = stmt.returning(InboxEvent.webhook_event_id, InboxEvent.id)
    with db.write_connection() as conn:
        return {key: row_id for key, row_id in conn.execute(stmt, rows).all()}


def _is_transient(exc: BaseException) -> bool:
    """A failure of the database itself (down, locked, timed out), not of the data stored."""
    return isinstance(exc, (OperationalError, InterfaceError, TimeoutError))


@dataclass
class _StoreRequest:
    events: Sequence[IncomingEvent]
    done: threading.Event = field(default_factory=threading.Event)
    new: int = 0
    error: BaseException | None = None


class InboxWriter:
    """Group commit of webhook events: the requests waiting in this process share one transaction.

    A request hands its events to the writer thread and waits until they are committed (LINE
    gets its 200 only then). While one transaction commits, the next requests queue up and go
    together into the next: under load one write transaction stores many events, so the write
    lock (SQLite has one) is taken far less often than once per request.

    One bad event never fails the others: if a group's insert fails for a reason other than the
    database itself, each request, then each event, is stored on its own, and an event that
    still cannot be stored is skipped with a logged reason. New events are stored claimed by
    `claim_for()` (None: unclaimed) and handed to `on_stored` before the request is answered.
    """

    def __init__(self, db: Database, timeout: float = 25.0,
                 claim_for: Callable[[], Claim | None] = lambda: None,
                 on_stored: Callable[[list[ClaimedEvent]], None] = lambda rows: None) -> None:
        self.db = db
        self.timeout = timeout
        self.claim_for = claim_for
        self.on_stored = on_stored
        self._cond = threading.Condition()
        self._queue: list[_StoreRequest] = []
        self._pid: int | None = None

    def store(self, events: Sequence[IncomingEvent]) -> int:
        """Store the events (deduplicated); returns how many were new. Raises what the insert raised."""
        if not events:
            return 0
        request = _StoreRequest(events)
        with self._cond:
            if self._pid != os.getpid():  # first use in this process (or after a fork)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="inbox-writer", daemon=True).start()
            self._queue.append(request)
            self._cond.notify()
        if not request.done.wait(self.timeout):
            # The writer may still commit them; LINE then redelivers and the copy is a duplicate.
            raise TimeoutError("inbox writer did not answer in time")
        if request.error is not None:
            raise request.error
        return request.new

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                batch, self._queue = self._queue, []
            try:
                self._store(batch)
            except BaseException as exc:  # noqa: BLE001 - never leave a request waiting
                log.exception("inbox writer failed")
                for r in batch:
                    if not r.done.is_set():
                        r.error = exc
                        r.done.set()

    def _store(self, batch: list[_StoreRequest]) -> None:
        """Store the requests' events together; on a data error, request by request, then event by event."""
        events = [e for r in batch for e in r.events]
        claim = self.claim_for()
        try:
            new_ids = store_events(self.db, events, claim)
        except BaseException as exc:  # noqa: BLE001 - answered below: 503 or isolation
            if _is_transient(exc) or (len(batch) == 1 and len(events) == 1):
                if not _is_transient(exc):
                    log.warning("webhook event could not be stored, skipped: %s", type(exc).__name__)
                    exc = None
                for r in batch:
                    r.error = exc
                    r.done.set()
                return
            if len(batch) > 1:
                for r in batch:
                    self._store([r])
                return
            request = batch[0]
            for e in request.events:
                single = _StoreRequest([e])
                self._store([single])
                request.new += single.new
                if single.error is not None:
                    request.error = single.error
            request.done.set()
            return
        now = utcnow()
        stored: list[ClaimedEvent] = []
        for r in batch:
            for e in r.events:
                row_id = new_ids.pop(e.key, None)  # a key twice in the batch: the first is the new one
                if row_id is not None:
                    r.new += 1
                    if claim is not None:
                        stored.append(ClaimedEvent(row_id, claim.token, e.key, e.event_type, e.timestamp_ms, e.payload,
                                                   now, False, None, False))
        if stored:
            self.on_stored(stored)
        for r in batch:
            r.done.set()


def claim_events(db: Database, limit: int, lease_seconds: float, owner: str | None = None) -> list[tuple[int, str]]:
    """Lease up to `limit` claimable events to this worker; returns (id, claim token) pairs."""
    now = utcnow()
    token = uuid.uuid4().hex
    is_claimable = or_(
        and_(InboxEvent.status == PENDING, or_(InboxEvent.lease_until.is_(None), InboxEvent.lease_until < now)),
        and_(InboxEvent.status == PROCESSING, InboxEvent.lease_until < now),
    )
    # Look before taking the write lock: most wake-ups find nothing (another worker was faster).
    with db.read_session() as session:
        if session.execute(select(InboxEvent.id).where(is_claimable).limit(1)).first() is None:
            return []
    claimable = (
        select(InboxEvent.id)
        .where(is_claimable)
        .order_by(InboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer at a time anyway
        .scalar_subquery()
    )
    stmt = (
        update(InboxEvent)
        .where(InboxEvent.id.in_(claimable))
        .values(
            status=PROCESSING,
            claim_token=token,
            claim_owner=owner,
            attempts=InboxEvent.attempts + 1,
            lease_until=now + dt.timedelta(seconds=lease_seconds),
        )
        .returning(InboxEvent.id)
        .execution_options(synchronize_session=False)
    )
    with db.write_connection() as conn:
        ids = sorted(conn.execute(stmt).scalars().all())
    return [(i, token) for i in ids]


def push_retry_key(webhook_event_id: str) -> str:
    """The retry key of the push that stands in for an expired reply: stable per event."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, webhook_event_id))


@dataclass
class ClaimedEvent:
    """A leased inbox row as the processor needs it (plain data, no ORM session attached)."""

    id: int
    token: str
    webhook_event_id: str
    event_type: str
    event_timestamp_ms: int
    payload: dict[str, Any]
    received_at: dt.datetime
    is_handled: bool
    outgoing: list[Any] | None
    is_reply_uncertain: bool


_CLAIMED_COLUMNS = (
    InboxEvent.id, InboxEvent.claim_token, InboxEvent.webhook_event_id, InboxEvent.event_type,
    InboxEvent.event_timestamp_ms, InboxEvent.payload, InboxEvent.received_at, InboxEvent.is_handled,
    InboxEvent.outgoing, InboxEvent.is_reply_uncertain, InboxEvent.status,
)
_MARK_HANDLED = (
    update(InboxEvent.__table__)
    .where(InboxEvent.__table__.c.id == bindparam("b_id"))
    .values(is_handled=True, outgoing=bindparam("b_outgoing"))
)


def _load_claimed(session: Session, claimed: Sequence[tuple[int, str]]) -> list[ClaimedEvent]:
    """The claimed rows still held by their claim token, in claim order, read in one query."""
    tokens = dict(claimed)
    rows = session.execute(select(*_CLAIMED_COLUMNS).where(InboxEvent.id.in_(list(tokens)))).all()
    loaded = {
        r.id: ClaimedEvent(r.id, r.claim_token, r.webhook_event_id, r.event_type, r.event_timestamp_ms or 0,
                           r.payload, r.received_at, bool(r.is_handled), r.outgoing, bool(r.is_reply_uncertain))
        for r in rows
        if r.claim_token == tokens[r.id] and r.status == PROCESSING
    }
    return [loaded[i] for i, _ in claimed if i in loaded]


class EventProcessor:
    """Runs claimed events: handler (once), then delivery of its messages."""

    def __init__(self, app: Flask, gateway: LineGateway, dispatch: Callable[[str], Handler],
                 prepare: Callable[[str], Preparer | None] = lambda event_type: None,
                 prepare_batch: BatchPreparer | None = None) -> None:
        self.app = app
        self.db = get_db(app)
        self.gateway = gateway
        self.dispatch = dispatch
        self.prepare = prepare
        self.prepare_batch = prepare_batch
        self.config = app.config
        # Told when a failed event becomes due again (seconds from now), so a worker wakes for it.
        self.retry_due: Callable[[float], None] = lambda seconds: None

    def load(self, claimed: Sequence[tuple[int, str]]) -> list[ClaimedEvent]:
        """The rows of events claimed from the database (still held by their claim)."""
        if not claimed:
            return []
        with self.db.read_session() as session:
            return _load_claimed(session, claimed)

    def process_batch(self, rows: Sequence[ClaimedEvent]) -> None:
        """Process claimed events: prepare (read-only), handlers in few write transactions, delivery, finish.

        On SQLite every write transaction queues for the one write lock, so handlers of many events
        share one transaction, and a transaction ends after TXN_BUDGET_SECONDS of handler work so
        the webhook's inserts never wait long for the lock. If a handler fails, the transaction is
        run again with a savepoint per event: one event failing rolls back only its own work.
        Every step isolates events: a failure is recorded against its own event only.
        """
        if not rows:
            return
        prepared, failed = self._prepare(rows)
        for row, exc in failed:
            self._record_failure(row.id, row.token, exc)
        pending = [row for row in rows if row.id in prepared]
        while pending:
            try:
                try:
                    handled, failures, rest = self._run_handlers(pending, prepared, isolate=False)
                except Exception:  # noqa: BLE001 - some handler failed: again, each in a savepoint
                    handled, failures, rest = self._run_handlers(pending, prepared, isolate=True)
            except Exception as exc:  # noqa: BLE001 - the transaction failed: retry its events later
                for row in pending:
                    self._record_failure(row.id, row.token, exc)
                return
            pending = rest
            for row, exc in failures:
                self._record_failure(row.id, row.token, exc)
            done: list[tuple[int, str]] = []
            received: list[dt.datetime] = []
            for row in handled:
                try:
                    self._deliver(row)
                    done.append((row.id, row.token))
                    received.append(row.received_at)
                except Exception as exc:  # noqa: BLE001 - one event failing must not fail the others
                    self._record_failure(row.id, row.token, exc)
            try:
                self._finish_many(done)
                now = utcnow()
                metrics.events_done((now - at).total_seconds() for at in received if at is not None)
            except Exception as exc:  # noqa: BLE001 - sent but not marked: the claim expires, sending is idempotent
                log.error("delivered events could not be marked done: %s", type(exc).__name__)

    def _prepare(
        self, rows: Sequence[ClaimedEvent]
    ) -> tuple[dict[int, Any], list[tuple[ClaimedEvent, Exception]]]:
        """Run the rows' preparers in one read-only session (no write lock held meanwhile)."""
        prepared: dict[int, Any] = {}
        failed: list[tuple[ClaimedEvent, Exception]] = []
        with self.db.read_session() as session:
            if self.prepare_batch is not None:
                try:
                    self.prepare_batch([row.payload for row in rows if not row.is_handled], session, self.config)
                except Exception:  # noqa: BLE001 - only a speed-up: the preparers still run one by one
                    log.exception("batch preparation failed; preparing events one by one")
                    session.rollback()  # PostgreSQL refuses further statements in a failed transaction
            for row in rows:
                preparer = None if row.is_handled else self.prepare(row.event_type)
                try:
                    prepared[row.id] = preparer(row.payload, session, self.config) if preparer else None
                except Exception as exc:  # noqa: BLE001 - a failing preparer fails only its event
                    failed.append((row, exc))
                    session.rollback()  # read-only: nothing lost, and the next event gets a usable session
        return prepared, failed

    def _run_handlers(
        self, rows: Sequence[ClaimedEvent], prepared: dict[int, Any], isolate: bool = True
    ) -> tuple[list[ClaimedEvent], list[tuple[ClaimedEvent, Exception]], list[ClaimedEvent]]:
        """Run handlers (once: not again if a previous attempt committed its work) in one transaction.

        With `isolate`, each handler runs in a savepoint and a failure is returned with its event;
        without, the first failure rolls the whole transaction back and is raised (the fast path:
        no savepoints, and the ORM writes the batch's rows together at commit).
        Returns the handled rows, the failures, and the rows left for the next transaction
        because this one used up its time budget.
        """
        handled: list[ClaimedEvent] = []
        failures: list[tuple[ClaimedEvent, Exception]] = []
        if not rows:
            return handled, failures, []
        with self.db.session() as session:
            deadline = time.monotonic() + TXN_BUDGET_SECONDS
            # Re-read under the write lock: still ours, and handled by an earlier attempt or not.
            current = {row.id: row for row in _load_claimed(session, [(r.id, r.token) for r in rows])}
            try:
                with session.begin_nested():
                    preload(session, [row.payload for row in current.values() if not row.is_handled])
            except Exception:  # noqa: BLE001 - only a speed-up: each handler looks up its own sender
                log.warning("preloading the batch's senders failed; handlers look them up one by one", exc_info=True)
            marks: list[dict[str, Any]] = []
            left: list[ClaimedEvent] = []
            for index, row in enumerate(rows):
                if index and time.monotonic() > deadline:  # at least one event per transaction
                    left = list(rows[index:])
                    break
                now = current.get(row.id)
                if now is None:
                    continue  # someone else holds it now
                if not now.is_handled:
                    ctx = EventContext(
                        event=now.payload,
                        session=session,
                        config=self.config,
                        webhook_event_id=now.webhook_event_id,
                        received_at=now.received_at,
                        prepared=prepared.get(row.id),
                    )
                    handler = self.dispatch(now.event_type)
                    if isolate:
                        try:
                            with session.begin_nested():
                                handler(ctx)
                                # Marked inside the savepoint: an unstorable outgoing fails only this event.
                                session.execute(_MARK_HANDLED, [{"b_id": now.id, "b_outgoing": ctx.outgoing}])
                        except Exception as exc:  # noqa: BLE001 - rolled back to the savepoint
                            failures.append((now, exc))
                            continue
                    else:
                        handler(ctx)
                        marks.append({"b_id": now.id, "b_outgoing": ctx.outgoing})
                    now.is_handled, now.outgoing = True, ctx.outgoing
                handled.append(now)
            if marks:
                session.execute(_MARK_HANDLED, marks)
        return handled, failures, left

    def _deliver(self, row: ClaimedEvent) -> None:
        """Send the handler's messages: reply while the token is fresh, else push with a retry key."""
        messages = row.outgoing or []
        if not messages:
            return
        event = row.payload
        reply_token = event.get("replyToken")
        source = event.get("source") or {}
        chat_id = source.get("userId") or source.get("groupId") or source.get("roomId")
        age = time.time() - (row.event_timestamp_ms or 0) / 1000.0
        fresh = age < float(self.config["REPLY_TOKEN_TTL_SECONDS"])
        for start in range(0, len(messages), 5):
            batch = messages[start : start + 5]
            first = start == 0
            if first and reply_token and (fresh or row.is_reply_uncertain):
                try:
                    self.gateway.reply(reply_token, batch)
                    continue
                except LineTimeout:
                    self._mark_reply_uncertain(row.id)
                    raise
                except LineRejected as exc:
                    if row.is_reply_uncertain:
                        # An earlier reply may have landed; pushing could say it twice.
                        log.warning("reply outcome unknown, not pushing: event=%s %s", row.id, exc)
                        return
                    log.info("reply rejected, pushing instead: event=%s %s", row.id, exc)
            if not chat_id:
                log.warning("no chat to push to: event=%s type=%s", row.id, row.event_type)
                return
            self.gateway.push(chat_id, batch, retry_key=push_retry_key(f"{row.webhook_event_id}:{start}"))

    def _mark_reply_uncertain(self, event_id: int) -> None:
        with self.db.write_connection() as conn:
            conn.execute(update(InboxEvent).where(InboxEvent.id == event_id).values(is_reply_uncertain=True))

    def _finish_many(self, done: list[tuple[int, str]]) -> None:
        """Mark delivered events done, in one statement per claim token."""
        by_token: dict[str, list[int]] = {}
        for event_id, token in done:
            by_token.setdefault(token, []).append(event_id)
        if not by_token:
            return
        with self.db.write_connection() as conn:
            for token, ids in by_token.items():
                conn.execute(
                    update(InboxEvent)
                    .where(InboxEvent.id.in_(ids), InboxEvent.claim_token == token)
                    .values(status=DONE, processed_at=utcnow(), lease_until=None, last_error=None)
                )

    def _record_failure(self, event_id: int, token: str, exc: Exception) -> None:
        """Put the event back with a backoff, or give up after the configured attempts (never raises)."""
        try:
            self._put_back(event_id, token, exc)
        except Exception:  # noqa: BLE001 - the claim then expires and the event is tried again
            log.exception("could not record the failure of event %s", event_id)

    def _put_back(self, event_id: int, token: str, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}" if isinstance(exc, LineError) else type(exc).__name__
        with self.db.session() as session:
            row = session.get(InboxEvent, event_id)
            if row is None or row.claim_token != token:
                return
            if row.attempts >= int(self.config["INBOX_MAX_ATTEMPTS"]):
                row.status, row.lease_until, row.processed_at = FAILED, None, utcnow()
                log.error("event gave up after %d attempts: event=%s type=%s error=%s", row.attempts, row.id, row.event_type, error)
            else:
                row.status = PENDING
                backoff = min(60.0, 2.0**row.attempts)
                row.lease_until = utcnow() + dt.timedelta(seconds=backoff)
                self.retry_due(backoff)
                log.warning("event failed, will retry: event=%s type=%s attempt=%d error=%s", row.id, row.event_type, row.attempts, error, exc_info=not isinstance(exc, LineError))
            row.last_error = error[:500]


class InboxWorkers:
    """Background threads in this process that process stored events.

    Events this process stores are claimed in the same insert and handed to its threads in
    memory: no claim round-trip and no polling. The threads also sweep the database now and
    then (INBOX_POLL_SECONDS, or sooner when a failed event is due again) for events nobody
    holds: retries, events of a process without workers, claims whose lease ran out, and claims
    of processes on this host that died (taken back at once at start and at every sweep).

    Backpressure: a webhook request waits (at most INBOX_ACK_MAX_WAIT_SECONDS, after its events
    are committed) while more than INBOX_BACKLOG_LIMIT events wait here, so that under a flood
    acknowledging does not starve answering.
    """

    def __init__(self, app: Flask, processor: EventProcessor) -> None:
        self.app = app
        self.processor = processor
        self.db = get_db(app)
        self.owner = Owner(app.config.get("INSTANCE_HOST_ID"))
        self.writer = InboxWriter(self.db, claim_for=self._claim_for_insert, on_stored=self._enqueue)
        processor.retry_due = self._retry_due
        self._mutex = threading.Lock()
        self._work = threading.Condition(self._mutex)  # workers wait here for events
        self._room = threading.Condition(self._mutex)  # webhook requests wait here for room
        self._queue: deque[ClaimedEvent] = deque()
        self._busy = 0  # events taken by a thread and not finished
        self._next_sweep = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def thread_count(self) -> int:
        return int(self.app.config["INBOX_WORKER_THREADS"])

    def start(self) -> None:
        """Start the threads once per process (safe to call repeatedly, and after fork)."""
        with self._lock:
            if self._pid == os.getpid() and self._threads:
                return
            if self._pid not in (None, os.getpid()):  # forked: the parent's queue is not ours to process
                with self._mutex:
                    self._queue.clear()
                    self._busy = 0
            self._pid = os.getpid()
            self._stop.clear()
            self.owner.alive(True)
            with self._mutex:
                self._next_sweep = 0.0  # sweep at once: take back what dead processes held
            self._threads = [
                threading.Thread(target=self._run, name=f"inbox-{i}", daemon=True) for i in range(self.thread_count)
            ]
            for thread in self._threads:
                thread.start()

    def notify(self) -> None:
        """New events were stored: make sure the threads run (they were handed the events)."""
        if self._pid != os.getpid() or not self._threads:
            self.start()
        with self._mutex:
            self._work.notify()

    def wait_for_room(self) -> None:
        """Hold a webhook request while this process's backlog is over the limit (bounded wait)."""
        limit = int(self.app.config["INBOX_BACKLOG_LIMIT"])
        if limit <= 0 or not self._threads:
            return
        deadline = time.monotonic() + float(self.app.config["INBOX_ACK_MAX_WAIT_SECONDS"])
        with self._mutex:
            while len(self._queue) + self._busy > limit and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._room.wait(remaining)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads (tests, shutdown). Events still queued stay claimed and are taken back later."""
        self._stop.set()
        with self._mutex:
            self._work.notify_all()
            self._room.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        self.owner.alive(False)  # only now: a batch still running here must not be taken back meanwhile

    def run_once(self, limit: int = 16) -> int:
        """Take back dead processes' claims, claim one batch and process it in the calling thread."""
        reclaim_dead_claims(self.db, self.owner.host)
        claimed = claim_events(self.db, limit, float(self.app.config["INBOX_LEASE_SECONDS"]), str(self.owner))
        self.processor.process_batch(self.processor.load(claimed))
        return len(claimed)

    def _claim_for_insert(self) -> Claim | None:
        if self.thread_count <= 0 or self._stop.is_set():
            return None  # nobody here to process them: stored unclaimed for any worker to take
        self.owner.alive(True)  # before the claim is visible: a neighbour's sweep must not take it back
        return Claim(uuid.uuid4().hex, str(self.owner), float(self.app.config["INBOX_LEASE_SECONDS"]))

    def _enqueue(self, rows: list[ClaimedEvent]) -> None:
        with self._mutex:
            self._queue.extend(rows)
            self._work.notify()

    def _retry_due(self, seconds: float) -> None:
        with self._mutex:
            self._next_sweep = min(self._next_sweep, time.monotonic() + seconds + 0.01)

    def _take(self, limit: int) -> list[ClaimedEvent] | None:
        """Events handed to this process, or None when it is time to sweep the database; waits otherwise."""
        with self._mutex:
            while not self._stop.is_set():
                if self._queue:
                    batch = [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]
                    self._busy += len(batch)
                    return batch
                now = time.monotonic()
                if now >= self._next_sweep:
                    self._next_sweep = now + float(self.app.config["INBOX_POLL_SECONDS"])
                    return None
                self._work.wait(self._next_sweep - now)
            return []

    def _run(self) -> None:
        limit = int(self.app.config["INBOX_BATCH_SIZE"])
        while not self._stop.is_set():
            batch = self._take(limit)
            if batch is None:
                try:
                    if self.run_once(limit) == limit:
                        self._retry_due(0.0)  # more may be waiting
                except Exception:  # noqa: BLE001 - e.g. the database restarting: keep the thread alive
                    log.exception("inbox worker sweep failed; retrying in 1 s")
                    self._retry_due(1.0)  # e.g. a neighbour held the SQLite write lock: not a whole poll interval
                continue
            try:
                self.processor.process_batch(batch)
            except Exception:  # noqa: BLE001 - the events' claims expire and they are tried again
                log.exception("inbox worker batch failed; its events will be retried")
            finally:
                with self._mutex:
                    self._busy -= len(batch)
                    self._room.notify_all()


def reclaim_dead_claims(db: Database, host: str | None = None) -> int:
    """End at once the claims held by processes of this host (INSTANCE_HOST_ID) that are gone; returns how many events."""
    now = utcnow()
    with db.read_session() as session:
        owners = session.scalars(
            select(InboxEvent.claim_owner).distinct().where(
                InboxEvent.status == PROCESSING, InboxEvent.lease_until > now,
                InboxEvent.claim_owner.like(Owner(host).host_prefix() + "%"),
            )
        ).all()
    dead = [o for o in owners if is_dead(o, host)]
    if not dead:
        return 0
    with db.write_connection() as conn:
        result = conn.execute(
            update(InboxEvent)
            .where(InboxEvent.status == PROCESSING, InboxEvent.claim_owner.in_(dead))
            .values(lease_until=now)
        )
    count = int(result.rowcount or 0)
    log.warning("took back %d event(s) held by %d process(es) of this host that died", count, len(dead))
    return count


def backlog_gauges(app: Flask) -> list[metrics.Gauge]:
    """The inbox as /metrics shows it, read from the database (the same for every process and host)."""
    now = utcnow()
    with get_db(app).read_session() as session:
        counts = dict(session.execute(
            select(InboxEvent.status, func.count()).where(InboxEvent.status.in_([PENDING, PROCESSING])).group_by(InboxEvent.status)
        ).all())
        oldest = session.scalar(select(func.min(InboxEvent.received_at)).where(InboxEvent.status.in_([PENDING, PROCESSING])))
    backlog = "Webhook events stored and not yet answered: pending (waiting or backing off) and processing (claimed)"
    return [
        metrics.Gauge("inbox_backlog_events", backlog, float(counts.get(PENDING, 0)), (("status", "pending"),)),
        metrics.Gauge("inbox_backlog_events", backlog, float(counts.get(PROCESSING, 0)), (("status", "processing"),)),
        metrics.Gauge("inbox_oldest_pending_age_seconds", "Age of the oldest webhook event not yet answered (0 when none)",
                      max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0),
    ]


def purge_processed_events(app: Flask, now: dt.datetime | None = None) -> int:
    """Delete processed (done or failed) inbox rows older than INBOX_RETENTION_DAYS: they hold residents' texts."""
    days = int(app.config["INBOX_RETENTION_DAYS"])
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    with get_db(app).write_connection() as conn:
        result = conn.execute(
            delete(InboxEvent).where(InboxEvent.status.in_([DONE, FAILED]), InboxEvent.received_at < cutoff)
        )
    deleted = int(result.rowcount or 0)
    if deleted:
        log.info("inbox retention: %d processed event(s) deleted", deleted)
    return deleted
