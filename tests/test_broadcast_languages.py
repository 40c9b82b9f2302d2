"""Notices in several languages: each resident gets the version in their language (else the
やさしい日本語 version, else the Japanese text with a note in their language), exactly once, in
chunks of one language each with their own retry keys; the count preview says how many get each;
the privacy floor, exclusions and recurrence keep working."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from bot.db import get_db, utcnow
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast import service
from broadcast.dispatcher import Dispatcher
from broadcast.errors import NoticeError
from broadcast.languages import delivery_language, japanese_note
from broadcast.messages import NoticeContent
from broadcast.models import BroadcastChunk, BroadcastVersion
from broadcast.schedule import Schedule
from segments.models import Resident
from segments.rules import SegmentRule
from segments.vocab import areas_for
from tests.test_admin import csrf_token
from tests.test_broadcast import FAST, add_residents, multicast_requests, report, run_dispatcher
from tests.test_broadcast_floor import fast_hashing, staff  # noqa: F401 - fast_hashing is an autouse fixture

JA = "【お知らせ】12月29日から1月3日まで市役所は休みです。"
PT = "【Aviso】A prefeitura fica fechada de 29 de dezembro a 3 de janeiro."
VI = "【Thông báo】Tòa thị chính đóng cửa từ ngày 29 tháng 12 đến ngày 3 tháng 1."
EASY = "【おしらせ】12月29日から 1月3日まで 市役所は 休みです。"


@pytest.fixture
def bapp(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    """The app with fast retries and its own dispatcher lock file."""
    return make_app(**FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"))


def notice(app: Flask, versions: dict[str, str], *, rule: SegmentRule | None = None, every: str | None = None,
           emergency: bool = False, text: str = JA) -> int:
    """Schedule a text notice with versions through the service, as the admin page and the CLI do."""
    now = utcnow()
    schedule = Schedule.recurring(every, now) if every else Schedule.once(now)
    with get_db(app).session() as session:
        target = service.make_target(session, app.config["MUNICIPALITY"], rule=rule, is_emergency=emergency)
        created = service.create_broadcast(
            session, content=NoticeContent.build(text), schedule=schedule, target=target,
            versions={code: NoticeContent.build(body) for code, body in versions.items()}, now=now,
        )
        return created.broadcast.id


def received(fake: FakeLinePlatform) -> dict[str, list[list[dict[str, Any]]]]:
    """Every multicast each resident received: the list of message lists."""
    got: dict[str, list[list[dict[str, Any]]]] = {}
    for delivery in fake.deliveries:
        if delivery.kind == "multicast":
            for user in delivery.to:
                got.setdefault(user, []).append(delivery.messages)
    return got


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages if m["type"] == "text"]


def four_languages(app: Flask, each: int = 3) -> dict[str | None, list[str]]:
    """Residents who chose 日本語, Português, Tiếng Việt, and who chose nothing (NULL)."""
    return {
        "ja": add_residents(app, each, start=0, language="ja"),
        "pt": add_residents(app, each, start=100, language="pt"),
        "vi": add_residents(app, each, start=200, language="vi"),
        None: add_residents(app, each, start=300),
    }


# --- who gets which version ---------------------------------------------------------------------


def test_a_notice_with_pt_and_vi_versions_reaches_each_resident_in_their_language_exactly_once(
    bapp: Flask, fake_line: FakeLinePlatform
) -> None:
    people = four_languages(bapp)
    notice_id = notice(bapp, {"pt": PT, "vi": VI})

    run_dispatcher(bapp)

    got = received(fake_line)
    expected = {"ja": [JA], None: [JA], "pt": [PT], "vi": [VI]}
    for language, users in people.items():
        for user in users:
            assert len(got[user]) == 1, (language, got[user])  # exactly once
            assert texts(got[user][0]) == expected[language], language
    # One multicast per language group, each with its own retry key, none mixing languages.
    requests = multicast_requests(fake_line)
    assert len(requests) == 3
    assert len({r.headers["X-Line-Retry-Key"] for r in requests}) == 3
    for request in requests:
        assert len({texts(request.body["messages"])[0] for _ in request.body["to"]}) == 1
    with get_db(bapp).session() as session:
        rows = session.scalars(select(BroadcastChunk).order_by(BroadcastChunk.seq)).all()
        assert [(c.language, c.recipient_count) for c in rows] == [(None, 6), ("pt", 3), ("vi", 3)]
    shown = report(bapp, notice_id)
    assert shown["counts"]["delivered"] == 12 and shown["versions"] == {"pt": {"kind": "text", "text": PT}, "vi": {"kind": "text", "text": VI}}
    assert [(r["language"], r["recipients"], r["delivered"]) for r in shown["languages"]] == [(None, 6, 6), ("pt", 3, 3), ("vi", 3, 3)]


def test_a_resident_without_a_version_in_their_language_gets_the_japanese_text_with_a_note_in_it(
    bapp: Flask, fake_line: FakeLinePlatform
) -> None:
    english = add_residents(bapp, 2, start=0, language="en")
    portuguese = add_residents(bapp, 2, start=10, language="pt")
    notice(bapp, {"pt": PT})

    run_dispatcher(bapp)

    got = received(fake_line)
    for user in english:
        (messages,) = got[user]
        assert messages[0] == {"type": "text", "text": JA}
        assert messages[1] == japanese_note("en") and messages[1]["text"] != JA
        assert "Japanese" in messages[1]["text"]
    assert [texts(m) for m in got[portuguese[0]]] == [[PT]]


def test_the_easy_japanese_version_comes_before_the_japanese_text_for_other_languages(
    bapp: Flask, fake_line: FakeLinePlatform
) -> None:
    easy = add_residents(bapp, 2, start=0, language="ja-easy")
    english = add_residents(bapp, 2, start=10, language="en")
    japanese = add_residents(bapp, 2, start=20)
    notice(bapp, {"ja-easy": EASY})
    run_dispatcher(bapp)
    got = received(fake_line)
    assert [texts(m) for m in got[easy[0]]] == [[EASY]]
    assert [texts(m) for m in got[english[0]]] == [[EASY]]
    assert [texts(m) for m in got[japanese[0]]] == [[JA]]


def test_delivery_language_follows_the_order_of_preference() -> None:
    assert delivery_language(None, {"pt"}) is None
    assert delivery_language("ja", {"pt", "ja-easy"}) is None
    assert delivery_language("pt", {"pt", "ja-easy"}) == "pt"
    assert delivery_language("vi", {"pt", "ja-easy"}) == "ja-easy"
    assert delivery_language("vi", {"pt"}) == "vi"  # Japanese with a note in Vietnamese
    assert delivery_language("xx", {"pt"}) is None  # an unknown stored code is Japanese


def test_chunks_of_500_per_language_and_a_crash_resumes_without_a_second_delivery(
    bapp: Flask, make_app: Callable[..., Flask], fake_line: FakeLinePlatform, tmp_path: Path
) -> None:
    japanese = add_residents(bapp, 501, start=0)
    portuguese = add_residents(bapp, 502, start=1000, language="pt")
    notice(bapp, {"pt": PT})
    first = Dispatcher(bapp)
    first.start_due_runs(utcnow())
    with get_db(bapp).session() as session:
        stored = [(c.id, c.language, c.recipient_count, c.retry_key) for c in session.scalars(select(BroadcastChunk).order_by(BroadcastChunk.seq))]
    assert [(language, n) for _, language, n, _ in stored] == [(None, 500), (None, 1), ("pt", 500), ("pt", 2)]
    prepared = first.prepare_chunk(stored[2][0])  # committed ... and the process dies before calling
    assert prepared is not None and texts(prepared.messages) == [PT]

    restarted = make_app(empty=False, **FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"))
    run_dispatcher(restarted)

    got = received(fake_line)
    assert all(len(got[u]) == 1 and texts(got[u][0]) == [JA] for u in japanese)
    assert all(len(got[u]) == 1 and texts(got[u][0]) == [PT] for u in portuguese)
    keys = {r.headers["X-Line-Retry-Key"] for r in multicast_requests(fake_line)}
    assert keys == {key for *_, key in stored}


def test_a_retried_chunk_sends_the_same_version_under_the_same_key(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(bapp, 2, start=0, language="vi")
    notice(bapp, {"vi": VI})
    fake_line.fail("multicast", 500, times=1)
    run_dispatcher(bapp)
    requests = multicast_requests(fake_line)
    assert len(requests) == 2 and requests[0].headers["X-Line-Retry-Key"] == requests[1].headers["X-Line-Retry-Key"]
    assert [texts(r.body["messages"]) for r in requests] == [[VI], [VI]]


# --- guarantees kept: exclusions, the privacy floor, recurrence, emergencies ----------------------


def test_exclusions_and_unfollows_apply_to_every_language(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    area, other = areas_for(bapp.config["MUNICIPALITY"])[:2]
    kept = add_residents(bapp, 6, start=0, language="pt", area=area) + add_residents(bapp, 6, start=50, area=area)
    excluded = add_residents(bapp, 2, start=10, language="pt", area=other)
    notices_off = add_residents(bapp, 1, start=20, language="pt", is_notices_enabled=False)
    notice(bapp, {"pt": PT}, rule=SegmentRule.from_dict({"areas": {"exclude": [other]}}))
    assert set(received(fake_line)) == set()
    run_dispatcher(bapp)
    got = received(fake_line)
    assert set(got) == set(kept) and all(len(messages) == 1 for messages in got.values())
    assert texts(got[kept[0]][0]) == [PT] and texts(got[kept[-1]][0]) == [JA]
    assert not set(got) & set(excluded + notices_off)


def test_a_segment_below_the_privacy_floor_is_held_whatever_the_languages(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    area = areas_for(bapp.config["MUNICIPALITY"])[0]
    add_residents(bapp, 3, start=0, language="pt", area=area)
    add_residents(bapp, 3, start=10, area=area)
    add_residents(bapp, 20, start=100)
    notice_id = notice(bapp, {"pt": PT}, rule=SegmentRule.from_dict({"areas": {"include": [area]}}), every="daily")
    tick = run_dispatcher(bapp)
    assert tick.held_runs and multicast_requests(fake_line) == []
    assert report(bapp, notice_id)["runs"][0]["status"] == "held"


def test_each_occurrence_of_a_recurring_notice_regroups_residents_by_their_language_then(
    bapp: Flask, fake_line: FakeLinePlatform
) -> None:
    (user,) = add_residents(bapp, 1, start=0)
    add_residents(bapp, 20, start=100)
    notice(bapp, {"pt": PT}, every="daily")
    run_dispatcher(bapp)
    with get_db(bapp).session() as session:
        session.execute(update(Resident).where(Resident.line_user_id == user).values(language="pt"))
    run_dispatcher(bapp, now=utcnow() + dt.timedelta(days=1))
    assert [texts(m) for m in received(fake_line)[user]] == [[JA], [PT]]


def test_an_emergency_notice_reaches_every_follower_in_their_language(bapp: Flask, fake_line: FakeLinePlatform) -> None:
    portuguese = add_residents(bapp, 2, start=0, language="pt", is_notices_enabled=False)
    unconsented = add_residents(bapp, 2, start=10, consented_at=None)
    notice(bapp, {"pt": PT}, emergency=True, text="【緊急】避難指示が発令されました")
    run_dispatcher(bapp)
    got = received(fake_line)
    assert [texts(m) for m in got[portuguese[0]]] == [[PT]]
    assert [texts(m) for m in got[unconsented[0]]] == [["【緊急】避難指示が発令されました"]]


def test_a_version_must_be_a_language_residents_can_choose_and_a_valid_message(bapp: Flask) -> None:
    with get_db(bapp).session() as session:
        target = service.make_target(session, bapp.config["MUNICIPALITY"])
        for versions, message in (
            ({"ja": NoticeContent.build("x")}, "「ja」の版は作れません"),
            ({"ko": NoticeContent.build("x")}, "「ko」の版は作れません"),
            ({"pt": NoticeContent("text", "   ")}, "ポルトガル語（Português）の版: 本文を入力してください"),
        ):
            with pytest.raises(NoticeError, match=re.escape(message)):
                service.create_broadcast(session, content=NoticeContent.build(JA), schedule=Schedule.once(utcnow()),
                                         target=target, versions=versions)
            session.rollback()


# --- the compose form ---------------------------------------------------------------------------


def compose(client: FlaskClient, step: str = "confirm", **fields: Any) -> Any:
    data: dict[str, Any] = {"kind": "text", "text": JA, "target": "all", "timing": "now"}
    data.update(fields)
    data["step"] = step
    data["csrf_token"] = csrf_token(client, "/admin/notices/new")
    return client.post("/admin/notices/new", data=data)


def test_the_form_offers_a_version_per_city_language_and_the_count_says_how_many_get_each(
    make_app: Callable[..., Flask], fake_line: FakeLinePlatform
) -> None:
    app = make_app(LANGUAGES="ja,ja-easy,en,pt,vi")
    four_languages(app, each=12)
    add_residents(app, 12, start=400, language="en")
    pr = staff(app, "pr")
    form = pr.get("/admin/notices/new").get_data(as_text=True)
    assert [code for code in re.findall(r'name="text_([a-z-]+)"', form)] == ["ja-easy", "en", "pt", "vi"]
    assert "ポルトガル語（Português）" in form and 'name="text_zh"' not in form

    live = pr.get("/admin/notices/count?target=all&versions=pt,vi").get_json()
    assert [(row["language"], row["count"]) for row in live["languages"]] == [("ja", 24), ("en", 12), ("pt", 12), ("vi", 12)]
    assert live["languages"][1]["label"] == "英語（English）：日本語の本文＋案内"

    page = compose(pr, text_pt=PT, text_vi=VI).get_data(as_text=True)
    rows = re.findall(r'<li data-language="([a-z-]+)" data-count="(\d+)">([^<]*)</li>', page)
    assert [(code, int(n)) for code, n, _ in rows] == [("ja", 24), ("en", 12), ("pt", 12), ("vi", 12)]
    assert "ポルトガル語（Português）: 12 人" in page
    # The confirm page shows each version as residents will see it.
    assert 'id="preview-pt"' in page and PT in page and VI in page and 'id="preview-en"' not in page

    created = compose(pr, step="schedule", text_pt=PT, text_vi=VI)
    assert created.status_code == 302
    detail = pr.get(created.headers["Location"]).get_data(as_text=True)
    assert "プレビュー（ポルトガル語（Português））" in detail and PT in detail
    run_dispatcher(app)
    got = received(fake_line)
    with get_db(app).session() as session:
        users = dict(session.execute(select(Resident.line_user_id, Resident.language)).all())
    assert Counter(texts(m)[0] for user in users for m in got[user]) == Counter({JA: 36, PT: 12, VI: 12})
    detail = pr.get(created.headers["Location"]).get_data(as_text=True)
    assert re.search(r'<tr data-language="pt"><td>ポルトガル語（Português）</td><td class="num">12</td>', detail)


def test_small_language_groups_are_not_counted_exactly_for_staff_who_may_not_override(app: Flask) -> None:
    add_residents(app, 30, start=0)
    add_residents(app, 2, start=100, language="pt")
    pr = staff(app, "pr")
    live = pr.get("/admin/notices/count?target=all&versions=pt").get_json()
    assert [(row["language"], row["count"], row["shown"]) for row in live["languages"]] == [
        ("ja", 30, "30 人"), ("pt", None, "10人未満"),
    ]
    admin = staff(app, "admin")
    live = admin.get("/admin/notices/count?target=all&versions=pt").get_json()
    assert [(row["language"], row["count"]) for row in live["languages"]] == [("ja", 30), ("pt", 2)]


def test_a_bad_version_is_refused_in_japanese_naming_the_language(app: Flask) -> None:
    pr = staff(app, "pr")
    refused = compose(pr, kind="card", button_label="詳しく見る", button_url="https://www.city.example.jp/",
                      text_pt="x" * 1001)
    assert refused.status_code == 400
    assert "ポルトガル語（Português）の版: カードの本文は1000文字以内にしてください" in refused.get_data(as_text=True)
    refused = compose(pr, kind="card", button_label="詳しく見る", button_url="https://www.city.example.jp/",
                      button_label_vi="Xem chi tiết")
    assert "ベトナム語（Tiếng Việt）の版の本文を入力してください" in refused.get_data(as_text=True)


def test_a_card_version_has_its_own_heading_and_button_with_the_same_link(app: Flask) -> None:
    pr = staff(app, "pr")
    add_residents(app, 12)
    created = compose(
        pr, step="schedule", kind="card", card_title="年末年始の窓口", button_label="詳しく見る",
        button_url="https://www.city.example.jp/nenmatsu", text_pt=PT, card_title_pt="Fim de ano", button_label_pt="Ver mais",
    )
    assert created.status_code == 302
    with get_db(app).session() as session:
        version = session.scalars(select(BroadcastVersion)).one()
    bubble = version.messages[0]["contents"]
    assert bubble["body"]["contents"][0]["text"] == "Fim de ano"
    assert bubble["footer"]["contents"][0]["action"] == {"type": "uri", "label": "Ver mais", "uri": "https://www.city.example.jp/nenmatsu"}


# --- the CLI ------------------------------------------------------------------------------------


def test_the_cli_takes_versions_per_language(make_app: Callable[..., Flask], fake_line: FakeLinePlatform) -> None:
    app = make_app(LANGUAGES="ja,en,pt")
    people = four_languages(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["broadcast", "create", "--text", JA, "--text-pt", PT])
    assert result.exit_code == 0, result.output
    notice_id = int(result.stdout.strip().splitlines()[-1])
    refused = runner.invoke(args=["broadcast", "create", "--text", JA, "--text-vi", VI])
    assert refused.exit_code != 0 and "ベトナム語（Tiếng Việt）はこの市の言語（LANGUAGES）にありません" in refused.output
    run_dispatcher(app)
    got = received(fake_line)
    assert [texts(m) for m in got[people["pt"][0]]] == [[PT]]
    assert [texts(m) for m in got[people[None][0]]] == [[JA]]
    shown = runner.invoke(args=["broadcast", "show", str(notice_id), "--json"])
    assert json.loads(shown.stdout)["versions"] == {"pt": {"kind": "text", "text": PT}}
