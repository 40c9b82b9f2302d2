"""The webhook LINE relies on: signatures, bad input, dedupe, isolation, crash recovery."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.db import get_db, utcnow
from handlers.models import DONE, FAILED, PROCESSING, InboxEvent
from handlers.webhook import compute_signature, verify_signature
from kpi.models import UsageEvent
from segments.models import Resident
from tests.conftest import SHARED, signed_post, wait_until

USER = "U" + "1" * 32


def inbox_rows(app: Any) -> list[InboxEvent]:
    with get_db(app).session() as s:
        return list(s.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def drain(app: Any, timeout: float = 10.0) -> None:
    """Wait until every stored event is done or failed."""
    wait_until(lambda: all(r.status in (DONE, FAILED) for r in inbox_rows(app)), timeout, "inbox drained")


def body(*events: dict[str, Any]) -> dict[str, Any]:
    return {"destination": "Ufakebot000000000000000000000000", "events": list(events)}


# --- signatures -------------------------------------------------------------------------------


def test_signature_matches_line_sdk_known_vector() -> None:
    # The vector from line-bot-sdk's own SignatureValidator test.
    assert compute_signature("channel_secret", b"bodybodybodybody") == "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="
    assert verify_signature("channel_secret", b"bodybodybodybody", "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k=")
    assert not verify_signature("channel_secret", b"bodybodybodybodY", "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k=")
    assert not verify_signature("channel_secret", b"bodybodybodybody", None)


@pytest.mark.parametrize("signature", [None, "", "invalid", "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="])
def test_missing_or_wrong_signature_is_400_and_nothing_stored(app, client, fake_line, signature) -> None:
    raw = json.dumps(body(fake_line.text_event(USER, "住民票"))).encode()
    headers = {} if signature is None else {"X-Line-Signature": signature}
    response = client.post("/callback", data=raw, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["message"] == "invalid signature"
    assert inbox_rows(app) == []


def test_signature_over_different_body_is_rejected(app, client, fake_line) -> None:
    raw = json.dumps(body(fake_line.text_event(USER, "住民票")), ensure_ascii=False).encode()
    tampered = raw.replace("住民票".encode(), "戸籍".encode())
    response = client.post("/callback", data=tampered, headers={"X-Line-Signature": fake_line.sign(raw)})
    assert tampered != raw
    assert response.status_code == 400
    assert inbox_rows(app) == []


# --- bad input matrix -----------------------------------------------------------------------


def test_verify_call_with_no_events_gets_200(app, client, fake_line) -> None:
    response = signed_post(client, fake_line, {"destination": "Ufakebot000000000000000000000000", "events": []})
    assert response.status_code == 200
    assert inbox_rows(app) == []


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"not json at all", 400),
        (b"\xff\xfe\x00garbage", 400),
        (b"[]", 400),
        (b'{"destination": "U1"}', 400),
        (b'{"events": {"type": "message"}}', 400),
        (b'{"events": "nope"}', 400),
        (b"null", 400),
    ],
)
def test_signed_malformed_bodies_get_a_clear_4xx(app, client, fake_line, raw, status, caplog) -> None:
    caplog.set_level(logging.WARNING)
    response = signed_post(client, fake_line, raw=raw)
    assert response.status_code == status
    assert response.is_json and response.get_json()["message"]
    assert inbox_rows(app) == []
    assert any("webhook" in r.getMessage() for r in caplog.records)


def test_malformed_events_are_skipped_and_good_ones_processed(app, client, fake_line, caplog) -> None:
    caplog.set_level(logging.WARNING)
    good = fake_line.text_event(USER, "こんにちは")
    bad = [
        "a string",
        {"no": "type"},
        {"type": "message", "timestamp": "yesterday"},
        {"type": "message", "timestamp": 1, "message": "text"},
        {"type": "message", "timestamp": 1, "source": {"type": "user", "userId": USER}, "message": {"type": "text"}},
        {"type": "postback", "timestamp": 1, "postback": {}},
        {"type": "follow", "timestamp": 1, "source": "U1"},
    ]
    response = signed_post(client, fake_line, body(*bad, good))
    assert response.status_code == 200
    assert response.get_json() == {"stored": 1, "duplicates": 0, "skipped": len(bad)}
    assert fake_line.wait_for_delivery(USER, 1)
    assert sum("skipped" in r.getMessage() for r in caplog.records) == len(bad)


def test_unknown_event_and_message_types_are_acknowledged_and_ignored(app, client, fake_line, caplog) -> None:
    caplog.set_level(logging.INFO)
    strange = {"type": "futureEvent", "timestamp": int(time.time() * 1000), "webhookEventId": "01FUTURE",
               "source": {"type": "user", "userId": USER}, "mode": "active"}
    odd_message = fake_line.text_event(USER, "x")
    odd_message["message"] = {"id": "1", "type": "hologram"}
    response = signed_post(client, fake_line, body(strange, odd_message))
    assert response.status_code == 200
    drain(app)
    assert [r.status for r in inbox_rows(app)] == [DONE, DONE]
    assert fake_line.delivered(USER) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_huge_body_is_refused_with_413_and_not_stored(make_app, fake_line) -> None:
    app = make_app(WEBHOOK_MAX_BODY_BYTES=10_000)
    client = app.test_client()
    event = fake_line.text_event(USER, "あ" * 20_000)
    response = signed_post(client, fake_line, body(event))
    assert response.status_code == 413
    assert inbox_rows(app) == []


@pytest.mark.parametrize(
    "text",
    [
        "😀🎉👍" * 10,
        "'; DROP TABLE inbox_events; --",
        "\" OR 1=1 --",
        "\u0000\u202e逆さま",
        "あ" * 60_000,
        "",
    ],
)
def test_odd_texts_get_an_answer_and_never_a_500(app, client, fake_line, text) -> None:
    response = signed_post(client, fake_line, body(fake_line.text_event(USER, text)))
    assert response.status_code == 200
    messages = fake_line.wait_for_delivery(USER, 1)
    assert messages[0]["type"] == "text" and messages[0]["text"]
    drain(app)
    assert [r.status for r in inbox_rows(app)] == [DONE]


# --- redelivery and the peer fixtures ------------------------------------------------------------


def test_redelivered_event_is_acknowledged_and_processed_once(app, client, fake_line) -> None:
    event = fake_line.text_event(USER, "ごみの出し方")
    assert signed_post(client, fake_line, body(event)).status_code == 200
    fake_line.wait_for_delivery(USER, 1)
    again = copy.deepcopy(event)
    again["deliveryContext"] = {"isRedelivery": True}
    response = signed_post(client, fake_line, body(again))
    assert response.status_code == 200
    assert response.get_json()["duplicates"] == 1
    drain(app)
    time.sleep(0.3)
    assert len(fake_line.delivered(USER)) == 1
    assert len(inbox_rows(app)) == 1


def test_events_without_webhook_event_id_are_deduplicated_by_content(app, client, fake_line) -> None:
    event = fake_line.text_event(USER, "こんにちは")
    del event["webhookEventId"]
    assert signed_post(client, fake_line, body(event)).get_json()["stored"] == 1
    assert signed_post(client, fake_line, body(event)).get_json()["duplicates"] == 1


def load_peer_fixtures() -> dict[str, Any]:
    return json.loads((SHARED / "line-peer-fixtures" / "webhook.json").read_text())


def test_every_peer_fixture_event_is_accepted_without_error_log(app, client, fake_line, caplog) -> None:
    caplog.set_level(logging.INFO)
    fixtures = load_peer_fixtures()
    # As LINE sends them (they share one webhookEventId, so all but the first are redeliveries)...
    response = signed_post(client, fake_line, fixtures)
    assert response.status_code == 200
    assert response.get_json()["skipped"] == 0
    # ...and one by one with distinct ids, so every handler really runs on every kind.
    for index, event in enumerate(fixtures["events"]):
        event = dict(event, webhookEventId=f"peer-{index}-{uuid.uuid4().hex[:8]}")
        response = signed_post(client, fake_line, {"destination": fixtures["destination"], "events": [event]})
        assert response.status_code == 200, (index, event["type"])
        assert response.get_json()["stored"] == 1
    drain(app)
    assert {r.status for r in inbox_rows(app)} == {DONE}
    assert len(inbox_rows(app)) == len(fixtures["events"]) + 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


# --- handlers -------------------------------------------------------------------------------------


def test_follow_greets_and_unfollow_marks_resident_gone(app, chat) -> None:
    resident = chat(USER)
    greeting = resident.follows()
    assert "友だち追加ありがとうございます" in greeting[0]["text"]
    resident.unfollows()
    drain(app)
    with get_db(app).session() as s:
        row = s.scalars(select(Resident).where(Resident.line_user_id == USER)).one()
        assert row.is_following is False and row.unfollowed_at is not None
        kinds = sorted(s.scalars(select(UsageEvent.kind)))
    assert kinds == ["follow", "unfollow"]


def test_one_failing_event_does_not_fail_the_others(app, client, fake_line, caplog) -> None:
    processor = app.extensions["inbox"].processor
    real = processor.dispatch

    def dispatch(event_type: str):
        if event_type == "follow":
            def broken(ctx):
                raise RuntimeError("boom")
            return broken
        return real(event_type)

    processor.dispatch = dispatch
    other = "U" + "2" * 32
    events = [fake_line.follow_event(USER), fake_line.text_event(other, "こんにちは"), fake_line.text_event(USER, "はい")]
    assert signed_post(client, fake_line, body(*events)).status_code == 200
    fake_line.wait_for_delivery(other, 1)
    fake_line.wait_for_delivery(USER, 1)
    wait_until(lambda: [r for r in inbox_rows(app) if r.event_type == "follow" and r.last_error], message="failure recorded")
    wait_until(lambda: sum(r.status == DONE for r in inbox_rows(app)) == 2, message="others done")
    rows = {r.event_type: r for r in inbox_rows(app)}
    assert rows["follow"].last_error == "RuntimeError" and rows["follow"].status != DONE
    assert sum(r.status == DONE for r in inbox_rows(app)) == 2


def test_failing_event_gives_up_after_max_attempts(make_app, fake_line, caplog) -> None:
    app = make_app(INBOX_MAX_ATTEMPTS=1)
    app.extensions["inbox"].processor.dispatch = lambda t: (lambda ctx: 1 / 0)
    assert signed_post(app.test_client(), fake_line, body(fake_line.text_event(USER, "x"))).status_code == 200
    wait_until(lambda: [r.status for r in inbox_rows(app)] == [FAILED], message="failed")
    assert any("gave up" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


# --- LINE errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [429, 500, "hang"])
def test_line_error_is_retried_and_not_lost(make_app, fake_line, fault) -> None:
    app = make_app(LINE_TIMEOUT_SECONDS=0.5)
    fake_line.fail("reply", fault, times=1, hang_seconds=1.0)
    assert signed_post(app.test_client(), fake_line, body(fake_line.text_event(USER, "こんにちは"))).status_code == 200
    messages = fake_line.wait_for_delivery(USER, 1, timeout=15)
    assert len(messages) == 1
    drain(app, 15)
    time.sleep(1.2)  # let a hung first attempt finish on the fake: it must not deliver a second copy
    assert len(fake_line.delivered(USER)) == 1


def test_reply_rejected_for_invalid_token_falls_back_to_push(app, client, fake_line) -> None:
    event = fake_line.text_event(USER, "こんにちは")
    event["replyToken"] = "not-a-token-line-issued"
    assert signed_post(client, fake_line, body(event)).status_code == 200
    fake_line.wait_for_delivery(USER, 1)
    assert [d.kind for d in fake_line.deliveries] == ["push"]


# --- crash between store and process --------------------------------------------------------------


def _store_without_processing(make_app, fake_line, events) -> Any:
    """A process that stores events and dies before processing them."""
    dying = make_app(INBOX_WORKER_THREADS=0)
    assert signed_post(dying.test_client(), fake_line, body(*events)).status_code == 200
    return dying


def test_events_stored_before_a_crash_are_processed_after_restart(make_app, fake_line) -> None:
    fresh = fake_line.text_event(USER, "こんにちは")
    old_user = "U" + "3" * 32
    old = fake_line.text_event(old_user, "こんにちは")
    old["timestamp"] -= 10 * 60 * 1000  # the reply token would have expired by now
    dying = _store_without_processing(make_app, fake_line, [fresh, old])
    # The dead worker had claimed them: leased, lease now expired.
    with get_db(dying).session() as s:
        s.execute(update(InboxEvent).values(status=PROCESSING, lease_until=utcnow() - dt.timedelta(seconds=1)))
    assert fake_line.delivered(USER) == []
    restarted = make_app(empty=False)
    restarted.extensions["inbox"].start()
    fake_line.wait_for_delivery(USER, 1)
    fake_line.wait_for_delivery(old_user, 1)
    kinds = {d.to[0]: d.kind for d in fake_line.deliveries}
    assert kinds == {USER: "reply", old_user: "push"}
    drain(restarted)


def test_crash_after_handler_commit_resends_without_rerunning_handler(make_app, fake_line) -> None:
    event = fake_line.text_event(USER, "こんにちは")
    event["timestamp"] -= 10 * 60 * 1000
    dying = _store_without_processing(make_app, fake_line, [event])
    inbox = dying.extensions["inbox"]
    (event_id, token), = __import__("handlers.inbox", fromlist=["claim_events"]).claim_events(get_db(dying), 1, 0.01)
    rows = inbox.processor.load([(event_id, token)])
    prepared, failed = inbox.processor._prepare(rows)
    handled, failures, _left = inbox.processor._run_handlers(rows, prepared)  # handler committed, then the process died
    assert not failed and not failures
    row, = handled
    assert row.is_handled
    inbox.processor._deliver(row)  # it even managed to push once before dying
    assert len(fake_line.delivered(USER)) == 1
    time.sleep(0.05)
    restarted = make_app(empty=False)
    restarted.extensions["inbox"].start()
    drain(restarted)
    with get_db(restarted).session() as s:
        assert s.scalar(select(func.count()).select_from(UsageEvent).where(UsageEvent.kind == "message")) == 1
    # The repeated push carried the same retry key: LINE answered 409 and delivered nothing new.
    assert len(fake_line.delivered(USER)) == 1


def test_processed_events_are_deleted_after_the_retention_period(app, client, fake_line) -> None:
    from handlers.inbox import purge_processed_events

    assert signed_post(client, fake_line, body(fake_line.text_event(USER, "こんにちは"))).status_code == 200
    drain(app)
    assert purge_processed_events(app) == 0  # fresh: kept
    later = utcnow() + dt.timedelta(days=int(app.config["INBOX_RETENTION_DAYS"]) + 1)
    assert purge_processed_events(app, now=later) == 1
    assert inbox_rows(app) == []
    assert "purge_processed_events" in [job.__name__ for job in app.extensions["maintenance_jobs"]]


def test_postback_data_nested_deeper_than_the_parser_is_not_ours() -> None:
    from handlers.replies import parse_postback_data

    assert parse_postback_data("[" * 100_000) is None  # RecursionError inside json, not a failed event
    assert parse_postback_data('{"a": "menu"}') == {"a": "menu"}
