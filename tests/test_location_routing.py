"""Where a location goes when a resident has both a report in progress and a shelter search: the
step the resident entered last decides (handlers.message), in either order, as conversations
through the fake LINE platform."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from faq.store import load_repo_kb
from reports.models import DRAFT, Report
from tests.conftest import Chat

DATA = Path(__file__).resolve().parent / "data"
SITES = DATA / "shelters-standard-sites.csv"  # generated test data, no real shelter
RESIDENT = "U" + "e" * 32
SHELTER_TAP = json.dumps({"a": "dis", "k": "shelter"})
HOME = (36.6490, 140.1490)  # inside the generated data's box, nearest to テスト第一避難所
HAZARD_QUESTION = "どの災害から避難しますか"


@pytest.fixture
def city(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    """The knowledge base and the generated shelters, 001-004 open."""
    app = make_app(REPORT_PHOTO_DIR=str(tmp_path / "photos"))
    with get_db(app).session() as s:
        load_repo_kb(s, app.config["MUNICIPALITY"])
    runner = app.test_cli_runner()
    assert runner.invoke(args=["shelters", "import", str(SITES)]).exit_code == 0
    assert runner.invoke(args=["shelters", "open", "1", "2", "3", "4"]).exit_code == 0
    return app


@pytest.fixture
def chat(city: Flask, fake_line: FakeLinePlatform) -> Chat:
    return Chat(city.test_client(), fake_line, RESIDENT)


def sends_location(chat: Chat, point: tuple[float, float]) -> dict[str, Any]:
    (reply,) = chat._send(chat.fake.location_event(chat.user_id, *point, address="テスト県テスト市本町1-1"), 1)
    return reply


def button(message: dict[str, Any], label: str) -> str:
    for item in (message.get("quickReply") or {}).get("items", []):
        action = item["action"]
        if action.get("label") == label and action["type"] == "postback":
            return str(action["data"])
    raise AssertionError(f"no button {label!r} in {message}")


def report_at_place_step(chat: Chat) -> dict[str, Any]:
    """通報 -> 道路 -> スキップ: the draft waits for the place."""
    (ask,) = chat.says("通報")
    (photo_step,) = chat.taps(button(ask, "道路"))
    (place_step,) = chat.taps(button(photo_step, "スキップ"))
    assert "場所を教えてください" in place_step["text"]
    return place_step


def draft_of(app: Flask) -> Report | None:
    with get_db(app).session() as session:
        draft = session.scalars(select(Report).where(Report.status == DRAFT)).first()
        if draft is not None:
            session.expunge(draft)
        return draft


def test_shelter_search_tapped_after_starting_a_report_takes_the_location(city: Flask, chat: Chat) -> None:
    report_at_place_step(chat)
    (ask,) = chat.taps(SHELTER_TAP)
    assert "位置情報を送る" in ask["text"]

    reply = sends_location(chat, HOME)
    assert HAZARD_QUESTION in reply["text"], reply["text"]
    draft = draft_of(city)
    assert draft is not None and draft.step == "place" and draft.latitude is None  # the report still waits

    # The hazard chosen, the search is answered: the next location is the report's place again.
    cards, _note = chat.taps(button(reply, "洪水"), 2)
    assert cards["type"] == "flex"
    reply = sends_location(chat, HOME)
    assert "場所を受け取りました" in reply["text"]
    draft = draft_of(city)
    assert draft is not None and draft.step == "description" and (draft.latitude, draft.longitude) == HOME


def test_a_report_started_after_the_shelter_search_takes_the_location(city: Flask, chat: Chat) -> None:
    (ask,) = chat.says("避難所")
    assert "位置情報を送る" in ask["text"]
    report_at_place_step(chat)

    reply = sends_location(chat, HOME)
    assert "場所を受け取りました" in reply["text"] and HAZARD_QUESTION not in reply["text"]
    draft = draft_of(city)
    assert draft is not None and draft.step == "description" and (draft.latitude, draft.longitude) == HOME


def test_a_report_step_answered_after_the_search_takes_the_location(city: Flask, chat: Chat) -> None:
    """通報 -> 道路, then 避難所を探す, then スキップ (the report moved on last): the report's place."""
    (ask,) = chat.says("通報")
    (photo_step,) = chat.taps(button(ask, "道路"))
    chat.taps(SHELTER_TAP)
    chat.taps(button(photo_step, "スキップ"))

    reply = sends_location(chat, HOME)
    assert "場所を受け取りました" in reply["text"]


def test_without_a_report_the_search_takes_the_location_and_cancelling_the_report_hands_it_back(
        city: Flask, chat: Chat) -> None:
    report_at_place_step(chat)
    (stopped,) = chat.says("やめる")
    assert "通報をやめました" in stopped["text"]
    chat.taps(SHELTER_TAP)
    reply = sends_location(chat, HOME)
    assert HAZARD_QUESTION in reply["text"]
    assert draft_of(city) is None
