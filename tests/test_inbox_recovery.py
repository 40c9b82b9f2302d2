"""The inbox under poison, crash and overload: a bad event fails only itself, a dead process's
claims are taken back at once, answering wakes when events arrive, and a flood is slowed, not lost."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from typing import Any

from sqlalchemy import select

from bot.db import get_db
from handlers import inbox as inbox_module
from handlers.inbox import Claim, IncomingEvent, dedupe_key, store_events
from handlers.models import DONE, FAILED, PROCESSING, InboxEvent
from handlers.owner import Owner, is_dead
from tests.conftest import signed_post, wait_until


def _incoming(event: dict[str, Any]) -> IncomingEvent:
    return IncomingEvent(dedupe_key(event), event["type"], event["timestamp"], event)


def _statuses(app: Any) -> dict[str, str]:
    with get_db(app).session() as s:
        return dict(s.execute(select(InboxEvent.webhook_event_id, InboxEvent.status)).all())


def _users(n: int) -> list[str]:
    return ["U" + uuid.uuid4().hex for _ in range(n)]


# --- poison -----------------------------------------------------------------------------------


def test_poison_rows_already_in_the_inbox_fail_only_themselves(make_app, fake_line) -> None:
    # Rows stored before validation existed (or by an older version): senders no handler can use.
    app = make_app(INBOX_MAX_ATTEMPTS=1, INBOX_WORKER_THREADS=0)
    good_users = _users(6)
    good = [fake_line.text_event(u, "住民票の写しがほしい") for u in good_users]
    poison = []
    for user_id in ({"a": 1}, [], ["U" + "0" * 32], 12345):
        event = fake_line.text_event("U" + "9" * 32, "こんにちは")
        event["source"]["userId"] = user_id
        poison.append(event)
    mixed = good[:3] + poison + good[3:]  # one batch: poison in the middle of good events
    store_events(get_db(app), [_incoming(e) for e in mixed])

    worker = make_app(empty=False, INBOX_MAX_ATTEMPTS=1, INBOX_BATCH_SIZE=16)
    worker.extensions["inbox"].start()
    for user in good_users:
        fake_line.wait_for_delivery(user, 1, timeout=10)
    status = {}
    wait_until(lambda: status.update(_statuses(worker)) or all(v in (DONE, FAILED) for v in status.values()), 10)
    assert [status[e["webhookEventId"]] for e in good] == [DONE] * len(good)
    assert {d.kind for d in fake_line.deliveries} == {"reply"}


def test_an_unstorable_event_in_a_group_commit_fails_only_itself(app) -> None:
    writer = app.extensions["inbox"].writer
    results: dict[int, Any] = {}
    good_keys = [f"GOOD{i:03d}" for i in range(20)]

    def event(key: str, timestamp: int = 1) -> IncomingEvent:
        payload = {"type": "follow", "timestamp": 1, "webhookEventId": key,
                   "source": {"type": "user", "userId": "U" + uuid.uuid4().hex}}
        return IncomingEvent(key, "follow", timestamp, payload)

    def send(i: int) -> None:
        events = [event(good_keys[i])]
        if i % 5 == 0:  # every fifth request also carries an event no database can store
            events.append(event(f"BAD{i:03d}", timestamp=2**63))
        try:
            results[i] = writer.store(events)
        except Exception as exc:  # noqa: BLE001 - recorded, asserted below
            results[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: 1 for i in range(20)}, "every good event stored and counted, no request failed"
    stored = set(_statuses(app))
    assert set(good_keys) <= stored and not any(k.startswith("BAD") for k in stored)


# --- crash ------------------------------------------------------------------------------------


def test_owner_liveness() -> None:
    me = Owner()
    me.alive(True)
    try:
        assert not is_dead(str(me))
    finally:
        me.alive(False)
    assert is_dead(str(me)), "an app instance of this process that stopped"
    gone = subprocess.Popen(["true"])
    gone.wait()
    host, boot, _pid, _start, instance = str(Owner()).split("/")
    assert is_dead(f"{host}/{boot}/{gone.pid}/1/{instance}"), "a process that exited"
    assert not is_dead(f"another-host/{boot}/{gone.pid}/1/{instance}"), "other hosts wait for the lease"
    assert not is_dead("garbage") and not is_dead(None)
    assert is_dead(f"{host}/00000000-0000-0000-0000-000000000000/1/1/{instance}"), "claimed before a reboot"


def test_claims_of_a_dead_process_are_answered_by_reply_at_once_after_restart(make_app, fake_line) -> None:
    app = make_app(INBOX_WORKER_THREADS=0, INBOX_LEASE_SECONDS=60.0)
    users = _users(5)
    events = [fake_line.text_event(u, "こんにちは") for u in users]
    dead = Owner()  # never started: a process that was killed while holding these events
    store_events(get_db(app), [_incoming(e) for e in events], Claim("dead-token", str(dead), 60.0))
    assert set(_statuses(app).values()) == {PROCESSING}

    restarted = make_app(empty=False, INBOX_POLL_SECONDS=30.0, INBOX_LEASE_SECONDS=60.0)
    started = time.monotonic()
    restarted.extensions["inbox"].start()
    for user in users:
        fake_line.wait_for_delivery(user, 1, timeout=10)
    assert time.monotonic() - started < 5, "taken back at start, not after the 60 s lease"
    assert [d.kind for d in fake_line.deliveries] == ["reply"] * len(users)
    wait_until(lambda: set(_statuses(restarted).values()) == {DONE}, 5, "all done")


def test_claims_of_a_live_process_are_left_to_it(make_app, fake_line) -> None:
    app = make_app(INBOX_WORKER_THREADS=0)
    alive = Owner()
    alive.alive(True)
    try:
        event = fake_line.text_event("U" + uuid.uuid4().hex, "こんにちは")
        store_events(get_db(app), [_incoming(event)], Claim("live-token", str(alive), 60.0))
        other = make_app(empty=False, INBOX_POLL_SECONDS=0.05)
        other.extensions["inbox"].start()
        time.sleep(0.5)
        assert _statuses(other) == {event["webhookEventId"]: PROCESSING}
        assert fake_line.deliveries == []
    finally:
        alive.alive(False)


# --- no idle cost ------------------------------------------------------------------------------


def test_idle_workers_do_not_poll_and_wake_when_an_event_arrives(make_app, fake_line, monkeypatch) -> None:
    sweeps = []
    real = inbox_module.claim_events
    monkeypatch.setattr(inbox_module, "claim_events", lambda *a, **k: sweeps.append(1) or real(*a, **k))
    app = make_app(INBOX_POLL_SECONDS=5.0, INBOX_WORKER_THREADS=2)
    app.extensions["inbox"].start()
    time.sleep(1.0)
    idle_sweeps = len(sweeps)
    assert idle_sweeps <= 2, "one look at start per thread, then sleep"
    user = "U" + uuid.uuid4().hex
    started = time.monotonic()
    assert signed_post(app.test_client(), fake_line, {"destination": fake_line.destination,
                                                     "events": [fake_line.text_event(user, "こんにちは")]}).status_code == 200
    fake_line.wait_for_delivery(user, 1, timeout=5)
    assert time.monotonic() - started < 2.0, "handed to the workers in memory, not found by the next sweep"
    assert len(sweeps) == idle_sweeps


# --- overload ----------------------------------------------------------------------------------


def test_a_flood_is_slowed_by_backpressure_and_nothing_is_lost(make_app, fake_line) -> None:
    app = make_app(INBOX_WORKER_THREADS=1, INBOX_BACKLOG_LIMIT=2, INBOX_ACK_MAX_WAIT_SECONDS=0.4, INBOX_BATCH_SIZE=1)
    client = app.test_client()
    fake_line.fail("reply", "hang", times=1, hang_seconds=3.0)  # the worker is stuck on the first reply
    users = _users(6)
    ack_seconds = []
    for user in users:
        started = time.monotonic()
        response = signed_post(client, fake_line, {"destination": fake_line.destination,
                                                  "events": [fake_line.text_event(user, "こんにちは")]})
        ack_seconds.append(time.monotonic() - started)
        assert response.status_code == 200
    assert max(ack_seconds[:2]) < 0.3, "below the limit nobody waits"
    assert all(0.35 < s < 1.5 for s in ack_seconds[2:]), f"over the limit the answer waits, boundedly: {ack_seconds}"
    fake_line.clear_faults()
    for user in users:
        fake_line.wait_for_delivery(user, 1, timeout=15)
    wait_until(lambda: set(_statuses(app).values()) == {DONE}, 10, "all done")


def test_a_preparer_whose_query_fails_fails_only_its_event(make_app, fake_line, monkeypatch) -> None:
    from sqlalchemy import text

    from handlers import dispatch

    real = dispatch.PREPARERS["message"]

    def flaky(event, session, config):  # type: ignore[no-untyped-def]
        if event["message"].get("text") == "壊れた質問":
            session.execute(text("SELECT * FROM no_such_table"))  # PostgreSQL then refuses the transaction
        session.execute(text("SELECT 1"))  # the next event's preparer reads too
        return real(event, session, config)

    monkeypatch.setitem(dispatch.PREPARERS, "message", flaky)
    app = make_app(INBOX_WORKER_THREADS=0, INBOX_MAX_ATTEMPTS=1)
    users = _users(4)
    texts = ["住民票の写しがほしい", "壊れた質問", "ごみの出し方", "マイナンバーカード"]
    events = [fake_line.text_event(u, t) for u, t in zip(users, texts)]
    store_events(get_db(app), [_incoming(e) for e in events])  # one batch for the worker below
    worker = make_app(empty=False, INBOX_MAX_ATTEMPTS=1, INBOX_BATCH_SIZE=16)
    worker.extensions["inbox"].start()
    for user in users[:1] + users[2:]:
        fake_line.wait_for_delivery(user, 1, timeout=10)
    expected = [DONE, FAILED, DONE, DONE]
    wait_until(lambda: [_statuses(worker)[e["webhookEventId"]] for e in events] == expected, 10, "batch finished")
    assert fake_line.delivered(users[1]) == []


def test_events_claimed_before_the_threads_start_are_not_taken_back_by_a_neighbour(make_app, fake_line) -> None:
    # This app stores its events claimed before its own threads have started (its first request
    # starts them); a neighbour's sweep in the meantime must see a live owner, or the neighbour
    # would answer them as well (the reply, then a push when the token is spent).
    from handlers.inbox import reclaim_dead_claims

    app = make_app()
    inbox = app.extensions["inbox"]
    users = _users(5)
    events = [fake_line.text_event(u, "こんにちは") for u in users]
    inbox.writer.store([_incoming(e) for e in events])  # claimed, not started yet
    assert reclaim_dead_claims(get_db(app)) == 0
    inbox.notify()
    for user in users:
        fake_line.wait_for_delivery(user, 1, timeout=10)
    wait_until(lambda: set(_statuses(app).values()) == {DONE}, 10, "all done")
    assert [d.kind for d in fake_line.deliveries] == ["reply"] * len(users)
