"""Several processes' worker threads share one inbox: each event is processed exactly once."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from bot.db import get_db
from handlers.models import DONE, InboxEvent
from tests.conftest import signed_post, wait_until


def test_events_are_processed_exactly_once_across_workers(make_app, fake_line) -> None:
    # Three apps with their own engines and threads stand in for three gunicorn workers.
    workers = [make_app(INBOX_WORKER_THREADS=3)] + [make_app(empty=False, INBOX_WORKER_THREADS=3) for _ in range(2)]
    users = ["U" + f"{i:032x}" for i in range(120)]
    for i, user in enumerate(users):
        client = workers[i % 3].test_client()
        assert signed_post(client, fake_line, {"destination": fake_line.destination,
                                               "events": [fake_line.text_event(user, "こんにちは")]}).status_code == 200
    for app in workers:
        app.extensions["inbox"].start()

    def all_done() -> bool:
        with get_db(workers[0]).session() as s:
            return all(status == DONE for status in s.scalars(select(InboxEvent.status)))

    wait_until(lambda: sum(len(fake_line.delivered(u)) for u in users) >= len(users), 30, "every reply")
    wait_until(all_done, 30, "all events done")
    per_user = Counter(d.to[0] for d in fake_line.deliveries)
    assert per_user == Counter({u: 1 for u in users})
    assert [d.kind for d in fake_line.deliveries] == ["reply"] * len(users)
