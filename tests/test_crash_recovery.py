"""Crash recovery with real processes: gunicorn serves wsgi:app, its workers are killed (-9)
while they hold events (every reply hangs), and the workers gunicorn starts in their place
answer every held event once, by reply, within seconds: they take back the claims of the
dead processes at once instead of waiting for the lease to expire (and then pushing)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import requests
from sqlalchemy import func, select

from bot.db import get_db, utcnow
from handlers.models import DONE, PROCESSING, InboxEvent
from handlers.owner import is_dead
from tests.conftest import CHANNEL_SECRET, ROOT, child_pids, free_port, is_healthy, wait_until

WORKERS = 2
HELD = 8  # events the workers hold when they are killed (one webhook request per worker)
RECOVERY_SECONDS = 10.0  # from the new workers being up until every held event is answered


def _held(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Who holds the events still processing, for the failure message: owner, dead or alive, lease left."""
    with get_db(app).read_session() as session:
        rows = session.execute(select(InboxEvent.claim_owner, InboxEvent.lease_until, InboxEvent.attempts).where(InboxEvent.status == PROCESSING)).all()
    now = utcnow().replace(tzinfo=None)
    return [f"{owner} dead={is_dead(owner)} lease_left={(lease.replace(tzinfo=None) - now).total_seconds():.1f}s "
            f"attempts={attempts}" for owner, lease, attempts in rows]


def _statuses(app) -> Counter:  # type: ignore[no-untyped-def]
    with get_db(app).read_session() as session:
        return Counter(dict(session.execute(select(InboxEvent.status, func.count()).group_by(InboxEvent.status)).all()))


def test_events_held_by_killed_workers_are_answered_at_once_by_reply(make_app, fake_line, fake_line_server, database_url) -> None:
    app = make_app()  # empties the tables and reads them; its own inbox threads never start
    _fake, served = fake_line_server
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ, APP_ENV="testing", DATABASE_URL=database_url, SECRET_KEY="test-secret-key-of-at-least-32-characters",
        LINE_CHANNEL_SECRET=CHANNEL_SECRET, LINE_CHANNEL_ACCESS_TOKEN="test-access-token", LINE_API_BASE_URL=served.url,
        LINE_TIMEOUT_SECONDS="60",  # a hung reply stays hung until its worker is killed
        INBOX_LEASE_SECONDS="60",  # far beyond the 10 s: recovery must not come from the lease running out
        GUNICORN_WORKERS=str(WORKERS), LOG_LEVEL="WARNING", SIMULATOR_ENABLED="0",
    )
    fake_line.fail("reply", "hang", times=-1, hang_seconds=60)
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "--access-logfile", "/dev/null", "--no-control-socket", "wsgi:app"],
        cwd=ROOT, env=env,
    )
    try:
        wait_until(lambda: is_healthy(url), 30, "gunicorn up")
        users = [f"U{i:032x}" for i in range(HELD)]
        events = [fake_line.text_event(user, "こんにちは") for user in users]
        share = HELD // WORKERS
        for start in range(0, HELD, share):
            body = fake_line.webhook_body(events[start:start + share])
            answer = requests.post(f"{url}/callback", data=body, timeout=10, headers={
                "Content-Type": "application/json", "X-Line-Signature": fake_line.sign(body)})
            assert answer.status_code == 200, answer.text
            assert json.loads(answer.text)["stored"] == share
        # The workers claim what they store and block on their first (hung) reply.
        wait_until(lambda: _statuses(app)[PROCESSING] == HELD, 10, f"{HELD} events claimed")

        old = child_pids(gunicorn.pid)
        assert len(old) == WORKERS
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        fake_line.clear_faults()  # LINE answers again; the hung calls of the dead workers end
        wait_until(lambda: len(set(child_pids(gunicorn.pid)) - set(old)) >= WORKERS and is_healthy(url), 30,
                   "respawned workers up")
        up = time.monotonic()

        def answered() -> int:
            return sum(1 for user in users if fake_line.delivered(user))

        while answered() < HELD and time.monotonic() - up < RECOVERY_SECONDS:
            time.sleep(0.05)
        took = time.monotonic() - up
        assert answered() == HELD, (
            f"{answered()} of {HELD} held events answered within {RECOVERY_SECONDS:.0f} s of the respawned workers "
            f"being up; inbox rows: {dict(_statuses(app))}; held: {_held(app)}")
        wait_until(lambda: _statuses(app) == Counter({DONE: HELD}), 5, "every event done")
        time.sleep(0.5)  # a second answer would show up now
        assert Counter(d.to[0] for d in fake_line.deliveries) == Counter(users), "each event answered exactly once"
        assert [d.kind for d in fake_line.deliveries] == ["reply"] * HELD, f"answered by reply (took {took:.1f} s)"
    finally:
        fake_line.clear_faults()
        gunicorn.terminate()
        try:
            gunicorn.wait(30)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
            gunicorn.wait(10)
