"""How the inbox keeps SQLite's single write lock short: group commit of webhook inserts,
time-bounded handler transactions, savepoints only when a handler fails, residents preloaded,
and WAL checkpoints off the request path."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import event, select, text

from bot.db import Database, get_db
from handlers import inbox as inbox_module
from handlers.inbox import IncomingEvent
from handlers.models import DONE, InboxEvent
from segments.models import Resident
from segments.service import get_resident, preload_residents, record_follow
from tests.conftest import signed_post, wait_until


def _event(key: str) -> IncomingEvent:
    payload = {"type": "follow", "timestamp": 1, "webhookEventId": key, "source": {"type": "user", "userId": "U" + key}}
    return IncomingEvent(key, "follow", 1, payload)


def _count_commits(db: Database) -> list[int]:
    commits = [0]

    @event.listens_for(db.engine, "commit")
    def _commit(_conn) -> None:  # type: ignore[no-untyped-def]
        commits[0] += 1

    return commits


def test_concurrent_webhook_requests_share_insert_transactions(app) -> None:
    writer = app.extensions["inbox"].writer
    commits = _count_commits(get_db(app))
    gate = threading.Barrier(20)
    results: dict[int, int] = {}

    def post(i: int) -> None:
        gate.wait()
        # Request 0 and 1 carry the same event (LINE redelivering while the first is in flight).
        keys = ["SAME"] if i < 2 else [f"E{i}a", f"E{i}b"]
        results[i] = writer.store([_event(k) for k in keys])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == list(range(20))
    assert results[0] + results[1] == 1, "a key stored once, counted new once"
    assert all(results[i] == 2 for i in range(2, 20))
    with get_db(app).session() as s:
        keys = Counter(s.scalars(select(InboxEvent.webhook_event_id)))
    assert sum(keys.values()) == 1 + 36 and keys["SAME"] == 1
    assert commits[0] < 20, f"{commits[0]} insert transactions for 20 concurrent requests"


def test_a_failed_group_insert_fails_every_waiting_request(app, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    writer = app.extensions["inbox"].writer

    def broken(db, events, claim=None):  # type: ignore[no-untyped-def]
        raise OperationalError("INSERT", {}, Exception("disk full"))

    monkeypatch.setattr(inbox_module, "store_events", broken)
    with pytest.raises(OperationalError, match="disk full"):
        writer.store([_event("X1")])
    monkeypatch.undo()
    assert writer.store([_event("X1")]) == 1, "the writer thread survives a failed transaction"


def test_the_webhook_answers_503_when_the_insert_fails(app, client, fake_line, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    def locked(db, events, claim=None):  # type: ignore[no-untyped-def]
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(inbox_module, "store_events", locked)
    payload = {"destination": fake_line.destination, "events": [fake_line.text_event("U" + "3" * 32, "こんにちは")]}
    response = signed_post(client, fake_line, payload)
    assert response.status_code == 503  # LINE redelivers; nothing was acknowledged


def test_handler_transactions_end_after_their_time_budget(make_app, fake_line, monkeypatch) -> None:
    monkeypatch.setattr(inbox_module, "TXN_BUDGET_SECONDS", 0.0)  # one event per transaction
    app = make_app(INBOX_BATCH_SIZE=16)
    users = [f"U{i:032x}" for i in range(6)]
    client = app.test_client()
    events = [fake_line.text_event(u, "こんにちは") for u in users]
    handler_txns = [0]  # each handler transaction marks its events handled in one statement

    @event.listens_for(get_db(app).engine, "before_cursor_execute")
    def _statement(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        handler_txns[0] += "SET is_handled" in statement

    assert signed_post(client, fake_line, {"destination": fake_line.destination, "events": events}).status_code == 200
    for u in users:
        fake_line.wait_for_delivery(u, 1)

    def statuses() -> list[str]:
        with get_db(app).read_session() as s:
            return list(s.scalars(select(InboxEvent.status)))

    wait_until(lambda: statuses() == [DONE] * len(users), 10, "all done")
    assert Counter(d.to[0] for d in fake_line.deliveries) == Counter(users)
    assert handler_txns[0] == len(users), "each event's handler committed in its own transaction"


def test_preloaded_residents_stay_correct_across_savepoints(app) -> None:
    db = get_db(app)
    with db.session() as s:
        record_follow(s, "Uknown")
    with db.session() as s:
        preload_residents(s, ["Uknown", "Unew"])
        statements: list[str] = []
        event.listen(s.get_bind(), "before_cursor_execute", lambda *a: statements.append(a[2]))
        assert get_resident(s, "Uknown").line_user_id == "Uknown"
        assert get_resident(s, "Unew") is None
        assert statements == [], "answered from the preloaded residents"
        try:
            with s.begin_nested():
                record_follow(s, "Unew")
                assert get_resident(s, "Unew") is not None
                raise RuntimeError("handler failed")
        except RuntimeError:
            pass
        assert get_resident(s, "Unew") is None, "the rolled-back resident is not served from the cache"
    with db.session() as s:
        assert s.scalar(select(Resident.id).where(Resident.line_user_id == "Unew")) is None


def test_sqlite_commits_do_not_checkpoint_the_wal_a_thread_does(app) -> None:
    db = get_db(app)
    if db.is_postgres:
        pytest.skip("SQLite only")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    with db.session() as s:
        for i in range(50):
            record_follow(s, f"Uwal{i}")
    assert any(t.name == "sqlite-checkpoint" and t.is_alive() for t in threading.enumerate())

    def checkpointed() -> bool:
        raw = db.engine.raw_connection()
        try:
            busy, log_frames, done = raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            raw.close()
        return busy == 0 and log_frames == done

    wait_until(checkpointed, 5, "the WAL copied into the database file")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM residents")).scalar() == 50


def test_unfollow_then_follow_of_a_new_resident_in_one_batch(app, fake_line) -> None:
    """A resident first seen by an unfollow and then a follow in the same batch is one row."""
    user = "U" + "7" * 32
    db = get_db(app)
    with db.session() as s:
        preload_residents(s, [user])
        from segments.service import record_unfollow

        record_unfollow(s, user)
        record_follow(s, user)
    with db.session() as s:
        rows = list(s.scalars(select(Resident).where(Resident.line_user_id == user)))
    assert len(rows) == 1 and rows[0].is_following
