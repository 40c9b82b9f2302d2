"""Segment rules over residents' declared attributes: validation, counts, resolution, the privacy
floor with its audit-logged admin override, and the `flask segments` commands."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from bot.auth import create_user
from bot.db import get_db, utcnow
from bot.models import AuditLog
from segments.models import Resident, Segment
from segments.rules import (
    Criterion,
    FloorOverride,
    PrivacyFloorError,
    RuleError,
    SegmentRule,
    check_privacy_floor,
    count_recipients,
    get_segment,
    is_below_privacy_floor,
    preview,
    resolve_all_followers,
    resolve_recipients,
    save_segment,
)
from segments.vocab import interests_to_mask
from tests.conftest import Chat

_ids = itertools.count(1)


def resident(age=None, gender=None, area=None, interests=(), *, consented=True, following=True, notices=True) -> Resident:
    return Resident(
        line_user_id=f"U{next(_ids):032d}", is_following=following, consented_at=utcnow() if consented else None,
        age_band=age, gender=gender, area=area, interests_mask=interests_to_mask(interests), is_notices_enabled=notices,
    )


@pytest.fixture
def joso(make_app):
    return make_app(MUNICIPALITY="joso")


@pytest.fixture
def town(joso):
    """Ten residents of 常総市 with known attributes, and three who must never be reached."""
    people = [
        resident("30代", "女性", "水海道地区", ["子育て", "防災"]),
        resident("30代", "男性", "水海道地区", ["子育て"]),
        resident("40代", "女性", "石下地区", ["防災"]),
        resident("40代", "男性", "石下地区", []),
        resident("70代", "女性", "水海道地区", ["健康・福祉"]),
        resident("80代以上", "男性", "石下地区", ["健康・福祉", "防災"]),
        resident("回答しない", "回答しない", "回答しない", []),
        resident("20代", "その他", "水海道地区", ["イベント・観光"]),
        resident(None, None, None, []),  # consented, answered nothing yet
        resident("30代", "女性", "石下地区", ["ごみ・環境", "税・手続き"]),
        # Never reached by a segment: not consented, blocked, notices stopped.
        resident("30代", "女性", "水海道地区", ["子育て"], consented=False),
        resident("30代", "女性", "水海道地区", ["子育て"], following=False),
        resident("30代", "女性", "水海道地区", ["子育て"], notices=False),
    ]
    with get_db(joso).session() as s:
        s.add_all(people)
    return joso


def rule(**criteria: tuple[tuple[str, ...], tuple[str, ...]] | tuple[str, ...]) -> SegmentRule:
    """rule(age_bands=("30代",), areas=((), ("石下地区",))): a bare tuple means include."""
    parts = {}
    for name, value in criteria.items():
        include, exclude = value if value and isinstance(value[0], tuple) else (value, ())
        parts[name] = Criterion.of(include, exclude)
    return SegmentRule(**parts)


# --- rules ---------------------------------------------------------------------------------------


def test_rule_round_trips_and_describes_itself() -> None:
    r = rule(age_bands=("30代", "40代"), areas=((), ("石下地区",)), interests=("防災",))
    assert SegmentRule.from_dict(r.to_dict()) == r
    assert r.to_dict() == {"age_bands": {"include": ["30代", "40代"], "exclude": []},
                           "areas": {"include": [], "exclude": ["石下地区"]},
                           "interests": {"include": ["防災"], "exclude": []}}
    assert r.describe() == "年代: 30代・40代、地域（除く）: 石下地区、関心: 防災"
    assert SegmentRule().describe() == "配信を受け取る全員" and SegmentRule().is_everyone
    assert SegmentRule.from_dict(None) == SegmentRule() == SegmentRule.from_dict({})


@pytest.mark.parametrize("data", [{"ages": {}}, {"age_bands": ["30代"]}, {"age_bands": {"include": "30代"}},
                                  {"age_bands": {"include": [30]}}, {"age_bands": {"only": ["30代"]}}, ["age_bands"]])
def test_malformed_stored_rules_are_refused(data) -> None:
    with pytest.raises(RuleError):
        SegmentRule.from_dict(data)


@pytest.mark.parametrize(("bad", "message"), [
    (rule(age_bands=("35歳",)), "年代に選べない値"),
    (rule(genders=((), ("男",))), "性別に選べない値"),
    (rule(areas=("黒磯地区",)), "地域に選べない値"),  # 那須塩原市's district, not 常総市's
    (rule(interests=("競馬",)), "関心に選べない値"),
    (rule(genders=(("女性",), ("女性",))), "両方に指定"),
])
def test_rules_naming_values_residents_cannot_choose_are_refused(bad, message) -> None:
    with pytest.raises(RuleError, match=message):
        bad.validate("joso")


def test_area_rules_accept_the_citys_districts_and_no_answer() -> None:
    rule(areas=("水海道地区", "石下地区", "回答しない")).validate("joso")
    rule(areas=("黒磯地区",)).validate("nasushiobara")


# --- counts and resolution ------------------------------------------------------------------------


@pytest.mark.parametrize(("criteria", "expected"), [
    ({}, 10),
    ({"age_bands": ("30代",)}, 3),
    ({"age_bands": ("30代", "40代")}, 5),
    ({"age_bands": ((), ("30代",))}, 7),  # undeclared and 回答しない are not in the excluded group
    ({"genders": ("女性",), "areas": ("水海道地区",)}, 2),
    ({"areas": ("回答しない",)}, 1),
    ({"interests": ("防災",)}, 3),
    ({"interests": ("子育て", "健康・福祉")}, 4),  # any of them
    ({"interests": ((), ("防災",))}, 7),
    ({"interests": (("健康・福祉",), ("防災",))}, 1),
    ({"age_bands": ("30代", "40代"), "genders": ((), ("男性",)), "areas": ((), ("水海道地区",))}, 2),
    ({"age_bands": ("10代",)}, 0),
])
def test_count_matches_resolution_and_only_eligible_residents(town, criteria, expected) -> None:
    r = rule(**criteria)
    with get_db(town).session() as s:
        ids = [uid for batch in resolve_recipients(s, r) for uid in batch]
        assert count_recipients(s, r) == len(ids) == expected
        reached = s.scalars(select(Resident).where(Resident.line_user_id.in_(ids))).all()
    assert all(p.is_following and p.consented_at and p.is_notices_enabled for p in reached)


def test_resolution_comes_in_stable_batches(town) -> None:
    with get_db(town).session() as s:
        batches = list(resolve_recipients(s, None, batch_size=3))
        everyone = s.scalars(select(Resident.line_user_id).order_by(Resident.id)).all()
        followers = [uid for batch in resolve_all_followers(s, batch_size=4) for uid in batch]
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    flat = [uid for batch in batches for uid in batch]
    assert flat == [uid for uid in everyone if uid in set(flat)]  # resident id order
    assert len(followers) == 12  # emergencies reach every follower, consented or not


def test_residents_who_registered_in_the_chat_are_counted(joso, fake_line) -> None:
    for user, age in (("U" + "1" * 32, "30代"), ("U" + "2" * 32, "40代")):
        chat = Chat(joso.test_client(), fake_line, user)
        _greeting, notice = chat.follows(expect=2)
        (message,) = chat.taps(notice["quickReply"]["items"][0]["action"]["data"])
        for label in (age, "女性", "水海道地区"):
            action = next(i["action"] for i in message["quickReply"]["items"] if i["action"]["label"] == label)
            (message,) = chat.taps(action["data"])
    skipper = Chat(joso.test_client(), fake_line, "U" + "3" * 32)
    skipper.follows(expect=2)
    with get_db(joso).session() as s:
        assert count_recipients(s, None) == 2
        assert count_recipients(s, rule(age_bands=("30代",), genders=("女性",))) == 1
        assert [uid for b in resolve_recipients(s, rule(age_bands=("40代",))) for uid in b] == ["U" + "2" * 32]


# --- saved segments and the privacy floor ----------------------------------------------------------


def test_segments_are_saved_by_name_and_replaced(joso) -> None:
    with get_db(joso).session() as s:
        save_segment(s, " 子育て世代 ", rule(age_bands=("20代", "30代")), "joso")
        save_segment(s, "子育て世代", rule(age_bands=("30代",)), "joso")
        with pytest.raises(RuleError):
            save_segment(s, "x" * 65, SegmentRule(), "joso")
        with pytest.raises(RuleError):
            save_segment(s, "石下", rule(areas=("黒磯地区",)), "joso")
    with get_db(joso).session() as s:
        assert s.scalars(select(Segment.name)).all() == ["子育て世代"]
        assert SegmentRule.from_dict(get_segment(s, "子育て世代").rule) == rule(age_bands=("30代",))


def test_privacy_floor() -> None:
    # Empty is below too: whoever joins an empty segment first would be its only member.
    assert is_below_privacy_floor(0, 10)
    assert is_below_privacy_floor(1, 10) and is_below_privacy_floor(9, 10)
    assert not is_below_privacy_floor(10, 10)


def test_an_empty_segment_is_below_the_floor_but_singles_nobody_out_yet(town) -> None:
    empty = rule(age_bands=("50代",))
    with get_db(town).session() as s:
        assert preview(s, empty, 10).is_below_floor and preview(s, empty, 10).shown_count() == "10人未満"
        # No override needed to schedule for it now: each occurrence is checked again at send time.
        assert check_privacy_floor(s, empty, 10) == 0
        assert s.scalars(select(AuditLog)).all() == []


def test_a_small_segment_cannot_be_targeted_without_an_admins_explicit_override(town) -> None:
    small = rule(age_bands=("30代",))  # 3 residents
    with get_db(town).session() as s:
        pr = create_user(s, "koho", "correct horse battery", "pr")
        admin = create_user(s, "kanri", "correct horse battery", "admin")
        assert preview(s, small, 10).is_below_floor and preview(s, small, 10).shown_count() == "10人未満"
        assert check_privacy_floor(s, small, 3) == 3  # at the floor: fine, nothing logged
        with pytest.raises(PrivacyFloorError, match="10人未満"):
            check_privacy_floor(s, small, 10)
        with pytest.raises(PrivacyFloorError, match="管理者だけ"):
            check_privacy_floor(s, small, 10, override=FloorOverride(pr))
        assert s.scalars(select(AuditLog)).all() == []
        assert check_privacy_floor(s, small, 10, override=FloorOverride(admin, "避難所の案内"), target="お知らせ#1") == 3
        assert check_privacy_floor(s, small, 10, override=FloorOverride(None)) == 3  # the server operator, at the CLI
    with get_db(town).session() as s:
        logged = s.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    assert [(a.action, a.username, a.target) for a in logged] == [
        ("segment_privacy_override", "kanri", "お知らせ#1"), ("segment_privacy_override", "(CLI)", "")]
    assert logged[0].detail == {"count": 3, "floor": 10, "rule": {"age_bands": {"include": ["30代"], "exclude": []}},
                                "reason": "避難所の案内"}


def test_an_override_without_a_named_admin_is_refused_in_a_web_request(town) -> None:
    with town.test_request_context("/admin/"), get_db(town).session() as s:
        with pytest.raises(PrivacyFloorError):
            check_privacy_floor(s, rule(age_bands=("30代",)), 10, override=FloorOverride(None))


def test_the_floor_is_a_setting(make_app) -> None:
    assert make_app().config["SEGMENT_PRIVACY_FLOOR"] == 10
    assert make_app(SEGMENT_PRIVACY_FLOOR=3).config["SEGMENT_PRIVACY_FLOOR"] == 3


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_counts_with_includes_excludes_and_comma_lists(town) -> None:
    runner = town.test_cli_runner()
    result = runner.invoke(args=["segments", "count"])
    assert result.exit_code == 0, result.output
    assert "配信対象: 10 人" in result.output and "下限" not in result.output
    result = runner.invoke(args=["segments", "count", "--age", "30代,40代", "--exclude-gender", "男性", "--exclude-area", "水海道地区"])
    assert "配信対象: 2 人" in result.output
    assert "年代: 30代・40代" in result.output and "性別（除く）: 男性" in result.output
    assert "プライバシー保護の下限（10 人）未満" in result.output
    result = runner.invoke(args=["segments", "count", "--interest", "子育て", "--interest", "健康・福祉"])
    assert "配信対象: 4 人" in result.output


def test_cli_refuses_values_residents_cannot_choose(town) -> None:
    result = town.test_cli_runner().invoke(args=["segments", "count", "--area", "黒磯地区"])
    assert result.exit_code != 0
    assert "地域に選べない値があります: 黒磯地区" in result.output and "水海道地区" in result.output


def test_cli_saves_lists_counts_and_deletes_named_segments(town) -> None:
    runner = town.test_cli_runner()
    result = runner.invoke(args=["segments", "save", "女性・防災", "--gender", "女性", "--interest", "防災"])
    assert result.exit_code == 0, result.output
    assert "セグメント「女性・防災」を保存しました" in result.output and "配信対象: 2 人" in result.output
    result = runner.invoke(args=["segments", "save", "全員"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["segments", "list"])
    assert result.output.splitlines() == ["全員\t10\t配信を受け取る全員", "女性・防災\t2 (下限未満)\t性別: 女性、関心: 防災"]
    result = runner.invoke(args=["segments", "count", "--name", "女性・防災"])
    assert "配信対象: 2 人" in result.output
    assert runner.invoke(args=["segments", "count", "--name", "女性・防災", "--age", "30代"]).exit_code != 0
    assert runner.invoke(args=["segments", "count", "--name", "ない"]).exit_code != 0
    result = runner.invoke(args=["segments", "save", "女性・防災", "--gender", "女性"])
    assert "更新しました" in result.output
    assert runner.invoke(args=["segments", "delete", "全員"]).exit_code == 0
    assert runner.invoke(args=["segments", "delete", "全員"]).exit_code != 0
    with get_db(town).session() as s:
        assert [(a.action, a.target, a.username) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))] == [
            ("segment_save", "女性・防災", "(CLI)"), ("segment_save", "全員", "(CLI)"),
            ("segment_save", "女性・防災", "(CLI)"), ("segment_delete", "全員", "(CLI)")]
