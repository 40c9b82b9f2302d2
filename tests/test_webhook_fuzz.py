"""Poison at POST /callback: signed webhooks carrying odd events go in beside residents' questions;
the fake platform shows that every resident still gets exactly one answer, and the inbox shows
that nothing stored failed or was left behind."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import select

from bot.db import get_db
from handlers.models import DONE, InboxEvent
from tests import fuzz_events
from tests.conftest import signed_post, wait_until

SEED = 20261204
RESIDENT = "U" + "5" * 32
NEIGHBOUR = "U" + "6" * 32


def settled_rows(app: Any) -> list[InboxEvent]:
    def rows() -> list[InboxEvent] | None:
        with get_db(app).session() as s:
            found = list(s.scalars(select(InboxEvent).order_by(InboxEvent.id)))
        return found if all(r.status == DONE or r.status == "failed" for r in found) else None

    return wait_until(rows, 15, "inbox settled")


# --- each measured problem, beside a resident's question ----------------------------------------------

POISON_EVENTS = {
    "timestamp 2**63": {"timestamp": 2**63},
    "timestamp 2**64": {"timestamp": 2**64},
    "lone surrogate in webhookEventId": {"webhookEventId": "01H\ud800"},
    "lone surrogate in userId": {"source": {"type": "user", "userId": "U\udfff"}},
    "source.type a list": {"source": {"type": ["user"], "userId": NEIGHBOUR}},
    "source.type an object": {"source": {"type": {"user": 1}, "userId": NEIGHBOUR}},
    "userId an object": {"source": {"type": "user", "userId": {"a": 1}}},
    "userId a list": {"source": {"type": "user", "userId": []}},
    "500-level nesting": {"message": {"type": "text", "text": "x", "deep": fuzz_events._nest(500)}},
    "webhookEventId of 129 characters": {"webhookEventId": "A" * 129},
    "postback data nested 100000 deep": {"type": "postback", "postback": {"data": "[" * 100_000}},
    "NaN timestamp": {"timestamp": float("nan")},
    "Infinity in a field": {"extra": float("inf")},
}


@pytest.mark.parametrize("name", sorted(POISON_EVENTS))
def test_a_poison_event_is_skipped_and_the_resident_beside_it_is_answered(app, client, fake_line, caplog, name) -> None:
    caplog.set_level(logging.WARNING)
    poison = dict(fake_line.text_event(NEIGHBOUR, "秘密の相談"), **POISON_EVENTS[name])
    question = fake_line.text_event(RESIDENT, "ごみの出し方")
    raw = fuzz_events.encode_body({"destination": fake_line.destination, "events": [poison, question]})
    response = signed_post(client, fake_line, raw=raw)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"stored": 1, "duplicates": 0, "skipped": 1}
    assert fake_line.wait_for_delivery(RESIDENT, 1)
    assert [r.status for r in settled_rows(app)] == [DONE]
    assert fake_line.delivered(NEIGHBOUR) == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "webhook event 0 skipped" in logged
    assert "秘密" not in logged and NEIGHBOUR not in logged, "a skipped event's text and ids are never logged"


def test_an_over_long_webhook_event_id_is_refused_not_cut_into_another_events_id(app, client, fake_line) -> None:
    first = fake_line.text_event(RESIDENT, "こんにちは")
    first["webhookEventId"] = "A" * 128
    second = fake_line.text_event(NEIGHBOUR, "こんにちは")
    second["webhookEventId"] = "A" * 128 + "B"
    answer = signed_post(client, fake_line, raw=fuzz_events.encode_body({"events": [first, second]})).get_json()
    assert answer == {"stored": 1, "duplicates": 0, "skipped": 1}
    assert [r.webhook_event_id for r in settled_rows(app)] == ["A" * 128]


@pytest.mark.parametrize("depth", [500, 990, 5_000])
def test_a_body_nested_too_deep_for_the_json_parser_is_a_clear_400(app, client, fake_line, caplog, depth) -> None:
    caplog.set_level(logging.WARNING)
    response = signed_post(client, fake_line, raw=b"[" * depth + b"]" * depth)
    assert response.status_code == 400
    # json.loads raises RecursionError (not a ValueError) somewhere below 1000 levels.
    expected = {"malformed JSON"} if depth > 1000 else {"malformed JSON", "events must be a list"}
    assert response.get_json()["message"] in expected
    raw = b'{"events":[{"type":"follow","timestamp":1,"x":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}]}"
    response = signed_post(client, fake_line, raw=raw)
    assert response.status_code in (200, 400)  # refused by the parser, or by the event's depth check
    assert response.status_code == 400 or response.get_json() == {"stored": 0, "duplicates": 0, "skipped": 1}
    with get_db(app).session() as s:
        assert s.scalars(select(InboxEvent)).all() == []


@pytest.mark.parametrize("label, raw", fuzz_events.poison_bodies())
def test_bodies_that_are_no_webhook_never_get_a_5xx(app, client, fake_line, label, raw) -> None:
    response = signed_post(client, fake_line, raw=raw)
    assert response.status_code < 500, label
    assert response.is_json
    with get_db(app).session() as s:
        assert s.scalars(select(InboxEvent)).all() == []


def test_a_lone_surrogate_in_free_text_is_stored_as_a_replacement_character(app, client, fake_line) -> None:
    question = fake_line.text_event(RESIDENT, "住民票\ud800\x00")
    assert signed_post(client, fake_line, raw=fuzz_events.encode_body({"events": [question]})).status_code == 200
    assert fake_line.wait_for_delivery(RESIDENT, 1)
    (row,) = settled_rows(app)
    assert row.status == DONE and row.payload["message"]["text"] == "住民票\ufffd"


# --- many residents, much poison, several senders at once ---------------------------------------------


def test_sixty_residents_among_hundreds_of_poison_events_each_get_one_answer(app, fake_line) -> None:
    """60 residents ask a question each while a few hundred poison events arrive from 6 senders at
    once: some poison alone, some in the same body as a resident's question, some whole bodies that
    are no webhook. Nobody gets a 5xx, each resident gets exactly one answer, and every stored
    event is done: none failed, none lost."""
    plan = list(fuzz_events.recipes(SEED, residents=60, poison_events=300))
    poison_count = sum(len(r.poison) for r in plan)
    assert poison_count == 300 and sum(len(r.good) for r in plan) == 60
    assert sum(1 for r in plan if r.good and r.poison) >= 10, "poison rides in residents' bodies too"
    assert sum(1 for r in plan if r.raw is not None) >= 1

    report = fuzz_events.run(app, fake_line, iter(plan), threads=6, settle_seconds=30)

    assert report.problems() == [], report.summary()
    assert report.good_sent == 60 and report.answered_once == 60
    assert report.server_errors == [] and report.failed == [] and report.lost == 0
    assert report.stored == report.done == report.acknowledged
    assert 0 < report.skipped < poison_count, "some poison is refused at the edge, some is harmless and kept"


def test_the_same_seed_gives_the_same_poison() -> None:
    def labels(seed: int) -> list[str]:
        return [(r.label, json.dumps([e for _l, e in r.poison], sort_keys=True, allow_nan=True)[:2000])
                for r in fuzz_events.recipes(seed, residents=10, poison_events=60, now_ms=1_700_000_000_000)]

    assert labels(SEED) == labels(SEED)
    assert labels(SEED) != labels(SEED + 1)
