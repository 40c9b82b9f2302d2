"""handlers/validate.py, rule by rule: what a webhook event must be before it is stored, and how
its strings are made storable. Each test names one rule and fails if the rule is dropped."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from bot.sandbox.fake_line import FakeLinePlatform, SpecValidator
from handlers.validate import MAX_DEPTH, normalise_event
from tests.fuzz_events import SPEC_PATH, Poison, SpecEvents, _nest, load_fixture_events

USER = "U" + "1" * 32


def text_event(**changes: Any) -> dict[str, Any]:
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": 1_700_000_000_000,
        "webhookEventId": "01HZXAMPLE0000000000000000",
        "replyToken": "0f3779fba3b349968c5d07db31eabf65",
        "deliveryContext": {"isRedelivery": False},
        "source": {"type": "user", "userId": USER},
        "message": {"id": "325708", "type": "text", "text": "住民票", "quoteToken": "q"},
    }
    event.update(changes)
    return event


def refused(event: Any) -> str:
    cleaned, reason = normalise_event(event)
    if cleaned is not None:  # no repr of the event: it may be nested far too deep to print
        pytest.fail("an event that must be refused was accepted")
    assert isinstance(reason, str) and reason
    return reason


def accepted(event: Any) -> dict[str, Any]:
    cleaned, reason = normalise_event(event)
    assert reason is None and cleaned is not None, reason
    return cleaned


# --- what is accepted as it is ----------------------------------------------------------------------


def test_every_peer_fixture_event_is_accepted_unchanged() -> None:
    for event in load_fixture_events():
        assert accepted(event) == event


def test_the_fake_platforms_events_are_accepted_unchanged() -> None:
    fake = FakeLinePlatform(channel_secret="s")
    for event in (fake.text_event(USER, "こんにちは"), fake.postback_event(USER, '{"a":"menu"}', {"date": "2026-01-01"}),
                  fake.follow_event(USER), fake.unfollow_event("U" + "a" * 32)):
        assert accepted(event) == event


def test_events_generated_from_the_spec_are_valid_and_accepted_unchanged() -> None:
    spec = SpecValidator.from_file(SPEC_PATH)
    events = SpecEvents(random.Random(7))
    seen = set()
    for _ in range(400):
        event = events.event()
        seen.add(event["type"])
        assert spec.errors("Event", event) == [], event
        assert accepted(event) == event
    assert seen == set(events.event_types), "the generator reaches every event type of the spec"


def test_unknown_event_types_and_extra_fields_stay_accepted() -> None:
    event = text_event(type="futureEvent", futureField={"nested": [1, "two", None]})
    del event["message"]
    assert accepted(event) == event
    odd = text_event()
    odd["message"] = {"id": "1", "type": "hologram", "shape": "cube"}
    assert accepted(odd) == odd


def test_ids_used_by_tests_and_the_simulator_are_accepted() -> None:
    for event_id in ("peer-0-1a2b3c4d", "01FUTURE", "SAME", "sha256:" + "0" * 64):
        assert accepted(text_event(webhookEventId=event_id))["webhookEventId"] == event_id
    for user in ("U5a000000000000000000000000000a01", "Uknown", "U4af4980629...", "U" + "f" * 63):
        assert accepted(text_event(source={"type": "user", "userId": user}))["source"]["userId"] == user


# --- the event and its type ---------------------------------------------------------------------------


@pytest.mark.parametrize("event", [None, "message", 1, 1.5, True, [], [text_event()]])
def test_an_event_must_be_an_object(event: Any) -> None:
    assert refused(event) == "event is not an object"


@pytest.mark.parametrize("kind", [None, "", 1, ["message"], {"a": 1}, "a" * 65, "mess age", "message\x00", "\ud800", "1abc"])
def test_the_type_must_be_a_short_name(kind: Any) -> None:
    event = text_event(type=kind)
    if kind is None:
        del event["type"]
    assert refused(event) == "event type is missing or malformed"
    assert accepted(text_event(type="a" * 64, message=None))


# --- timestamp ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", [None, "1700000000000", 1.7e12, 1700000000000.0, True, False, [1], {"ms": 1}])
def test_the_timestamp_must_be_an_integer(timestamp: Any) -> None:
    assert refused(text_event(timestamp=timestamp)) == "timestamp is not an integer"


@pytest.mark.parametrize("timestamp", [-1, -(2**63), 2**53, 2**63, 2**64, 10**30])
def test_the_timestamp_must_be_in_a_sane_range(timestamp: int) -> None:
    assert refused(text_event(timestamp=timestamp)) == "timestamp is out of range"


def test_timestamps_at_the_edges_of_the_range_are_accepted() -> None:
    assert accepted(text_event(timestamp=0))["timestamp"] == 0
    assert accepted(text_event(timestamp=2**53 - 1))["timestamp"] == 2**53 - 1


# --- ids -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, limit", [("webhookEventId", 128), ("replyToken", 256)])
def test_event_ids_longer_than_their_limit_are_refused_not_truncated(name: str, limit: int) -> None:
    assert accepted(text_event(**{name: "A" * limit}))[name] == "A" * limit
    assert refused(text_event(**{name: "A" * (limit + 1)})) == f"{name} is too long"
    # Two ids that share their first 128 characters stay two events: neither is cut to the other.
    assert refused(text_event(**{name: "A" * limit + "B"})) == f"{name} is too long"


@pytest.mark.parametrize("name", ["webhookEventId", "replyToken"])
@pytest.mark.parametrize("value, reason", [
    (1, "is not a string"), (None, "is not a string"), (["x"], "is not a string"), ({"a": 1}, "is not a string"),
    ("", "is empty"),
    ("\ud800", "has unsafe characters"), ("01H\udfffZ", "has unsafe characters"), ("01H\x00Z", "has unsafe characters"),
    ("01H Z", "has unsafe characters"), ("01H'; DROP TABLE x;--", "has unsafe characters"), ("０１", "has unsafe characters"),
    ("😀", "has unsafe characters"), ("a\nb", "has unsafe characters"),
])
def test_event_ids_must_be_strings_of_safe_characters(name: str, value: Any, reason: str) -> None:
    assert refused(text_event(**{name: value})) == f"{name} {reason}"


def test_absent_ids_are_fine() -> None:
    event = text_event()
    del event["webhookEventId"], event["replyToken"]
    assert accepted(event) == event


@pytest.mark.parametrize("mode", [1, None, "", "act ive", "a" * 33, "active\x00", ["active"]])
def test_the_mode_must_be_a_short_word(mode: Any) -> None:
    assert refused(text_event(mode=mode)) == "mode is malformed"
    assert accepted(text_event(mode="standby"))


# --- source ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["U1", 1, [], [{"type": "user", "userId": USER}], True])
def test_the_source_must_be_an_object(source: Any) -> None:
    assert refused(text_event(source=source)) == "source is not an object"


@pytest.mark.parametrize("kind", [["user"], {"user": True}, None, 1, "", "bot", "USER", "user\x00"])
def test_the_source_type_must_be_user_group_or_room(kind: Any) -> None:
    assert refused(text_event(source={"type": kind, "userId": USER})) == "source type is unknown"


@pytest.mark.parametrize("kind, field", [("user", "userId"), ("group", "groupId"), ("room", "roomId")])
def test_the_source_must_carry_the_id_of_its_type(kind: str, field: str) -> None:
    assert refused(text_event(source={"type": kind})) == f"source has no {field}"
    assert accepted(text_event(source={"type": kind, field: "C" + "0" * 32}))


@pytest.mark.parametrize("field", ["userId", "groupId", "roomId"])
@pytest.mark.parametrize("value, reason", [
    ({"a": 1}, "is not a string"), ([], "is not a string"), (123, "is not a string"), (None, "is not a string"),
    ("", "is empty"), ("U" + "a" * 64, "is too long"), ("U\ud800", "has unsafe characters"),
    ("U1\x00", "has unsafe characters"), ("U 1", "has unsafe characters"), ("U😀", "has unsafe characters"),
])
def test_source_ids_must_be_short_strings_of_safe_characters(field: str, value: Any, reason: str) -> None:
    source = {"type": {"userId": "user", "groupId": "group", "roomId": "room"}[field], "userId": USER,
              "groupId": "C" + "0" * 32, "roomId": "R" + "0" * 32}
    source[field] = value
    assert refused(text_event(source=source)) == f"source.{field} {reason}"


def test_an_event_without_a_source_is_accepted() -> None:
    event = text_event()
    del event["source"]
    assert accepted(event) == event
    assert accepted(text_event(source=None))


# --- message and postback ----------------------------------------------------------------------------


@pytest.mark.parametrize("message, reason", [
    (None, "message is not an object"), ("text", "message is not an object"), ([], "message is not an object"),
    ({}, "message type is missing or malformed"), ({"type": 1}, "message type is missing or malformed"),
    ({"type": ["text"]}, "message type is missing or malformed"), ({"type": "x" * 65}, "message type is missing or malformed"),
    ({"type": "text"}, "text message has no text"), ({"type": "text", "text": 1}, "text message has no text"),
    ({"type": "text", "text": None}, "text message has no text"), ({"type": "text", "text": ["a"]}, "text message has no text"),
])
def test_a_message_event_must_carry_a_message_the_handler_can_read(message: Any, reason: str) -> None:
    assert refused(text_event(message=message)) == reason


@pytest.mark.parametrize("postback", [None, "data", [], {}, {"data": 1}, {"data": None}, {"data": {"a": 1}}])
def test_a_postback_event_must_carry_data(postback: Any) -> None:
    event = text_event(type="postback", postback=postback)
    del event["message"]
    assert refused(event) == "postback has no data"
    assert accepted(dict(event, postback={"data": ""}))


def test_postback_data_longer_than_line_allows_is_refused() -> None:
    event = text_event(type="postback", postback={"data": "a" * 300})
    del event["message"]
    assert accepted(event)["postback"]["data"] == "a" * 300
    for data in ("a" * 301, "[" * 100_000, '{"a":' * 5_000):
        assert refused(dict(event, postback={"data": data})) == "postback data is too long"


# --- depth -------------------------------------------------------------------------------------------


def test_nesting_is_bounded() -> None:
    event = text_event()
    # The event is level 0 and its field is level 1: MAX_DEPTH containers below the event are fine...
    event["extra"] = _nest(MAX_DEPTH)
    assert accepted(event)["extra"] == event["extra"]
    # ...one more is not, wherever it is.
    assert refused(text_event(extra=_nest(MAX_DEPTH + 1))) == "nested too deeply"
    assert refused(text_event(message={"type": "text", "text": "x", "m": _nest(MAX_DEPTH, "dict")})) == "nested too deeply"


@pytest.mark.parametrize("depth", [500, 5_000, 200_000])
def test_any_depth_is_refused_without_recursion(depth: int) -> None:
    for kind in ("list", "dict"):
        # Only the reason is kept: a failure report must not try to print 200,000 levels.
        reason = normalise_event(text_event(extra=_nest(depth, kind)))[1]
        assert reason == "nested too deeply"


# --- strings made storable -----------------------------------------------------------------------------


def test_nul_is_removed_from_every_string_and_key() -> None:
    event = text_event(message={"id": "1", "type": "text", "text": "住\x00民票\x00", "quoteToken": "q"},
                       extra={"k\x00ey": ["a\x00", {"\x00": "\x00x"}]})
    cleaned = accepted(event)
    assert cleaned["message"]["text"] == "住民票"
    assert cleaned["extra"] == {"key": ["a", {"": "x"}]}
    assert "\\u0000" not in json.dumps(cleaned)


def test_lone_surrogates_in_free_text_become_replacement_characters() -> None:
    event = text_event(message={"id": "1", "type": "text", "text": "a\ud800b\udfff", "quoteToken": "q"})
    assert accepted(event)["message"]["text"] == "a\ufffdb\ufffd"
    postback = text_event(type="postback", postback={"data": "x\udc00", "params": {"date\ud83d": "\ud83d"}})
    cleaned = accepted(postback)
    assert cleaned["postback"] == {"data": "x\ufffd", "params": {"date\ufffd": "\ufffd"}}
    json.dumps(cleaned, ensure_ascii=False).encode("utf-8")  # storable: encodes to UTF-8


def test_emoji_and_other_valid_text_are_kept_exactly() -> None:
    text = "😀🇯🇵👍🏻 \u202e逆さま 𠮷 e\u0301 ' OR 1=1 --"
    assert accepted(text_event(message={"id": "1", "type": "text", "text": text, "quoteToken": "q"}))["message"]["text"] == text


def test_keys_that_become_equal_when_cleaned_are_refused() -> None:
    # {"type": "follow", "type\u0000": "message"}: which type is meant? Neither is guessed.
    event = text_event(**{"mode\x00": "standby"})
    assert refused(event) == "a key is ambiguous"


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_numbers_must_be_finite(number: float) -> None:
    assert refused(text_event(extra=[number])) == "a number is not finite"


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 10**300])
def test_numbers_must_fit_64_bits(number: int) -> None:
    assert refused(text_event(extra={"n": number})) == "a number is out of range"
    assert accepted(text_event(extra={"n": 2**63 - 1, "m": -(2**63), "f": 1e308}))


def test_values_that_are_not_json_are_refused() -> None:
    assert refused(text_event(extra={1, 2})) == "a value is not JSON"
    assert refused(text_event(extra={1: "a"})) == "a key is not a string"
    assert refused(text_event(extra=b"bytes")) == "a value is not JSON"


def test_the_event_given_is_not_modified() -> None:
    event = text_event(message={"id": "1", "type": "text", "text": "a\x00\ud800", "quoteToken": "q"})
    before = copy.deepcopy(event)
    cleaned = accepted(event)
    assert event == before and cleaned is not event and cleaned["message"] is not event["message"]


# --- never raises --------------------------------------------------------------------------------------


def test_mutated_fixture_events_never_raise_and_what_is_accepted_is_storable() -> None:
    poison = Poison(random.Random(13))
    outcomes = set()
    for _ in range(3_000):
        _label, event = poison()
        cleaned, reason = normalise_event(event)
        outcomes.add(cleaned is None)
        if cleaned is None:
            assert reason
            continue
        stored = json.dumps(cleaned, ensure_ascii=False, allow_nan=False)
        stored.encode("utf-8")
        assert "\x00" not in stored
        assert 0 <= cleaned["timestamp"] < 2**53
        assert len(cleaned.get("webhookEventId", "")) <= 128
    assert outcomes == {True, False}, "the mutations produce both refused and accepted events"
